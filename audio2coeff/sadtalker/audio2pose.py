"""Audio2Pose (SPEC §8; schema network ``audio2pose``): the CVAE decoder that turns audio into head motion.

Frames 1..T-1 are decoded in chunks of 32: per chunk a noise vector z (64) plus the pose-style
class bias, the source pose and the 32 projected audio embeddings go through an MLP to a 32 x 6
image, which a small ResUNet refines; a per-step linear layer gives the motion (32, 6) relative
to frame 0. Poses are (yaw, pitch, roll) in radians and (tx, ty, tz).

Only the audio tower and the decoder are built; the checkpoint's CVAE encoder (``netG.encoder.*``)
and pose discriminator (``netD_motion.*``) are checked against the schema but not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import numpy as np
import torch
from torch import nn

from audio2coeff.sadtalker.audio2exp import CHUNK, AudioEncoder

SEQ_LEN = 32
LATENT = 64
NUM_CLASSES = 46
POSE_DIM = 6
SAVGOL_WINDOW = 13
SAVGOL_ORDER = 2

# checkpoint prefix -> module prefix of the parts used at inference
_KEEP = {"audio_encoder.audio_encoder.": "audio_encoder.", "netG.decoder.": "decoder."}


def _conv(cin: int, cout: int, stride=1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResConv(nn.Module):
    """BN -> ReLU -> Conv3x3 (stride) -> BN -> ReLU -> Conv3x3, plus skip Conv3x3 (stride) -> BN."""

    def __init__(self, cin: int, cout: int, stride=1):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), _conv(cin, cout, stride), nn.BatchNorm2d(cout), nn.ReLU(), _conv(cout, cout)
        )
        self.conv_skip = nn.Sequential(_conv(cin, cout, stride), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x) + self.conv_skip(x)


class Upsample(nn.Module):
    """Transposed conv doubling the time axis: kernel (2, 1), stride (2, 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(channels, channels, (2, 1), (2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x)


class ResUNet(nn.Module):
    """(N, 1, 32, 6) -> (N, 1, 32, 6) in (0, 1): a 3-level residual U-Net over (time, pose)."""

    def __init__(self):
        super().__init__()
        ch = (32, 64, 128, 256)
        down = (2, 1)
        self.input_layer = nn.Sequential(_conv(1, ch[0]), nn.BatchNorm2d(ch[0]), nn.ReLU(), _conv(ch[0], ch[0]))
        self.input_skip = nn.Sequential(_conv(1, ch[0]))
        self.residual_conv_1 = ResConv(ch[0], ch[1], down)
        self.residual_conv_2 = ResConv(ch[1], ch[2], down)
        self.bridge = ResConv(ch[2], ch[3], down)
        self.upsample_1 = Upsample(ch[3])
        self.up_residual_conv1 = ResConv(ch[3] + ch[2], ch[2])
        self.upsample_2 = Upsample(ch[2])
        self.up_residual_conv2 = ResConv(ch[2] + ch[1], ch[1])
        self.upsample_3 = Upsample(ch[1])
        self.up_residual_conv3 = ResConv(ch[1] + ch[0], ch[0])
        self.output_layer = nn.Sequential(nn.Conv2d(ch[0], 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.input_layer(x) + self.input_skip(x)
        x2 = self.residual_conv_1(x1)
        x3 = self.residual_conv_2(x2)
        x4 = self.bridge(x3)
        y = self.up_residual_conv1(torch.cat([self.upsample_1(x4), x3], dim=1))
        y = self.up_residual_conv2(torch.cat([self.upsample_2(y), x2], dim=1))
        y = self.up_residual_conv3(torch.cat([self.upsample_3(y), x1], dim=1))
        return self.output_layer(y)


class PoseDecoder(nn.Module):
    """One chunk: source pose (N, 6), noise (N, 64), style (N,) int, audio (N, 32, 512) -> motion (N, 32, 6)."""

    def __init__(self):
        super().__init__()
        self.classbias = nn.Parameter(torch.zeros(NUM_CLASSES, LATENT))
        self.resunet = ResUNet()
        self.MLP = nn.Sequential(
            OrderedDict(
                L0=nn.Linear(POSE_DIM + LATENT + SEQ_LEN * POSE_DIM, 128),
                A0=nn.ReLU(),
                L1=nn.Linear(128, SEQ_LEN * POSE_DIM),
                sigmoid=nn.Sigmoid(),
            )
        )
        self.pose_linear = nn.Linear(POSE_DIM, POSE_DIM)
        self.linear_audio = nn.Linear(512, POSE_DIM)

    def forward(self, pose0: torch.Tensor, z: torch.Tensor, style: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        n = len(pose0)
        a = self.linear_audio(audio).reshape(n, SEQ_LEN * POSE_DIM)
        h = torch.cat([pose0, z + self.classbias[style], a], dim=1)
        image = self.MLP(h).reshape(n, 1, SEQ_LEN, POSE_DIM)
        refined = self.resunet(image)  # ends in the one sigmoid (SPEC §8 step 4 and the table's "out")
        return self.pose_linear(refined.reshape(n, SEQ_LEN, POSE_DIM))


class Audio2Pose(nn.Module):
    """Audio tower (``audio_encoder``) and CVAE decoder (``decoder``) of SadTalker's PoseVAE."""

    def __init__(self):
        super().__init__()
        self.audio_encoder = AudioEncoder()
        self.decoder = PoseDecoder()

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load the inference part of a full (schema-checked) ``audio2pose`` state dict."""
        own = {}
        for key, value in state.items():
            for src, dst in _KEEP.items():
                if key.startswith(src):
                    own[dst + key[len(src) :]] = value
        missing, unexpected = self.load_state_dict(own, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise KeyError(f"audio2pose state does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")


def num_chunks(num_frames: int) -> int:
    """Noise vectors a clip of ``num_frames`` frames needs: ceil((T - 1) / 32)."""
    return -(-(num_frames - 1) // SEQ_LEN) if num_frames > 1 else 0


def draw_noise(num_frames: int, seed: int) -> torch.Tensor:
    """(num_chunks, 64) float32 standard-normal noise from a torch.Generator seeded with ``seed`` (CPU)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(num_chunks(num_frames), LATENT, generator=g)


@torch.no_grad()
def predict_motion(
    net: Audio2Pose, windows: torch.Tensor, pose0: torch.Tensor, pose_style: int, noise: torch.Tensor
) -> torch.Tensor:
    """(T, 6) motion relative to frame 0 (row 0 is zero), before smoothing.

    windows: (T, 80, 16) mel windows (window 0 is not used); pose0: (6,) source pose;
    noise: (num_chunks(T), 64), one row per chunk in decoding order (full chunks, then the tail).
    """
    p = next(net.parameters())
    windows = windows.to(device=p.device, dtype=p.dtype)
    pose0 = pose0.to(device=p.device, dtype=p.dtype).reshape(1, POSE_DIM)
    noise = noise.to(device=p.device, dtype=p.dtype).reshape(-1, LATENT)
    T = len(windows)
    n = T - 1
    if len(noise) != num_chunks(T):
        raise ValueError(f"{T} frames need {num_chunks(T)} noise rows, got {len(noise)}")
    motion = [torch.zeros(1, POSE_DIM, device=p.device, dtype=p.dtype)]
    if n == 0:
        return motion[0]
    emb = torch.cat([net.audio_encoder(windows[i: i + CHUNK, None]).flatten(1)  # (n, 512), CHUNK at a time
                     for i in range(1, T, CHUNK)])
    style = torch.tensor([pose_style], device=p.device)
    full, tail = divmod(n, SEQ_LEN)
    for c in range(full):
        chunk = emb[c * SEQ_LEN : (c + 1) * SEQ_LEN][None]
        motion.append(net.decoder(pose0, noise[c : c + 1], style, chunk)[0])
    if tail:
        last = emb[-SEQ_LEN:]
        if len(last) < SEQ_LEN:
            last = torch.cat([last[:1].expand(SEQ_LEN - len(last), -1), last])
        motion.append(net.decoder(pose0, noise[full : full + 1], style, last[None])[0, -tail:])
    return torch.cat(motion)


def savgol_window(num_frames: int) -> int:
    """13, or the largest odd number <= T for shorter clips."""
    return min(SAVGOL_WINDOW, 2 * ((num_frames - 1) // 2) + 1)


def smooth_pose(pose: np.ndarray) -> np.ndarray:
    """(T, 6) Savitzky-Golay smoothing along time (order 2, window ``savgol_window``, mode 'interp').

    Clips too short for an order-2 fit (T <= 2, where SadTalker crashes) are returned unchanged.
    """
    from scipy.signal import savgol_filter

    window = savgol_window(len(pose))
    if window <= SAVGOL_ORDER:
        return np.asarray(pose, dtype=np.float32).copy()
    return savgol_filter(pose, window, SAVGOL_ORDER, axis=0).astype(np.float32)
