"""KPDetector: source image -> 15 canonical 3-D keypoints (SPEC §10.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from renderer.sadtalker.blocks import DownBlock2d, UpBlock3d, coordinate_grid


class AntiAliasDownsample(nn.Module):
    """Blur with the checkpoint's (C, 1, k, k) kernel, then keep every ``step``-th pixel.

    The kernel (a 13x13 Gaussian, sigma 1.5, for scale 0.25) is a buffer read from the state dict;
    zero padding of k // 2 on each side, depthwise convolution, sampling from pixel 0.
    """

    def __init__(self, channels: int = 3, scale: float = 0.25):
        super().__init__()
        sigma = (1.0 / scale - 1.0) / 2.0
        size = 2 * round(sigma * 4) + 1
        self.register_buffer("weight", torch.zeros(channels, 1, size, size))
        self.step = int(round(1.0 / scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.weight.shape[-1] // 2
        x = F.conv2d(F.pad(x, (pad, pad, pad, pad)), self.weight, groups=x.shape[1])
        return x[:, :, :: self.step, :: self.step]


class KeypointHourglass(nn.Module):
    """2-D encoder -> 1x1 conv to (C * D) channels -> reshape to a (C, D, h, w) volume -> 3-D decoder.

    (N, 3, H, W) -> (N, 32, D, H, W) with H, W = the input's (5 halvings then 5 doublings).
    """

    def __init__(self, block_expansion: int = 32, in_features: int = 3, max_features: int = 1024,
                 num_blocks: int = 5, reshape_channel: int = 16384, reshape_depth: int = 16):
        super().__init__()
        self.down_blocks = nn.Sequential()
        cin = in_features
        for i in range(num_blocks):
            cout = min(max_features, block_expansion * 2 ** (i + 1))
            self.down_blocks.add_module(f"down{i}", DownBlock2d(cin, cout))
            cin = cout
        self.conv = nn.Conv2d(cin, reshape_channel, kernel_size=1)
        self.reshape_depth = reshape_depth
        self.up_blocks = nn.Sequential()
        cin = reshape_channel // reshape_depth
        for i in range(num_blocks):
            cout = min(max_features, block_expansion * 2 ** (num_blocks - i))
            cout = max(block_expansion, cout // 2)
            self.up_blocks.add_module(f"up{i}", UpBlock3d(cin, cout))
            cin = cout
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.down_blocks(x))
        n, c, h, w = x.shape
        x = x.view(n, c // self.reshape_depth, self.reshape_depth, h, w)
        return self.up_blocks(x)


class KPDetector(nn.Module):
    """(N, 3, S, S) RGB in [0, 1] -> (N, num_kp, 3) keypoints (x, y, z) in [-1, 1].

    Anti-alias downsample to S/4, hourglass to a (32, 16, S/4, S/4) volume, Conv3d 3x3x3 to one
    heatmap per keypoint, softmax over all positions of logits / temperature, expected coordinate.
    """

    def __init__(self, block_expansion: int = 32, feature_channel: int = 32, num_kp: int = 15, image_channel: int = 3,
                 max_features: int = 1024, reshape_channel: int = 16384, reshape_depth: int = 16, num_blocks: int = 5,
                 temperature: float = 0.1, scale_factor: float = 0.25, estimate_jacobian: bool = False):
        super().__init__()
        if estimate_jacobian:
            raise ValueError("SadTalker's KPDetector runs without jacobians")
        self.predictor = KeypointHourglass(block_expansion, image_channel, max_features, num_blocks,
                                           reshape_channel, reshape_depth)
        self.kp = nn.Conv3d(self.predictor.out_channels, num_kp, kernel_size=3, padding=1)
        self.temperature = temperature
        self.down = AntiAliasDownsample(image_channel, scale_factor)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.kp(self.predictor(self.down(image)))
        n, k, d, h, w = logits.shape
        prob = F.softmax(logits.reshape(n, k, -1) / self.temperature, dim=2).reshape(n, k, d, h, w, 1)
        grid = coordinate_grid(d, h, w, device=logits.device, dtype=logits.dtype)
        return (prob * grid).sum(dim=(2, 3, 4))
