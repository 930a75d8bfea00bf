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


class HeadPose:
    """Pose operator for one face (``frame``: its similarity frame, for the pivot and the IOD)."""

    def __init__(self, frame: FaceFrame):
        self._pivot = frame.to_image(np.array([NECK_PIVOT]))[0]
        self._iod = frame.iod

    def apply(self, points: np.ndarray, yaw: float, pitch: float, roll: float, tx: float, ty: float) -> np.ndarray:
        """(N, 3) image points -> posed points. Angles in radians, tx/ty in IOD (EMBEDDED_CHANNELS)."""
        rot = head_rotation(yaw, pitch, roll)
        shift = np.array([tx, ty, 0.0]) * self._iod
        return (points - self._pivot) @ rot.T + self._pivot + shift
