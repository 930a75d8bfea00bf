"""Dense motion network: keypoints + source feature volume -> 3-D deformation and occlusion (SPEC §10.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from renderer.sadtalker.blocks import DownBlock3d, UpBlock3d, coordinate_grid, to_layout

KP_VARIANCE = 0.01
"""Variance of the Gaussian keypoint heatmaps (normalised coordinates squared)."""

MASK_FLOOR = 0.001
"""Softmax mask entries below this are set to zero (no renormalisation)."""


class Hourglass3d(nn.Module):
    """3-D U-Net: DownBlock3d x n, then UpBlock3d x n with skip concatenation ([up, skip]), then
    Conv3d 3x3x3 -> BN -> ReLU. (N, cin, D, H, W) -> (N, out_channels, D, H, W); depth is never pooled.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 5, max_features: int = 1024):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.down_blocks = nn.ModuleList()
        widths = [in_features]
        for i in range(num_blocks):
            cout = min(max_features, block_expansion * 2 ** (i + 1))
            self.encoder.down_blocks.append(DownBlock3d(widths[-1], cout))
            widths.append(cout)
        self.decoder = nn.Module()
        self.decoder.up_blocks = nn.ModuleList()
        cin = widths[-1]
        for i in reversed(range(num_blocks)):
            cout = min(max_features, block_expansion * 2 ** i)
            self.decoder.up_blocks.append(UpBlock3d(cin, cout))
            cin = cout + widths[i]
        self.out_channels = cin
        self.decoder.conv = nn.Conv3d(cin, cin, 3, padding=1)
        self.decoder.norm = nn.BatchNorm3d(cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for block in self.encoder.down_blocks:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.decoder.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(self.decoder.norm(self.decoder.conv(out)))


def keypoint_gaussians(grid: torch.Tensor, kp: torch.Tensor) -> torch.Tensor:
    """exp(-0.5 |grid - kp|^2 / 0.01): grid (D, H, W, 3), kp (N, K, 3) -> (N, K, D, H, W)."""
    diff = grid.unsqueeze(0).unsqueeze(0) - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * (diff * diff).sum(-1) / KP_VARIANCE)


class DenseMotionNetwork(nn.Module):
    """Predicts how to warp the source feature volume to the driving pose.

    Input: feature (N, 32, D, h, w) source volume, kp_source / kp_driving (N, K, 3).
    Output dict: ``deformation`` (N, D, h, w, 3) sampling grid (x, y, z) in [-1, 1] and
    ``occlusion_map`` (N, 1, h, w) in (0, 1).

    Keypoint geometry, feature sampling, the mask softmax and the deformation are computed in the
    keypoints' dtype (float32); the hourglass, mask and occlusion convolutions in the dtype of
    their weights, in channels-last layout when ``channels_last`` is set (the fast path sets both).
    """

    channels_last = False

    def __init__(self, block_expansion: int = 32, num_blocks: int = 5, max_features: int = 1024, num_kp: int = 15,
                 feature_channel: int = 32, reshape_depth: int = 16, compress: int = 4, estimate_occlusion_map: bool = True,
                 estimate_jacobian: bool = False):
        super().__init__()
        if estimate_jacobian or not estimate_occlusion_map:
            raise ValueError("SadTalker's dense motion network has an occlusion map and no jacobians")
        self.hourglass = Hourglass3d(block_expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features)
        self.mask = nn.Conv3d(self.hourglass.out_channels, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress)
        self.occlusion = nn.Conv2d(self.hourglass.out_channels * reshape_depth, 1, kernel_size=7, padding=3)

    def compress_features(self, feature: torch.Tensor) -> torch.Tensor:
        """(N, 32, D, h, w) -> (N, 4, D, h, w): Conv3d 1x1 -> BN -> ReLU."""
        return F.relu(self.norm(self.compress(feature)))

    def forward(self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.motion(self.compress_features(feature), kp_source, kp_driving)

    def motion(self, compressed: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> dict[str, torch.Tensor]:
        """As ``forward``, from already compressed source features (N, 4, D, h, w)."""
        n, c, d, h, w = compressed.shape
        k = kp_source.shape[1]
        grid = coordinate_grid(d, h, w, device=compressed.device, dtype=kp_source.dtype)
        # sparse motions: channel 0 identity, channel j >= 1 moves driving keypoint j-1 onto the source one
        shift = (kp_source - kp_driving)[:, :, None, None, None, :]
        sparse = torch.cat([grid.expand(n, 1, d, h, w, 3), grid.unsqueeze(0).unsqueeze(0) + shift], dim=1)
        sampled = F.grid_sample(
            compressed.unsqueeze(1).expand(n, k + 1, c, d, h, w).reshape(n * (k + 1), c, d, h, w),
            sparse.reshape(n * (k + 1), d, h, w, 3).to(compressed.dtype),
            align_corners=False,
        ).view(n, k + 1, c, d, h, w)
        heat = keypoint_gaussians(grid, kp_driving) - keypoint_gaussians(grid, kp_source)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1).unsqueeze(2).to(sampled.dtype)
        x = torch.cat([heat, sampled], dim=2).view(n, (k + 1) * (c + 1), d, h, w)
        prediction = self.hourglass(to_layout(x, self.hourglass.decoder.conv.weight.dtype, self.channels_last))
        mask = F.softmax(self.mask(prediction).to(sparse.dtype), dim=1)
        mask = torch.where(mask < MASK_FLOOR, torch.zeros_like(mask), mask)
        deformation = (mask.unsqueeze(-1) * sparse).sum(dim=1)
        volume = to_layout(prediction.reshape(n, -1, h, w), prediction.dtype, self.channels_last)
        occlusion = torch.sigmoid(self.occlusion(volume).to(sparse.dtype))
        return {"deformation": deformation, "occlusion_map": occlusion}
