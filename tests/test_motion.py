"""Head motion as the picture shows it, short clips' head motion and short closures.

The pose tests pose a synthetic face: the canonical face mesh photographed level or looking down,
in pixels, through the renderer's own pose operator (renderer.embedded.pose.HeadPose).
"""

from __future__ import annotations

import numpy as np
import pytest

import media_factory as mf
from audio2coeff.embedded import embedded_track
from audio2coeff.embedded.articulation import mouth_track
from audio2coeff.embedded.motion import MANNERS
from audio2coeff.embedded.visemes import MOUTH_CHANNELS
from renderer.embedded.geometry import fit_frame, head_rotation
from renderer.embedded.mesh import canonical_face
from renderer.embedded.pose import HeadPose
from talker.types import EMBEDDED_CHANNELS, FPS, SAMPLE_RATE, Audio

IOD_PX = 60.0


def _photographed(pitch_deg: float) -> np.ndarray:
    """(478, 3) landmarks in pixels of the canonical face photographed pitched by ``pitch_deg`` (+: looking down)."""
    return 200.0 + IOD_PX * canonical_face() @ head_rotation(0.0, np.deg2rad(pitch_deg), 0.0).T


def _nod(pitch_deg: float, nod_deg: float) -> tuple[float, float]:
    """(how far the nose tip moves against the eyes' midpoint, how far the eyes' midpoint moves), in
    IOD across the eye line, when a face photographed at ``pitch_deg`` nods by ``nod_deg``."""
    pts = _photographed(pitch_deg)
    pose = HeadPose(fit_frame(canonical_face()[:468], pts[:468]))
    posed = pose.apply(pts, 0.0, np.deg2rad(nod_deg), 0.0, 0.0, 0.0)

    def eyes(p):
        return (p[33, 1] + p[263, 1]) / 2

    nose = (posed[4, 1] - eyes(posed)) - (pts[4, 1] - eyes(pts))
    return nose / IOD_PX, (eyes(posed) - eyes(pts)) / IOD_PX


def test_a_face_looking_down_nods_as_visibly_as_a_level_one():
    """A face photographed looking down 24 degrees has its nose foreshortened towards the eyes' depth:
    the same nod moved its nose across the eyes 0.60 as far as a level face's (its head read nearly
    still), while the whole face swung across the picture 3.1 times as far per unit of that visible
    nod as a level face (a neck pivot set in its own tilted frame): large motion, little of it seen."""
    level_nose, level_eyes = _nod(0.0, 5.0)
    down_nose, down_eyes = _nod(24.0, 5.0)
    assert level_nose > 0.03  # a nod moves the nose down against the eyes
    assert 0.85 < down_nose / level_nose < 1.15, (down_nose, level_nose)
    assert (down_eyes / down_nose) < 2.2 * (level_eyes / level_nose), (down_eyes, down_nose, level_eyes, level_nose)
    up_nose, _ = _nod(-15.0, 5.0)  # a face looking up shows its nose more: no gain
    assert up_nose >= 0.99 * level_nose


def test_a_three_second_clip_turns_and_nods(speech_pbm):
    """A 3.4 s clip's head spreads (over six seeds) reach more of the manner's than the spread shrunk
    from 8 s did (yaw 0.47 and pitch 0.44 of the presenter's then)."""
    wav, _ = speech_pbm
    samples = mf.read_wav_16k(wav)[: int(3.4 * SAMPLE_RATE)]
    head = [EMBEDDED_CHANNELS.index(c) for c in ("yaw", "pitch")]
    shares = []
    for seed in range(6):
        angles = np.degrees(embedded_track(Audio(samples), language="fr", seed=seed).values[:, head])
        shares.append(angles.std(axis=0) / np.asarray(MANNERS[0].spread[:2]))
        assert np.all(angles[0] == 0.0)  # still the portrait's own pose at the first frame
    yaw, pitch = np.mean(shares, axis=0)
    assert pitch > 0.48 and (yaw + pitch) / 2 > 0.55, (yaw, pitch)  # 0.67 and 0.52 now


def test_a_short_closure_between_rounded_vowels_shows_in_two_frames():
    """The 'b' of 'blue boots': 40 ms between two rounded vowels overlapped one video frame by more
    than half; one shut frame between open ones read 0.033 IOD open in the MP4."""
    phones = [(0.0, 0.3, "pau"), (0.3, 0.62, "l"), (0.62, 1.07, "uw"), (1.07, 1.11, "b"), (1.11, 1.5, "uw"), (1.5, 1.9, "pau")]
    mouth = mouth_track(phones, int(1.9 * FPS))
    close, jaw = (MOUTH_CHANNELS.index(c) for c in ("lip_close", "jaw_open"))
    shut = np.flatnonzero(mouth[:, close] >= 1.0)
    assert len(shut) >= 2 and np.all(np.diff(shut) == 1), shut
    assert np.all(np.abs(shut * 1.0 / FPS + 0.5 / FPS - 1.09) < 0.06)
    assert np.all(mouth[shut, jaw] == 0.0)
    assert mouth[int(0.85 * FPS), close] == 0.0 and mouth[int(1.3 * FPS), close] == 0.0


@pytest.mark.parametrize("pitch_deg", [0.0, 24.0])
def test_still_head_stays_still(pitch_deg):
    pts = _photographed(pitch_deg)
    pose = HeadPose(fit_frame(canonical_face()[:468], pts[:468]))
    assert np.allclose(pose.apply(pts, 0.0, 0.0, 0.0, 0.0, 0.0), pts)
