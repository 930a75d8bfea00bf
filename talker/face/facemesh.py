"""mediapipe 0.10.21's face mesh with attention (``FaceMesh(refine_landmarks=True)``, one face) in torch.

For each picture: the short-range BlazeFace detector finds the face; its box, turned so the eyes lie
level and enlarged 1.5x to a square, is cut out at 192 x 192; the landmark network gives the 468
mesh points, refined lips and eye contours and the two irises; these 478 points go back to the
picture. Every step follows the mediapipe graph (``face_landmark_front_cpu``) so the points agree with
mediapipe's to a small fraction of a pixel.
"""

from __future__ import annotations

import numpy as np
import torch

from talker.face.blazeface import SHORT_RANGE, Detection, detect, warp_to_tensor

SIDE = 192
"""The landmark network's input side (pixels)."""

ROI_SCALE = 1.5
"""The crop around the detected face box, in units of the box's longer side."""

PRESENCE = 0.5
"""Face-presence score (0..1) below which the landmark network's points are dropped."""

# mediapipe's landmark refinement: the mesh points that the lips, eye and iris outputs replace, in order.
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
        78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
        76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
        62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407)
LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
            130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
            226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
            35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245,
            156, 70, 63, 105, 66, 107, 55, 193)
RIGHT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
             359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
             446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
             265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
             383, 300, 293, 334, 296, 336, 285, 417)
# "left"/"right" are mediapipe's names (the eye at the image's left is the subject's right eye).
# An iris's depth is the mean depth of its eye's contour (the first 16 points of the eye's list).


def face_mesh(mesh_net: torch.nn.Module, detector: torch.nn.Module, pictures: torch.Tensor) -> list[np.ndarray | None]:
    """(478, 3) float64 points of the best-scored face in each picture ((N, H, W, 3) uint8 RGB on the
    networks' device), normalised to it (x, y in 0..1 of the width and height, z in units of the
    width like mediapipe's); None where no face is found.

    The detector and the landmark network each run once over all the pictures, as one batch.
    """
    found = detect(detector, SHORT_RANGE, pictures)
    h, w = pictures.shape[1:3]
    with_face = [i for i, dets in enumerate(found) if dets]
    rois = [_roi(found[i][0], w, h) for i in with_face]
    points = []
    if with_face:
        rects = [((cx * w, cy * h), (rw * w, rh * h), angle) for cx, cy, rw, rh, angle in rois]
        crops = warp_to_tensor(pictures[with_face], rects, SIDE, True, (0.0, 1.0))
        points = _landmarks(mesh_net, crops)
    out: list[np.ndarray | None] = []
    it = iter(zip(rois, points))
    for dets in found:
        if not dets:
            out.append(None)
            continue
        roi, pts = next(it)
        out.append(None if pts is None else _project(pts, roi))
    return out


def _roi(det: Detection, w: int, h: int) -> tuple[float, float, float, float, float]:
    """(x_centre, y_centre, width, height normalised to the picture, angle in radians) of the crop for ``det``:
    mediapipe's DetectionsToRects (turned by the eye line) and RectTransformation (1.5x, square)."""
    x0, y0, x1, y1 = det.box
    (ex0, ey0), (ex1, ey1) = det.keypoints[0], det.keypoints[1]
    angle = -np.arctan2(-(ey1 - ey0) * h, (ex1 - ex0) * w)
    angle = angle - 2 * np.pi * np.floor((angle + np.pi) / (2 * np.pi))
    long_side = max((x1 - x0) * w, (y1 - y0) * h)
    return (x0 + x1) / 2, (y0 + y1) / 2, long_side / w * ROI_SCALE, long_side / h * ROI_SCALE, float(angle)


def _landmarks(net: torch.nn.Module, crops: torch.Tensor) -> list[np.ndarray | None]:
    """(478, 3) points normalised to each of the (N, 3, 192, 192) crops (z in units of its width);
    None where the network says no face is there."""
    with torch.inference_mode():
        out = {k: v.float().cpu().numpy() for k, v in net(crops).items()}
    n = len(crops)
    mesh = out["output_mesh_identity"].reshape(n, 468, 3) / SIDE
    parts = {name: out[f"output_{name}"].reshape(n, -1, 2) / SIDE
             for name in ("lips", "left_eye", "right_eye", "left_iris", "right_iris")}
    presence = 1 / (1 + np.exp(-out["conv_faceflag"].reshape(n)))
    result: list[np.ndarray | None] = []
    for i in range(n):
        if presence[i] < PRESENCE:
            result.append(None)
            continue
        pts = np.zeros((478, 3), np.float64)
        pts[:468] = mesh[i]
        pts[list(LIPS), :2] = parts["lips"][i]
        pts[list(LEFT_EYE), :2] = parts["left_eye"][i]
        pts[list(RIGHT_EYE), :2] = parts["right_eye"][i]
        pts[468:473, :2] = parts["left_iris"][i]
        pts[473:478, :2] = parts["right_iris"][i]
        pts[468:473, 2] = mesh[i, list(LEFT_EYE[:16]), 2].mean()
        pts[473:478, 2] = mesh[i, list(RIGHT_EYE[:16]), 2].mean()
        result.append(pts)
    return result


def _project(pts: np.ndarray, roi: tuple[float, float, float, float, float]) -> np.ndarray:
    """Points normalised to the crop -> normalised to the picture (mediapipe's LandmarkProjection)."""
    cx, cy, w, h, angle = roi
    x, y = pts[:, 0] - 0.5, pts[:, 1] - 0.5
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([(cos * x - sin * y) * w + cx, (sin * x + cos * y) * h + cy, pts[:, 2] * w], axis=1)
