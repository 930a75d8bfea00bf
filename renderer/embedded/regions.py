"""Skin that follows a contour: spread per-column displacements of a lip or lid contour to the
landmarks on one side of it, fading with distance.

Weights come from the canonical face (face units: 1 = inter-ocular distance, y down), so the same
landmarks take part, with the same weights, for every portrait.
"""

from __future__ import annotations

import numpy as np

from renderer.embedded.mesh import NUM_LANDMARKS, canonical_face


class ContourRegion:
    """The landmarks on one side of a contour and how much of each column's motion they take.

    contour: landmark indices ordered left to right in the face (columns); the contour points
        take their own column's displacement in full.
    side: -1 for the skin above the contour (smaller y), +1 for below.
    sigma: fall-off distance from the contour, in inter-ocular distances (Gaussian).
    rings: (R, K-2) landmarks lying in rings along the contour's inner columns (mesh.lip_rings):
        ring point [r, j] follows column j + 1 alone, and is on this side whatever its height in the
        canonical face (a lip curls inward, so its rings project level with its contour).
    exclude: landmarks that never move with this contour (the opposite lip or lid).
    """

    def __init__(
        self,
        contour: tuple[int, ...],
        side: int,
        sigma: float,
        rings: np.ndarray | None = None,
        exclude: np.ndarray | tuple[int, ...] = (),
    ):
        canon = canonical_face()
        cols = np.asarray(contour)
        cx, cy = canon[cols, 0], canon[cols, 1]
        x, y = canon[:, 0], canon[:, 1]
        pos = np.interp(x, cx, np.arange(len(cols), dtype=np.float64))
        left = np.minimum(np.floor(pos).astype(int), len(cols) - 2)
        frac = pos - left
        weights = np.zeros((NUM_LANDMARKS, len(cols)))
        rows = np.arange(NUM_LANDMARKS)
        weights[rows, left] = 1.0 - frac
        weights[rows, left + 1] += frac
        across = side * (y - np.interp(x, cx, cy))
        if rings is not None:
            inner = np.broadcast_to(np.arange(1, len(cols) - 1), rings.shape)
            weights[rings.ravel()] = np.eye(len(cols))[inner.ravel()]
            across[rings.ravel()] = np.maximum(side * (y[rings] - cy[inner]), 0.0).ravel()
        beyond = np.maximum.reduce([cx[0] - x, x - cx[-1], np.zeros_like(x)])
        fade = np.exp(-0.5 * (across**2 + beyond**2) / sigma**2) * (across > -0.02)
        weights *= fade[:, None]
        weights[cols] = np.eye(len(cols))
        weights[np.asarray(exclude, int).ravel()] = 0.0
        self.index = np.flatnonzero(weights.max(axis=1) > 1e-3)
        self.weights = weights[self.index]

    def spread(self, column_disp: np.ndarray) -> np.ndarray:
        """(M, 3) displacements of ``self.index`` landmarks for (K, 3) per-column displacements."""
        return self.weights @ column_disp

    def apply(self, points: np.ndarray, column_disp: np.ndarray) -> None:
        """Move ``points`` (478, 3) in place by the spread of ``column_disp`` (K, 3)."""
        points[self.index] += self.weights @ column_disp
