"""Device and dtype, chosen once per run from ``--device`` and ``--precision``."""

from __future__ import annotations

from contextlib import contextmanager

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


class ConsumerStream:
    """A CUDA stream of its own for the work a consumer does on batches a producer thread made on
    the GPU (the pipeline's paste-back, restoration and copy to the host).

    On one shared stream, the consumer's work on batch k is queued after the batches the renderer
    queued meanwhile, and every synchronising call of the consumer (a copy to the host) waits for
    them too: the first frame waited for two more batches. On its own stream it waits for nothing
    but itself, and the GPU runs both. The producer must hand over finished batches (see
    ``SadTalkerRenderer.render``); the stream starts after the work queued on the creating
    thread's stream (the paste-back's and restorer's tensors). On the CPU (``device`` not CUDA) it
    does nothing.
    """

    def __init__(self, device: str):
        import torch

        self.stream = None
        if str(device).startswith("cuda"):
            self.stream = torch.cuda.Stream(torch.device(device))
            self.stream.wait_stream(torch.cuda.current_stream(torch.device(device)))  # tensors made before it

    @contextmanager
    def using(self, batch):
        """Within the block the current CUDA stream is this one; ``batch`` (a tensor made on another
        stream) is marked as used here, so its memory is not handed out again before this stream's
        work on it is done."""
        import torch

        if self.stream is None:
            yield
            return
        if isinstance(batch, torch.Tensor) and batch.is_cuda:
            batch.record_stream(self.stream)
        with torch.cuda.stream(self.stream):
            yield
