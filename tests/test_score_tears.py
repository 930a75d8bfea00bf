"""`talker score` sees a torn face: a band of the face cut and shifted sideways (a tear, as a broken
warp draws one) is flagged by the 'tears' check (a warning: it never fails a clip); the same frames
untorn pass it; without a portrait it skips."""

from __future__ import annotations

import numpy as np

import media_factory as mf
from talker.face import detect_faces, face_landmarks
from talker.media import read_video_frames
from talker.score import score_video
from talker.types import Audio
from test_score import reencode, speech, verdicts  # noqa: F401 (speech: the module's fixture)


def torn(frames: list[np.ndarray], portrait: np.ndarray) -> list[np.ndarray]:
    """The frames with a band across the eyes and the bridge of the nose (0.25 IOD above the iris
    centres to 0.1 below) cut and shifted 0.2 IOD sideways within the face's width."""
    lm = face_landmarks(portrait, detect_faces(portrait)[0].box)
    iod = float(np.linalg.norm(lm[468, :2] - lm[473, :2]))
    y = float(lm[[468, 473], 1].mean())
    y0, y1 = int(y - 0.25 * iod), int(y + 0.1 * iod)
    x0, x1 = int(lm[:, 0].min()), int(lm[:, 0].max())
    out = []
    for f in frames:
        f = f.copy()
        f[y0:y1, x0:x1] = np.roll(f[y0:y1, x0:x1], int(0.2 * iod), axis=1)
        out.append(f)
    return out


def test_a_torn_face_is_flagged_and_the_untorn_one_passes(tmp_path, full_mode_video, speech):
    short = Audio(speech.samples[: 3 * 16000])
    frames = list(read_video_frames(full_mode_video))[: short.num_frames]
    portrait = mf.astronaut()
    whole = score_video(reencode(frames, short, tmp_path / "whole.mp4"), short, image=portrait)
    broken = score_video(reencode(torn(frames, portrait), short, tmp_path / "torn.mp4"), short, image=portrait)
    assert verdicts(whole)["tears"] == "pass"
    assert verdicts(broken)["tears"] in ("warn", "fail")
    assert verdicts(score_video(reencode(frames, short, tmp_path / "w.mp4"), short))["tears"] == "skip"  # no portrait
