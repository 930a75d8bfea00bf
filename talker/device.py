"""Device and dtype, chosen once per run from ``--device`` and ``--precision``."""

from __future__ import annotations

from talker.errors import OptionError


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when a CUDA GPU is usable, else 'cpu'; 'cuda' without one is an OptionError."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda: no CUDA GPU is usable by this torch build; use --device cpu or auto")
    return name


def check_precision(precision: str, device: str) -> str:
    """fp16/bf16 are GPU speed-ups; on the CPU they are refused with the fix."""
    if precision != "fp32" and not device.startswith("cuda"):
        raise OptionError(f"--precision {precision} needs a CUDA GPU; use --precision fp32 on {device}")
    return precision
