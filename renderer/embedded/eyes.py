"""Eyelids: a blink brings each upper-lid contour down onto the lower lid.

The closed lids meet a little above the lower lid (the lower lid rises a bit too). The skin above
the upper lid follows and stretches over the eye; the iris centre and rim squash with the opening,
so at blink = 1 the eye fill has no area left and the lid skin covers the whole eye.

What a closing lid shows is lid skin (LidSkin): the portrait's lashes, the eye's corners and its
lower lash line are filled in from the skin around them once per portrait, and one lash line is
drawn along the closing lid's edge. What lies over the lids in the portrait (a fringe, a glasses
frame: LidCover) does not move with them: the lids close under it.
"""

from __future__ import annotations

import cv2
import numpy as np

from renderer.embedded.geometry import FaceFrame, smoothstep
from renderer.embedded.mesh import EYES
from renderer.embedded.mouth_colours import luma
from renderer.embedded.regions import ContourRegion

CLOSED_LINE = 0.2
"""Where closed lids meet: this fraction of the opening above the lower lid."""
UPPER_LID_SKIN = 0.12
"""Fall-off (IOD) of the upper-lid motion into the skin above it."""
LOWER_LID_SKIN = 0.05
"""Fall-off (IOD) of the lower-lid motion into the skin below it."""
COVER_DISTANCE = 28.0
"""Colour distance from the face's skin (CIELAB, lightness counted at half weight: a shadow or
make-up on the lid darkens it without changing its hue much) beyond which a pixel over the lids is
not lid skin."""
COVER_MARGIN = 0.07
"""Band (IOD) around each eye opening that always belongs to the lids (their lash lines)."""
COVER_MOVED = 0.5
"""Pixels a full blink moves by less than this (pixels) are not part of the lids."""
COVER_MIN_OUTSIDE = 0.01
"""A dark or off-colour patch over the lids is a cover (hair, a frame) when at least this area
(IOD^2) of it lies outside the lids: the lid's own crease, lashes and shadows end within them."""
SHADE_FROM = 0.5
"""Blink amount from which the sliver of eye left between the closing lids darkens to the lash
line's colour (fully at blink = 1): a nearly shut eye shows its lashes and their shadow, not the
white of the eye or a catch-light."""
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


LASH_REACH = 0.12
"""Height (IOD) above each upper-lid contour that a shut lid shows as lid skin (LidSkin): long upper
lashes reach this far; stretched over the closed eye they would read as dark streaks."""
LOWER_LASH_REACH = 0.03
"""Depth (IOD) below each lower-lid contour that a shut lid shows as skin: the lower lash line, so
only one lash line shows where the lids meet."""
LASH_WIDTH = 0.025
"""Thickness (IOD) of the one lash line a shut lid shows, in the middle of the lid (tapering to a
third of it at the corners)."""
LASH_DARKER = 10.0
"""CIELAB lightness below the skin's from which a pixel joined to the lash band is lash (LidSkin)."""
LASH_THIN = 0.02
"""Lashes are thin: dark strokes under 2 LASH_THIN (IOD) wide; broader dark (a shadowed eye socket,
hair, a drawn outline) is not lashes (_lashes)."""
WHITE_REACH = 0.1
"""How far (IOD) beyond the landmark eye contour the white of the eye may reach at the corners."""
SKIN_FROM, SKIN_FULL = 0.1, 0.6
"""Blink amounts over which the lids change from the portrait's own to LidSkin's (smoothly)."""
SEALED_FROM = 0.85
"""Blink amount from which the eye fill between the lids turns to lid skin (LidSkin.sealed)."""
FAR_EYE = 0.55
"""An eye under this share of the other's width (corner to corner) is the far eye of a face turned
about 45 degrees or more: the landmark model places its contour least surely there (on a cel-shaded
3/4 view, partly on the cheek beside the nose), and lid skin filled in around that contour smudges
what is drawn; its lids close as the portrait's own upper lid, stretched (LidSkin.eyes)."""


class LidSkin:
    """What a closing lid shows: the portrait with, around each eye, its upper lashes (a LASH_REACH
    band above the upper-lid contour and the long dark lashes joined to it), the eye opening, the
    white of the eye where it reaches past the landmark corners and the lower lash line (a
    LOWER_LASH_REACH band) replaced by the lid skin around them (inpainted from it, Telea's method),
    and one lash line drawn along each closing upper lid's edge (draw_lash).

    A blink shows ``image`` in place of the portrait on the lids, gradually from SKIN_FROM to
    SKIN_FULL (``weight``); the eye fill between the lids stays as drawn until they all but meet
    (``sealed``).

    image: (H, W, 3) uint8, the portrait's pixels with the lids redrawn (the same elsewhere);
    eyes: indices into mesh.EYES of the eyes it redraws (both, but for a FAR_EYE);
    lash: (3,) RGB the lash line's colour; width: its thickness (pixels) in the middle of the lid;
    taper: (9,) its share of that thickness along the lid, a third at the corners; down: (2,) unit,
    the face's down axis in the picture (the side of the rim the line lies on).
    """

    def __init__(self, image: np.ndarray, source: np.ndarray, frame: FaceFrame, lash: np.ndarray):
        """image: (H, W, 3) uint8 RGB; source: (478, 3) landmarks in its pixels; frame: the face's
        frame (its down axis and IOD); lash: (3,) RGB, the lash line's colour (lash_colour)."""
        iod, up = frame.iod, -frame.down
        h, w = image.shape[:2]
        lids = np.zeros((h, w), np.uint8)
        widths = [np.linalg.norm(source[eye.upper[-1], :2] - source[eye.upper[0], :2]) for eye in EYES]
        self.eyes = [k for k, width in enumerate(widths) if width >= FAR_EYE * max(widths)]
        for eye in EYES:
            top, bottom = source[list(eye.upper), :2], source[list(eye.lower), :2]
            for band in (np.concatenate([top, (top + LASH_REACH * iod * up)[::-1]]), source[list(eye.contour), :2],
                         np.concatenate([bottom, (bottom - LOWER_LASH_REACH * iod * up)[::-1]])):
                cv2.fillPoly(lids, [np.round(band).astype(np.int32)], 1)
        lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        skin = np.median(np.concatenate([_below_eye(lab, source, eye, iod) for eye in EYES]), axis=0)
        lids |= eye_whites(lab, skin, source, iod) | _lashes(lab, skin, source, frame, lids)
        # filled a few pixels beyond what must go, faded into the portrait over that ring (no seam
        # on a half-shut lid); all that must go is lid skin
        soft = max(1, round(0.02 * iod))
        core = _grown(lids, 2)
        lids = _grown(core.astype(np.uint8), soft)
        out = cv2.inpaint(image, lids.astype(np.uint8), max(2, round(0.03 * iod)), cv2.INPAINT_TELEA)
        out = cv2.GaussianBlur(out, (0, 0), 2 * soft)  # no streak of what reaches the mask's edge
        alpha = np.maximum(cv2.GaussianBlur(lids.astype(np.float32), (0, 0), soft / 2), core)[..., None]
        out = (image + alpha * (out.astype(np.float32) - image) + 0.5).astype(np.uint8)
        self.image = out
        self.lash = tuple(float(c) for c in lash)
        self.width = max(LASH_WIDTH * iod, 1.0)
        self.taper = 1.0 / 3.0 + 2.0 / 3.0 * np.sin(np.linspace(0.0, np.pi, len(EYES[0].upper)))
        self.down = frame.down

    def draw_lash(self, pixels: np.ndarray, rim: np.ndarray, share: float) -> None:
        """Draw the lash line into ``pixels`` (h, w, 3) uint8 in place along ``rim`` (9, 2), an
        upper-lid contour in its pixel coordinates, smoothed to a parabola from corner to corner (a
        closing rim can zigzag), thick ``self.width`` pixels in the middle (tapering to the
        corners), below the rim (along ``down``); at ``share`` (0..1) opacity."""
        arc = _parabola(rim, len(self.taper))
        edge = arc + self.width * self.taper[:, None] * self.down
        line = np.round(np.concatenate([arc - 0.25 * self.down, edge[::-1]]) * 16).astype(np.int32)
        drawn = pixels.copy()
        cv2.fillPoly(drawn, [line], self.lash, lineType=cv2.LINE_AA, shift=4)
        pixels[:] = (pixels + share * (drawn.astype(np.float32) - pixels) + 0.5).astype(np.uint8)

    @staticmethod
    def weight(amount: float) -> float:
        """Share (0..1) of LidSkin's image in the lids at blink ``amount``."""
        return float(smoothstep((amount - SKIN_FROM) / (SKIN_FULL - SKIN_FROM)))

    @staticmethod
    def sealed(amount: float) -> float:
        """Share (0..1) of LidSkin's image in the eye fill at blink ``amount``, from SEALED_FROM to 1:
        the last sliver between the lids, which a shut rim's zigzag leaves beside the smooth lash
        line, is lid skin, not a second dark line."""
        return float(smoothstep((amount - SEALED_FROM) / (1.0 - SEALED_FROM)))


def eye_whites(lab: np.ndarray, skin: np.ndarray, source: np.ndarray, iod: float) -> np.ndarray:
    """(H, W) bool: the white of both eyes as the pixels show it, also where it reaches past the
    landmark contour at the corners: pixels within WHITE_REACH of the eye openings, joined to them,
    at least as light as the ``skin`` (3,) below the eyes and with at most half its chroma (``lab``
    (H, W, 3): the portrait in CIELAB)."""
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    white = (lab[..., 0] >= skin[0] - 5.0) & (chroma <= 0.5 * np.hypot(skin[1], skin[2]) + 2.0)
    openings = np.zeros(lab.shape[:2], np.uint8)
    for eye in EYES:
        cv2.fillPoly(openings, [np.round(source[list(eye.contour), :2]).astype(np.int32)], 1)
    near = _grown(openings, WHITE_REACH * iod)
    return _joined((white & near) | openings.astype(bool), openings.astype(bool)) & white


BROWS = ((70, 63, 105, 66, 107, 55, 65, 52, 53, 46), (300, 293, 334, 296, 336, 285, 295, 282, 283, 276))
"""Face-mesh landmarks of each eyebrow (the canonical mesh's brow contours, upper and lower edge)."""


class LidCover:
    """Hair, a fringe or a glasses frame lying over the lids of a portrait: it stays where the rest
    of the face's motion puts it while the lids close under it.

    Found once per portrait: pixels a full blink moves (``moved``), outside a COVER_MARGIN band
    around the eye openings, whose colour is COVER_DISTANCE or more from the skin below the eyes,
    in connected patches reaching COVER_MIN_OUTSIDE or more out of the moving lids and the brows (a
    brow joined to a dark lid crease is the face's own: held still, it kept the landmark model from
    reading a smiling photo's blinks, 0.27 of the IOD open at blink 1 against 0.20 with it moving).

    found: whether the portrait has any such cover (without one, the renderer keeps none);
    box: (x0, y0, x1, y1) the cover's pixels (frame pixels), grown by 0.3 IOD (the reach of the
    face's other motion);
    alpha: (H, W) float32 over the whole frame, 1 on the cover, feathered over 2 px outside it;
    under: (H, W, 3) uint8 the image with the cover filled with the lid skin below it (_lid_under),
    what the lids show where they slide under it.
    """

    def __init__(self, image: np.ndarray, source: np.ndarray, iod: float, moved: np.ndarray):
        """image: (H, W, 3) uint8 RGB; source: (478, 3) landmarks in its pixels; iod: pixels;
        moved: (H, W) float32, how far (pixels) a full blink moves the frame's pixel at each place."""
        lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        skin = np.median(np.concatenate([_below_eye(lab, source, eye, iod) for eye in EYES]), axis=0)
        diff = (lab - skin) * np.array([0.5, 1.0, 1.0], np.float32)
        far = np.sqrt((diff**2).sum(axis=2)) > COVER_DISTANCE
        openings = np.zeros(image.shape[:2], np.uint8)
        for eye in EYES:
            cv2.fillPoly(openings, [np.round(source[list(eye.contour), :2]).astype(np.int32)], 1)
        eyes, lashes = (_grown(openings, share * COVER_MARGIN * iod) for share in (1.0, 0.5))
        lids = (moved > COVER_MOVED) & ~eyes
        count, labels = cv2.connectedComponents((far & ~eyes).astype(np.uint8), connectivity=8)
        inside = np.bincount(labels[lids], minlength=count)
        brows = np.zeros(image.shape[:2], np.uint8)
        for brow in BROWS:
            cv2.fillPoly(brows, [cv2.convexHull(np.round(source[list(brow), :2]).astype(np.int32))], 1)
        brows = _grown(brows, COVER_MARGIN * iod)
        outside = np.bincount(labels[~lids & ~eyes & ~brows], minlength=count)
        covers = (inside > 0) & (outside >= COVER_MIN_OUTSIDE * iod**2)
        covers[0] = False
        # a cover keeps what it holds in the margin too, short of the lash lines (inner half)
        mask = _joined(far & ~lashes, covers[labels]) & _grown((moved > COVER_MOVED).astype(np.uint8), 2)
        self.found = bool(mask.any())
        filled = _grown(mask.astype(np.uint8), 2)
        self.under = _lid_under(image, filled) if self.found else image
        self.alpha = np.maximum(filled, cv2.GaussianBlur(_grown(filled.astype(np.uint8), 1).astype(np.float32), (5, 5), 1.0))
        ys, xs = np.nonzero(filled) if self.found else (np.zeros(1, int), np.zeros(1, int))
        grow = round(0.3 * iod)
        h, w = moved.shape
        self.box = (max(xs.min() - grow, 0), max(ys.min() - grow, 0), min(xs.max() + grow + 1, w), min(ys.max() + grow + 1, h))

    def paint(self, pixels: np.ndarray, image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, sampling: int) -> None:
        """Draw the cover over ``pixels`` (h, w, 3) uint8 in place, the frame's pixels of ``self.box``:
        ``image`` (the portrait) read at (map_x, map_y) (h, w) float32, where the face's motion
        without the blink puts each pixel."""
        top = cv2.remap(image, map_x, map_y, sampling, borderMode=cv2.BORDER_REPLICATE)
        a = cv2.remap(self.alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
        pixels[:] = (a * top + (1.0 - a) * pixels + 0.5).astype(np.uint8)


def lash_colour(image: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(3,) float32 RGB: the lash line's colour, the darkest quarter (by luma) of the pixels on both
    upper-lid contours of ``image`` (H, W, 3) uint8, landmarks ``source`` (478, 3)."""
    samples = []
    for eye in EYES:
        rim = source[list(eye.upper), :2]
        for a, b in zip(rim[:-1], rim[1:]):
            t = np.linspace(0.0, 1.0, 6)[:, None]
            samples.append(a + t * (b - a))
    xy = np.round(np.concatenate(samples)).astype(int)
    h, w = image.shape[:2]
    colours = image[np.clip(xy[:, 1], 0, h - 1), np.clip(xy[:, 0], 0, w - 1)].astype(np.float32)
    brightness = luma(colours)
    return colours[brightness <= np.percentile(brightness, 25)].mean(axis=0)


def shade_closing(pixels: np.ndarray, index: np.ndarray, fill: tuple[int, int], lash: np.ndarray, amount: float) -> None:
    """Darken the eye fill's pixels of ``pixels`` (h, w, 3) uint8 in place toward ``lash`` (3,) as a
    blink of ``amount`` closes the lids (from SHADE_FROM; nothing below it). ``index`` (h, w): the
    triangle drawn at each pixel (warp.WarpMap.index); ``fill``: the eye fill's triangle index range."""
    share = float(smoothstep((amount - SHADE_FROM) / (1.0 - SHADE_FROM)))
    if share <= 0.0:
        return
    inside = (index >= fill[0]) & (index < fill[1])
    pixels[inside] = (pixels[inside] * (1.0 - share) + lash * share + 0.5).astype(np.uint8)


def _lid_under(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: ``image`` with the ``mask`` (H, W) bool pixels filled with the lid skin
    below them (each column's nearest unmasked pixel underneath), softened across columns."""
    out = image.copy()
    rows = np.flatnonzero(mask.any(axis=1))
    for y in range(min(rows.max(), len(out) - 2), rows.min() - 1, -1):
        out[y, mask[y]] = out[y + 1, mask[y]]
    soft = cv2.blur(out, (5, 3))
    out[mask] = soft[mask]
    return out


def _lashes(lab: np.ndarray, skin: np.ndarray, source: np.ndarray, frame: FaceFrame, lids: np.ndarray) -> np.ndarray:
    """(H, W) bool: long upper lashes reaching past the ``lids`` (H, W) uint8 bands: thin strokes
    (LASH_THIN) of pixels LASH_DARKER darker than the ``skin`` (3,) (CIELAB lightness), out of the
    brows, above the upper-lid contours by up to 2 LASH_REACH and beyond their corners by up to
    LASH_REACH, joined to the bands; a shadowed eye socket, hair or a drawn outline (broad) stays."""
    iod, up = frame.iod, -frame.down
    near = np.zeros(lids.shape, np.uint8)
    brows = np.zeros(lids.shape, np.uint8)
    for eye, brow in zip(EYES, BROWS):
        rim = source[list(eye.upper), :2]
        side = (rim[-1] - rim[0]) / max(np.linalg.norm(rim[-1] - rim[0]), 1e-9) * LASH_REACH * iod
        rim = np.concatenate([[rim[0] - side], rim, [rim[-1] + side]])
        cv2.fillPoly(near, [np.round(np.concatenate([rim, (rim + 2 * LASH_REACH * iod * up)[::-1]])).astype(np.int32)], 1)
        cv2.fillPoly(brows, [cv2.convexHull(np.round(source[list(brow), :2]).astype(np.int32))], 1)
    near = near.astype(bool)
    dark = ((lab[..., 0] < skin[0] - LASH_DARKER) & ~brows.astype(bool)).astype(np.uint8)
    r = max(1, round(LASH_THIN * iod))
    thick = cv2.morphologyEx(dark, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    thin = dark.astype(bool) & ~_grown(thick, 1) & near
    return _joined(thin | lids.astype(bool), lids.astype(bool)) & thin


def _parabola(points: np.ndarray, count: int) -> np.ndarray:
    """(count, 2): the least-squares parabola through ``points`` (n, 2) across the line joining the
    first and the last point, sampled at ``count`` evenly spaced places from the first to the last."""
    a, b = points[0], points[-1]
    axis = (b - a) / max(float(np.linalg.norm(b - a)), 1e-9)
    normal = np.array([-axis[1], axis[0]])
    u, v = (points - a) @ axis, (points - a) @ normal
    length = max(float(u[-1]), 1e-9)
    t = u / length
    basis = t * (1.0 - t)  # zero at both corners: the parabola keeps them
    k = float(basis @ v / max(basis @ basis, 1e-9))
    s = np.linspace(0.0, 1.0, count)
    return a + (s * length)[:, None] * axis + (k * s * (1.0 - s))[:, None] * normal


def _joined(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """(H, W) bool: the parts of ``mask`` (H, W) bool (8-connected) that hold a pixel of ``seeds`` (H, W) bool."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    joined = np.zeros(count, bool)
    joined[labels[seeds]] = True
    joined[0] = False
    return joined[labels]


def _grown(mask: np.ndarray, radius: float) -> np.ndarray:
    """(H, W) bool: ``mask`` (H, W) uint8 0/1 grown by a disc of ``radius`` pixels."""
    r = max(1, round(radius))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))).astype(bool)


def _below_eye(lab: np.ndarray, source: np.ndarray, eye, iod: float) -> np.ndarray:
    """(n, 3) CIELAB pixels of the cheek just below one eye (between its corners, 0.12-0.3 IOD
    below its lower lid): the face's skin, away from brows, fringes and frames."""
    x0, x1 = sorted(source[[eye.upper[0], eye.upper[-1]], 0])
    y = source[list(eye.lower), 1].max()
    h, w = lab.shape[:2]
    rows = slice(int(np.clip(y + 0.12 * iod, 0, h - 1)), int(np.clip(y + 0.3 * iod, 1, h)))
    cols = slice(int(np.clip(x0, 0, w - 1)), int(np.clip(x1, 1, w)))
    return lab[rows, cols].reshape(-1, 3)


def _at(columns: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(n, 3) rows of ``table`` (K, 3) linearly interpolated at fractional row numbers ``columns`` (n,)."""
    k = np.arange(len(table), dtype=np.float64)
    return np.stack([np.interp(columns, k, table[:, i]) for i in range(table.shape[1])], axis=1)
