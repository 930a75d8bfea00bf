"""Mouth interior: what shows between the lips once they part, and where they meet when shut.

Each pixel of the mouth fill (the strip between the inner lip contours) has a position across the
mouth (u, in contour columns: 0 and 10 are the corners) and its distances to the upper and lower
lip along the column (pixels), interpolated from the strip's vertices. From back to front:

- a cavity shaded from the lips' own darkest colour, darker away from the lips, and darker the
  wider the mouth opens (less light reaches in);
- the tongue, from the lips' colour: low behind the lower teeth on open vowels, its tip raised to
  the upper teeth on l / th (the track has no tongue channel: it shows where the jaw opens with
  little spreading or rounding, tip up where the jaw is only a little open, mouth.tongue_pose);
- the lower teeth, rising above the lower lip only as the mouth opens wide (the lip hides them
  at small openings), in the mouth's shade;
- the upper teeth hanging from the upper lip (so they move with it), one tooth at a time
  (teeth.ToothRow: the portrait's own widths, narrowing round the arch), each a little rounded,
  with darker gaps between them, a shadow under the lip, and a scalloped gum line above them that
  shows as the upper lip lifts.

Colours and light come from the portrait (mouth_colours): its eye whites, lips, grain, and the
direction and strength of the light on its face; a flat-colour picture gets flat shading.

Where the photo shows its own mouth interior (an open gap, or a narrow one with bright teeth in
it), its pixels are used instead of the painted upper teeth: the part of the opening nearer the
upper lip follows the upper lip, the part nearer the lower lip follows the lower lip, both
unstretched, and the painted interior fills the rest. The interior fades into the warped lips over
EDGE_PX pixels.

Closed lips meet as lips: the warp brings the portrait's own lip texture together (face_model),
and contact() softly shades where they touch towards the colour of the portrait's own lip contact,
never darker.
"""

from __future__ import annotations

import cv2
import numpy as np

from renderer.embedded.face_model import LIP_RAISE, FaceModel
from renderer.embedded.geometry import smoothstep
from renderer.embedded.mesh import LIP_INNER_LOWER, LIP_INNER_UPPER, NUM_LANDMARKS, mouth_triangles
from renderer.embedded.mouth_colours import luma, mouth_colours
from renderer.embedded.teeth import tooth_rows
from renderer.embedded.warp import WarpMap

TEETH_HEIGHT = 0.12
"""Visible height (IOD) of the longest upper tooth below the resting upper lip."""
TEETH_WIDTH = 0.8
"""Share of the inner mouth's half-width that the upper teeth reach before the mouth's dark corners."""
LOWER_TEETH_HEIGHT = 0.06
"""Visible height (IOD) of the lower teeth above the lower lip once the mouth is wide open."""
LOWER_TEETH_OPENING = (0.07, 0.22)
"""Middle inner-lip opening (IOD) at which the lower teeth start to show above the lower lip, and
at which they show their whole LOWER_TEETH_HEIGHT."""
TONGUE_HEIGHT = 0.12
"""Height (IOD) of a low tongue above the lower lip at small openings; a wide-open mouth shows
TONGUE_SHARE of its opening as tongue."""
TONGUE_SHARE = 0.3
GUM_SHOW = 0.9
"""Share of the upper lip's lift (face_model.LIP_RAISE x upper_lip_raise) that shows as gum above the teeth."""
GAP_DARK = 0.45
"""Darkening of the gaps between teeth near the gum (half as much at the biting edge)."""
LIP_SHADOW = 0.35
"""Darkening just under the upper lip (fading over 0.025 IOD), at the portrait's usual contrast."""
EDGE_PX = 1.5
"""Soft edge (pixels) between the interior and the lips."""
UPPER_SHARE = 0.8
"""Share of the photo's own opening that follows the upper lip (the rest follows the lower lip)."""
CONTACT_SHADE = 0.85
"""How far (share) the middle of the line where closed lips meet is shaded towards the portrait's
own lip contact colour (less towards the corners). Pressed lips show a soft contact shadow; without
it a closed render of a face photographed smiling with its teeth (the upper lip dark, the lower lip
pale) has no contact line, and the landmark model reads the lips a few pixels apart."""
CONTACT_WIDTH = 0.01
"""Half-width (IOD, at least 0.7 px) of the contact shadow."""

_COLUMNS = np.arange(len(LIP_INNER_UPPER), dtype=np.float64)
_MID = (len(LIP_INNER_UPPER) - 1) / 2
_GRAIN_FIELD = np.random.default_rng(0).standard_normal((64, 64))
"""Unit noise tiled over the frame: the painted interior gets the portrait's own grain (fixed in the
picture, as a photo's or a canvas's grain is)."""


def tongue_pose(row: np.ndarray) -> tuple[float, float]:
    """(shown, tip) of the tongue for a track row (EMBEDDED_CHANNELS): shown (0-1) where the jaw
    opens more than the lips spread or round (open vowels, l / th: 'teeth' consonants spread the
    lips as much as they open the jaw, and rounded vowels cover it); tip (0-1): its tip raised to
    the upper teeth, where the jaw is only a little open (l / th)."""
    jaw, width, rnd = (float(np.clip(v, 0.0, 1.0)) for v in row[:3])
    shown = float(smoothstep((jaw - max(width, 0.0) - rnd - 0.05) / 0.15))
    tip = float(1.0 - smoothstep((jaw - 0.3) / 0.3))
    return shown, shown * tip


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
        self._column_dir = np.where(
            self._source_gap[:, None] > 0.5, column / np.maximum(self._source_gap[:, None], 1e-9), model.frame.down
        )
        self._triangles = mouth_triangles()
        self._attr = np.zeros((NUM_LANDMARKS, 3))
        self._attr[list(LIP_INNER_UPPER), 0] = _COLUMNS
        self._attr[list(LIP_INNER_LOWER), 0] = _COLUMNS

        self.colours = mouth_colours(image, src, model.frame)
        """The portrait's interior colours and light (mouth_colours.MouthColours)."""
        self._strength = float(np.clip(self.colours.contrast / 0.15, 0.5, 1.4))
        mouth_width = float(np.linalg.norm(self._upper[-1] - self._upper[0])) / self._iod
        self.upper_teeth, self.lower_teeth = tooth_rows(image, mouth_width)
        """The portrait's tooth layouts (teeth.ToothRow)."""

        middle = (self._upper + self._lower)[2:-2] / 2
        inside = cv2.remap(
            image, middle[None, :, 0].astype(np.float32), middle[None, :, 1].astype(np.float32), cv2.INTER_LINEAR
        )[0].astype(np.float64)
        gap = float(np.median(self._source_gap[3:-3])) / self._iod
        bright = float(luma(inside).mean()) > 0.8 * float(luma(self.colours.skin))
        self.uses_source = gap > 0.06 or (gap > 0.015 and bright)
        """True when the photo's own mouth interior is shown (it shows teeth or an open mouth)."""

    def paint(self, pixels: np.ndarray, warp: WarpMap, first: int, driven: np.ndarray, row: np.ndarray) -> None:
        """Paint the interior into ``pixels`` (h, w, 3) uint8, the warped box, in place.

        warp: the box's WarpMap; first: index of the first mouth-fill triangle in the warp's
        triangle list (mouth_triangles() order); driven: (478, 2) driven landmarks; row: the
        frame's track row (EMBEDDED_CHANNELS).
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

        iod, c = self._iod, self.colours
        opening = float(gap[len(gap) // 2]) / iod  # in the middle of the mouth
        half_width = 0.5 * float(np.linalg.norm(up[-1] - up[0]))
        x = (u - _MID) / _MID * half_width / iod  # across the mouth (IOD)
        side = np.abs(u - _MID) / _MID  # 0 in the middle of the mouth, 1 at the corners
        lit = (1.0 + np.clip(c.light * x, -0.3, 0.3))[:, None]  # the portrait's light across the mouth

        deep = c.darkest * (0.7 - 0.3 * smoothstep(opening / 0.35))
        col = _mix(c.darkest * 0.85, deep, smoothstep(depth / (0.08 * iod)))
        col *= (1.0 - 0.25 * side**2)[:, None]
        shown, tip = tongue_pose(row)
        tongue, tongue_col = self._tongue(x, d_lo, half_width / iod, opening, tip)
        col = _mix(col, tongue_col, tongue * (shown - tip))
        col = self._lower_teeth(col, x, d_lo, side, opening, lit)
        old = pixels[ys, xs].astype(np.float64)
        if self.uses_source:
            col = self._source_interior(col, old, u, d_up, d_lo)
        else:
            lift = LIP_RAISE * float(np.clip(row[5], 0.0, 1.0)) * iod
            col = self._upper_teeth(col, x, d_up, side, lift, lit)
        col = _mix(col, tongue_col, tongue * tip)  # a raised tip shows in front of the teeth
        col += c.grain * _GRAIN_FIELD[ys % _GRAIN_FIELD.shape[0], xs % _GRAIN_FIELD.shape[1], None]
        alpha = smoothstep(depth / EDGE_PX)[:, None]
        pixels[ys, xs] = np.clip(old + alpha * (col - old) + 0.5, 0, 255).astype(np.uint8)

    def contact(self, pixels: np.ndarray, origin: tuple[int, int], driven: np.ndarray, close: float) -> None:
        """Shade the line where the lips meet in ``pixels`` (h, w, 3) uint8, the box at ``origin``
        (x0, y0) in the crop, in place, towards the portrait's own lip contact colour (never darker
        than it: pixels already darker are kept). ``close``: the row's lip_close (0: nothing is
        drawn); columns whose lips are more than ~2 px apart draw nothing either (the cavity shows)."""
        if close <= 0.0:
            return
        up, lo = driven[list(LIP_INNER_UPPER)], driven[list(LIP_INNER_LOWER)]
        seam = (up + lo) / 2 - np.asarray(origin, np.float64)
        gap = np.linalg.norm(lo - up, axis=1)
        side = np.abs(_COLUMNS - _MID) / _MID
        strength = close * CONTACT_SHADE * (1.0 - smoothstep((gap - 1.0) / 1.5)) * (1.0 - 0.6 * side**2)
        half = max(0.7, CONTACT_WIDTH * self._iod)
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
        block += alpha[:, None] * np.minimum(self.colours.contact - block, 0.0)
        pixels[y0:y1, x0:x1] = np.clip(block + 0.5, 0, 255).astype(np.uint8).reshape(y1 - y0, x1 - x0, 3)

    def _source_interior(
        self, col: np.ndarray, warped: np.ndarray, u: np.ndarray, d_up: np.ndarray, d_lo: np.ndarray
    ) -> np.ndarray:
        """The photo's own interior following the lips over the painted colours ``col`` (n, 3).

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

    def _tongue(
        self, x: np.ndarray, d_lo: np.ndarray, half_width: float, opening: float, tip: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(coverage (n,), colour (n, 3)) of the tongue: an arch rising from the lower lip, low
        (TONGUE_HEIGHT, or TONGUE_SHARE of a wide opening) when relaxed, reaching most of the
        opening with its tip raised (``tip``).
        x: across the mouth (IOD); d_lo: distance to the lower lip (pixels); half_width: the
        mouth's inner half-width (IOD); opening: the middle opening (IOD)."""
        iod = self._iod
        low = max(TONGUE_HEIGHT, TONGUE_SHARE * opening)
        top = iod * (low + tip * (0.8 * opening - low))
        shape = (x / ((0.8 - 0.35 * tip) * half_width)) ** 2 + (d_lo / max(top, 1.0)) ** 2
        coverage = 1.0 - smoothstep((shape - 0.85) / 0.3)
        k = self._strength
        shade = (1.0 - 0.15 * k * np.clip(shape, 0.0, 1.0)) * (1.0 - 0.12 * k * np.exp(-((x / 0.03) ** 2)))
        return coverage, self.colours.tongue * shade[:, None]

    def _lower_teeth(
        self, col: np.ndarray, x: np.ndarray, d_lo: np.ndarray, side: np.ndarray, opening: float, lit: np.ndarray
    ) -> np.ndarray:
        """Colours (n, 3) with the lower teeth, rising above the lower lip as the mouth opens."""
        lo, hi = LOWER_TEETH_OPENING
        height = LOWER_TEETH_HEIGHT * self._iod * float(smoothstep((opening - lo) / (hi - lo)))
        if height <= 0.0:
            return col
        t, gap, length = self.lower_teeth.outline(x)
        k = self._strength
        cover = (1.0 - smoothstep((d_lo - height * length) / 1.2 + 0.5)) * (1.0 - smoothstep((side - 0.6) / 0.15))
        shade = (
            0.78 * (1.0 - 0.45 * k * side**2) * (1.0 - 0.1 * k * (2.0 * t - 1.0) ** 2)
            * (1.0 - 0.5 * GAP_DARK * np.exp(-((gap * self._iod / (0.005 * self._iod + 0.35)) ** 2)))
        )  # fmt: skip
        return _mix(col, self.colours.teeth * shade[:, None] * lit, cover)

    def _upper_teeth(
        self, col: np.ndarray, x: np.ndarray, d_up: np.ndarray, side: np.ndarray, lift: float, lit: np.ndarray
    ) -> np.ndarray:
        """Colours (n, 3) with the upper teeth and, above them, the gum the lifted lip shows (``lift``:
        how far the upper lip is raised, pixels)."""
        iod, k = self._iod, self._strength
        t, gap, length = self.upper_teeth.outline(x)
        papilla = np.exp(-((gap / 0.02) ** 2))  # the gum reaches down between the teeth
        gum_line = GUM_SHOW * lift * (0.75 + 0.5 * papilla)
        bottom = lift + TEETH_HEIGHT * iod * length
        beside = 1.0 - smoothstep((side - TEETH_WIDTH) / 0.12 + 0.5)
        below_gum = smoothstep((d_up - gum_line) / 1.0 + 0.5)
        tooth = below_gum * (1.0 - smoothstep((d_up - bottom) / 1.0 + 0.5)) * beside
        gum = (1.0 - below_gum) * beside
        near_gum = 1.0 - smoothstep((d_up - gum_line) / (0.05 * iod))
        shadow = 1.0 - LIP_SHADOW * k * np.exp(-d_up / (0.025 * iod))
        shade = (
            (1.0 - 0.45 * k * side**2) * (1.0 - 0.1 * k * (2.0 * t - 1.0) ** 2) * shadow
            * (1.0 - GAP_DARK * (0.5 + 0.5 * near_gum) * np.exp(-((gap * iod / (0.006 * iod + 0.35)) ** 2)))
            * (1.0 - 0.08 * k * smoothstep((d_up - bottom + 0.025 * iod) / (0.025 * iod)))
        )  # fmt: skip
        col = _mix(col, self.colours.gum * (shadow * (1.0 - 0.3 * side**2))[:, None] * lit, gum)
        return _mix(col, self.colours.teeth * shade[:, None] * lit, tooth)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """a + t (b - a), colours (n, 3) or (3,), t (n,)."""
    return a + t[:, None] * (b - a)
