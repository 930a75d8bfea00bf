"""Mouth interior: what shows between the lips once they part.

Each pixel of the mouth fill (the strip between the inner lip contours) has a position across the
mouth (u, in contour columns: 0 and 10 are the corners) and its distances to the upper and lower
lip along the column (pixels), interpolated from the strip's vertices. From back to front:

- a cavity shaded from the lips' own darkest colour, darker away from the lips;
- when the jaw is wide open, a tongue and a hint of lower teeth above the lower lip;
- an upper-teeth band hanging from the upper lip (so it moves with it): about 80% of the mouth
  wide, at most TEETH_HEIGHT high, with soft gaps between the teeth and shading to the sides.

Where the photo shows its own mouth interior (an open gap, or a narrow one with bright teeth in
it), its pixels are used instead of the painted teeth: the part of the opening nearer the upper lip
follows the upper lip, the part nearer the lower lip follows the lower lip, both unstretched, and
the cavity fills the rest. The interior fades into the warped lips over EDGE_PX pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from renderer.embedded.face_model import FaceModel
from renderer.embedded.geometry import smoothstep
from renderer.embedded.mesh import (
    EYES,
    FACE_OVAL,
    LIP_INNER_LOWER,
    LIP_INNER_UPPER,
    LIP_OUTER_LOWER,
    LIP_OUTER_UPPER,
    NUM_LANDMARKS,
    mouth_triangles,
)
from renderer.embedded.warp import WarpMap

TEETH_HEIGHT = 0.12
"""Largest visible height of the upper teeth (IOD)."""
TEETH_WIDTH = 0.8
"""Width of the upper-teeth band as a share of the inner mouth."""
TOOTH_GAPS = (0.0, 0.135, 0.235, 0.31)
"""Distances (IOD) of the gaps between upper teeth from the middle of the mouth."""
LOWER_TEETH_HEIGHT = 0.035
"""Height (IOD) of the lower-teeth hint above the lower lip."""
TONGUE_HEIGHT = 0.14
"""Height (IOD) of the tongue hint above the lower lip."""
EDGE_PX = 1.5
"""Soft edge (pixels) between the interior and the lips."""
UPPER_SHARE = 0.8
"""Share of the photo's own opening that follows the upper lip (the rest follows the lower lip)."""
SEAM_DARK = 0.8
"""Darkness of the line where closed lips meet (share of the way to the deep cavity colour, in the
middle of the mouth; less towards the corners). Pressed lips always show a thin dark seam; without it
a closed render of a face photographed smiling with its teeth (the upper lip dark, the lower lip
pale) has no seam, and the landmark model reads the lips a few pixels apart."""
SEAM_WIDTH = 0.008
"""Half-width (IOD, at least 0.6 px) of the seam line."""

_COLUMNS = np.arange(len(LIP_INNER_UPPER), dtype=np.float64)
_MID = (len(LIP_INNER_UPPER) - 1) / 2


class MouthPainter:
    """Paints the mouth interior of one face. ``image``: (S, S, 3) uint8 source crop."""

    def __init__(self, image: np.ndarray, model: FaceModel):
        self._image = image
        self._iod = model.frame.iod
        src = model.source[:, :2]
        self._upper = src[list(LIP_INNER_UPPER)]
        self._lower = src[list(LIP_INNER_LOWER)]
        column = self._lower - self._upper
        self._source_gap = np.linalg.norm(column, axis=1)
        down = model.frame.axes[:2, 1] / np.linalg.norm(model.frame.axes[:2, 1])
        self._column_dir = np.where(
            self._source_gap[:, None] > 0.5, column / np.maximum(self._source_gap[:, None], 1e-9), down
        )
        self._triangles = mouth_triangles()
        self._attr = np.zeros((NUM_LANDMARKS, 3))
        self._attr[list(LIP_INNER_UPPER), 0] = _COLUMNS
        self._attr[list(LIP_INNER_LOWER), 0] = _COLUMNS

        skin, lips = _polygon_pixels(image, src, [FACE_OVAL]), _polygon_pixels(
            image, src, [LIP_OUTER_UPPER + LIP_OUTER_LOWER[-2:0:-1], LIP_INNER_UPPER + LIP_INNER_LOWER[-2:0:-1]]
        )
        skin_colour = np.median(skin, axis=0)
        skin_luma = float(_luma(skin_colour))
        order = np.argsort(_luma(lips))
        darkest = lips[order[: max(1, len(order) // 20)]].mean(axis=0)
        self._cavity_edge = darkest * 0.8
        self._cavity_deep = darkest * 0.5
        self._tongue = np.median(lips, axis=0) * 0.8
        self._teeth = _whites(image, src, skin_colour)
        self._grain = _grain(image, src)

        middle = (self._upper + self._lower)[2:-2] / 2
        inside = cv2.remap(
            image, middle[None, :, 0].astype(np.float32), middle[None, :, 1].astype(np.float32), cv2.INTER_LINEAR
        )[0].astype(np.float64)
        gap = float(np.median(self._source_gap[3:-3])) / self._iod
        bright = float(_luma(inside).mean()) > 0.8 * skin_luma
        self.uses_source = gap > 0.06 or (gap > 0.015 and bright)
        """True when the photo's own mouth interior is shown (it shows teeth or an open mouth)."""

    def paint(self, pixels: np.ndarray, warp: WarpMap, first: int, driven: np.ndarray) -> None:
        """Paint the interior into ``pixels`` (h, w, 3) uint8, the warped box, in place.

        warp: the box's WarpMap; first: index of the first mouth-fill triangle in the warp's
        triangle list (mouth_triangles() order); driven: (478, 2) driven landmarks.
        """
        t = warp.index - first
        ys, xs = np.nonzero((t >= 0) & (t < len(self._triangles)))
        if len(ys) == 0:
            return
        up, lo = driven[list(LIP_INNER_UPPER)], driven[list(LIP_INNER_LOWER)]
        gap = np.linalg.norm(lo - up, axis=1)
        self._attr[list(LIP_INNER_UPPER), 2] = gap
        self._attr[list(LIP_INNER_LOWER), 1] = gap
        v = self._triangles[t[ys, xs]]
        b1, b2 = warp.weights(ys, xs)
        b1, b2 = b1[:, None], b2[:, None]
        a0 = self._attr[v[:, 0]]
        att = a0 + b1 * (self._attr[v[:, 1]] - a0) + b2 * (self._attr[v[:, 2]] - a0)
        u, d_up, d_lo = att[:, 0], att[:, 1], att[:, 2]
        depth = np.minimum(d_up, d_lo)

        col = _mix(self._cavity_edge, self._cavity_deep, smoothstep(depth / (0.08 * self._iod)))
        old = pixels[ys, xs].astype(np.float64)
        side = np.abs(u - _MID) / _MID  # 0 in the middle of the mouth, 1 at the corners
        col = self._lower_interior(col, u, d_lo, (d_up + d_lo) / self._iod, side)
        if self.uses_source:
            col = self._source_interior(col, old, u, d_up, d_lo)
        else:
            half_width = 0.5 * float(np.linalg.norm(up[-1] - up[0]))
            col = self._upper_teeth(col, u, d_up, side, half_width)
        col += self._grain * _GRAIN_FIELD[ys % _GRAIN_FIELD.shape[0], xs % _GRAIN_FIELD.shape[1], None]
        alpha = smoothstep(depth / EDGE_PX)[:, None]
        pixels[ys, xs] = np.clip(old + alpha * (col - old) + 0.5, 0, 255).astype(np.uint8)

    def seam(self, pixels: np.ndarray, origin: tuple[int, int], driven: np.ndarray, close: float) -> None:
        """Darken the line where the lips meet into ``pixels`` (h, w, 3) uint8, the box at ``origin``
        (x0, y0) in the crop, in place. ``close``: the row's lip_close (0: nothing is drawn);
        columns whose lips are more than ~2 px apart draw nothing either (the cavity shows there)."""
        if close <= 0.0:
            return
        up, lo = driven[list(LIP_INNER_UPPER)], driven[list(LIP_INNER_LOWER)]
        seam = (up + lo) / 2 - np.asarray(origin, np.float64)
        gap = np.linalg.norm(lo - up, axis=1)
        side = np.abs(_COLUMNS - _MID) / _MID
        strength = close * SEAM_DARK * (1.0 - smoothstep((gap - 1.0) / 1.5)) * (1.0 - 0.6 * side**2)
        half = max(0.6, SEAM_WIDTH * self._iod)
        h, w = pixels.shape[:2]
        x0, y0 = np.floor(seam.min(axis=0) - half - 2).astype(int)
        x1, y1 = np.ceil(seam.max(axis=0) + half + 3).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            return
        ys, xs = np.mgrid[y0:y1, x0:x1]
        p = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
        a, b = seam[:-1], seam[1:]  # segments of the seam
        ab = b - a
        t = np.clip(((p[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab**2).sum(-1), 1e-9)[None], 0.0, 1.0)
        dist = np.linalg.norm(p[:, None] - (a[None] + t[..., None] * ab[None]), axis=-1)
        k = np.argmin(dist, axis=1)
        along = strength[k] + t[np.arange(len(k)), k] * (strength[k + 1] - strength[k])
        alpha = along * np.exp(-0.5 * (dist[np.arange(len(k)), k] / half) ** 2)
        block = pixels[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
        block += alpha[:, None] * (self._cavity_deep - block)
        pixels[y0:y1, x0:x1] = np.clip(block + 0.5, 0, 255).astype(np.uint8).reshape(y1 - y0, x1 - x0, 3)

    def _source_interior(
        self, col: np.ndarray, warped: np.ndarray, u: np.ndarray, d_up: np.ndarray, d_lo: np.ndarray
    ) -> np.ndarray:
        """The photo's own interior following the lips over the cavity colours ``col`` (n, 3).

        Where the opening has the photo's height the plain warp (``warped``) is kept as it is.
        """
        gap = np.interp(u, _COLUMNS, self._source_gap)
        direction = np.stack([np.interp(u, _COLUMNS, self._column_dir[:, k]) for k in (0, 1)], 1)
        parts = ((self._lower, d_lo, 1.0 - UPPER_SHARE, -1.0), (self._upper, d_up, UPPER_SHARE, 1.0))
        for lip, dist, share, sign in parts:
            at = np.stack([np.interp(u, _COLUMNS, lip[:, k]) for k in (0, 1)], 1) + sign * dist[:, None] * direction
            seen = cv2.remap(
                self._image, at[None, :, 0].astype(np.float32), at[None, :, 1].astype(np.float32),
                cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
            )[0]  # fmt: skip
            col = _mix(col, seen.astype(np.float64), 1.0 - smoothstep((dist - share * gap) / EDGE_PX))
        unchanged = 1.0 - smoothstep(np.abs(d_up + d_lo - gap) / 2.0)
        return _mix(col, warped, unchanged)

    def _lower_interior(
        self, col: np.ndarray, u: np.ndarray, d_lo: np.ndarray, opening: np.ndarray, side: np.ndarray
    ) -> np.ndarray:
        """Cavity colours (n, 3) overlaid with a tongue and a lower-teeth hint, shown as the mouth opens wide."""
        iod = self._iod
        tongue_shape = ((u - _MID) / (0.7 * _MID)) ** 2 + (d_lo / (TONGUE_HEIGHT * iod)) ** 2
        tongue = smoothstep((opening - 0.1) / 0.1) * (1.0 - smoothstep((tongue_shape - 0.8) / 0.4))
        col = _mix(col, self._tongue * (0.75 + 0.25 * smoothstep(1.0 - tongue_shape))[:, None], tongue)
        lower = (
            0.7 * smoothstep((opening - 0.15) / 0.12)
            * (1.0 - smoothstep((d_lo - LOWER_TEETH_HEIGHT * iod) / 1.2 + 0.5))
            * (1.0 - smoothstep((side - 0.45) / 0.15))
        )  # fmt: skip
        shadowed = 0.8 * self._teeth + 0.2 * self._tongue  # lower teeth sit in the mouth's shade
        return _mix(col, 0.8 * shadowed * (1.0 - 0.45 * side**2)[:, None], lower)

    def _upper_teeth(
        self, col: np.ndarray, u: np.ndarray, d_up: np.ndarray, side: np.ndarray, half_width: float
    ) -> np.ndarray:
        """Colours (n, 3) overlaid with the painted upper-teeth band hanging from the upper lip."""
        iod = self._iod
        x = (u - _MID) / _MID * half_width
        gaps = np.min(np.abs(np.abs(x)[:, None] - np.array(TOOTH_GAPS)[None] * iod), axis=1)
        shade = (1.0 - 0.45 * side**2) * (1.0 - 0.18 * np.exp(-((gaps / (0.008 * iod + 0.25)) ** 2)))
        shade *= 0.82 + 0.18 * smoothstep(d_up / (0.03 * iod))
        band = (1.0 - smoothstep((side - TEETH_WIDTH) / 0.12 + 0.5)) * (
            1.0 - smoothstep((d_up - TEETH_HEIGHT * iod) / 1.2 + 0.5)
        )
        return _mix(col, self._teeth * shade[:, None], band)


TEETH_SHADE = 0.92
"""Upper teeth's colour: the portrait's eye whites times this (teeth sit in the mouth's shade)."""
_GRAIN_FIELD = np.random.default_rng(0).standard_normal((64, 64))
"""Unit noise tiled over the frame: the painted interior gets the portrait's own grain (fixed in the
picture, as a photo's or a canvas's grain is)."""


def _whites(image: np.ndarray, points: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """(3,) colour of the teeth: the portrait's eye whites (the bright part of both eye openings,
    catch-lights left out) in its own light and colour (a grey picture gives grey teeth, a painting
    its painted whites), times TEETH_SHADE. Eyes too small to sample: the skin's colour lightened."""
    whites = _polygon_pixels(image, points, [EYES[0].contour])
    whites = np.concatenate([whites, _polygon_pixels(image, points, [EYES[1].contour])])
    if len(whites) >= 12:
        luma = _luma(whites)
        lo, hi = np.percentile(luma, [70, 95])
        band = whites[(luma >= lo) & (luma <= hi)]
        colour = band.mean(axis=0) if len(band) else whites.mean(axis=0)
        if _luma(colour) > 0.9 * _luma(skin):  # the eye's bright part is whiter than the skin: its whites
            grey = _luma(colour)
            return (grey + 0.6 * (colour - grey)) * TEETH_SHADE  # less of the lids' and veins' tint
    return (skin + 0.6 * (255.0 - skin)) * TEETH_SHADE


def _grain(image: np.ndarray, points: np.ndarray) -> float:
    """Standard deviation (grey levels) of the portrait's fine grain on the cheeks and forehead: the
    face's pixels less their 3 x 3 median (the median absolute residual, as a robust sigma)."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    residual = grey.astype(np.float64) - cv2.medianBlur(grey, 3)
    mask = np.zeros(grey.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(FACE_OVAL)]).astype(np.int32)], 1)
    values = residual[mask > 0]
    return float(1.4826 * np.median(np.abs(values))) if len(values) else 0.0


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """a + t (b - a), colours (n, 3) or (3,), t (n,)."""
    return a + t[:, None] * (b - a)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _polygon_pixels(image: np.ndarray, points: np.ndarray, loops: list[tuple[int, ...]]) -> np.ndarray:
    """(n, 3) float64 colours of the pixels inside the first loop of landmarks and outside the others."""
    mask = np.zeros(image.shape[:2], np.uint8)
    for k, loop in enumerate(loops):
        cv2.fillPoly(mask, [np.round(points[list(loop)]).astype(np.int32)], 0 if k else 1)
    return image[mask > 0].astype(np.float64)
