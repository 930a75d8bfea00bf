"""Per-frame facial measures of a video, taken with the same landmark model the pipeline uses.

These are the raw signals that judge a render: mouth opening, eye opening, head position. They are
measured on the decoded output video, not on the renderer's internal state, so they see what a
viewer sees (encoding included).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

# mediapipe face-mesh indices
_INNER_LIP_TOP, _INNER_LIP_BOTTOM = 13, 14
_LEFT_EYE_OUTER, _RIGHT_EYE_OUTER = 33, 263
_EYE_LIDS = ((159, 145), (386, 374))  # (upper, lower) lid centre of each eye
_EYE_CORNERS = ((33, 133), (362, 263))
_CHIN = 152


@dataclass
class FaceMeasures:
    """Per-frame measures; NaN where no face was found in a frame.

    mouth_open: (T,) inner-lip gap (points 13-14) in inter-ocular distances.
    chin_drop: (T,) the chin's (point 152) distance from the eyes' midpoint (outer corners) in
        inter-ocular distances: it grows as the jaw drops, whether or not the lips part.
    eye_open: (T,) mean eye opening (lid gap over eye width) of both eyes, unitless.
    nose: (T, 2) nose-tip position in pixels.
    iod: (T,) inter-ocular distance (outer eye corners) in pixels, the unit of mouth_open.
    landmarks: (T, 478, 3) every point in pixels (x, y, z).
    """

    mouth_open: np.ndarray
    chin_drop: np.ndarray
    eye_open: np.ndarray
    nose: np.ndarray
    iod: np.ndarray
    landmarks: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.mouth_open)


BATCH = 16
"""Frames measured together (one batch through the landmark network)."""


def measure_frames(frames, box: tuple[int, int, int, int] | None = None, device=None) -> FaceMeasures:
    """Measure each (H, W, 3) uint8 RGB frame of an iterable (all of one size).

    ``box`` (x0, y0, x1, y1) restricts the landmark model to that region (for a face inside a large
    picture); landmarks are returned in frame pixels either way. ``device``: where the landmark
    network runs (default CPU), ``BATCH`` frames at a time.
    """
    from talker.face import face_landmarks_batch

    rows = []
    frames = iter(frames)
    while batch := list(islice(frames, BATCH)):
        h, w = batch[0].shape[:2]
        found = face_landmarks_batch(batch, box or (0, 0, w, h), device)
        # a frame without a detectable face is a measure (NaN), not an error
        rows += [np.full((478, 3), np.nan, np.float32) if p is None else p for p in found]
    lm = np.stack(rows) if rows else np.zeros((0, 478, 3), np.float32)
    return _measures(lm)


def measure_video(path: str | Path, box: tuple[int, int, int, int] | None = None) -> FaceMeasures:
    """Decode an MP4 and measure every frame (see measure_frames)."""
    from talker.media import read_video_frames

    return measure_frames(read_video_frames(path), box)


def _measures(lm: np.ndarray) -> FaceMeasures:
    xy = lm[..., :2]
    iod = np.linalg.norm(xy[:, _LEFT_EYE_OUTER] - xy[:, _RIGHT_EYE_OUTER], axis=-1)
    mouth = np.linalg.norm(xy[:, _INNER_LIP_TOP] - xy[:, _INNER_LIP_BOTTOM], axis=-1) / iod
    eyes_mid = (xy[:, _LEFT_EYE_OUTER] + xy[:, _RIGHT_EYE_OUTER]) / 2
    chin = np.linalg.norm(xy[:, _CHIN] - eyes_mid, axis=-1) / iod
    eyes = []
    for (up, low), (c0, c1) in zip(_EYE_LIDS, _EYE_CORNERS):
        gap = np.linalg.norm(xy[:, up] - xy[:, low], axis=-1)
        width = np.linalg.norm(xy[:, c0] - xy[:, c1], axis=-1)
        eyes.append(gap / width)
    return FaceMeasures(mouth_open=mouth, chin_drop=chin, eye_open=np.mean(eyes, axis=0), nose=xy[:, 4], iod=iod, landmarks=lm)


def count_blinks(eye_open: np.ndarray, drop: float = 0.5, min_drop: float = 0.0, reopen: float | None = None) -> int:
    """Number of blinks: separate runs of frames where the eye opening falls below ``drop`` times
    its median and at least ``min_drop`` (eye-opening units) under it; a run ends only where the
    opening is back above ``reopen`` times the median (default ``drop``: no hysteresis), so noise
    around the threshold is one blink, not several."""
    eye = np.asarray(eye_open, dtype=np.float64)
    median = np.nanmedian(eye)
    below = eye < min(drop * median, median - min_drop)
    above = eye >= (drop if reopen is None else reopen) * median
    count, shut = 0, False
    for b, a in zip(below, above):
        if b and not shut:
            count, shut = count + 1, True
        elif a:
            shut = False
    return count
