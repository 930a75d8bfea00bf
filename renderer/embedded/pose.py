"""Head pose: a 3-D rotation of the landmarks about a pivot in the neck, then a translation.

Rotation uses the landmarks' depth (z), so a turn moves the nose more than the cheeks. The warp's
falloff rings (render.py) carry a share of the motion into the neck and hair and none to the
outer ring, so the shoulders and the background stay put.
"""

from __future__ import annotations

import numpy as np

from renderer.embedded.geometry import FaceFrame, head_rotation
from renderer.embedded.mesh import canonical_face

NECK_PIVOT = (0.0, 2.1, 0.9)
"""Rotation centre in face units of the face as if photographed level (level_axes): below the chin,
at the depth of the jaw joints."""
FREE_TURN_DEG, FULL_PROFILE_DEG, PROFILE_SHARE = 20.0, 50.0, 0.25
"""A face photographed turned by up to FREE_TURN_DEG takes the whole head motion; one turned further
takes less, down to PROFILE_SHARE at FULL_PROFILE_DEG and beyond. A 2-D warp can show neither the far
side of a turned face nor the background behind its nose: a near-profile face (52 degrees) folded its
far eye when turned 10-20 degrees further, and left a ghost of its nose and lips on the background
when it nodded or tilted by 3-8 degrees."""
MAX_DEPTH_GAIN = 1.7
"""Most that pitch is enlarged on a face photographed looking down (depth_gain)."""


class HeadPose:
    """Pose operator for one face (``frame``: its similarity frame, for the pivot and the IOD)."""

    def __init__(self, frame: FaceFrame):
        self._pivot = frame.origin + frame.iod * level_axes(frame.axes) @ np.array(NECK_PIVOT)
        self._iod = frame.iod
        self.share = motion_share(frame)
        """Share of the requested motion this face takes (1 for a face photographed nearly frontal)."""
        self.depth_gain = depth_gain(frame)
        """Scale of pitch that makes a nod move the nose across the eyes as much as on a level face."""

    def apply(self, points: np.ndarray, yaw: float, pitch: float, roll: float, tx: float, ty: float) -> np.ndarray:
        """(N, 3) image points -> posed points. Angles in radians, tx/ty in IOD (EMBEDDED_CHANNELS),
        all scaled by ``share``, pitch also by ``depth_gain``."""
        k = self.share
        rot = head_rotation(k * yaw, k * self.depth_gain * pitch, k * roll)
        shift = np.array([tx, ty, 0.0]) * self._iod * k
        return (points - self._pivot) @ rot.T + self._pivot + shift


def motion_share(frame: FaceFrame) -> float:
    """Share of the head motion a face can take, from how far it is turned in the picture (FREE_TURN_DEG)."""
    turned = abs(float(np.degrees(np.arctan2(frame.axes[2, 0], frame.axes[0, 0]))))
    x = np.clip((turned - FREE_TURN_DEG) / (FULL_PROFILE_DEG - FREE_TURN_DEG), 0.0, 1.0)
    return float(1.0 - (1.0 - PROFILE_SHARE) * x)


def depth_gain(frame: FaceFrame) -> float:
    """Scale (1 to MAX_DEPTH_GAIN) of pitch for a face photographed pitched, from its pose.

    A nod moves the nose across the eyes by the nose's depth in front of them (in the picture's
    depth axis) times the angle. A face photographed looking down by 24 degrees has its nose tip
    lowered towards the eyes' depth: it stands 0.63 of a level face's depth in front of them, so
    the same nod moved its nose 0.63 as far (drawn: 0.028 IOD per 5 degrees against 0.040-0.047 on
    level faces) and its head read as nearly still. The gain restores a level face's nod in the
    picture; a face looking up (nose further out) keeps 1. Turns are foreshortened alike, but a
    turn enlarged as much warped the cheek and hair of such a face visibly at 18 degrees (29
    enlarged), and its turns already read inside a real speaker's range.
    """
    canon = canonical_face()
    nose = canon[4] - (canon[33] + canon[263]) / 2  # face units: (0, down, towards the viewer < 0)
    sin = float(np.clip(frame.axes[2, 1], -1.0, 1.0))  # the face's down axis into the picture: looking down
    seen = nose[1] * sin + nose[2] * np.sqrt(1.0 - sin**2)
    return float(np.clip(nose[2] / min(seen, -1e-6), 1.0, MAX_DEPTH_GAIN))


def level_axes(axes: np.ndarray) -> np.ndarray:
    """(3, 3) the face axes ``axes`` (FaceFrame.axes) with the face's photographed pitch taken out
    (its turn and tilt kept): where the neck pivot sits. With the pivot in the pitched face's own
    frame, a face photographed looking down 24 degrees had its eyes 1.7 IOD in front of the pivot
    instead of 0.9, so every nod and turn swung its whole face almost twice as far across the
    picture as a level face's for the same motion of the nose against the eyes."""
    yaw = np.arctan2(-axes[2, 0], axes[2, 2])
    roll = np.arctan2(-axes[0, 1], axes[1, 1])
    return head_rotation(float(yaw), 0.0, float(roll))
