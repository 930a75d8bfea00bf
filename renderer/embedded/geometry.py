"""Small geometric helpers: smoothstep, rotations, and the similarity frame of a face.

Image axes everywhere: x right, y down, z away from the camera, in crop pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    """3x^2 - 2x^3 on x clipped to [0, 1]: 0 below 0, 1 above 1, flat at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation in image axes for a head pose in radians (EMBEDDED_CHANNELS conventions).

    yaw + turns the face to the viewer's left (the nose tip, in front of the pivot, moves left),
    pitch + nods down (the nose tip moves down), roll + tilts clockwise in the image.
    """
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return r_roll @ r_pitch @ r_yaw


def axis_rotations(axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations by ``angles`` (N,) radians about the unit ``axis`` (3,) (right-hand rule)."""
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    s, c = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


@dataclass(frozen=True)
class FaceFrame:
    """Where the canonical face sits in the picture: image = origin + iod * axes @ face.

    origin: (3,) image position of the point between the eye centres (pixels).
    axes: (3, 3) rotation whose columns are the face's right, down and backward directions in
        image axes.
    iod: the inter-ocular distance (between the eye centres, in 3-D) in pixels.
    """

    origin: np.ndarray
    axes: np.ndarray
    iod: float

    def to_image(self, face_pts: np.ndarray) -> np.ndarray:
        """(N, 3) face-unit points -> image pixels."""
        return self.origin + self.iod * face_pts @ self.axes.T

    def displacement(self, face_vec: np.ndarray) -> np.ndarray:
        """(..., 3) displacements in IOD along the face axes -> image pixels."""
        return self.iod * face_vec @ self.axes.T

    @property
    def down(self) -> np.ndarray:
        """(2,) unit vector in the picture towards the bottom of the face (its down axis, projected)."""
        axis = self.axes[:2, 1]
        return axis / max(float(np.linalg.norm(axis)), 1e-9)


def fit_frame(face_pts: np.ndarray, image_pts: np.ndarray) -> FaceFrame:
    """Similarity fit (Umeyama) of face-unit points (N, 3) to the same points in image pixels (N, 3)."""
    x, y = np.asarray(face_pts, np.float64), np.asarray(image_pts, np.float64)
    mx, my = x.mean(axis=0), y.mean(axis=0)
    cov = (y - my).T @ (x - mx) / len(x)
    u, s, vt = np.linalg.svd(cov)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(s) @ d) / ((x - mx) ** 2).sum(axis=1).mean())
    return FaceFrame(origin=my - scale * rot @ mx, axes=rot, iod=scale)
