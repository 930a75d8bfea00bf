"""Topology of the warp mesh: mediapipe's canonical triangles, eye and mouth fills, and falloff rings.

Vertex layout of a warp mesh (rows of a (478 + 36 * R, 2) array in crop pixels):
    0 .. 477            mediapipe face-mesh landmarks (468 mesh points + 10 iris points)
    478 + 36 * k + i    ring k (k = 0 .. R-1, inner to outer), the face-oval point FACE_OVAL[i]
                        pushed outward from the face centre

The canonical mesh file fills the eyes and the inner mouth with triangles that join the lid and lip
contours directly; those are removed and replaced by fills that can open and close (a strip between
the inner lip contours, a fan from the iris centre to the eye contour). The rings carry the warp from
the face oval down to zero: the outermost ring never moves, and nothing outside it is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np

from renderer.embedded.geometry import smoothstep

NUM_LANDMARKS = 478

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
"""The mesh's outer boundary, clockwise in the image starting at the top of the forehead."""

LIP_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIP_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIP_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIP_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
"""Lip contours from the image-left corner to the image-right corner; upper and lower share corners."""
LIP_CORNERS = (78, 62, 76, 61, 308, 292, 306, 291)
"""The points where the upper and lower lips meet, inner to outer, on each side."""


@dataclass(frozen=True)
class Eye:
    """One eye's landmark indices. ``upper``/``lower`` run corner to corner and share the corners;
    upper[i] sits above lower[i]. ``iris`` is the iris centre followed by its 4 rim points."""

    upper: tuple[int, ...]
    lower: tuple[int, ...]
    iris: tuple[int, ...]

    @property
    def contour(self) -> tuple[int, ...]:
        """The closed lid contour (16 points): upper corner to corner, then lower back."""
        return self.upper + self.lower[-2:0:-1]


EYES = (
    Eye(  # the eye on the image's left (the subject's right)
        upper=(33, 246, 161, 160, 159, 158, 157, 173, 133),
        lower=(33, 7, 163, 144, 145, 153, 154, 155, 133),
        iris=(468, 469, 470, 471, 472),
    ),
    Eye(
        upper=(362, 398, 384, 385, 386, 387, 388, 466, 263),
        lower=(362, 382, 381, 380, 374, 373, 390, 249, 263),
        iris=(473, 474, 475, 476, 477),
    ),
)


@lru_cache(maxsize=1)
def canonical() -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's canonical face model with open eyes and mouth.

    Returns (V, F): V (468, 3) float32 vertices in centimetres on image axes (x right, y down,
    z away from the camera); F (852, 3) int32 skin triangles (the file's 898 less the 46 that
    close the eyes and the mouth).
    """
    with np.load(files("talker") / "data" / "canonical_face_mesh.npz") as z:
        v, f = z["V"][:, :3].astype(np.float32), z["F"].astype(np.int32)
    v = v * np.array([1.0, -1.0, -1.0], np.float32)  # the file's y is up and z towards the camera
    openings = [set(LIP_INNER_UPPER + LIP_INNER_LOWER)] + [set(e.contour) for e in EYES]
    keep = [not any(set(t) <= hole for hole in openings) for t in f.tolist()]
    return v, f[np.array(keep)]


def canonical_face() -> np.ndarray:
    """(478, 3) the canonical face in face units: origin between the eye centres, 1 = the distance
    between the eye centres (IOD), axes x right, y down, z away. Iris rows sit at their eye's centre."""
    v, _ = canonical()
    centres = [v[list(e.contour)].mean(axis=0) for e in EYES]
    iod = float(np.linalg.norm(centres[1] - centres[0]))
    pts = np.empty((NUM_LANDMARKS, 3), np.float64)
    pts[: len(v)] = v
    for eye, c in zip(EYES, centres):
        pts[list(eye.iris)] = c
    return (pts - (centres[0] + centres[1]) / 2) / iod


@lru_cache(maxsize=1)
def lip_rings() -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower): each (4, 9) int, the landmarks of one lip in rings from the inner contour
    (row 0: LIP_INNER_* without the corners) to the outer one (row 3), each ring left to right, so
    column j sits on inner-contour column j + 1. LIP_CORNERS belong to neither lip.

    Found on the mesh (breadth-first from the inner contour, stopping at the outer one), since the
    lips curl inward and their rings cannot be told apart by height alone.
    """
    v, skin = canonical()
    neighbours: dict[int, set[int]] = {}
    for a, b, c in skin.tolist():
        for p, q in ((a, b), (b, c), (c, a)):
            neighbours.setdefault(p, set()).add(q)
            neighbours.setdefault(q, set()).add(p)
    lips = []
    for inner, outer in ((LIP_INNER_UPPER, LIP_OUTER_UPPER), (LIP_INNER_LOWER, LIP_OUTER_LOWER)):
        seen = set(LIP_CORNERS) | set(inner)
        rings = [list(inner[1:-1])]
        while not set(rings[-1]) <= set(outer):
            ring = {q for p in rings[-1] for q in neighbours[p]} - seen
            seen |= ring
            rings.append(sorted(ring, key=lambda i: v[i, 0]))
        lips.append(np.array(rings, np.int32))
    return lips[0], lips[1]


def unfold(landmarks: np.ndarray, axes: np.ndarray, facing: float = 0.5, rounds: int = 8) -> np.ndarray:
    """A copy of ``landmarks`` (478, 3) in which no skin triangle that faces the camera clearly in
    the canonical face turned by ``axes`` (the face's rotation) is folded over in the picture.

    Mediapipe sometimes folds the skin mesh where the photo's expression differs from the
    canonical face (a smiling cheek pushed past a mouth corner). Warped open, such a triangle shows
    its texture mirrored. Each folded triangle (|canonical facing| > ``facing``, the z share of its
    unit normal) is opened by moving the one vertex that needs the smallest move, off the face oval,
    half a pixel past its opposite edge; repeated for ``rounds`` rounds at most.
    """
    _, skin = canonical()
    turned = canonical_face()[:468] @ np.asarray(axes).T
    normal = np.cross(turned[skin[:, 1]] - turned[skin[:, 0]], turned[skin[:, 2]] - turned[skin[:, 0]])  # 3-D
    expected = normal[:, 2] / np.linalg.norm(normal, axis=1)  # same sign as the image area when unfolded
    check = np.flatnonzero(np.abs(expected) > facing)
    pinned = set(FACE_OVAL)
    pts = np.array(landmarks, np.float64)
    for _ in range(rounds):
        p = pts[skin[check], :2]
        area = _cross2(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        folded = check[np.sign(area) != np.sign(expected[check])]
        if len(folded) == 0:
            break
        for t in folded:
            moves = []
            for k in range(3):
                v, q0, q1 = skin[t, k], pts[skin[t, (k + 1) % 3], :2], pts[skin[t, (k + 2) % 3], :2]
                edge = q1 - q0
                length2 = float(edge @ edge)
                if v in pinned or length2 < 1e-12:
                    continue
                now = float(_cross2(edge, pts[v, :2] - q0))
                target = np.sign(expected[t]) * 0.5 * np.sqrt(length2)
                step = (target - now) / length2 * np.array([-edge[1], edge[0]])
                moves.append((float(np.linalg.norm(step)), v, step))
            if moves:
                _, v, step = min(moves, key=lambda m: m[0])
                pts[v, :2] += step
    return pts


def mouth_triangles() -> np.ndarray:
    """(18, 3) int32: a strip between the inner upper and lower lip contours (fills the open mouth)."""
    return np.array(_strip(LIP_INNER_UPPER, LIP_INNER_LOWER), np.int32)


def eye_triangles(landmarks: np.ndarray) -> np.ndarray:
    """(32, 3) int32: both eye openings filled, as fans from the iris centre to the lid contour.

    The iris centre is a vertex so the iris follows the lids; where it lies outside the visible
    opening in the source (a strong glance), that eye gets a strip between its lids instead
    (14 triangles) so no triangle folds.
    """
    tris = []
    for eye in EYES:
        loop = np.array(eye.contour)
        centre = eye.iris[0]
        poly = landmarks[loop, :2]
        edge = np.roll(poly, -1, axis=0) - poly
        to_c = landmarks[centre, :2] - poly
        cross = edge[:, 0] * to_c[:, 1] - edge[:, 1] * to_c[:, 0]
        if np.all(cross > 0) or np.all(cross < 0):
            tris += [(centre, a, b) for a, b in zip(loop, np.roll(loop, -1))]
        else:
            tris += _strip(eye.upper, eye.lower)
    return np.array(tris, np.int32)


def _cross2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z of the cross product of 2-D vectors (..., 2): twice the signed area they span."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _strip(upper: tuple[int, ...], lower: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Triangles between two contours that share their end points (upper[i] above lower[i])."""
    tris = [(upper[0], upper[1], lower[1])]
    for i in range(1, len(upper) - 2):
        tris += [(upper[i], upper[i + 1], lower[i + 1]), (upper[i], lower[i + 1], lower[i])]
    tris.append((upper[-2], upper[-1], lower[-2]))
    return tris


@dataclass(frozen=True)
class Rings:
    """Falloff rings around the face oval, fixed in the crop.

    xy: (R, 36, 2) float32 ring positions in crop pixels (ring k, oval point i), inside the crop
        by at least ``margin`` pixels.
    weight: (R,) float32 share of its face-oval point's displacement a ring point takes: smoothly
        from near 1 (first ring) to exactly 0 (outer ring).
    triangles: (72 * R, 3) int32 strips joining the oval to ring 0, ring 0 to ring 1, ...
    box: (x0, y0, x1, y1) int, the pixel box holding the outer ring (x1, y1 exclusive): the only
        pixels a warp may change.
    """

    xy: np.ndarray
    weight: np.ndarray
    triangles: np.ndarray
    box: tuple[int, int, int, int]


def build_rings(
    landmarks: np.ndarray, size: int | tuple[int, int], reach: float = 0.45, count: int = 3, margin: int = 3
) -> Rings:
    """Rings around the face oval of ``landmarks`` ((478, >=2) image pixels) in an image of ``size``:
    S (an S x S crop) or (width, height).

    Ring k sits at 1 + reach * (k+1)/count times the oval's distance from the face centre, along
    rays from the centre; where the outer ring would come closer than ``margin`` pixels to the crop
    border, that ray's rings are spread evenly between the oval and the border instead (and where
    the oval itself reaches the border they collapse onto it).
    """
    oval = landmarks[list(FACE_OVAL), :2].astype(np.float64)
    centre = oval.mean(axis=0)
    ray = oval - centre
    width, height = (size, size) if np.isscalar(size) else size
    lo, hi = float(margin), np.array([width - 1 - margin, height - 1 - margin], np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_exit = np.min(
            np.where(ray > 0, (hi - centre) / ray, np.where(ray < 0, (lo - centre) / ray, np.inf)), axis=1
        )
    steps = np.arange(1, count + 1) / count
    span = np.clip(t_exit - 1.0, 0.0, reach)
    xy = centre + (1.0 + span[None, :, None] * steps[:, None, None]) * ray[None]
    weight = (1.0 - smoothstep(steps)).astype(np.float32)

    n = len(FACE_OVAL)
    inner = np.array(FACE_OVAL)
    tris = []
    for k in range(count):
        outer = NUM_LANDMARKS + n * k + np.arange(n)
        nxt_i, nxt_o = np.roll(inner, -1), np.roll(outer, -1)
        tris.append(np.stack([inner, outer, nxt_o], 1))
        tris.append(np.stack([inner, nxt_o, nxt_i], 1))
        inner = outer
    x0, y0 = np.floor(xy[-1].min(axis=0)).astype(int)
    x1, y1 = np.ceil(xy[-1].max(axis=0)).astype(int) + 1
    box = (max(int(x0), 0), max(int(y0), 0), min(int(x1), width), min(int(y1), height))
    return Rings(xy.astype(np.float32), weight, np.concatenate(tris).astype(np.int32), box)
