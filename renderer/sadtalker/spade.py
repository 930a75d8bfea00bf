"""SPADE decoder of the generator (SPEC §10.6), with spectral-norm convolutions read from the state dict.

The official checkpoint stores PyTorch's classic spectral norm as ``weight_orig``, ``weight_u`` and
``weight_v``. In inference the weight is ``weight_orig / sigma`` with ``sigma = u . (W v)``
(``W`` = ``weight_orig`` as an (out, in * kh * kw) matrix); u and v are used as stored, there is
no power iteration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpectralNormConv2d(nn.Module):
    """Conv2d whose weight is ``weight_orig / sigma`` with the stored singular vectors (u, v).

    Keys: ``bias`` (if any), ``weight_orig`` (out, in, k, k), buffers ``weight_u`` (out,),
    ``weight_v`` (in * k * k,). 'Same' padding.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, bias: bool = True):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.weight_orig = nn.Parameter(torch.zeros(cout, cin, kernel_size, kernel_size))
        self.register_buffer("weight_u", torch.zeros(cout))
        self.register_buffer("weight_v", torch.zeros(cin * kernel_size * kernel_size))
        self.padding = kernel_size // 2

    def weight(self) -> torch.Tensor:
        """(out, in, k, k) normalised weight."""
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, w.reshape(w.shape[0], -1) @ self.weight_v)
        return w / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class SPADE(nn.Module):
    """Spatially adaptive normalisation: instance_norm(x) * (1 + gamma(seg)) + beta(seg).

    x: (N, C, H, W); seg: (N, label_nc, h, w), resized to (H, W) by nearest neighbour;
    gamma, beta = Conv3x3(ReLU(Conv3x3 label_nc -> hidden (seg))).
    """

    def __init__(self, channels: int, label_nc: int, hidden: int = 128):
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """fin -> fout residual block: two SPADE -> LeakyReLU(0.2) -> SN-conv3x3 steps, plus a shortcut.

    The shortcut is x itself when fin == fout, else SN-conv1x1 (no bias) of SPADE_s(x).
    """

    def __init__(self, fin: int, fout: int, label_nc: int):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = SpectralNormConv2d(fin, fmid, 3)
        self.conv_1 = SpectralNormConv2d(fmid, fout, 3)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, 1, bias=False)
        self.norm_0 = SPADE(fin, label_nc)
        self.norm_1 = SPADE(fmid, label_nc)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx


class SPADEDecoder(nn.Module):
    """Feature map F (N, 256, h, w) -> image (N, 3, 4h, 4w) in (0, 1).

    fc Conv3x3 256->512; 6 SPADE blocks 512->512; x2; block 512->256; x2; block 256->64;
    LeakyReLU(0.2) -> Conv3x3 64->3 -> sigmoid. Every SPADE is conditioned on F itself.
    """

    def __init__(self, ic: int = 256, oc: int = 64, label_nc: int = 256, num_middle: int = 6):
        super().__init__()
        self.num_middle = num_middle
        self.fc = nn.Conv2d(ic, 2 * ic, 3, padding=1)
        for i in range(num_middle):
            setattr(self, f"G_middle_{i}", SPADEResnetBlock(2 * ic, 2 * ic, label_nc))
        self.up_0 = SPADEResnetBlock(2 * ic, ic, label_nc)
        self.up_1 = SPADEResnetBlock(ic, oc, label_nc)
        self.conv_img = nn.Conv2d(oc, 3, 3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        seg = feature
        x = self.fc(feature)
        for i in range(self.num_middle):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)
        x = self.up_1(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))
