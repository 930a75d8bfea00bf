"""GFPGAN v1.3 / v1.4 generator ("v1 clean"): a U-Net encoder that predicts a StyleGAN2 latent and
spatial feature transform (SFT) conditions, and a StyleGAN2 decoder modulated by both.

Written from the public description of the architecture and the contract in
``talker/data/gfpgan_schema.json`` (parameter names and shapes match the official
``GFPGANv1.3.pth`` / ``GFPGANv1.4.pth`` state dicts exactly). Pure torch: no custom CUDA ops,
no basicsr, no torchvision. Inference only: some activations are updated in place.

Speed: a StyleGAN2 modulated convolution scales the weight per sample and input channel, then
normalises ("demodulates") it per sample and output channel. Instead of building a weight per
sample (a grouped convolution), ``ModulatedConv2d`` scales the activations, runs one ordinary
convolution with the shared weight for the whole batch and scales the result:

    conv(x, W * s * d) = d * conv(x * s, W),   d[b, o] = rsqrt(sum_{i,k} W[o, i, k]^2 s[b, i]^2 + eps)

which is the same function (exactly, up to rounding) and lets the batch and bf16 run at full
convolution speed. The per-sample-weight form is kept (``per_sample_weights=True``) as the
reference for tests and benchmarks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# The constructor values of the published v1.3 / v1.4 generator (the schema's ``config``).
V1_CONFIG = dict(
    out_size=512,
    num_style_feat=512,
    channel_multiplier=2,
    num_mlp=8,
    input_is_latent=True,
    different_w=True,
    narrow=1,
    sft_half=True,
)


def _channels(channel_multiplier: float, narrow: float) -> dict[int, int]:
    """Feature channels per resolution (4 .. 1024) of the StyleGAN2 decoder."""
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return {r: int(c * (channel_multiplier if r >= 64 else 1) * narrow) for r, c in base.items()}


def _resize2x(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear up (factor 2) or down (0.5) sampling, half-pixel centres (align_corners=False)."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 convolution modulated per sample by a style vector (no bias, no equalised lr).

    forward(x (B, Cin, H, W), style (B, num_style_feat)) -> (B, Cout, H', W'), H' = 2H when
    ``upsample`` (bilinear x2 before the convolution), else H. ``padding`` keeps the size.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool = True, upsample: bool = False, eps: float = 1e-8):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.upsample, self.eps = demodulate, upsample, eps
        self.padding = kernel_size // 2
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
            / math.sqrt(in_channels * kernel_size**2)
        )
        self.per_sample_weights = False  # True: the reference formulation (grouped conv, one weight per sample)

    def _demodulation(self, s: torch.Tensor) -> torch.Tensor:
        """(B, Cout) float32 factors rsqrt(sum_{i,k} (W s)^2 + eps), computed in float32."""
        w2 = self.weight[0].float().square().sum(dim=(2, 3))  # (Cout, Cin)
        return torch.rsqrt(s.float().square() @ w2.t() + self.eps)

    def forward(self, x: torch.Tensor, style: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """The modulated convolution times ``gain``."""
        s = self.modulation(style)  # (B, Cin)
        if self.per_sample_weights:
            return self._forward_per_sample_weights(x, s) * gain
        x = x * s[:, :, None, None].to(x.dtype)
        if self.upsample:
            x = _resize2x(x, 2.0)
        out = F.conv2d(x, self.weight[0], padding=self.padding)
        if self.demodulate:
            return out * (self._demodulation(s) * gain).to(out.dtype)[:, :, None, None]
        return out * gain if gain != 1.0 else out

    def _forward_per_sample_weights(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Reference form: weight (B, Cout, Cin, k, k) = W * s [* d], one grouped convolution."""
        b = x.shape[0]
        weight = self.weight * s[:, None, :, None, None]
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4)) + self.eps)[:, :, None, None, None]
        weight = weight.reshape(b * self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        if self.upsample:
            x = _resize2x(x, 2.0)
        out = F.conv2d(x.reshape(1, b * self.in_channels, *x.shape[2:]), weight, padding=self.padding, groups=b)
        return out.reshape(b, self.out_channels, *out.shape[2:])


class StyleConv(nn.Module):
    """Modulated 3x3 conv (x sqrt 2), plus scaled noise, plus bias, leaky ReLU 0.2.

    ``weight`` (1,) scales the noise, ``bias`` (1, Cout, 1, 1).
    """

    def __init__(self, in_channels: int, out_channels: int, num_style_feat: int, upsample: bool = False):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, out_channels, 3, num_style_feat, True, upsample)
        self.weight = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """noise: (1 or B, 1, H', W') at the output size."""
        out = self.modulated_conv(x, style, gain=math.sqrt(2.0))
        out = out + (self.weight * noise + self.bias)  # noise and bias first: one pass over the large tensor
        return F.leaky_relu(out, 0.2, inplace=True)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to 3 channels (not demodulated) plus bias, plus the upsampled previous RGB."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True):
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            out = out + (_resize2x(skip, 2.0) if self.upsample else skip)
        return out


class ConstantInput(nn.Module):
    """The learned (1, C, 4, 4) start of the decoder, repeated over the batch."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.expand(batch, -1, -1, -1)


class StyleGAN2GeneratorCSFT(nn.Module):
    """StyleGAN2 decoder whose first conv of each level (8 .. out_size) is followed by an SFT:
    ``feat * scale + shift`` on all channels, or on the second half only when ``sft_half``.

    ``noises.noise{i}``: stored (1, 1, r, r) noise maps, i = 0 .. 2*log2(out_size) - 4.
    ``style_mlp``: the mapping network (normalise + num_mlp x (Linear, leaky ReLU)); present in the
    checkpoints, used only when the input is not a latent.
    """

    def __init__(self, out_size: int, num_style_feat: int = 512, num_mlp: int = 8,
                 channel_multiplier: float = 2, narrow: float = 1, sft_half: bool = False):
        super().__init__()
        self.sft_half = sft_half
        self.log_size = int(math.log2(out_size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2
        layers: list[nn.Module] = [_NormStyle()]
        for _ in range(num_mlp):
            layers += [nn.Linear(num_style_feat, num_style_feat), nn.LeakyReLU(0.2)]
        self.style_mlp = nn.Sequential(*layers)

        ch = _channels(channel_multiplier, narrow)
        self.constant_input = ConstantInput(ch[4])
        self.style_conv1 = StyleConv(ch[4], ch[4], num_style_feat)
        self.to_rgb1 = ToRGB(ch[4], num_style_feat, upsample=False)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            r = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, r, r))
        c_in = ch[4]
        for level in range(3, self.log_size + 1):
            c_out = ch[2**level]
            self.style_convs.append(StyleConv(c_in, c_out, num_style_feat, upsample=True))
            self.style_convs.append(StyleConv(c_out, c_out, num_style_feat))
            self.to_rgbs.append(ToRGB(c_out, num_style_feat))
            c_in = c_out

    def _noise(self, i: int, like: torch.Tensor, randomize: bool, generator: torch.Generator | None) -> torch.Tensor:
        stored = getattr(self.noises, f"noise{i}")
        if not randomize:
            return stored
        b, r = like.shape[0], stored.shape[-1]
        noise = torch.randn((b, 1, r, r), generator=generator, device=stored.device, dtype=torch.float32)
        return noise.to(stored.dtype)

    def forward(self, latent: torch.Tensor, conditions: list[torch.Tensor], input_is_latent: bool = True,
                randomize_noise: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """latent (B, num_latent, F) or (B, F); conditions: [scale, shift] per level from 8 up.

        Returns the image (B, 3, out_size, out_size), about [-1, 1].
        """
        if not input_is_latent:
            latent = self.style_mlp(latent)
        if latent.ndim == 2:
            latent = latent[:, None].expand(-1, self.num_latent, -1)
        out = self.constant_input(latent.shape[0])
        out = self.style_conv1(out, latent[:, 0], self._noise(0, out, randomize_noise, generator))
        skip = self.to_rgb1(out, latent[:, 1])
        for level, to_rgb in enumerate(self.to_rgbs):
            i = 2 * level + 1
            conv1, conv2 = self.style_convs[2 * level], self.style_convs[2 * level + 1]
            out = conv1(out, latent[:, i], self._noise(i, out, randomize_noise, generator))
            if i < len(conditions):
                scale, shift = conditions[i - 1], conditions[i]
                modulated = out[:, out.shape[1] // 2:] if self.sft_half else out  # SFT on the second half only
                modulated.mul_(scale).add_(shift)  # in place: ``out`` is this level's fresh activation
            out = conv2(out, latent[:, i + 1], self._noise(i + 1, out, randomize_noise, generator))
            skip = to_rgb(out, latent[:, i + 2], skip)
        return skip


class _NormStyle(nn.Module):
    """Normalise a style code to unit mean square over its features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class ResBlock(nn.Module):
    """conv3x3 - lrelu - resample x2 or x0.5 - conv3x3 - lrelu, plus a resampled 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int, factor: float):
        super().__init__()
        self.factor = factor
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x), 0.2)
        out = F.leaky_relu(self.conv2(_resize2x(out, self.factor)), 0.2)
        return out + self.skip(_resize2x(x, self.factor))


def _sft_branch(channels: int, out_channels: int) -> nn.Sequential:
    """conv3x3 - leaky ReLU - conv3x3: one SFT condition (scale or shift) from the U-Net features."""
    return nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(channels, out_channels, 3, 1, 1))


class GFPGANv1Clean(nn.Module):
    """The GFPGAN v1.3 / v1.4 generator. Build with ``GFPGANv1Clean(**V1_CONFIG)`` for the checkpoints.

    forward(x (B, 3, S, S) RGB in [-1, 1], S = out_size) -> (image (B, 3, S, S) in about [-1, 1],
    rgbs: the U-Net's intermediate RGB images at 8, 16, .. S, or [] unless ``return_rgb``).
    Noise: the stored buffers (deterministic) unless ``randomize_noise`` (then drawn from ``generator``).
    """

    def __init__(self, out_size: int = 512, num_style_feat: int = 512, channel_multiplier: float = 1,
                 num_mlp: int = 8, input_is_latent: bool = False, different_w: bool = False,
                 narrow: float = 1, sft_half: bool = False):
        super().__init__()
        self.input_is_latent, self.different_w, self.num_style_feat = input_is_latent, different_w, num_style_feat
        self.log_size = int(math.log2(out_size))
        ch = _channels(channel_multiplier, narrow * 0.5)  # the U-Net has half the decoder's channels
        self.conv_body_first = nn.Conv2d(3, ch[out_size], 1)
        self.conv_body_down = nn.ModuleList()
        c_in = ch[out_size]
        for level in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlock(c_in, ch[2 ** (level - 1)], 0.5))
            c_in = ch[2 ** (level - 1)]
        self.final_conv = nn.Conv2d(c_in, ch[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList()
        self.toRGB = nn.ModuleList()
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        c_in = ch[4]
        for level in range(3, self.log_size + 1):
            c = ch[2**level]
            self.conv_body_up.append(ResBlock(c_in, c, 2.0))
            self.toRGB.append(nn.Conv2d(c, 3, 1))
            sft_out = c if sft_half else 2 * c
            self.condition_scale.append(_sft_branch(c, sft_out))
            self.condition_shift.append(_sft_branch(c, sft_out))
            c_in = c
        num_w = (self.log_size * 2 - 2) if different_w else 1
        self.final_linear = nn.Linear(ch[4] * 16, num_w * num_style_feat)
        self.stylegan_decoder = StyleGAN2GeneratorCSFT(out_size, num_style_feat, num_mlp, channel_multiplier,
                                                       narrow, sft_half)

    def set_per_sample_weights(self, enabled: bool) -> None:
        """Switch every modulated conv to the reference (grouped, per-sample weight) formulation."""
        for m in self.modules():
            if isinstance(m, ModulatedConv2d):
                m.per_sample_weights = enabled

    def forward(self, x: torch.Tensor, return_rgb: bool = False, randomize_noise: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feat = F.leaky_relu(self.conv_body_first(x), 0.2)
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = F.leaky_relu(self.final_conv(feat), 0.2)
        style = self.final_linear(feat.flatten(1))
        if self.different_w:
            style = style.reshape(style.shape[0], -1, self.num_style_feat)
        conditions, rgbs = [], []
        for i, up in enumerate(self.conv_body_up):
            feat = up(feat + skips[-1 - i])
            conditions += [self.condition_scale[i](feat), self.condition_shift[i](feat)]
            if return_rgb:
                rgbs.append(self.toRGB[i](feat))
        image = self.stylegan_decoder(style, conditions, self.input_is_latent, randomize_noise, generator)
        return image, rgbs
