"""The torch face stage against mediapipe 0.10.21 on 22 pictures (tests/data/face_parity, written by
tools/mediapipe_face_reference.py): photos, filter-made paintings, CG frames, a grey picture, small
faces in whole pictures, turned and foreshortened faces. mediapipe is not needed here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from talker.face import detect_faces, face_landmarks, face_landmarks_batch

DATA = Path(__file__).parent / "data" / "face_parity"
NAMES = sorted(p.stem for p in DATA.glob("*.jpg"))


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA / "reference.npz") as z:
        return dict(z)


def _picture(name: str) -> np.ndarray:
    return np.array(Image.open(DATA / f"{name}.jpg").convert("RGB"))


def _iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_the_set_is_whole():
    assert len(NAMES) >= 20


@pytest.mark.parametrize("name", NAMES)
def test_same_faces_and_landmarks_as_mediapipe(name, reference):
    rgb = _picture(name)
    want_boxes, want_points = reference[f"{name}.boxes"], reference[f"{name}.landmarks"]
    boxes = detect_faces(rgb)
    assert len(boxes) == len(want_boxes), f"{name}: {len(boxes)} faces, mediapipe {len(want_boxes)}"
    for got, want in zip(boxes, want_boxes):  # both largest first
        assert _iou(got.box, want[:4]) >= 0.9, (name, got.box, want[:4])
        assert abs(got.score - want[4]) < 0.01
    for want_box, want in zip(want_boxes, want_points):
        region = tuple(int(v) for v in want_box[:4])
        if np.isnan(want).any():
            continue
        points = face_landmarks(rgb, region)
        iod = np.linalg.norm(want[33, :2] - want[263, :2])
        error = np.linalg.norm(points[:, :2] - want[:, :2], axis=1).mean() / iod
        assert error <= 0.01, f"{name}: landmarks {error:.4f} IOD from mediapipe's"
        assert np.abs(points[:, 2] - want[:, 2]).mean() / iod <= 0.01


def test_a_batch_gives_what_single_pictures_give(reference):
    frames = [_picture("astronaut"), _picture("astronaut_grey"), np.zeros((512, 512, 3), np.uint8)]
    box = tuple(int(v) for v in reference["astronaut.boxes"][0, :4])
    batch = face_landmarks_batch(frames, box)
    assert batch[2] is None  # no face in a black frame
    for frame, points in zip(frames[:2], batch[:2]):
        np.testing.assert_allclose(points, face_landmarks(frame, box), atol=1e-3)
