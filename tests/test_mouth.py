"""Mouth shapes of the embedded backend, measured by the face mesh on rendered frames: lips meet on a
closure even where the portrait smiles with its teeth, rounding narrows the mouth by a plausible
share and never collapses it, rounding is not held across consonants, recognised phones make weaker
shapes than aligned ones, and every clip gets its first blink within 1-4 s."""

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

sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))  # last: its enhance.py must not shadow the package
from held_out_faces import cel_shaded  # noqa: E402


ROUNDED_CLOSURE = {"lip_close": 1.0, "lip_round": 0.8, "lip_width": -0.3}
"""The b of 'blue', 'boots': lips shut while rounding for the vowel after them."""


def viseme_row(name: str) -> np.ndarray:
    row = np.zeros(len(EMBEDDED_CHANNELS), np.float32)
    if name == "rounded_closure":
        for c, v in ROUNDED_CLOSURE.items():
            row[EMBEDDED_CHANNELS.index(c)] = v
        return row
    for k, c in enumerate(MOUTH_CHANNELS):
        row[EMBEDDED_CHANNELS.index(c)] = VISEME_TARGETS[name][k]
    return row


@pytest.fixture(scope="module")
def measured():
    """Per portrait: the face mesh's mouth opening (IOD) and width (corner to corner over the rest width) at rest and at
    the closed, open, wide and pucker visemes, rendered at 256."""
    portraits = {"astronaut (smiles with teeth)": mf.astronaut(), "hopper": mf.grace_hopper(),
                 "cel-shaded astronaut": cel_shaded(mf.astronaut())}
    names = ("rest", "closed", "open", "wide", "pucker", "round", "rounded_closure")
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


def test_a_closure_before_a_rounded_vowel_reads_shut(measured):
    """Lips shut for the b of 'blue' while rounding for the vowel are pressed flat (face_model: lip_close takes
    the rounding back): a drawn ink mouth line shortened by rounding is otherwise read as lips apart."""
    for label, m in measured.items():
        shut, opened = m["rounded_closure"][0], m["open"][0]
        assert shut <= 0.012 and shut <= 0.2 * opened, f"{label}: a rounded closure reads {shut:.3f} IOD open"


def test_rounding_narrows_the_mouth_without_collapsing_it(measured):
    for label, m in measured.items():
        pucker, rnd = m["pucker"][1], m["round"][1]
        assert 0.7 <= pucker <= 0.85, f"{label}: pucker keeps {pucker:.0%} of the rest width"
        assert 0.8 <= rnd <= 0.97, f"{label}: round keeps {rnd:.0%} of the rest width"
        assert m["pucker"][0] > 0.04, f"{label}: a rounded mouth stays open ({m['pucker'][0]:.3f} IOD)"
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
def test_first_blink_within_one_to_four_seconds_and_varies_with_the_seed(duration):
    firsts = [blink_times(duration, 17.0, np.random.default_rng(seed))[0] for seed in range(30)]
    assert all(FIRST_BLINK_S[0] <= first <= min(FIRST_BLINK_S[1], duration - 0.3) for first in firsts)
    assert max(firsts) - min(firsts) > 0.6 * (min(FIRST_BLINK_S[1], duration - 0.3) - FIRST_BLINK_S[0])


def _closed_row() -> np.ndarray:
    row = np.zeros(len(EMBEDDED_CHANNELS), np.float32)
    row[EMBEDDED_CHANNELS.index("lip_close")] = 1.0
    return row


def test_closed_lips_hide_what_shows_at_the_source_lips_inner_edge(monkeypatch):
    """A portrait's teeth often reach a little past the landmark model's inner lip contour (a CG face
    read 0.063 IOD 'open' with its lips shut): a white band painted along the inside of the source's
    inner lip contours must stay mostly hidden in the seam once the lips close (face_model.LIP_EDGE)."""
    import dataclasses

    import cv2

    import renderer.embedded.face_model as face_model
    import renderer.embedded.mouth as mouth
    from renderer.embedded.mesh import LIP_INNER_LOWER, LIP_INNER_UPPER, LIP_OUTER_LOWER, LIP_OUTER_UPPER

    outer = list(LIP_OUTER_UPPER + LIP_OUTER_LOWER[-2:0:-1])
    for rgb in (mf.astronaut(), mf.grace_hopper()):
        face = prepare_face(rgb, "crop", 256)
        lm = np.asarray(face.landmarks)[:, :2]
        lips, band = np.zeros(face.image.shape[:2], np.uint8), np.zeros(face.image.shape[:2], np.uint8)
        cv2.fillPoly(lips, [np.round(lm[outer]).astype(np.int32)], 1)
        for contour in (LIP_INNER_UPPER, LIP_INNER_LOWER):
            cv2.polylines(band, [np.round(lm[list(contour)]).astype(np.int32)], False, 1, 3)
        image = face.image.copy()
        image[(band & lips) > 0] = 250
        banded = dataclasses.replace(face, image=image)

        def white_in_closed_lips() -> int:
            renderer = EmbeddedRenderer(banded)
            (frame,) = np.concatenate(list(renderer.render(CoeffTrack(_closed_row()[None], "embedded"))))
            mask = np.zeros(frame.shape[:2], np.uint8)
            cv2.fillPoly(mask, [np.round(renderer.landmarks(_closed_row())[outer, :2]).astype(np.int32)], 1)
            return int(((frame.min(axis=2) > 235) & (mask > 0)).sum())

        monkeypatch.setattr(mouth, "CONTACT_SHADE", 0.0)  # the contact shadow would hide some white in both
        shown = white_in_closed_lips()
        monkeypatch.setattr(face_model, "LIP_EDGE", 0.0)  # the plain squash, for comparison
        squashed = white_in_closed_lips()
        monkeypatch.undo()
        assert squashed > 60 and shown <= 0.6 * squashed, (shown, squashed)


def test_a_closing_lid_covers_the_eye_instead_of_squashing_it(monkeypatch):
    """Half way through a blink the eye between the lids is the source eye where it was (the lid
    slides over it), not the whole eye squashed into the gap (the lash line drawn along the closing
    lid's edge, over the top of the gap, left out there); both eyes close alike."""
    import cv2

    from renderer.embedded.eyes import LidSkin
    from renderer.embedded.mesh import EYES

    face = prepare_face(mf.astronaut(), "crop", 256)
    renderer = EmbeddedRenderer(face)
    rows = np.zeros((3, len(EMBEDDED_CHANNELS)), np.float32)
    rows[:, EMBEDDED_CHANNELS.index("blink")] = (0.0, 0.5, 1.0)
    frames = list(np.concatenate(list(renderer.render(CoeffTrack(rows, "embedded")))))
    m = measure_frames(frames)
    lm = m.landmarks
    per_eye = [np.linalg.norm(lm[:, e.upper[4], :2] - lm[:, e.lower[4], :2], axis=-1) for e in EYES]
    shares = [p[1:] / p[0] for p in per_eye]  # opening at 0.5 and 1.0 over the open eye
    assert np.all(np.abs(shares[0] - shares[1]) < 0.15), shares  # no wink
    assert max(s[1] for s in shares) < 0.3  # read shut at blink = 1

    monkeypatch.setattr(LidSkin, "draw_lash", lambda self, *args: None)
    half = np.concatenate(list(renderer.render(CoeffTrack(rows[1:2], "embedded"))))[0]
    pts = renderer.landmarks(rows[1])[:, :2]
    for eye in EYES:
        mask = np.zeros(half.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(pts[list(eye.contour)]).astype(np.int32)], 1)
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0
        assert mask.sum() > 20
        diff = np.abs(half.astype(int) - face.image.astype(int))[mask].mean()
        assert diff < 6.0, f"the half-shut eye differs from the source eye there by {diff:.1f} grey levels"


def test_every_frame_touching_a_closure_shows_shut_lips(speech_pbm):
    """Festival speech with p/b/m after pauses ('Peter ...', 'My mom ...'): in the track, the lips are
    shut (lip_close 1, jaw 0) on every frame that overlaps an aligned p/b/m by half a frame or more, also
    where the pause gate ramps (a closure at a speech onset was left half open)."""
    from audio2coeff.embedded.articulation import MIN_OVERLAP_S
    from audio2coeff.embedded.track import embedded_track
    from conftest import PBM_TEXT
    from talker.media import read_audio

    wav, _ = speech_pbm
    track = embedded_track(read_audio(wav, transcript=PBM_TEXT))
    close, jaw = track.values[:, EMBEDDED_CHANNELS.index("lip_close")], track.values[:, EMBEDDED_CHANNELS.index("jaw_open")]
    n, checked = len(close), 0
    for start, end, name in track.meta["phones"]:
        if name not in ("p", "b", "m"):
            continue
        for i in range(n):
            if min(end, (i + 1) / FPS) - max(start, i / FPS) >= min(MIN_OVERLAP_S, 0.5 * (end - start)) - 1e-6:
                assert close[i] >= 0.99 and jaw[i] <= 0.01, (name, start, end, i, close[i], jaw[i])
                checked += 1
    assert checked >= 12


def _row(**values: float) -> np.ndarray:
    row = np.zeros(len(EMBEDDED_CHANNELS), np.float32)
    for name, v in values.items():
        row[EMBEDDED_CHANNELS.index(name)] = v
    return row


def test_the_lower_lip_does_most_of_the_closing_and_rounding_does_not_part_pressed_lips():
    """In a bilabial closure the jaw and lower lip travel most of the way (face_model.CLOSE_UPPER_SHARE):
    moving the upper lip half way down drags the skin above it over the seam; and rounding's
    parting of the lips gives way to lip_close (pressed lips are not parted)."""
    from renderer.embedded.mesh import LIP_INNER_LOWER, LIP_INNER_UPPER, LIP_OUTER_LOWER, LIP_OUTER_UPPER

    renderer = EmbeddedRenderer(prepare_face(mf.astronaut(), "crop", 256))  # photographed with the lips apart
    up, lo, out_up, out_lo = LIP_INNER_UPPER[5], LIP_INNER_LOWER[5], LIP_OUTER_UPPER[5], LIP_OUTER_LOWER[5]
    rest, closed = renderer.landmarks(_row()), renderer.landmarks(_row(lip_close=1.0))
    gap = rest[lo, 1] - rest[up, 1]
    assert gap > 5.0
    assert closed[up, 1] - rest[up, 1] <= 0.3 * gap and rest[lo, 1] - closed[lo, 1] >= 0.7 * gap
    rounded = renderer.landmarks(_row(lip_close=1.0, lip_round=0.9))
    opened = renderer.landmarks(_row(lip_round=0.9))
    thick = lambda p: p[out_lo, 1] - p[out_up, 1]  # noqa: E731
    assert thick(opened) > thick(rest)  # rounding alone does part the lips
    assert abs(thick(rounded) - thick(closed)) < 0.05 * thick(closed)


def test_a_mouth_photographed_open_closes_with_the_jaw(monkeypatch):
    """The jaw rises in a closure of a mouth photographed open (face_model.CLOSE_JAW_SHARE): the chin
    comes up with the lower lip, instead of the skin under the lip stretching while the chin stays."""
    import renderer.embedded.face_model as face_model
    from renderer.embedded.mesh import LIP_INNER_LOWER, LIP_INNER_UPPER

    face = prepare_face(mf.astronaut(), "crop", 256)  # photographed with the lips apart
    chin, up, lo = 152, LIP_INNER_UPPER[5], LIP_INNER_LOWER[5]
    renderer = EmbeddedRenderer(face)
    rest, closed = renderer.landmarks(_row()), renderer.landmarks(_row(lip_close=1.0))
    gap = rest[lo, 1] - rest[up, 1]
    assert abs(closed[lo, 1] - closed[up, 1]) < 0.5  # the lips meet
    assert rest[chin, 1] - closed[chin, 1] > 0.4 * gap  # and the chin rose with them
    monkeypatch.setattr(face_model, "CLOSE_JAW_SHARE", 0.0)
    lips_only = EmbeddedRenderer(face).landmarks(_row(lip_close=1.0))
    assert abs(lips_only[lo, 1] - lips_only[up, 1]) < 0.5
    assert rest[chin, 1] - lips_only[chin, 1] < 0.1 * gap


def test_closed_lips_show_a_contact_shadow_and_nothing_else_changes(monkeypatch):
    """Where lip_close shuts the lips their contact is shaded (mouth.CONTACT_SHADE) towards the
    portrait's own lip contact colour; at rest, and more than a few pixels from the seam, the frame
    is the same as without it."""
    import renderer.embedded.mouth as mouth
    from renderer.embedded.mesh import LIP_INNER_LOWER, LIP_INNER_UPPER

    renderer = EmbeddedRenderer(prepare_face(mf.grace_hopper(), "crop", 256))
    rows = np.stack([_row(), _row(lip_close=1.0)])

    def frames():
        return np.concatenate(list(renderer.render(CoeffTrack(rows, "embedded")))).astype(np.float64)

    with_seam = frames()
    monkeypatch.setattr(mouth, "CONTACT_SHADE", 0.0)
    without = frames()
    assert np.array_equal(with_seam[0], without[0])  # nothing drawn at rest
    pts = renderer.landmarks(rows[1])
    seam = (pts[list(LIP_INNER_UPPER), :2] + pts[list(LIP_INNER_LOWER), :2]) / 2
    luma = lambda f, p: f[np.round(p[:, 1]).astype(int), np.round(p[:, 0]).astype(int)].mean(axis=1)  # noqa: E731
    middle = seam[3:8]
    assert np.mean(luma(without[1], middle) - luma(with_seam[1], middle)) > 4.0
    ys, xs = np.mgrid[: with_seam.shape[1], : with_seam.shape[2]]
    near = np.min(np.hypot(xs[..., None] - seam[:, 0], ys[..., None] - seam[:, 1]), axis=-1) < 4.0
    assert np.array_equal(with_seam[1][~near], without[1][~near])


@pytest.fixture(scope="module")
def paused_parted_lips(speech_pbm):
    """Festival speech of PBM_TEXT with 0.4 s of silence before it and 0.5 s more in its middle pause
    ('... Boston. | My mom ...'), tracked with its transcript, and the astronaut (parted lips with
    teeth, smiling) prepared in full mode: (track, face)."""
    from audio2coeff.embedded.track import embedded_track
    from conftest import PBM_TEXT
    from talker.types import SAMPLE_RATE, Audio

    wav, phones = speech_pbm
    samples = mf.read_wav_16k(wav)
    mid = next(p for p in phones[1:-1] if p.phone == "pau")
    cut = int((mid.start + mid.end) / 2 * SAMPLE_RATE)
    pad = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
    audio = Audio(np.concatenate([pad, samples[:cut], pad, pad[: SAMPLE_RATE // 10], samples[cut:], pad]), transcript=PBM_TEXT)
    return embedded_track(audio), prepare_face(mf.astronaut(), "full", 256)


def _pause_frames(track: CoeffTrack) -> list[tuple[int, int]]:
    """(first, last) video frames inside each pause of at least 0.3 s of the track's phones."""
    return [(int(s * FPS) + 1, int(e * FPS) - 1) for s, e, p in track.meta["phones"] if p == "sil" and e - s >= 0.3]


def test_frame_0_and_pauses_show_the_portraits_own_mouth(paused_parted_lips):
    """The astronaut shows her teeth between parted lips (0.13 IOD open): at frame 0 (0.4 s before the
    speech) and in the middle of the mid-clip pause the landmark model reads her own opening and
    width, not pressed lips (the lips were shut in every pause, a smile made a pursed mouth)."""
    track, face = paused_parted_lips
    pauses = _pause_frames(track)
    assert len(pauses) >= 2 and pauses[0][0] <= 1, pauses
    rows = [0] + [(a + b) // 2 for a, b in pauses[1:]]
    x0, y0, x1, y1 = (int(round(v)) for v in face.box)  # full mode draws the face box at the portrait's resolution
    frames = [face.source[y0:y1, x0:x1]] + list(np.concatenate(list(EmbeddedRenderer(face).render(CoeffTrack(track.values[rows], "embedded")))))
    m = measure_frames(frames)
    width = np.linalg.norm(m.landmarks[:, 61, :2] - m.landmarks[:, 291, :2], axis=-1) / m.iod
    assert m.mouth_open[0] > 0.1  # the portrait itself: parted lips
    for k, row in enumerate(rows, start=1):
        assert abs(m.mouth_open[k] - m.mouth_open[0]) <= 0.01, (row, m.mouth_open[k], m.mouth_open[0])
        assert abs(width[k] - width[0]) <= 0.02 * width[0], (row, width[k], width[0])


def test_p_b_m_next_to_a_pause_read_shut_on_a_parted_lips_portrait(paused_parted_lips):
    """'Peter' after the leading pause and 'My' after the middle one: the frame at the middle of each
    such p/b/m reads shut (at most 0.016 IOD), though the lips rest parted in the pause beside it."""
    track, face = paused_parted_lips
    phones = track.meta["phones"]
    edge = [(s + e) / 2 for k, (s, e, p) in enumerate(phones)
            if p in ("p", "b", "m") and (phones[k - 1][2] == "sil" or (k + 1 < len(phones) and phones[k + 1][2] == "sil"))]
    assert len(edge) >= 2, phones
    rows = [int(t * FPS) for t in edge]
    frames = list(np.concatenate(list(EmbeddedRenderer(face).render(CoeffTrack(track.values[rows], "embedded")))))
    opening = measure_frames(frames).mouth_open
    assert np.all(opening <= 0.016), (edge, opening)
