"""MappingNet: a 27-frame window of 3DMM coefficients -> head-pose bins, translation, keypoint deltas.

SPEC §10.1. One network per preprocess family: 70 input channels (exp 64, angle 3, trans 3) for
crop / extcrop / resize (``mapping_00229``), 73 (plus the 3 crop parameters) for full / extfull
(``mapping_00109``).
"""

from __future__ import annotations

import torch
from torch import nn

WINDOW = 27
"""Frames per coefficient window (semantic radius 13 on each side)."""


class MappingNet(nn.Module):
    """(N, coeff_nc, 27) -> dict yaw, pitch, roll (N, 66) bin logits, t (N, 3), exp (N, 45).

    Conv1d coeff_nc->1024 (k7), then ``layer`` blocks of LeakyReLU(0.1) -> Conv1d 1024->1024 (k3,
    dilation 3) with a centre-cropped residual (27 -> 21 -> 15 -> 9 -> 3), mean over time, linear heads.
    """

    def __init__(self, coeff_nc: int = 70, descriptor_nc: int = 1024, layer: int = 3, num_kp: int = 15, num_bins: int = 66):
        super().__init__()
        self.layer = layer
        self.first = nn.Sequential(nn.Conv1d(coeff_nc, descriptor_nc, kernel_size=7, bias=True))
        for i in range(layer):
            block = nn.Sequential(nn.LeakyReLU(0.1), nn.Conv1d(descriptor_nc, descriptor_nc, kernel_size=3, dilation=3))
            setattr(self, f"encoder{i}", block)
        self.fc_roll = nn.Linear(descriptor_nc, num_bins)
        self.fc_pitch = nn.Linear(descriptor_nc, num_bins)
        self.fc_yaw = nn.Linear(descriptor_nc, num_bins)
        self.fc_t = nn.Linear(descriptor_nc, 3)
        self.fc_exp = nn.Linear(descriptor_nc, 3 * num_kp)

    @property
    def coeff_nc(self) -> int:
        return self.first[0].in_channels

    def forward(self, window: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.first(window)
        for i in range(self.layer):
            out = getattr(self, f"encoder{i}")(out) + out[:, :, 3:-3]
        out = out.mean(dim=2)
        return {
            "yaw": self.fc_yaw(out),
            "pitch": self.fc_pitch(out),
            "roll": self.fc_roll(out),
            "t": self.fc_t(out),
            "exp": self.fc_exp(out),
        }
