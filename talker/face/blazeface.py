"""BlazeFace detection as mediapipe 0.10.21 runs it: letterboxed input, SSD anchors, decoding,
weighted non-maximum suppression, projection back to the picture.

Two detectors, both converted from mediapipe's wheel (``talker/data/face``):

* ``FULL_RANGE``: 192 x 192 input, one anchor per cell of a 48 x 48 grid; faces from about 1/25 of
  the picture's side up (mediapipe's ``FaceDetection(model_selection=1)``).
* ``SHORT_RANGE``: 128 x 128 input, 896 anchors; faces filling a good part of the picture (the face
  mesh's own detector, run on the square crop the mesh is given).

A detection is in coordinates normalised to the picture (0..1, x right, y down): a box and six
keypoints (the subject's right eye, left eye, nose tip, mouth centre, right ear, left ear).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from talker.face.resample import Rect, warp_rect


@dataclass(frozen=True)
class DetectorSpec:
    """One detector: its model file stem, input side (pixels), anchor strides and options."""

    model: str
    side: int
    strides: tuple[int, ...]
    interpolated_aspect: bool  # an extra anchor per scale (short range) or not (full range)
    min_score: float = 0.5
    nms_iou: float = 0.3


# mediapipe's full-range graph keeps faces scoring 0.6 or more, whatever min_detection_confidence says
# (its node options win); the face mesh's short-range detector keeps 0.5 and up.

FULL_RANGE = DetectorSpec("face_detection_full_range", 192, (4,), False, min_score=0.6)
SHORT_RANGE = DetectorSpec("face_detection_short_range", 128, (8, 16, 16, 16), True)


@dataclass(frozen=True)
class Detection:
    """A face: ``box`` (xmin, ymin, xmax, ymax) and ``keypoints`` (6, 2), normalised to the picture; score 0..1."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float


@functools.lru_cache(maxsize=None)
def anchors(spec: DetectorSpec) -> np.ndarray:
    """(A, 2) anchor centres (x, y) in 0..1, in the order of the model's outputs (SSD, fixed anchor size)."""
    out = []
    layer = 0
    while layer < len(spec.strides):
        same = layer
        per_cell = 0
        while same < len(spec.strides) and spec.strides[same] == spec.strides[layer]:
            per_cell += 2 if spec.interpolated_aspect else 1
            same += 1
        cells = -(-spec.side // spec.strides[layer])
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        centres = np.stack([xs, ys], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
        layer = same
    return np.concatenate(out).astype(np.float32)


def warp_to_tensor(pictures: torch.Tensor, rects: list[Rect], side: int, replicate: bool,
                   value_range: tuple[float, float]) -> torch.Tensor:
    """(N, 3, side, side) float32: rectangle ``rects[i]`` of ``pictures[i]`` ((N, H, W, 3) uint8; centre and
    size in pixels, angle in radians clockwise on screen), resampled and mapped from 0..255 to
    ``value_range``: mediapipe's ImageToTensorCalculator (see ``resample.warp_rect``)."""
    lo, hi = value_range
    squares = warp_rect(pictures, rects, side, replicate).permute(0, 3, 1, 2).float()
    return squares * ((hi - lo) / 255.0) + lo


def detect(net: torch.nn.Module, spec: DetectorSpec, pictures: torch.Tensor) -> list[list[Detection]]:
    """The faces in each of ``pictures`` ((N, H, W, 3) uint8 RGB on the network's device), best score
    first, normalised to the picture.

    The pictures are letterboxed (zeros) to a square, resized to the detector's input and run
    through the network as one batch.
    """
    n, h, w = pictures.shape[:3]
    s = max(h, w)
    batch = warp_to_tensor(pictures, [((w / 2, h / 2), (s, s), 0.0)] * n, spec.side, False, (-1.0, 1.0))
    with torch.inference_mode():
        out = list(net(batch).values())
    regressors, scores = (out[0], out[1]) if out[0].shape[-1] == 16 else (out[1], out[0])
    scores = torch.sigmoid(scores[..., 0].clamp(-100, 100)).float().cpu().numpy()
    regressors = regressors.float().cpu().numpy()
    centres = anchors(spec)
    found = []
    for raw, score in zip(regressors, scores):
        keep = np.flatnonzero(score >= spec.min_score)
        dets = [_decode(raw[i], centres[i], spec.side, float(score[i])) for i in keep]
        found.append([_unletterbox(d, w, h) for d in _weighted_nms(dets, spec.nms_iou)])
    return found


def _decode(raw: np.ndarray, anchor: np.ndarray, side: int, score: float) -> Detection:
    """One anchor's 16 regressor values (x, y, w, h, then six keypoints' x, y in input pixels) -> Detection."""
    cx, cy = raw[0] / side + anchor[0], raw[1] / side + anchor[1]
    w, h = raw[2] / side, raw[3] / side
    keypoints = raw[4:16].reshape(6, 2) / side + anchor
    return Detection((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), keypoints, score)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw < 0 or ih < 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _weighted_nms(dets: list[Detection], threshold: float) -> list[Detection]:
    """mediapipe's WEIGHTED non-maximum suppression: each kept face is the score-weighted mean of the
    boxes and keypoints overlapping the best remaining one by more than ``threshold`` (IoU); its score
    stays the best one's."""
    remaining = sorted(dets, key=lambda d: -d.score)
    out = []
    while remaining:
        best = remaining[0]
        overlaps = [_iou(d.box, best.box) > threshold for d in remaining]
        group = [d for d, o in zip(remaining, overlaps) if o]
        rest = [d for d, o in zip(remaining, overlaps) if not o]
        weights = np.array([d.score for d in group], np.float64)
        box = np.average(np.array([d.box for d in group]), axis=0, weights=weights)
        keypoints = np.average(np.stack([d.keypoints for d in group]), axis=0, weights=weights)
        out.append(Detection(tuple(float(v) for v in box), keypoints.astype(np.float32), best.score))
        if len(rest) == len(remaining):
            break
        remaining = rest
    return out


def _unletterbox(d: Detection, w: int, h: int) -> Detection:
    """A detection on the letterboxed square -> normalised to the (w, h) picture."""
    s = max(w, h)
    scale = np.array([s / w, s / h])
    offset = np.array([0.5 - 0.5 * s / w, 0.5 - 0.5 * s / h])
    lo = np.array(d.box[:2]) * scale + offset
    hi = np.array(d.box[2:]) * scale + offset
    return Detection((*map(float, lo), *map(float, hi)), (d.keypoints * scale + offset).astype(np.float32), d.score)
