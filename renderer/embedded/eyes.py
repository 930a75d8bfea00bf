"""Eyelids: a blink brings each upper-lid contour down onto the lower lid.

The closed lids meet a little above the lower lid (the lower lid rises a bit too). The skin above
the upper lid follows and stretches over the eye; the iris centre and rim squash with the opening,
so at blink = 1 the eye fill has no area left and the lid skin covers the whole eye.
"""

from __future__ import annotations

import numpy as np

from renderer.embedded.geometry import FaceFrame
from renderer.embedded.mesh import EYES
from renderer.embedded.regions import ContourRegion

CLOSED_LINE = 0.2
"""Where closed lids meet: this fraction of the opening above the lower lid."""
UPPER_LID_SKIN = 0.12
"""Fall-off (IOD) of the upper-lid motion into the skin above it."""
LOWER_LID_SKIN = 0.05
"""Fall-off (IOD) of the lower-lid motion into the skin below it."""
LID_EDGE = 0.3
"""At blink = 1 the upper lid's rim shows the source this share of the eye opening above the
source's lid contour (lashes and lid skin), so no white of the eye or catch-light shows in the
closed lid."""


class Lids:
    """Blink operator for both eyes of one face.

    ``source`` (478, 3) landmarks fix, for each iris point, the lid column it sits on and its
    fraction of the way from the lower to the upper lid there.
    """

    def __init__(self, source: np.ndarray, frame: FaceFrame):
        down = frame.axes[:, 1]
        self._rims = np.concatenate([e.upper[1:-1] for e in EYES])
        self._rim_lift = np.concatenate(
            [source[list(e.upper[1:-1]), :2] - source[list(e.lower[1:-1]), :2] for e in EYES]
        )
        self._upper = [ContourRegion(e.upper, -1, UPPER_LID_SKIN, exclude=e.lower) for e in EYES]
        self._lower = [ContourRegion(e.lower, +1, LOWER_LID_SKIN, exclude=e.upper) for e in EYES]
        self._iris_column, self._iris_height = [], []
        for eye in EYES:
            up, lo, iris = source[list(eye.upper)], source[list(eye.lower)], source[list(eye.iris)]
            axis = up[-1] - up[0]
            along = lambda p: (p - up[0]) @ axis / (axis @ axis)  # noqa: E731
            col = np.interp(along(iris), along(up), np.arange(len(up), dtype=np.float64))
            lo_at, up_at = _at(col, lo), _at(col, up)
            opening = np.maximum((up_at - lo_at) @ -down, 1e-6)
            self._iris_column.append(col)
            self._iris_height.append(np.clip((iris - lo_at) @ -down / opening, 0.0, 1.0))

    def rim_texture(self, source_xy: np.ndarray, amount: float) -> np.ndarray:
        """Texture positions (N, 2) for the warp: ``source_xy`` with the upper-lid rims moved up
        into the lid by ``amount`` * LID_EDGE of the eye opening (a copy; unchanged at 0)."""
        if amount <= 0.0:
            return source_xy
        out = source_xy.copy()
        out[self._rims] += amount * LID_EDGE * self._rim_lift
        return out

    def close(self, points: np.ndarray, amount: float) -> None:
        """Move ``points`` (478, 3) in place: ``amount`` 0 = as they are, 1 = lids shut."""
        if amount <= 0.0:
            return
        for k, eye in enumerate(EYES):
            up, lo = points[list(eye.upper)], points[list(eye.lower)]
            meet = lo + CLOSED_LINE * (up - lo)
            d_up, d_lo = amount * (meet - up), amount * (meet - lo)
            col, h = self._iris_column[k], self._iris_height[k][:, None]
            points[list(eye.iris)] += (1.0 - h) * _at(col, d_lo) + h * _at(col, d_up)
            self._upper[k].apply(points, d_up)
            self._lower[k].apply(points, d_lo)


def _at(columns: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(n, 3) rows of ``table`` (K, 3) linearly interpolated at fractional row numbers ``columns`` (n,)."""
    k = np.arange(len(table), dtype=np.float64)
    return np.stack([np.interp(columns, k, table[:, i]) for i in range(table.shape[1])], axis=1)
