"""Audio2Exp (SPEC §7; schema network ``audio2exp``): mel window -> 64 expression coefficients.

Each frame is independent: the Wav2Lip-style audio tower turns the (1, 80, 16) mel window into a
512-vector; a linear layer maps [audio 512 | reference expression 64 | blink ratio 1] to the 64
absolute expression coefficients of the frame.
"""

from __future__ import annotations

import torch
from torch import nn

# (in, out, kernel, stride, padding, residual) of the 13 blocks of the audio tower.
_TOWER = (
    (1, 32, 3, 1, 1, False),
    (32, 32, 3, 1, 1, True),
    (32, 32, 3, 1, 1, True),
    (32, 64, 3, (3, 1), 1, False),
    (64, 64, 3, 1, 1, True),
    (64, 64, 3, 1, 1, True),
    (64, 128, 3, 3, 1, False),
    (128, 128, 3, 1, 1, True),
    (128, 128, 3, 1, 1, True),
    (128, 256, 3, (3, 2), 1, False),
    (256, 256, 3, 1, 1, True),
    (256, 512, 3, 1, 0, False),
    (512, 512, 1, 1, 0, False),
)

CHUNK = 256
"""Frames per forward pass of the audio towers (memory only: frames do not interact). Bounds the
GPU memory of the motion stage whatever the clip's length (SadTalker runs 10 at a time)."""


class ConvBlock(nn.Module):
    """Conv2d (bias) -> BatchNorm -> [+ input] -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride, padding: int, residual: bool):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_block(x)
        return torch.relu(y + x if self.residual else y)


class AudioEncoder(nn.Sequential):
    """(N, 1, 80, 16) mel windows -> (N, 512, 1, 1) audio embeddings."""

    def __init__(self):
        super().__init__(*(ConvBlock(*spec) for spec in _TOWER))


class Audio2Exp(nn.Module):
    """Keys as the checkpoint: ``audio_encoder.<i>.conv_block.<0|1>.*``, ``mapping1.*``."""

    def __init__(self):
        super().__init__()
        self.audio_encoder = AudioEncoder()
        self.mapping1 = nn.Linear(512 + 64 + 1, 64)

    def embed(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, 80, 16) -> (N, 512) audio embeddings."""
        return self.audio_encoder(windows[:, None]).flatten(1)

    def forward(self, windows: torch.Tensor, ref_exp: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """(N, 80, 16), (N, 64), (N, 1) -> (N, 64) expression coefficients."""
        return self.mapping1(torch.cat([self.embed(windows), ref_exp, ratio], dim=1))


@torch.no_grad()
def predict_expression(
    net: Audio2Exp, windows: torch.Tensor, ref_exp: torch.Tensor, ratio: torch.Tensor
) -> torch.Tensor:
    """(T, 64) expression coefficients for (T, 80, 16) windows, (T, 64) references, (T, 1) blink ratios.

    Inputs are moved to the network's device and dtype; frames are run ``CHUNK`` at a time.
    """
    p = next(net.parameters())
    out = [
        net(*(t[i : i + CHUNK].to(device=p.device, dtype=p.dtype) for t in (windows, ref_exp, ratio)))
        for i in range(0, len(windows), CHUNK)
    ]
    return torch.cat(out)
