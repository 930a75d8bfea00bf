"""The articulation model: EMBEDDED_CHANNELS -> displaced landmarks, relative to the source photo.

Every motion is a displacement of the 478 landmarks in units of the inter-ocular distance (IOD)
along the face's own axes (so a tilted or turned face moves in its own frame):

    jaw_open         rotation of the chin, lower lip and lower jaw line about an axis between the
                     jaw joints; 1 opens the inner lips by JAW_GAP IOD more than the photo shows
                     them: motion is relative to the photo, so speech opens even a mouth
                     photographed half open (and lip_close shuts it whatever its opening).
    lip_width        mouth corners apart (+) or together (-), the lips stretching between them
    lip_round        corners in, lips forward and slightly parted (a pucker)
    upper_lip_raise  the upper lip lifted, most in the middle
    lip_tuck         the lower lip rolled up under the upper teeth, the upper lip lifted a little
    lip_close        the inner lip contours brought together (they meet at 1, whatever the jaw does),
                     pressed flat: lip_close takes back lip_round and a negative lip_width, as a
                     speaker's lips are flat in the b of 'blue' and round on its release (a drawn ink
                     mouth line shortened by rounding was read as lips 0.02-0.05 IOD apart)
    blink            eyelids shut (eyes.Lids)
    brow_raise       brows up (+) or down and together (-)

Head pose (yaw, pitch, roll, tx, ty) is pose.HeadPose, applied after these.
"""

from __future__ import annotations

import numpy as np

from renderer.embedded.eyes import Lids
from renderer.embedded.geometry import FaceFrame, axis_rotations, fit_frame, smoothstep
from renderer.embedded.mesh import (
    LIP_CORNERS,
    LIP_INNER_LOWER,
    LIP_INNER_UPPER,
    LIP_OUTER_UPPER,
    canonical_face,
    lip_rings,
    unfold,
)
from renderer.embedded.regions import ContourRegion

JAW_GAP = 0.35
"""Inner-lip opening (IOD) added by jaw_open = 1."""
JAW_CORNER = 0.3
"""Share of the jaw's motion the mouth corners take."""
JAW_PIVOT = (0.0, 0.45, 1.4)
"""A point on the jaw's hinge axis, in face units: at the height of the jaw joints, set deeper than
they are so the jaw line near the ears still drops with the chin (a rigid hinge at the joints would
fold the foreshortened skin there)."""
LIP_WIDTH = 0.10
"""Sideways motion (IOD) of each mouth corner at lip_width = 1."""
ROUND_IN, ROUND_FORWARD, ROUND_PART = 0.11, 0.12, 0.05
"""lip_round = 1: corners in (IOD each), lips forward (IOD), outer lip contours apart (IOD each).
Rounded vowels (English /u/, /o/, /w/) keep about 70-85 % of the rest width: lip_round = 1 takes
each corner in by 14 % of the canonical mouth width (0.78 IOD), so the 'pucker' viseme (lip_round
0.9, lip_width -0.2) keeps about 70 % as drawn; the face mesh reads it at 75-82 % on rendered
portraits (the lips' texture is carried along less than the contour), and at 78-86 % in speech."""
LIP_RAISE = 0.09
"""Upper-lip lift (IOD, middle of the lip) at upper_lip_raise = 1."""
TUCK_GAP, TUCK_RAISE = 0.06, 0.03
"""lip_tuck = 1: the lower inner lip sits TUCK_GAP below the upper one (room for the teeth edge),
and the upper lip lifts by TUCK_RAISE (IOD)."""
CLOSE_UPPER_SHARE = 0.2
"""At lip_close the upper lip travels this share of the gap, the lower lip (with the jaw) the rest:
in p/b/m the lower lip moves several times as far as the upper one. At 0.45 a portrait smiling with
its teeth (t1.jpg's right face) pulled the skin above the upper lip down over the seam as a tall
dark band, and the landmark model read its shut lips 0.03-0.08 IOD apart on half the p/b/m of a
28 s clip."""
CLOSE_JAW_SHARE = 1.0
"""Share of the lower lip's travel in a closure that the jaw does: the jaw rises (the jaw_open hinge
turned back) by this share of (1 - CLOSE_UPPER_SHARE) of the opening in the middle of the mouth, so
a face photographed with its mouth open shuts it as a speaker does, chin and lower lip together; the
lips close what is left (the upper lip CLOSE_UPPER_SHARE of it). Before, only the lower lip moved
and the skin under it stretched over up to 0.2 IOD; which share of the gap the upper lip took was
then a trade-off between faces (p/b/m read shut, rendered and encoded, t1.jpg's right face smiling
with its teeth / a cel-shaded t1.jpg left face, both sources open 0.15 IOD: upper share 0.2: 1.0 /
0.78, 0.25: 0.97 / 0.89, 0.3: 0.86 / 0.94, 0.35: 0.83 / 1.0; on stills, lips rounded at 0.3-0.67
read 0.03-0.09 IOD apart). With the jaw (upper share 0.2): 1.0 / 1.0, stills at most 0.012 IOD."""
LIP_PRESS = 0.4
"""At lip_close = 1 both lips, once met, are pressed together: every lip point moves this share of
its distance towards the seam (lips in p/b/m are compressed, not only brought together). Without it
closed lips of a portrait that smiles with its teeth keep their stretched, retracted shape and the
landmark model reads them as still parted (measured on the closed render of t1.jpg's right face:
0.074 IOD apart without, 0.035 at 0.25, 0.010 at 0.4; a CG face 0.049, 0.021)."""
LIP_EDGE = 0.4
"""At lip_close = 1 each lip's inner contour shows the source this share of the lip's thickness
further out (rings of mesh.lip_rings shift along the lip, the outer contour not at all): the
source's inner lip edge, its teeth and the dark line inside a parted or smiling mouth stay hidden
in the seam instead of reading as a gap."""
BROW_UP, BROW_DOWN, BROW_IN = 0.10, 0.06, 0.02
"""brow_raise = +1 lifts the brows by BROW_UP; -1 lowers them by BROW_DOWN and pulls them in by BROW_IN (IOD)."""

BROWS = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55, 300, 293, 334, 296, 336, 276, 283, 282, 295, 285)


class FaceModel:
    """Articulation of one face. ``landmarks``: (478, 3) source landmarks in crop pixels.

    Attributes: ``source`` (the landmarks with mesh folds opened, mesh.unfold: the rest pose every
    motion starts from), ``frame`` (the face's similarity frame; frame.iod is the IOD in pixels),
    ``lids`` (eyes.Lids).
    """

    def __init__(self, landmarks: np.ndarray):
        canon = canonical_face()
        upper_face = canon[:468, 1] < 0.8
        self.frame: FaceFrame = fit_frame(canon[:468][upper_face], np.asarray(landmarks)[:468][upper_face])
        self.source = unfold(landmarks, self.frame.axes)
        f = self.frame

        upper, lower = lip_rings()
        self._lip_ring_rows = (upper[1:], lower[1:])
        self._lip_texture_rows = np.concatenate([upper[:-1].ravel(), lower[:-1].ravel()])
        share = 1.0 - np.arange(len(upper) - 1) / (len(upper) - 1)  # 1 on the inner contour, 0 at the outer one
        src = self.source[:, :2]
        self._lip_texture_shift = np.concatenate(
            [(share[:, None, None] * (src[rings[-1]] - src[rings[0]])[None]).reshape(-1, 2) for rings in (upper, lower)]
        )
        self._upper_lip = ContourRegion(LIP_INNER_UPPER, -1, 0.12, rings=upper, exclude=lower)
        self._lower_lip = ContourRegion(LIP_INNER_LOWER, +1, 0.2, rings=lower, exclude=upper)
        self._lower_lip_roll = ContourRegion(LIP_INNER_LOWER, +1, 0.1, rings=lower, exclude=upper)
        self.lids = Lids(self.source, f)

        weight = _jaw_weights(canon)
        self._jaw_rows = np.flatnonzero(weight > 1e-3)
        self._jaw_weight = weight[self._jaw_rows]
        self._jaw_axis = f.axes[:, 0]
        self._jaw_pivot = f.to_image(np.array([JAW_PIVOT]))[0]
        self._jaw_angle = _jaw_angle(canon)

        profile = _lip_profile()
        self._lip_profile = profile[:, None]
        raise_cols = np.zeros((len(LIP_INNER_UPPER), 3))
        raise_cols[:, 1] = -profile
        lip_raise = np.zeros_like(canon)
        lip_raise[self._upper_lip.index] = self._upper_lip.spread(raise_cols)
        self._fields = f.displacement(
            np.stack([_width_field(canon), *_round_fields(canon), LIP_RAISE * lip_raise, *_brow_fields(canon)])
        )

    def articulate(self, row: np.ndarray) -> np.ndarray:
        """(478, 3) landmarks for one track row (EMBEDDED_CHANNELS order; pose columns ignored)."""
        jaw, width, rnd, close, tuck, lift, blink, brow = (float(v) for v in row[:8])
        pts = self.source.copy()
        self._open_jaw(pts, min(max(jaw, 0.0), 1.0))
        rnd, close = float(np.clip(rnd, 0, 1)), float(np.clip(close, 0, 1))
        width = float(np.clip(width, -1, 1))
        flat = 1.0 - close  # lips pressed flat: lip_close takes back rounding and narrowing (module doc)
        coef = np.array([
            max(width, 0.0) + min(width, 0.0) * flat, rnd * flat, rnd * flat, np.clip(lift, 0, 1), max(min(brow, 1), 0),
            max(min(-brow, 1), 0)
        ])  # fmt: skip
        pts += np.tensordot(coef, self._fields, axes=1)
        self._tuck(pts, float(np.clip(tuck, 0, 1)))
        self._close(pts, close)
        self.lids.close(pts, float(np.clip(blink, 0, 1)))
        return pts

    def lip_texture(self, source_xy: np.ndarray, amount: float) -> np.ndarray:
        """Texture positions (N, 2) for the warp: ``source_xy`` with the lips' inner rings moved
        outward along the lip by ``amount`` * LIP_EDGE of its thickness (a copy; unchanged at 0)."""
        if amount <= 0.0:
            return source_xy
        out = source_xy.copy()
        out[self._lip_texture_rows] += amount * LIP_EDGE * self._lip_texture_shift
        return out

    def lip_gap(self, points: np.ndarray) -> np.ndarray:
        """(11,) inner-lip opening per contour column along the face's down axis, in IOD."""
        gap = points[list(LIP_INNER_LOWER)] - points[list(LIP_INNER_UPPER)]
        return gap @ self.frame.axes[:, 1] / self.frame.iod

    def _open_jaw(self, pts: np.ndarray, amount: float) -> None:
        """Turn the jaw hinge by ``amount`` of a full jaw_open (negative: the jaw rises), in place."""
        if amount == 0.0:
            return
        rot = axis_rotations(self._jaw_axis, amount * self._jaw_angle * self._jaw_weight)
        rel = pts[self._jaw_rows] - self._jaw_pivot
        pts[self._jaw_rows] = np.einsum("nij,nj->ni", rot, rel) + self._jaw_pivot

    def _tuck(self, pts: np.ndarray, amount: float) -> None:
        if amount <= 0.0:
            return
        down = self.frame.axes[:, 1] * self.frame.iod
        up, lo = pts[list(LIP_INNER_UPPER)], pts[list(LIP_INNER_LOWER)]
        target = up + TUCK_GAP * self._lip_profile * down
        self._lower_lip_roll.apply(pts, amount * (target - lo))
        self._upper_lip.apply(pts, -amount * TUCK_RAISE * self._lip_profile * down)

    def _close(self, pts: np.ndarray, amount: float) -> None:
        if amount <= 0.0:
            return
        up, lo = pts[list(LIP_INNER_UPPER)], pts[list(LIP_INNER_LOWER)]
        gap = lo - up
        middle = float(gap[len(gap) // 2] @ self.frame.axes[:, 1]) / self.frame.iod  # opening (IOD)
        rise = amount * CLOSE_JAW_SHARE * (1.0 - CLOSE_UPPER_SHARE) * max(middle, 0.0) / JAW_GAP
        if rise > 0.0:  # the jaw carries the lower lip up (CLOSE_JAW_SHARE), the lips close the rest
            self._open_jaw(pts, -rise)
            up, lo = pts[list(LIP_INNER_UPPER)], pts[list(LIP_INNER_LOWER)]
            gap = lo - up
        self._upper_lip.apply(pts, amount * CLOSE_UPPER_SHARE * gap)
        self._lower_lip.apply(pts, -amount * (1.0 - CLOSE_UPPER_SHARE) * gap)
        seam = (pts[list(LIP_INNER_UPPER[1:-1])] + pts[list(LIP_INNER_LOWER[1:-1])]) / 2  # (9, 3), one per ring column
        for rows in self._lip_ring_rows:
            pts[rows] += amount * LIP_PRESS * (seam[None] - pts[rows])


def _jaw_weights(canon: np.ndarray) -> np.ndarray:
    """(478,) share of the jaw rotation each landmark takes: 1 on the chin and lower jaw line and the
    middle of the lower lip (less towards its corners), 0 on the upper lip and above, JAW_CORNER at
    the mouth corners, a soft band beside them."""
    x, y = canon[:, 0], canon[:, 1]
    ux, uy = canon[list(LIP_INNER_UPPER), 0], canon[list(LIP_INNER_UPPER), 1]
    corner_y = float(uy[0])
    under_mouth = smoothstep((y - np.interp(x, ux, uy) + 0.03) / 0.08)
    beside_mouth = smoothstep((y - corner_y + 0.1) / 0.4)
    lateral = smoothstep((np.abs(x) - 0.3) / 0.2)
    w = (1.0 - lateral) * under_mouth + lateral * beside_mouth
    upper, lower = lip_rings()
    w[upper.ravel()] = 0.0
    w[lower] = JAW_CORNER + (1.0 - JAW_CORNER) * _lip_profile()[1:-1]
    w[list(LIP_CORNERS)] = JAW_CORNER
    return w


def _lip_profile() -> np.ndarray:
    """(11,) weight along the inner-lip columns: 0 at the corners, 1 in the middle, rising quickly."""
    return np.sqrt(np.sin(np.linspace(0.0, np.pi, len(LIP_INNER_UPPER))))


def _jaw_angle(canon: np.ndarray) -> float:
    """Hinge angle (radians) that drops the middle of the lower inner lip by JAW_GAP IOD."""
    mid = canon[LIP_INNER_LOWER[len(LIP_INNER_LOWER) // 2]] - np.array(JAW_PIVOT)
    angles = np.linspace(0.0, 1.0, 2001)
    drop = mid[1] * (np.cos(angles) - 1.0) - mid[2] * np.sin(angles)
    return float(np.interp(JAW_GAP, drop, angles))


def _mouth_bump(canon: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """(478,) Gaussian around the mouth centre (face units), 1 at the centre."""
    centre_y = float(canon[LIP_OUTER_UPPER[0], 1])
    return np.exp(-0.5 * ((canon[:, 0] / sx) ** 2 + ((canon[:, 1] - centre_y) / sy) ** 2))


def _stretch(canon: np.ndarray) -> np.ndarray:
    """(478,) sideways displacement per IOD of corner motion: x / half-width under a broad bump,
    exactly 1 at the outer corners."""
    corner = canon[LIP_OUTER_UPPER[-1]]
    bump = _mouth_bump(canon, 0.45, 0.3)
    return canon[:, 0] / corner[0] * bump / bump[LIP_OUTER_UPPER[-1]]


def _width_field(canon: np.ndarray) -> np.ndarray:
    """(478, 3) face-axis displacement (IOD) at lip_width = 1."""
    field = np.zeros_like(canon)
    field[:, 0] = LIP_WIDTH * _stretch(canon)
    return field


def _round_fields(canon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(478, 3) face-axis displacements (IOD) at lip_round = 1: corners in and lips forward, and the
    lips parted (articulate weighs both by 1 - lip_close: pressed lips are flat and do not part)."""
    lips = _mouth_bump(canon, 0.35, 0.25)
    centre_y = float(canon[LIP_OUTER_UPPER[0], 1])
    pucker, part = np.zeros_like(canon), np.zeros_like(canon)
    pucker[:, 0] = -ROUND_IN * _stretch(canon)
    pucker[:, 2] = -ROUND_FORWARD * lips
    part[:, 1] = ROUND_PART * (canon[:, 1] - centre_y) / 0.15 * lips
    return pucker, part


def _brow_fields(canon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(478, 3) face-axis displacements (IOD) at brow_raise = +1 and at brow_raise = -1."""
    brows = canon[list(BROWS), :2]
    dist = np.linalg.norm(canon[:, None, :2] - brows[None], axis=2).min(axis=1)
    near = np.exp(-0.5 * (dist / 0.2) ** 2)
    up, down = np.zeros_like(canon), np.zeros_like(canon)
    up[:, 1] = -BROW_UP * near
    down[:, 1] = BROW_DOWN * near
    down[:, 0] = -BROW_IN * np.sign(canon[:, 0]) * near
    return up, down
