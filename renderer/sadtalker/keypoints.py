"""Keypoint transformation: canonical keypoints + MappingNet outputs -> posed keypoints (SPEC §10.3).

Reproduces SadTalker's quirks: angles come from a 66-bin softmax expectation (3 degrees a bin,
offset -99) and are converted to radians with 3.14 instead of pi; only the y component of the
translation is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PI_SADTALKER = 3.14
"""SadTalker's value of pi in the degrees -> radians conversion (parity quirk)."""


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """(N, 66) bin logits -> (N,) degrees = 3 * E[bin index] - 99."""
    idx = torch.arange(logits.shape[1], device=logits.device, dtype=logits.dtype)
    return (F.softmax(logits, dim=1) * idx).sum(dim=1) * 3 - 99


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(N,) degrees each -> (N, 3, 3) rotation P(pitch) . Y(yaw) . R(roll), with pi taken as 3.14."""
    p, y, r = (a / 180 * PI_SADTALKER for a in (pitch, yaw, roll))
    one, zero = torch.ones_like(p), torch.zeros_like(p)

    def mat(rows):
        return torch.stack([torch.stack(row, dim=1) for row in rows], dim=1)

    pm = mat([[one, zero, zero], [zero, p.cos(), -p.sin()], [zero, p.sin(), p.cos()]])
    ym = mat([[y.cos(), zero, y.sin()], [zero, one, zero], [-y.sin(), zero, y.cos()]])
    rm = mat([[r.cos(), -r.sin(), zero], [r.sin(), r.cos(), zero], [zero, zero, one]])
    return pm @ ym @ rm


def bins_to_pose(motion: dict[str, torch.Tensor]) -> torch.Tensor:
    """MappingNet outputs -> (N, 3) degrees (yaw, pitch, roll) from the bin logits."""
    return torch.stack([bins_to_degrees(motion[name]) for name in ("yaw", "pitch", "roll")], dim=1)


def posed_keypoints(kp: torch.Tensor, degrees: torch.Tensor, t: torch.Tensor, exp: torch.Tensor) -> torch.Tensor:
    """Rot(degrees) . kp + (0, t_y, 0) + exp.

    kp: (N, K, 3); degrees: (N, 3) yaw, pitch, roll; t: (N, 3) (only t_y used); exp: (N, 3K).
    Returns (N, K, 3).
    """
    rot = rotation_matrix(degrees[:, 0], degrees[:, 1], degrees[:, 2])
    rotated = torch.einsum("nij,nkj->nki", rot, kp)
    t_y = t[:, 1].reshape(-1, 1)
    shift = torch.stack([torch.zeros_like(t_y), t_y, torch.zeros_like(t_y)], dim=2)
    return rotated + shift + exp.reshape(kp.shape)


def transform_keypoints(kp: torch.Tensor, motion: dict[str, torch.Tensor], *, yaw: torch.Tensor | None = None,
                        pitch: torch.Tensor | None = None, roll: torch.Tensor | None = None) -> torch.Tensor:
    """Pose canonical keypoints with MappingNet outputs: Rot . kp + (0, t_y, 0) + exp.

    kp: (N, K, 3) canonical keypoints; motion: MappingNet outputs (yaw/pitch/roll (N, 66) logits,
    t (N, 3), exp (N, 3K)); yaw/pitch/roll: optional (N,) degrees replacing the bins' angles
    (free-view overrides). Returns (N, K, 3).
    """
    degrees = torch.stack([bins_to_degrees(motion[name]) if over is None else over.to(kp.dtype)
                           for name, over in (("yaw", yaw), ("pitch", pitch), ("roll", roll))], dim=1)
    return posed_keypoints(kp, degrees, motion["t"], motion["exp"])
