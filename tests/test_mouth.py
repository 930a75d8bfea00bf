"""Mouth shapes of the embedded backend, measured by mediapipe on rendered frames: lips meet on a
closure even where the portrait smiles with its teeth, rounding narrows the mouth by a plausible
share and never collapses it, rounding is not held across consonants, recognised phones make weaker
shapes than aligned ones, and every clip gets its first blink within 2-4 s."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import media_factory as mf
from audio2coeff.embedded.articulation import mouth_track
from audio2coeff.embedded.motion import FIRST_BLINK_S, blink_times
from audio2coeff.embedded.visemes import MOUTH_CHANNELS, VISEME_TARGETS
from renderer.embedded import EmbeddedRenderer
from talker.face import prepare_face
from talker.measure import measure_frames
from talker.types import EMBEDDED_CHANNELS, FPS, CoeffTrack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from held_out_faces import cel_shaded  # noqa: E402


def viseme_row(name: str) -> np.ndarray:
    row = np.zeros(len(EMBEDDED_CHANNELS), np.float32)
    for k, c in enumerate(MOUTH_CHANNELS):
        row[EMBEDDED_CHANNELS.index(c)] = VISEME_TARGETS[name][k]
    return row


@pytest.fixture(scope="module")
def measured():
    """Per portrait: mediapipe's mouth opening (IOD) and width (corner to corner over the rest width) at rest and at
    the closed, open, wide and pucker visemes, rendered at 256."""
    portraits = {"astronaut (smiles with teeth)": mf.astronaut(), "hopper": mf.grace_hopper(),
                 "cel-shaded astronaut": cel_shaded(mf.astronaut())}
    names = ("rest", "closed", "open", "wide", "pucker", "round")
    out = {}
    for label, rgb in portraits.items():
        renderer = EmbeddedRenderer(prepare_face(rgb, "crop", 256))
        track = CoeffTrack(np.stack([viseme_row(n) for n in names]), "embedded")
        m = measure_frames(list(np.concatenate(list(renderer.render(track)))))
        width = np.linalg.norm(m.landmarks[:, 61, :2] - m.landmarks[:, 291, :2], axis=-1) / m.iod
        out[label] = {n: (float(m.mouth_open[k]), float(width[k] / width[0])) for k, n in enumerate(names)}
    return out


def test_lips_meet_on_closures_whatever_the_source_shows(measured):
    for label, m in measured.items():
        closed, opened = m["closed"][0], m["open"][0]
        assert closed <= 0.3 * opened and closed <= 0.04, f"{label}: closed lips read {closed:.3f} IOD open ({opened:.3f} at 'open')"
    assert measured["astronaut (smiles with teeth)"]["rest"][0] > 0.05  # the source really shows its teeth


def test_rounding_narrows_the_mouth_without_collapsing_it(measured):
    for label, m in measured.items():
        pucker, rnd = m["pucker"][1], m["round"][1]
        assert 0.75 <= pucker <= 0.97, f"{label}: pucker keeps {pucker:.0%} of the rest width"
        assert 0.8 <= rnd <= 1.02, f"{label}: round keeps {rnd:.0%} of the rest width"
        assert min(m["wide"][0], m["open"][0]) > m["closed"][0] + 0.05, label  # the open/closed contrast


def test_rounding_relaxes_in_consonant_clusters():
    # 'too strong, who': rounded vowels around a long unrounded cluster, then a long rounded vowel
    phones = [(0.0, 0.2, "sil"), (0.2, 0.26, "t"), (0.26, 0.4, "uw"), (0.4, 0.5, "s"), (0.5, 0.56, "t"), (0.56, 0.62, "r"),
              (0.62, 0.75, "ao"), (0.75, 0.85, "ng"), (0.85, 0.9, "hh"), (0.9, 1.3, "uw"), (1.3, 1.6, "sil")]
    rnd = mouth_track(phones, 40)[:, MOUTH_CHANNELS.index("lip_round")]
    t = (np.arange(40) + 0.5) / FPS
    held = rnd > 0.5
    runs, run = [], 0
    for h in held:
        run = run + 1 if h else 0
        runs.append(run)
    assert max(runs) * 1000 / FPS <= 400 + 120  # only the long 'uw' (400 ms) is held
    assert rnd[(t > 0.42) & (t < 0.48)].max() < rnd[(t > 0.28) & (t < 0.38)].max()  # relaxes in 's'


def test_recognised_phones_make_weaker_shapes():
    phones = [(0.0, 0.2, "sil"), (0.2, 0.45, "uw"), (0.45, 0.47, "aa"), (0.47, 0.7, "iy"), (0.7, 1.0, "sil")]
    aligned = mouth_track(phones, 25)
    recognised = mouth_track(phones, 25, recognised=True)
    r = MOUTH_CHANNELS.index("lip_round")
    assert recognised[:, r].max() <= 0.65 * aligned[:, r].max()
    j = MOUTH_CHANNELS.index("jaw_open")
    assert recognised[:, j].max() < aligned[:, j].max()  # the 20 ms 'aa' makes no wide jaw of its own


@pytest.mark.parametrize("duration", [3.0, 5.0, 12.0, 60.0])
def test_first_blink_within_two_to_four_seconds(duration):
    for seed in range(30):
        first = blink_times(duration, 17.0, np.random.default_rng(seed))[0]
        assert FIRST_BLINK_S[0] <= first <= min(FIRST_BLINK_S[1], duration - 0.3)
