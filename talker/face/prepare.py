"""Portrait -> FaceCrop: detect, choose the face, place its landmarks, cut it out as SadTalker does."""

from __future__ import annotations

import cv2
import numpy as np

from talker.errors import AmbiguousFaceError, InputImageError, NoFaceError
from talker.face.detect import FaceBox, detect_faces, face_landmarks
from talker.face.geometry import crop_geometry
from talker.face.landmarks68 import landmarks68
from talker.types import PREPROCESS_MODES, FaceCrop

MIN_FACE_SIDE = 64
"""Smallest usable face: the detector's box must be at least this many pixels on each side."""

AMBIGUOUS_AREA_RATIO = 0.8
"""With no --face-index, a second face at least this fraction of the largest one's area is ambiguous."""


def describe_faces(faces: list[FaceBox]) -> str:
    """'found 2 faces: #0 at x=..,y=.. (WxH px), #1 ...' (x, y: the box centre in picture pixels)."""
    items = [
        f"#{i} at x={(f.x0 + f.x1) // 2},y={(f.y0 + f.y1) // 2} ({f.width}x{f.height} px)" for i, f in enumerate(faces)
    ]
    return f"found {len(faces)} face{'s' if len(faces) != 1 else ''}: " + ", ".join(items)


def choose_face(faces: list[FaceBox], face_index: int | None, name: str = "the portrait") -> FaceBox:
    """The face to animate among ``faces`` (largest first).

    face_index None: the largest, unless the second is nearly as large (AmbiguousFaceError).
    face_index N: the N-th largest (AmbiguousFaceError when there are not that many).
    Raises NoFaceError when ``faces`` is empty or the chosen face is smaller than MIN_FACE_SIDE.
    """
    if not faces:
        raise NoFaceError(f"no face found in {name}; use a photo with a clearly visible, roughly frontal face")
    if face_index is None:
        if len(faces) > 1 and faces[1].area >= AMBIGUOUS_AREA_RATIO * faces[0].area:
            raise AmbiguousFaceError(f"{describe_faces(faces)}; pass --face-index N to choose")
        face = faces[0]
    elif 0 <= face_index < len(faces):
        face = faces[face_index]
    else:
        raise AmbiguousFaceError(
            f"--face-index {face_index} is out of range: {describe_faces(faces)}; "
            f"pass --face-index N with N from 0 to {len(faces) - 1}"
        )
    if min(face.width, face.height) < MIN_FACE_SIDE:
        raise NoFaceError(
            f"the face in {name} is only {face.width}x{face.height} px; at least {MIN_FACE_SIDE}x{MIN_FACE_SIDE} px "
            "is needed: use a larger picture or one where the face fills more of it"
        )
    return face


def face_region(lm478: np.ndarray, mode: str, width: int, height: int) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) of a ``width`` x ``height`` picture that ``mode`` cuts, in its pixels.

    crop/full: SadTalker's quad box (ox1, oy1, ox2, oy2), clipped to its crop box; extcrop/extfull:
    the crop box; resize: the whole picture. When SadTalker would shrink the picture (a face quad
    of 2048 px or more), its boxes are scaled back to this picture's pixels.
    """
    if mode == "resize":
        return 0, 0, width, height
    geom = crop_geometry(landmarks68(lm478), width, height)
    x0, y0, x1, y1 = geom.region(mode)
    if geom.shrink == 1:
        return x0, y0, x1, y1
    sx, sy = width / geom.rsize[0], height / geom.rsize[1]
    return (
        int(round(x0 * sx)),
        int(round(y0 * sy)),
        min(int(round(x1 * sx)), width),
        min(int(round(y1 * sy)), height),
    )


def cut(rgb: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """``rgb[y0:y1, x0:x1]`` resized to (size, size, 3) with cv2 bilinear (aspect not preserved)."""
    x0, y0, x1, y1 = box
    return cv2.resize(rgb[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_LINEAR)


def to_crop_pixels(points: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """(N, 3) picture-pixel points -> pixels of the ``size`` x ``size`` image cut from ``box``.

    x' = (x - x0) * S / w, y' = (y - y0) * S / h, z' = z * S / w.
    """
    x0, y0, x1, y1 = box
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    out = np.asarray(points, dtype=np.float64) - (x0, y0, 0.0)
    out *= (sx, sy, sx)
    return out.astype(np.float32)


def prepare_face(
    rgb: np.ndarray,
    mode: str = "crop",
    size: int = 256,
    face_index: int | None = None,
    name: str = "the portrait",
) -> FaceCrop:
    """Find the face in ``rgb`` and cut it out for the renderer.

    rgb: (H, W, 3) uint8 RGB portrait. mode: one of PREPROCESS_MODES. size: S of the square crop.
    face_index: which face (largest first) when there are several. name: how messages call the
    picture (for example its file name).
    Raises NoFaceError, AmbiguousFaceError, InputImageError (not an RGB image).
    """
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"mode must be one of {PREPROCESS_MODES}, not {mode!r}")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputImageError(f"{name} is not an RGB image (got an array {rgb.shape} of {rgb.dtype})")
    height, width = rgb.shape[:2]

    # 1. Detect every face and choose one.
    faces = detect_faces(rgb)
    face = choose_face(faces, face_index, name)

    # 2. Landmarks of that face in picture pixels.
    source_landmarks = face_landmarks(rgb, face)

    # 3. The region this mode shows, cut and resized to S x S.
    box = face_region(source_landmarks, mode, width, height)
    return FaceCrop(
        image=cut(rgb, box, size),
        landmarks=to_crop_pixels(source_landmarks, box, size),
        source=rgb,
        box=box,
        mode=mode,
        source_landmarks=source_landmarks,
        faces=[f.box for f in faces],
    )
