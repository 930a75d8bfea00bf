"""OcclusionAwareSPADEGenerator: source image + source/driving keypoints -> frame (SPEC §10.4).

The forward pass splits into a source-only part (``encode_source``: the 3-D feature volume, the
same for every frame of a clip) and a per-frame part (``decode``), so a renderer can compute the
former once. ``forward`` runs both, as SadTalker does for every batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from renderer.sadtalker.blocks import DownBlock2d, ResBlock3d, SameBlock2d, to_layout
from renderer.sadtalker.dense_motion import DenseMotionNetwork
from renderer.sadtalker.spade import SPADEDecoder

DEFAULT_DENSE_MOTION = {"block_expansion": 32, "max_features": 1024, "num_blocks": 5, "reshape_depth": 16, "compress": 4}


class OcclusionAwareSPADEGenerator(nn.Module):
    """(N, 3, S, S) source, kp_source / kp_driving (N, 15, 3) -> dict ``prediction`` (N, 3, S, S) in (0, 1),
    ``occlusion_map`` (N, 1, S/4, S/4), ``deformation`` (N, 16, S/4, S/4, 3).

    The warp runs in the volume's dtype; the 2-D layers after it in their weights' dtype, channels
    last when ``channels_last`` is set (the fast path sets both).
    """

    channels_last = False

    def __init__(self, image_channel: int = 3, feature_channel: int = 32, num_kp: int = 15, block_expansion: int = 64,
                 max_features: int = 512, num_down_blocks: int = 2, reshape_channel: int = 32, reshape_depth: int = 16,
                 num_resblocks: int = 6, estimate_occlusion_map: bool = True, dense_motion_params: dict | None = None,
                 estimate_jacobian: bool = False):
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp, feature_channel=feature_channel, estimate_occlusion_map=estimate_occlusion_map,
            estimate_jacobian=estimate_jacobian, **(dense_motion_params or DEFAULT_DENSE_MOTION))
        self.first = SameBlock2d(image_channel, block_expansion, kernel_size=3)
        self.down_blocks = nn.ModuleList()
        cin = block_expansion
        for i in range(num_down_blocks):
            cout = min(max_features, block_expansion * 2 ** (i + 1))
            self.down_blocks.append(DownBlock2d(cin, cout))
            cin = cout
        self.second = nn.Conv2d(cin, max_features, kernel_size=1)
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel))
        volume_channels = reshape_channel * reshape_depth
        self.third = SameBlock2d(volume_channels, cin, kernel_size=3, slope=0.01)
        self.fourth = nn.Conv2d(cin, cin, kernel_size=1)
        self.decoder = SPADEDecoder(ic=cin, oc=block_expansion, label_nc=cin)

    def encode_source(self, source: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, 32, 16, S/4, S/4) source feature volume (after the 3-D residual blocks)."""
        x = self.first(source)
        for block in self.down_blocks:
            x = block(x)
        x = self.second(x)
        n, _, h, w = x.shape
        return self.resblocks_3d(x.view(n, self.reshape_channel, self.reshape_depth, h, w))

    def decode(self, volume: torch.Tensor, motion: dict[str, torch.Tensor]) -> torch.Tensor:
        """Warp the volume by ``motion['deformation']``, mask by the occlusion map, decode: -> (N, 3, S, S)."""
        warped = F.grid_sample(volume, motion["deformation"].to(volume.dtype), align_corners=False)
        n, c, d, h, w = warped.shape
        x = to_layout(warped.reshape(n, c * d, h, w), self.fourth.weight.dtype, self.channels_last)
        x = self.fourth(self.third(x))
        return self.decoder(x * motion["occlusion_map"].to(x.dtype))

    def forward(self, source: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> dict[str, torch.Tensor]:
        volume = self.encode_source(source)
        motion = self.dense_motion_network(volume, kp_source, kp_driving)
        return {"prediction": self.decode(volume, motion), **motion}
