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


def cuda_out_of_memory_error() -> type[BaseException]:
    """``torch.cuda.OutOfMemoryError`` when torch is loaded (nothing else can raise it), else a class never raised."""
    import sys

    torch = sys.modules.get("torch")
    return torch.cuda.OutOfMemoryError if torch is not None else _NeverRaised


class _NeverRaised(Exception):
    pass


def free_gpu_memory() -> None:
    """Collect garbage and return the CUDA caching allocator's free blocks (after an out-of-memory error)."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_precision(precision: str, device: str) -> str:
    """fp16/bf16 are GPU speed-ups; on the CPU they are refused with the fix. 'auto': fp16 on CUDA, fp32 elsewhere."""
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision != "fp32" and not device.startswith("cuda"):
        raise OptionError(f"--precision {precision} needs a CUDA GPU; use --precision fp32 on {device}")
    return precision


def use_compile_cache() -> None:
    """Keep torch.compile's on-disk caches (Inductor's generated kernels, FX and AOT graphs) between
    runs in ``$XDG_CACHE_HOME/talker/torch_compile`` (``~/.cache/talker/torch_compile``), unless
    ``TORCHINDUCTOR_CACHE_DIR`` is set: torch's default is a folder under /tmp, which is emptied on
    reboot and is private to a container. A later process then loads the compiled graphs instead of
    compiling them again. Call before the first compile."""
    import os
    from pathlib import Path

    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(base) / "talker" / "torch_compile"))
