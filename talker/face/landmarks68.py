"""The 68 iBUG / 300-W landmarks, computed from mediapipe's 478-point face mesh.

Each iBUG point is one mesh vertex or the midpoint of two (``IBUG68_FROM_MESH``). Where the table
comes from: the widely used community correspondence for mediapipe -> 68 points (the list that
starts ``162, 234, 93, 58, ...``, found in many open-source projects) for the eyes, the nose base
and the lips, corrected against the geometry of mediapipe's canonical face model
(``talker/data/canonical_face_mesh.npz``, x towards the image left is negative, y up):

* jaw 0-16: the face-oval vertices from 127 (at eye height, where iBUG's jaw starts, instead of
  162 at the temple) down to the chin 152, picked to be evenly spaced along the outline in the
  frontal projection; the right half mirrors the left.
* brows 17-26: the middle line of each brow (midpoint of the upper and the lower brow contour),
  as SadTalker's own WFLW-98 -> iBUG-68 conversion does (SPEC.md §3.2).
* nose ridge 27-30: 168 (between the eyes) to 4, the canonical model's most forward vertex (the
  tip, iBUG 30), evenly spaced; nose base 31-35: alar base, nostril, subnasale 2.
* eyes 36-47: corners 33/133 and 362/263, and the lid vertices one and two thirds of the way
  along mediapipe's upper and lower lid contours (iBUG order: outer corner, two upper lid points,
  inner corner, two lower lid points, clockwise in the image).
* lips 48-67: outer corners 61/291, outer contour 39 37 0 267 269 / 405 314 17 84 181, inner
  corners 78/308, inner contour 82 13 312 / 317 14 87.

Every left/right pair of iBUG points uses mirror-image vertices of the canonical model (the
tests check this), so the 68 points are as symmetric as the mesh.
"""

from __future__ import annotations

import numpy as np

# (a, b): iBUG point = midpoint of mesh vertices a and b (a == b for a single vertex).
IBUG68_FROM_MESH: tuple[tuple[int, int], ...] = (
    # jaw 0..16 (image left to image right, through the chin 8)
    (127, 127), (234, 234), (93, 93), (132, 132), (58, 58), (136, 136), (150, 150), (176, 176),
    (152, 152),
    (400, 400), (379, 379), (365, 365), (288, 288), (361, 361), (323, 323), (454, 454), (356, 356),
    # brow 17..21 (image left, outer to inner) and 22..26 (image right, inner to outer)
    (70, 46), (63, 53), (105, 52), (66, 65), (107, 55),
    (336, 285), (296, 295), (334, 282), (293, 283), (300, 276),
    # nose ridge 27..30, nose base 31..35
    (168, 168), (197, 197), (195, 195), (4, 4),
    (75, 75), (97, 97), (2, 2), (326, 326), (305, 305),
    # eye 36..41 (image left) and 42..47 (image right)
    (33, 33), (160, 160), (158, 158), (133, 133), (153, 153), (144, 144),
    (362, 362), (385, 385), (387, 387), (263, 263), (373, 373), (380, 380),
    # outer lips 48..59
    (61, 61), (39, 39), (37, 37), (0, 0), (267, 267), (269, 269), (291, 291),
    (405, 405), (314, 314), (17, 17), (84, 84), (181, 181),
    # inner lips 60..67
    (78, 78), (82, 82), (13, 13), (312, 312), (308, 308), (317, 317), (14, 14), (87, 87),
)

_A = np.array([a for a, _ in IBUG68_FROM_MESH])
_B = np.array([b for _, b in IBUG68_FROM_MESH])


def landmarks68(lm478: np.ndarray) -> np.ndarray:
    """(68, 2) float32 iBUG landmarks (x, y) from (478, 2 or 3) mediapipe points, same pixels."""
    lm = np.asarray(lm478, dtype=np.float32)[:, :2]
    return (lm[_A] + lm[_B]) * np.float32(0.5)
