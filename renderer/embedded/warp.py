"""Backward mapping of a triangle mesh: for every output pixel, where to read the source.

The driven triangles are painted, in the order given (later ones cover earlier ones), into a
triangle-index map of one pixel box with ``cv2.fillConvexPoly`` (sub-pixel vertices). Each pixel's
barycentric coordinates in its triangle give its source position; pixels no triangle covers map to
themselves. The rasteriser also paints pixels just outside a triangle's edges; their positions are
extrapolated (exact for an unmoved mesh), except in triangles squeezed to a sliver of their source
area, where extrapolation would reach far into the source: there they are clamped to the triangle.
Everything per pixel is vectorised numpy; ``cv2.remap`` then samples the source once.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SHIFT = 4  # fractional bits of the vertex coordinates handed to fillConvexPoly
_MIN_AREA2 = 0.25  # twice the area (pixels^2) below which a driven triangle is not painted
_SQUEEZE = 4.0  # source area / driven area above which barycentric coordinates are clamped


@dataclass
class WarpMap:
    """Per-pixel result over the box (h, w): ``index`` of the covering triangle (-1: none),
    barycentric weights ``b1``, ``b2`` of its 2nd and 3rd vertex, and the source position
    ``map_x``, ``map_y`` (crop pixels, float32) for cv2.remap."""

    index: np.ndarray
    b1: np.ndarray
    b2: np.ndarray
    map_x: np.ndarray
    map_y: np.ndarray


class TriangleWarp:
    """Backward mapping over the pixel box ``box`` = (x0, y0, x1, y1) (x1, y1 exclusive) of a crop."""

    def __init__(self, box: tuple[int, int, int, int]):
        x0, y0, x1, y1 = box
        self.box = box
        ys, xs = np.mgrid[y0:y1, x0:x1]
        self._x, self._y = xs.astype(np.float32), ys.astype(np.float32)
        self._origin = np.array([x0, y0], np.float64)

    def map(self, driven: np.ndarray, source: np.ndarray, triangles: np.ndarray, order: np.ndarray) -> WarpMap:
        """driven, source: (N, 2) vertex positions in crop pixels; triangles: (T, 3) vertex indices;
        order: triangle indices to paint, back to front (triangles not listed are not painted)."""
        d, s = driven[triangles], source[triangles]
        e1, e2 = d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        painted = np.abs(det) > _MIN_AREA2
        inv = np.where(painted, 1.0 / np.where(painted, det, 1.0), 0.0)
        d0x, d0y = d[:, 0, 0], d[:, 0, 1]
        src_det = np.abs((s[:, 1, 0] - s[:, 0, 0]) * (s[:, 2, 1] - s[:, 0, 1]) - (s[:, 1, 1] - s[:, 0, 1]) * (s[:, 2, 0] - s[:, 0, 0]))
        table = np.zeros((len(triangles) + 1, 13), np.float32)
        table[:-1, 0] = e2[:, 1] * inv
        table[:-1, 1] = -e2[:, 0] * inv
        table[:-1, 2] = -(d0x * e2[:, 1] - d0y * e2[:, 0]) * inv
        table[:-1, 3] = -e1[:, 1] * inv
        table[:-1, 4] = e1[:, 0] * inv
        table[:-1, 5] = -(e1[:, 0] * d0y - e1[:, 1] * d0x) * inv
        table[:-1, 6:8] = s[:, 0]
        table[:-1, 8:10] = s[:, 1] - s[:, 0]
        table[:-1, 10:12] = s[:, 2] - s[:, 0]
        table[:-1, 12] = src_det > _SQUEEZE * np.abs(det)

        index = np.full(self._x.shape, len(triangles), np.int32)
        pts = np.round((d - self._origin) * (1 << _SHIFT)).astype(np.int32)
        order = np.asarray(order)
        for t in order[painted[order]].tolist():
            cv2.fillConvexPoly(index, pts[t], t, lineType=cv2.LINE_8, shift=_SHIFT)

        c = table[index]
        x, y = self._x, self._y
        b1 = c[..., 0] * x + c[..., 1] * y + c[..., 2]
        b2 = c[..., 3] * x + c[..., 4] * y + c[..., 5]
        squeezed = c[..., 12] > 0
        if squeezed.any():
            k1, k2 = np.clip(b1, 0.0, 1.0), np.clip(b2, 0.0, 1.0)
            total = np.maximum(k1 + k2, 1.0)
            np.copyto(b1, k1 / total, where=squeezed)
            np.copyto(b2, k2 / total, where=squeezed)
        map_x = c[..., 6] + b1 * c[..., 8] + b2 * c[..., 10]
        map_y = c[..., 7] + b1 * c[..., 9] + b2 * c[..., 11]
        uncovered = index == len(triangles)
        np.copyto(map_x, x, where=uncovered)
        np.copyto(map_y, y, where=uncovered)
        index[uncovered] = -1
        return WarpMap(index, b1, b2, map_x, map_y)
