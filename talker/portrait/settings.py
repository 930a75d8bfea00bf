"""The speed and memory knobs of the portrait stage, chosen by a preset (``--preset``), never by hand.

The shipped presets are ``talker/data/presets/portrait/{fast,balanced,low-vram,cpu}.yaml`` (copy one
into ``~/.config/talker/presets/portrait/`` to edit it; see talker.presets). ``--preset auto`` picks
the first of ``AUTO_ORDER`` whose ``gpu_memory_gb`` fits the free GPU memory, or ``cpu`` without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from talker.errors import OptionError

KIND = "portrait"
AUTO_ORDER = ["fast", "balanced", "low-vram", "cpu"]


@dataclass
class PortraitSettings:
    """How the diffusers pipeline runs. The defaults are diffusers' own (CPU, fp32, no knobs).

    device:            'cuda' or 'cpu'
    precision:         weights and activations: fp32, fp16 or bf16 (fp16/bf16 need CUDA)
    sdpa:              PyTorch's scaled-dot-product attention (flash / memory-efficient kernels);
                       False uses diffusers' plain attention processor
    channels_last:     UNet and VAE in channels-last memory format (faster convolutions on tensor cores)
    tf32:              allow TF32 matmuls and convolutions for what still runs in fp32
    attention_slicing: attention computed in slices (less memory, slower)
    vae_slicing:       decode a batch of images one at a time
    vae_tiling:        encode/decode in overlapping tiles (large pictures in little memory)
    offload:           'model': each model moves to the GPU only while it runs (accelerate hooks);
                       'sequential': layer by layer (least memory, slowest); 'none': all on the GPU
    compile:           torch.compile the UNet (minutes once, then faster; worth it for many images)
    cuda_graphs:       with compile: replay each UNet step as a CUDA graph (torch.compile's
                       'reduce-overhead' mode), which removes the per-kernel launch cost
    """

    device: Literal["cuda", "cpu"] = "cpu"
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    sdpa: bool = True
    channels_last: bool = False
    tf32: bool = False
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    offload: Literal["none", "model", "sequential"] = "none"
    compile: bool = False
    cuda_graphs: bool = False

    def validate(self) -> None:
        if self.device == "cpu" and self.precision != "fp32":
            raise OptionError(f"precision {self.precision} needs device cuda; use precision fp32 on the CPU")
        if self.device == "cpu" and self.offload != "none":
            raise OptionError("offload moves models to a GPU; use offload none with device cpu")
        if self.compile and self.offload == "sequential":
            raise OptionError("compile cannot be combined with sequential offload; choose one")
        if self.cuda_graphs and not (self.compile and self.device == "cuda" and self.offload == "none"):
            raise OptionError("cuda_graphs needs compile: true, device cuda and offload none")


def portrait_presets(name: str, free_gb: float | None):
    """The preset chain for ``--preset NAME`` (``auto``: picked by ``free_gb``, None without a GPU):
    the preset first, then each lower one its ``fallback`` names (tried on CUDA out-of-memory)."""
    from talker.presets import fallback_chain, pick_by_memory

    if name == "auto":
        name = pick_by_memory(KIND, AUTO_ORDER, free_gb, PortraitSettings).name
    return fallback_chain(KIND, name, PortraitSettings)


def free_gpu_gb() -> float | None:
    """Free memory of the current CUDA GPU in GiB, or None when torch sees no GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info()
    return free / 2**30
