"""Deep3DFaceRecon's coefficient regressor (SPEC §4; schema network ``face_3drecon``).

A ResNet-50 v1.5 trunk (no fc) with seven 1x1-conv heads on the pooled 2048-vector, giving 257
3DMM coefficients: id 0:80, exp 80:144, tex 144:224, angle 224:227 (radians), gamma 227:254,
trans 254:257. Parameter names follow the checkpoint (``backbone.*``, ``final_layers.*``), so the
published state dict loads strictly. Written with torch only (no torchvision).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

HEAD_SIZES = (80, 64, 80, 3, 27, 2, 1)
"""Output sizes of the seven heads: id, exp, tex, angle, gamma, (tx, ty), tz."""

EXP = slice(80, 144)
ANGLE = slice(224, 227)
TRANS = slice(254, 257)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, v1.5) -> 1x1 x4, BatchNorm after each, residual, ReLU."""

    def __init__(self, in_ch: int, width: int, stride: int, project: bool):
        super().__init__()
        out_ch = width * 4
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))
            if project
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(y + shortcut)


class ResNet50Trunk(nn.Module):
    """(N, 3, H, W) -> (N, 2048, 1, 1): stem, stages [3, 4, 6, 3], global average pool."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = 64
        for i, (blocks, width, stride) in enumerate(((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)), start=1):
            layers = [Bottleneck(in_ch, width, stride, project=True)]
            layers += [Bottleneck(width * 4, width, 1, project=False) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layers))
            in_ch = width * 4
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)


class ReconNet(nn.Module):
    """(N, 3, 224, 224) RGB in [0, 1] -> (N, 257) 3DMM coefficients."""

    def __init__(self):
        super().__init__()
        self.backbone = ResNet50Trunk()
        self.final_layers = nn.ModuleList(nn.Conv2d(2048, n, 1) for n in HEAD_SIZES)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pooled = self.backbone(image)
        return torch.cat([head(pooled) for head in self.final_layers], dim=1).flatten(1)


@torch.no_grad()
def recon_coeffs(net: ReconNet, images: np.ndarray) -> np.ndarray:
    """(N, 257) float32 coefficients of (N, 224, 224, 3) uint8 RGB aligned faces (input = RGB / 255)."""
    p = next(net.parameters())
    x = torch.as_tensor(np.array(images, dtype=np.uint8)).to(device=p.device, dtype=p.dtype)
    return net(x.permute(0, 3, 1, 2) / 255.0).float().cpu().numpy()


def coeffs73(coeffs257: np.ndarray, trans_params: np.ndarray) -> np.ndarray:
    """(73,) float32: exp (64) | angle (3) | trans (3) | crop params (s, t_x, t_y) = trans_params[2:]."""
    c = np.asarray(coeffs257, dtype=np.float32)
    return np.concatenate([c[EXP], c[ANGLE], c[TRANS], np.asarray(trans_params, dtype=np.float32)[2:]])
