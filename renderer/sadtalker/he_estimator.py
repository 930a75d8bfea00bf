"""HEEstimator: image -> head pose bins, translation and keypoint deltas (SPEC §10.7).

Not used by SadTalker's inference (the MappingNet predicts these from coefficients); present in the
legacy ``facevid2vid`` checkpoint, kept here so that file loads strictly and for parity. Its layout
follows the checkpoint keys: a ResNet-50-like bottleneck stack 64 -> 256 -> 512 -> 1024 -> 2048.
Quirk kept: ``yaw`` comes from the head named ``fc_roll`` and ``roll`` from ``fc_yaw``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBottleneck(nn.Module):
    """1x1 (C -> C/4) -> 3x3 (stride s) -> 1x1 (-> C), BN after each, ReLU between; residual, ReLU.

    With stride > 1 the shortcut is a strided 1x1 conv -> BN (``skip``, ``norm4``).
    """

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        mid = channels // 4
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1)
        self.conv3 = nn.Conv2d(mid, channels, 1)
        self.norm1 = nn.BatchNorm2d(mid)
        self.norm2 = nn.BatchNorm2d(mid)
        self.norm3 = nn.BatchNorm2d(channels)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(channels, channels, 1, stride=stride)
            self.norm4 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.stride != 1:
            x = self.norm4(self.skip(x))
        return F.relu(out + x)


def _stage(prefix: str, channels: int, count: int) -> nn.Sequential:
    stage = nn.Sequential()
    for i in range(count):
        stage.add_module(f"{prefix}_{i}", ResBottleneck(channels))
    return stage


class HEEstimator(nn.Module):
    """(N, 3, S, S) -> dict yaw, pitch, roll (N, 66) bin logits, t (N, 3), exp (N, 3 * num_kp).

    conv 7x7/2 -> BN -> ReLU -> max-pool 3x3/2; widening 1x1 convs (conv2..conv5, each + BN + ReLU)
    between bottleneck stages (3 x 256; 512 /2 + 3 x 512; 1024 /2 + 5 x 1024; 2048 /2 + 2 x 2048);
    global average pool; linear heads on the 2048 features.
    """

    def __init__(self, block_expansion: int = 64, feature_channel: int = 32, num_kp: int = 15, image_channel: int = 3,
                 max_features: int = 2048, num_bins: int = 66, estimate_jacobian: bool = False):
        super().__init__()
        be = block_expansion
        self.conv1 = nn.Conv2d(image_channel, be, 7, stride=2, padding=3)
        self.norm1 = nn.BatchNorm2d(be)
        self.conv2 = nn.Conv2d(be, 4 * be, 1)
        self.norm2 = nn.BatchNorm2d(4 * be)
        self.block1 = _stage("b1", 4 * be, 3)
        self.conv3 = nn.Conv2d(4 * be, 8 * be, 1)
        self.norm3 = nn.BatchNorm2d(8 * be)
        self.block2 = ResBottleneck(8 * be, stride=2)
        self.block3 = _stage("b3", 8 * be, 3)
        self.conv4 = nn.Conv2d(8 * be, 16 * be, 1)
        self.norm4 = nn.BatchNorm2d(16 * be)
        self.block4 = ResBottleneck(16 * be, stride=2)
        self.block5 = _stage("b5", 16 * be, 5)
        self.conv5 = nn.Conv2d(16 * be, max_features, 1)
        self.norm5 = nn.BatchNorm2d(max_features)
        self.block6 = ResBottleneck(max_features, stride=2)
        self.block7 = _stage("b7", max_features, 2)
        self.fc_roll = nn.Linear(max_features, num_bins)
        self.fc_pitch = nn.Linear(max_features, num_bins)
        self.fc_yaw = nn.Linear(max_features, num_bins)
        self.fc_t = nn.Linear(max_features, 3)
        self.fc_exp = nn.Linear(max_features, 3 * num_kp)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.relu(self.norm1(self.conv1(image)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        x = self.block1(F.relu(self.norm2(self.conv2(x))))
        x = self.block3(self.block2(F.relu(self.norm3(self.conv3(x)))))
        x = self.block5(self.block4(F.relu(self.norm4(self.conv4(x)))))
        x = self.block7(self.block6(F.relu(self.norm5(self.conv5(x)))))
        x = x.mean(dim=(2, 3))
        return {
            "yaw": self.fc_roll(x),
            "pitch": self.fc_pitch(x),
            "roll": self.fc_yaw(x),
            "t": self.fc_t(x),
            "exp": self.fc_exp(x),
        }
