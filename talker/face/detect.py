"""Face boxes and 478 face-mesh landmarks: mediapipe 0.10.21's models, run in torch (CPU or GPU, no download).

The networks and their pre- and post-processing reproduce mediapipe's ``solutions.face_detection``
(full range) and ``solutions.face_mesh`` (refined landmarks): ``talker.face.blazeface`` and
``talker.face.facemesh``; the weights ship in ``talker/data/face`` (converted once by
``tools/convert_face_models.py``). What this module adds:

* ``detect_faces``: the full-range BlazeFace detector on a copy of the picture shrunk to 512 px
  (INTER_AREA; it then finds faces down to about 1/25 of the picture's side); when that finds
  nothing on a large picture, it looks again in overlapping tiles, so small faces in big pictures
  are found too (measured: a 30 px face in a 2000 px picture).
* ``face_landmarks``: the face mesh (refined eyes, lips and irises) on a square crop around a
  detected box: the mesh's own short-range detector misses small and tilted faces in the whole
  picture, but not when the face fills half of its input.

The networks load on first use, once per process and device (``face_network``), on the CPU unless
``device`` names another; pictures that go through together run as one batch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from talker.errors import NoFaceError
from talker.face.blazeface import FULL_RANGE, SHORT_RANGE, detect
from talker.face.facemesh import face_mesh
from talker.face.graph import OpGraph

DETECT_SIDE = 512
"""Pictures are shrunk (INTER_AREA) so their longer side is at most this before detection (pixels)."""

TILE_MIN_SIDE = 384
"""Smallest tile side of the fallback search (pixels); finds faces down to about 30 px."""

MESH_EXPAND = 2.0
"""Side of the square crop given to the face mesh, in units of the face box's longer side."""

MESH_SIDE = 320
"""The mesh crop is resized to this side (pixels) before the face mesh runs."""

MODELS = Path(__file__).resolve().parent.parent / "data" / "face"
"""The converted networks: face_detection_full_range, face_detection_short_range, face_landmark_with_attention."""

_lock = threading.Lock()
_networks: dict[tuple[str, str], OpGraph] = {}


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


def face_network(name: str, device: str | torch.device | None = None) -> OpGraph:
    """The face network ``name`` (a file stem in MODELS) on ``device`` (default CPU), loaded on first
    use, once per process and device."""
    dev = str(torch.device(device or "cpu"))
    with _lock:
        if (name, dev) not in _networks:
            _networks[name, dev] = OpGraph.load(MODELS / f"{name}.safetensors").to(dev)
        return _networks[name, dev]


def _shrunk(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``rgb`` resized (INTER_AREA) so its longer side is at most ``side``; and the factor applied."""
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale == 1.0:
        return np.ascontiguousarray(rgb), 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def _detect_views(views: list[tuple[np.ndarray, int, int]], device=None) -> tuple[list[FaceBox], float]:
    """Faces in each (rgb, x_off, y_off) view of the picture (a view at offset x_off, y_off), in picture
    pixels; and the smallest factor a view was shrunk by before the detector saw it. Views of one
    size go through the detector as one batch."""
    net = face_network(FULL_RANGE.model, device)
    boxes, smallest = [], 1.0
    for shape in dict.fromkeys(rgb.shape for rgb, _, _ in views):
        group = [(rgb, x_off, y_off) for rgb, x_off, y_off in views if rgb.shape == shape]
        shrunk = [_shrunk(rgb, DETECT_SIDE) for rgb, _, _ in group]
        smallest = min(smallest, shrunk[0][1])
        h, w = shape[:2]
        for (_, x_off, y_off), dets in zip(group, detect(net, FULL_RANGE, _on([small for small, _ in shrunk], device))):
            for det in dets:
                x0 = max(0.0, det.box[0]) * w
                y0 = max(0.0, det.box[1]) * h
                x1 = min(1.0, det.box[2]) * w
                y1 = min(1.0, det.box[3]) * h
                if x1 - x0 >= 1 and y1 - y0 >= 1:
                    boxes.append(FaceBox(int(round(x0)) + x_off, int(round(y0)) + y_off,
                                         int(round(x1)) + x_off, int(round(y1)) + y_off, det.score))
    return boxes, smallest


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


def detect_faces(rgb: np.ndarray, device: str | torch.device | None = None) -> list[FaceBox]:
    """Every face in ``rgb`` ((H, W, 3) uint8 RGB), largest first.

    One pass over the whole picture (shrunk to ``DETECT_SIDE``). If it finds nothing and the
    picture is larger than that, tiles of half, a quarter, ... of the longer side (down to
    ``TILE_MIN_SIDE``, overlapping by half) are searched, stopping at the first size that finds a face.
    ``device``: where the detector runs (default CPU).
    """
    h, w = rgb.shape[:2]
    boxes, scale = _detect_views([(rgb, 0, 0)], device)
    tile = max(h, w) // 2
    while not boxes and max(h, w) > DETECT_SIDE and tile >= TILE_MIN_SIDE:
        views = [(rgb[y : y + tile, x : x + tile], x, y) for y in _tiles(h, tile) for x in _tiles(w, tile)]
        boxes, scale = _detect_views(views, device)
        tile //= 2
    boxes = _merge(boxes)
    if scale < 1.0:  # found on a shrunk view: the box is coarse, look again closer
        boxes = [_refine(rgb, b, device) for b in boxes]
    return sorted(boxes, key=lambda b: -b.area)


def _refine(rgb: np.ndarray, box: FaceBox, device) -> FaceBox:
    """``box`` found on a shrunk picture, detected again in a window of 3x its side around it
    (seen at higher resolution, so the box is tighter); ``box`` itself if that finds nothing."""
    h, w = rgb.shape[:2]
    side = 3 * max(box.width, box.height)
    x = int(np.clip((box.x0 + box.x1 - side) // 2, 0, max(w - side, 0)))
    y = int(np.clip((box.y0 + box.y1 - side) // 2, 0, max(h - side, 0)))
    found, _ = _detect_views([(rgb[y : y + side, x : x + side], x, y)], device)
    best = max(found, key=lambda b: _overlap(b, box), default=None)
    return best if best is not None and _overlap(best, box) >= 0.5 else box


def face_landmarks(rgb: np.ndarray, box: FaceBox | tuple[int, int, int, int],
                   device: str | torch.device | None = None) -> np.ndarray:
    """(478, 3) float32 face-mesh points of the face in ``box``, in ``rgb`` pixels.

    box: a detector box (x0, y0, x1, y1), or any region around one face (for example a crop
    region or a whole frame): the mesh runs on a square ``MESH_EXPAND`` times the box's longer side,
    and when that finds no face, on the square of the box itself.
    x, y: picture pixels (mediapipe's normalised coordinates times the crop side, plus the crop's
    corner; 0 is the left/top edge of the picture). z: mediapipe's depth in the same pixel scale
    (relative to the face centre, larger = farther from the camera).
    Raises NoFaceError when the mesh finds no face.
    """
    points = face_landmarks_batch([rgb], box, device)[0]
    if points is None:
        x0, y0, x1, y1 = box.box if isinstance(box, FaceBox) else box
        raise NoFaceError(
            f"found a face at x={x0},y={y0} ({x1 - x0}x{y1 - y0} px) but could not place its landmarks; "
            "use a sharper, well-lit photo with the face roughly frontal"
        )
    return points


def face_landmarks_batch(frames: list[np.ndarray], box: FaceBox | tuple[int, int, int, int],
                         device: str | torch.device | None = None) -> list[np.ndarray | None]:
    """``face_landmarks`` of the face in ``box`` in each of ``frames`` (same size), run as one batch
    on ``device``: a (478, 3) float32 array per frame, or None where no face was found."""
    x0, y0, x1, y1 = box.box if isinstance(box, FaceBox) else box
    mesh_net, detector = face_network("face_landmark_with_attention", device), face_network(SHORT_RANGE.model, device)
    out: list[np.ndarray | None] = [None] * len(frames)
    for expand in (MESH_EXPAND, 1.0):
        todo = [i for i, p in enumerate(out) if p is None]
        if not todo:
            break
        side = int(round(max(x1 - x0, y1 - y0) * expand))
        corner = (int(round((x0 + x1 - side) / 2)), int(round((y0 + y1 - side) / 2)))
        squares = _on([_square(frames[i], corner, side) for i in todo], device)
        found = face_mesh(mesh_net, detector, squares)
        for i, points in zip(todo, found):
            if points is not None:
                out[i] = (points * side + (*corner, 0.0)).astype(np.float32)
    return out


def _on(pictures: list[np.ndarray], device) -> torch.Tensor:
    """(N, H, W, 3) uint8 tensor on ``device`` (default CPU) of pictures of one size."""
    return torch.from_numpy(np.stack(pictures)).to(device or "cpu")


def _square(rgb: np.ndarray, corner: tuple[int, int], side: int) -> np.ndarray:
    """The ``side``-pixel square of ``rgb`` at ``corner`` (black outside the picture), resized to
    MESH_SIDE (INTER_AREA down, INTER_LINEAR up: OpenCV 4 and 5 resize alike)."""
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
