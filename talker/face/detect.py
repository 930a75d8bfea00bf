"""Face boxes and 478 face-mesh landmarks with mediapipe 0.10.21 ``solutions`` (CPU, no download).

* ``detect_faces``: the full-range BlazeFace detector on a copy of the picture shrunk to 512 px
  (INTER_AREA; it then finds faces down to about 1/25 of the picture's side); when that finds
  nothing on a large picture, it looks again in overlapping tiles, so small faces in big pictures
  are found too (measured: a 30 px face in a 2000 px picture).
* ``face_landmarks``: the face mesh (refined eyes, lips and irises) on a square crop around a
  detected box: the mesh's own short-range detector misses small and tilted faces in the whole
  picture, but not when the face fills half of its input.

The mediapipe graphs are built on first use, once per process, and shared behind a lock.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from talker.errors import NoFaceError

DETECT_SIDE = 512
"""Pictures are shrunk (INTER_AREA) so their longer side is at most this before detection (pixels)."""

TILE_MIN_SIDE = 384
"""Smallest tile side of the fallback search (pixels); finds faces down to about 30 px."""

MESH_EXPAND = 2.0
"""Side of the square crop given to the face mesh, in units of the face box's longer side."""

MESH_SIDE = 320
"""The mesh crop is resized to this side (pixels) before the face mesh runs."""

_lock = threading.Lock()
_solutions: dict[str, object] = {}


@dataclass(frozen=True)
class FaceBox:
    """One detected face: box corners in picture pixels (x1, y1 exclusive) and detector score (0..1)."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1


def _solution(name: str):
    """The cached mediapipe graph ``name`` ('detector' or 'mesh'); call with ``_lock`` held.

    Building a graph and its first run make TensorFlow Lite print start-up notes straight to the
    process's stderr (before absl logging is set up, so no log level hides them): both happen here
    with file descriptor 2 pointed at /dev/null.
    """
    if name not in _solutions:
        with _native_stderr_silenced():
            import mediapipe as mp

            if name == "detector":
                graph = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
            else:
                graph = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, refine_landmarks=True, max_num_faces=1, min_detection_confidence=0.5
                )
            graph.process(np.zeros((64, 64, 3), np.uint8))
        _solutions[name] = graph
    return _solutions[name]


@contextlib.contextmanager
def _native_stderr_silenced():
    """Point file descriptor 2 at /dev/null for the duration (Python's sys.stderr is flushed first)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _shrunk(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``rgb`` resized (INTER_AREA) so its longer side is at most ``side``; and the factor applied."""
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale == 1.0:
        return np.ascontiguousarray(rgb), 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def _detect_view(rgb: np.ndarray, x_off: int, y_off: int) -> tuple[list[FaceBox], float]:
    """Faces in ``rgb`` (a view of the picture at offset x_off, y_off), in picture pixels; and the
    factor the view was shrunk by before the detector saw it."""
    small, scale = _shrunk(rgb, DETECT_SIDE)
    h, w = rgb.shape[:2]
    with _lock:
        result = _solution("detector").process(small)
    boxes = []
    for det in result.detections or []:
        rb = det.location_data.relative_bounding_box
        x0 = max(0.0, rb.xmin) * w
        y0 = max(0.0, rb.ymin) * h
        x1 = min(1.0, rb.xmin + rb.width) * w
        y1 = min(1.0, rb.ymin + rb.height) * h
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            boxes.append(
                FaceBox(
                    int(round(x0)) + x_off,
                    int(round(y0)) + y_off,
                    int(round(x1)) + x_off,
                    int(round(y1)) + y_off,
                    float(det.score[0]),
                )
            )
    return boxes, scale


def _tiles(length: int, tile: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length`` with half-tile overlap."""
    if length <= tile:
        return [0]
    n = int(np.ceil((length - tile) / (tile / 2))) + 1
    return [int(round(i * (length - tile) / (n - 1))) for i in range(n)]


def _overlap(a: FaceBox, b: FaceBox) -> float:
    """Intersection area over the smaller box's area."""
    iw = min(a.x1, b.x1) - max(a.x0, b.x0)
    ih = min(a.y1, b.y1) - max(a.y0, b.y0)
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / min(a.area, b.area)


def _merge(boxes: list[FaceBox]) -> list[FaceBox]:
    """Drop boxes that mostly overlap a better-scored one (the same face seen in several tiles)."""
    kept: list[FaceBox] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        if all(_overlap(b, k) < 0.5 for k in kept):
            kept.append(b)
    return kept


def detect_faces(rgb: np.ndarray) -> list[FaceBox]:
    """Every face in ``rgb`` ((H, W, 3) uint8 RGB), largest first.

    One pass over the whole picture (shrunk to ``DETECT_SIDE``). If it finds nothing and the
    picture is larger than that, tiles of half, a quarter, ... of the longer side (down to
    ``TILE_MIN_SIDE``, overlapping by half) are searched, stopping at the first size that finds a face.
    """
    h, w = rgb.shape[:2]
    boxes, scale = _detect_view(rgb, 0, 0)
    tile = max(h, w) // 2
    while not boxes and max(h, w) > DETECT_SIDE and tile >= TILE_MIN_SIDE:
        scale = 1.0
        for y in _tiles(h, tile):
            for x in _tiles(w, tile):
                found, view_scale = _detect_view(rgb[y : y + tile, x : x + tile], x, y)
                boxes += found
                scale = min(scale, view_scale)
        tile //= 2
    boxes = _merge(boxes)
    if scale < 1.0:  # found on a shrunk view: the box is coarse, look again closer
        boxes = [_refine(rgb, b) for b in boxes]
    return sorted(boxes, key=lambda b: -b.area)


def _refine(rgb: np.ndarray, box: FaceBox) -> FaceBox:
    """``box`` found on a shrunk picture, detected again in a window of 3x its side around it
    (seen at higher resolution, so the box is tighter); ``box`` itself if that finds nothing."""
    h, w = rgb.shape[:2]
    side = 3 * max(box.width, box.height)
    x = int(np.clip((box.x0 + box.x1 - side) // 2, 0, max(w - side, 0)))
    y = int(np.clip((box.y0 + box.y1 - side) // 2, 0, max(h - side, 0)))
    found, _ = _detect_view(rgb[y : y + side, x : x + side], x, y)
    best = max(found, key=lambda b: _overlap(b, box), default=None)
    return best if best is not None and _overlap(best, box) >= 0.5 else box


def face_landmarks(rgb: np.ndarray, box: FaceBox | tuple[int, int, int, int]) -> np.ndarray:
    """(478, 3) float32 face-mesh points of the face in ``box``, in ``rgb`` pixels.

    box: a detector box (x0, y0, x1, y1), or any region around one face (for example a crop
    region or a whole frame): the mesh runs on a square ``MESH_EXPAND`` times the box's longer side,
    and when that finds no face, on the square of the box itself.
    x, y: picture pixels (mediapipe's normalised coordinates times the crop side, plus the crop's
    corner; 0 is the left/top edge of the picture). z: mediapipe's depth in the same pixel scale
    (relative to the face centre, larger = farther from the camera).
    Raises NoFaceError when the mesh finds no face.
    """
    x0, y0, x1, y1 = box.box if isinstance(box, FaceBox) else box
    for expand in (MESH_EXPAND, 1.0):
        side = int(round(max(x1 - x0, y1 - y0) * expand))
        corner = (int(round((x0 + x1 - side) / 2)), int(round((y0 + y1 - side) / 2)))
        points = _mesh(_square(rgb, corner, side))
        if points is not None:
            return (points * side + (*corner, 0.0)).astype(np.float32)
    raise NoFaceError(
        f"found a face at x={x0},y={y0} ({x1 - x0}x{y1 - y0} px) but could not place its landmarks; "
        "use a sharper, well-lit photo with the face roughly frontal"
    )


def _square(rgb: np.ndarray, corner: tuple[int, int], side: int) -> np.ndarray:
    """The ``side``-pixel square of ``rgb`` at ``corner`` (black outside the picture), resized to MESH_SIDE."""
    cx0, cy0 = corner
    h, w = rgb.shape[:2]
    crop = rgb[max(cy0, 0) : min(cy0 + side, h), max(cx0, 0) : min(cx0 + side, w)]
    crop = cv2.copyMakeBorder(
        crop,
        max(-cy0, 0),
        max(cy0 + side - h, 0),
        max(-cx0, 0),
        max(cx0 + side - w, 0),
        cv2.BORDER_CONSTANT,
        value=(0, 0, 0),
    )
    interp = cv2.INTER_AREA if side > MESH_SIDE else cv2.INTER_LINEAR
    return cv2.resize(crop, (MESH_SIDE, MESH_SIDE), interpolation=interp)


def _mesh(square: np.ndarray) -> np.ndarray | None:
    """(478, 3) float64 mediapipe points of the face in ``square``, normalised to its side; None if none."""
    with _lock, _native_stderr_silenced():  # the mesh graph notes its ROI convention on its first face
        result = _solution("mesh").process(square)
    if not result.multi_face_landmarks:
        return None
    return np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)
