"""Where each tooth of a row lies across the mouth: the portrait's own tooth layout.

A row is a run of teeth from the middle of the mouth outwards on each side (central incisor,
lateral incisor, canine, premolars), their widths measured along the dental arch and seen in
projection (the arch turns away, so teeth narrow towards the corners). The widths follow the
mouth's size, and each side of each portrait gets its own small differences in width and length
(seeded from the portrait's pixels), so no two portraits share one template of teeth.
"""

from __future__ import annotations

import zlib

import numpy as np

UPPER_WIDTHS = (0.135, 0.105, 0.115, 0.1, 0.1, 0.1)
"""Upper teeth's widths along the arch (IOD), from the middle of the mouth outwards."""
UPPER_LENGTHS = (1.0, 0.86, 0.94, 0.84, 0.8, 0.76)
"""Upper teeth's visible lengths as shares of the central incisor's."""
LOWER_WIDTHS = (0.085, 0.09, 0.105, 0.1, 0.1, 0.1)
"""Lower teeth's widths along the arch (IOD)."""
LOWER_LENGTHS = (1.0, 1.0, 0.95, 0.85, 0.8, 0.75)
"""Lower teeth's visible lengths as shares of the central incisor's."""
ARCH_RADIUS = 0.42
"""Radius (IOD) of the dental arch seen from the front: a tooth at arc length s sits at R sin(s / R)."""
REST_MOUTH_WIDTH = 0.78
"""Mouth width (IOD, corner to corner) for which the teeth have the widths above."""
JITTER = 0.07
"""Largest relative difference in a tooth's width or length between portraits and between sides."""
CORNER_ROUND = 0.18
"""Share of its length a tooth loses at its corners (a rounded biting edge)."""


class ToothRow:
    """One row of teeth, both sides. edges: (2, n + 1) projected tooth boundaries (IOD from the
    middle of the mouth) for the face's left (x < 0) and right side; lengths: (2, n) shares of the
    longest tooth's length."""

    def __init__(self, widths: tuple[float, ...], lengths: tuple[float, ...], scale: float, seed: int):
        rng = np.random.default_rng(seed)
        n = len(widths)
        w = np.asarray(widths) * scale * (1.0 + JITTER * rng.uniform(-1.0, 1.0, (2, n)))
        arc = np.minimum(np.cumsum(w, axis=1) / ARCH_RADIUS, np.pi / 2)
        self.edges = np.concatenate([np.zeros((2, 1)), ARCH_RADIUS * np.sin(arc)], axis=1)
        self.lengths = np.asarray(lengths) * (1.0 + JITTER * rng.uniform(-1.0, 1.0, (2, n)))
        self.lengths[:, 0] = 1.0 + 0.3 * JITTER * rng.uniform(-1.0, 1.0, 2)

    def outline(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For positions ``x`` (n,) across the mouth (IOD from its middle, negative on the face's
        left): (t, gap, length): the position inside the tooth there (0 and 1 its edges), the
        distance to the nearest edge between two teeth (IOD), and the tooth's length there (share
        of the longest, its corners rounded)."""
        side = (x >= 0).astype(int)
        a = np.abs(x)
        n = self.edges.shape[1] - 1
        k = np.where(
            side == 1, np.searchsorted(self.edges[1], a), np.searchsorted(self.edges[0], a)
        ) - 1  # fmt: skip
        k = np.clip(k, 0, n - 1)
        lo, hi = self.edges[side, k], self.edges[side, k + 1]
        t = np.clip((a - lo) / np.maximum(hi - lo, 1e-9), 0.0, 1.0)
        gap = np.minimum(np.abs(a - lo), np.abs(hi - a))
        length = self.lengths[side, k] * (1.0 - CORNER_ROUND * np.abs(2.0 * t - 1.0) ** 4)
        return t, gap, length


def portrait_seed(image: np.ndarray) -> int:
    """A number that differs between portraits (a checksum of the picture's pixels)."""
    return zlib.crc32(np.ascontiguousarray(image[::3, ::3]).tobytes())


def tooth_rows(image: np.ndarray, mouth_width: float) -> tuple[ToothRow, ToothRow]:
    """(upper, lower) rows for a portrait (H, W, 3) uint8 whose mouth is ``mouth_width`` IOD wide
    at rest: the teeth scale with the square root of the mouth's size (a wide smile shows more
    teeth, not only wider ones)."""
    scale = float(np.clip(mouth_width / REST_MOUTH_WIDTH, 0.7, 1.4)) ** 0.5
    seed = portrait_seed(image)
    return ToothRow(UPPER_WIDTHS, UPPER_LENGTHS, scale, seed), ToothRow(LOWER_WIDTHS, LOWER_LENGTHS, scale, seed + 1)
