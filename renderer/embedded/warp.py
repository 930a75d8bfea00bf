"""Backward mapping of a triangle mesh: for every output pixel, where to read the source.

The driven triangles are painted, in the order given (later ones cover earlier ones), into a
triangle-index map of one pixel box with ``cv2.fillConvexPoly`` (sub-pixel vertices). Each
triangle's affine map from driven to source positions, looked up through the index map, gives every
pixel its source position (vectorised numpy); pixels no triangle covers map to themselves.
``cv2.remap`` then samples the source once.

The rasteriser also paints pixels just outside a triangle's edges; their positions are extrapolated
(exact for an unmoved mesh), except in triangles squeezed to a sliver of their source area, where
extrapolation would reach far into the source: there the barycentric coordinates are clamped to
the triangle.
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
    """Per-pixel result over the box (h, w).

    index: (h, w) int32, the covering triangle, or the number of triangles where none covers the
        pixel (such pixels map to themselves).
    map_x, map_y: (h, w) float32 source positions in crop pixels, for cv2.remap.
    barycentric: (6, T) float64 per triangle, (b1, b2) = (c0 x + c1 y + c2, c3 x + c4 y + c5), the
        weights of its 2nd and 3rd vertex at crop pixel (x, y).
    box: (x0, y0, x1, y1) the box in the crop.
    """

    index: np.ndarray
    map_x: np.ndarray
    map_y: np.ndarray
    barycentric: np.ndarray
    box: tuple[int, int, int, int]

    def weights(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(b1, b2), each (n,), of box pixels (rows, cols) in the triangles that cover them."""
        c = self.barycentric[:, self.index[rows, cols]]
        x, y = cols + self.box[0], rows + self.box[1]
        return c[0] * x + c[1] * y + c[2], c[3] * x + c[4] * y + c[5]


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
        bary = np.stack([
            e2[:, 1] * inv, -e2[:, 0] * inv, (d0y * e2[:, 0] - d0x * e2[:, 1]) * inv,
            -e1[:, 1] * inv, e1[:, 0] * inv, (d0x * e1[:, 1] - d0y * e1[:, 0]) * inv,
        ])  # fmt: skip
        # source = s0 + b1 (s1 - s0) + b2 (s2 - s0), an affine function of the pixel position
        f1, f2 = s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]
        affine = np.empty((6, len(triangles) + 1), np.float32)
        for k in range(2):  # rows 0-2: source x, rows 3-5: source y
            affine[3 * k : 3 * k + 3, :-1] = f1[:, k] * bary[0:3] + f2[:, k] * bary[3:6]
            affine[3 * k + 2, :-1] += s[:, 0, k]
        affine[:, -1] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # uncovered pixels map to themselves

        index = np.full(self._x.shape, len(triangles), np.int32)
        pts = np.round((d - self._origin) * (1 << _SHIFT)).astype(np.int32)
        order = np.asarray(order)
        for t in order[painted[order]].tolist():
            cv2.fillConvexPoly(index, pts[t], t, lineType=cv2.LINE_8, shift=_SHIFT)

        x, y = self._x, self._y
        map_x = affine[0].take(index) * x + affine[1].take(index) * y + affine[2].take(index)
        map_y = affine[3].take(index) * x + affine[4].take(index) * y + affine[5].take(index)
        warp = WarpMap(index, map_x, map_y, bary, self.box)

        src_area2 = np.abs(f1[:, 0] * f2[:, 1] - f1[:, 1] * f2[:, 0])
        squeezed = painted & (src_area2 > _SQUEEZE * np.abs(det))
        if squeezed.any():
            rows, cols = np.nonzero(np.append(squeezed, False).take(index))
            tri = index[rows, cols]
            b1, b2 = warp.weights(rows, cols)
            b1, b2 = np.clip(b1, 0.0, 1.0), np.clip(b2, 0.0, 1.0)
            total = np.maximum(b1 + b2, 1.0)
            b1, b2 = b1 / total, b2 / total
            s_tri = s[tri]
            map_x[rows, cols] = s_tri[:, 0, 0] + b1 * f1[tri, 0] + b2 * f2[tri, 0]
            map_y[rows, cols] = s_tri[:, 0, 1] + b1 * f1[tri, 1] + b2 * f2[tri, 1]
        return warp
