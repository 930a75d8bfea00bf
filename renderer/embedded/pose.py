"""Head pose: a 3-D rotation of the landmarks about a pivot in the neck, then a translation.

Rotation uses the landmarks' depth (z), so a turn moves the nose more than the cheeks. The warp's
falloff rings (render.py) carry a share of the motion into the neck and hair and none to the
outer ring, so the shoulders and the background stay put.
"""

from __future__ import annotations

import numpy as np

from renderer.embedded.geometry import FaceFrame, head_rotation

NECK_PIVOT = (0.0, 2.1, 0.9)
"""Rotation centre in face units: below the chin, at the depth of the jaw joints."""
FREE_TURN_DEG, FULL_PROFILE_DEG, PROFILE_SHARE = 20.0, 50.0, 0.25
"""A face photographed turned by up to FREE_TURN_DEG takes the whole head motion; one turned further
takes less, down to PROFILE_SHARE at FULL_PROFILE_DEG and beyond. A 2-D warp can show neither the far
side of a turned face nor the background behind its nose: a near-profile face (52 degrees) folded its
far eye when turned 10-20 degrees further, and left a ghost of its nose and lips on the background
when it nodded or tilted by 3-8 degrees."""


class HeadPose:
    """Pose operator for one face (``frame``: its similarity frame, for the pivot and the IOD)."""

    def __init__(self, frame: FaceFrame):
        self._pivot = frame.to_image(np.array([NECK_PIVOT]))[0]
        self._iod = frame.iod
        self.share = motion_share(frame)
        """Share of the requested motion this face takes (1 for a face photographed nearly frontal)."""

    def apply(self, points: np.ndarray, yaw: float, pitch: float, roll: float, tx: float, ty: float) -> np.ndarray:
        """(N, 3) image points -> posed points. Angles in radians, tx/ty in IOD (EMBEDDED_CHANNELS),
        all scaled by ``share``."""
        k = self.share
        rot = head_rotation(k * yaw, k * pitch, k * roll)
        shift = np.array([tx, ty, 0.0]) * self._iod * k
        return (points - self._pivot) @ rot.T + self._pivot + shift


def motion_share(frame: FaceFrame) -> float:
    """Share of the head motion a face can take, from how far it is turned in the picture (FREE_TURN_DEG)."""
    turned = abs(float(np.degrees(np.arctan2(frame.axes[2, 0], frame.axes[0, 0]))))
    x = np.clip((turned - FREE_TURN_DEG) / (FULL_PROFILE_DEG - FREE_TURN_DEG), 0.0, 1.0)
    return float(1.0 - (1.0 - PROFILE_SHARE) * x)
