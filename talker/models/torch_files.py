"""Reading torch pickles (.pth, .pth.tar) safely: the one loader behind every model file talker reads.

``torch.load(weights_only=True)``: tensors, containers and plain NumPy scalars and dtypes (which
some training scripts store, e.g. an epoch number) are allowed; any other Python object is refused,
so a file cannot run code. Zip-format files are memory-mapped (nothing is read until used); the
pre-1.6 format is read whole.
"""

from __future__ import annotations

import zipfile
from pathlib import Path


def torch_load(path: Path):
    """The object stored in the torch pickle at ``path`` (tensors on the CPU).

    Raises what torch raises: pickle.UnpicklingError ("Weights only load failed ...") for a
    disallowed object, RuntimeError / EOFError and others for damaged or foreign files; callers turn
    these into CheckpointError messages that fit their files.
    """
    import numpy as np
    import torch

    allowed = [np.core.multiarray.scalar, np.dtype, *{type(np.dtype(t)) for t in ("f4", "f8", "i4", "i8", "u1", "b1")}]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
