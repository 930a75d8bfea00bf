"""Convolution blocks shared by the keypoint detector, the dense-motion network and the generator.

All blocks keep the official checkpoint's attribute names (``conv``, ``norm``, ``conv1`` ...), so a
module built from them loads the official state dicts unchanged. BatchNorm runs in inference mode
(running statistics, eps 1e-5). Tensors are NCHW (2-D) or NCDHW (3-D), float.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SameBlock2d(nn.Module):
    """Conv2d (stride 1, 'same' padding) -> BatchNorm2d -> ReLU or LeakyReLU(``slope``)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, slope: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(cout)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return F.leaky_relu(x, self.slope) if self.slope else F.relu(x)


class DownBlock2d(nn.Module):
    """Conv2d 3x3 -> BatchNorm2d -> ReLU -> AvgPool 2x2: (N, cin, H, W) -> (N, cout, H/2, W/2)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class DownBlock3d(nn.Module):
    """Conv3d 3x3x3 -> BatchNorm3d -> ReLU -> AvgPool (1, 2, 2): depth kept, H and W halved."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(F.relu(self.norm(self.conv(x))), (1, 2, 2))


class UpBlock3d(nn.Module):
    """Nearest upsample x(1, 2, 2) -> Conv3d 3x3x3 -> BatchNorm3d -> ReLU: depth kept, H and W doubled."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block: x + Conv(ReLU(BN(Conv(ReLU(BN(x)))))), 3x3x3 convs, channels kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return x + out


def coordinate_grid(depth: int, height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """(D, H, W, 3) grid of normalised coordinates (x, y, z) in [-1, 1]: x along W, y along H, z along D.

    x = 2 i / (W - 1) - 1 for column i (likewise y, z), the convention of ``grid_sample`` addresses.
    """

    def axis(n: int) -> torch.Tensor:
        return 2.0 * torch.arange(n, device=device, dtype=dtype) / (n - 1) - 1.0

    z, y, x = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def to_layout(x: torch.Tensor, dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
    """Cast to ``dtype`` and, when ``channels_last``, to the channels-last layout of its rank (4-D or 5-D)."""
    if not channels_last:
        return x.to(dtype)
    fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    return x.to(dtype=dtype, memory_format=fmt)
