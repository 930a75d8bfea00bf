"""Synthetic SadTalker checkpoints in the official layouts, for tests (no download).

Every tensor holds ``fill_weights.fill_array`` of its key inside its network, so a loader that
reads these files must reproduce ``tests/data/sadtalker/fill_digests.json`` and the parity vectors.

* ``write_synthetic_sadtalker(dir, size=256, legacy=False)`` writes the files into ``dir``:
  ``SadTalker_V0.0.2_<size>.safetensors`` (all five prefixes, real shapes: ~725 MB) or, with
  ``legacy=True``, the four legacy ``.pth``/``.pth.tar`` files instead; plus both MappingNet files.
  ``only=`` restricts the networks written (small files for quick or refusal tests).
* ``synthetic_sadtalker_dir(cache_root, ...)`` builds that once and keeps it under ``cache_root``
  keyed by a hash of the schema, fill_weights.py and the writer's source (first build ~20 s on
  2 idle cores).
* ``sadtalker_checkpoints_256``: a session fixture with the full 256 set, cached in pytest's
  cache folder (.pytest_cache, git-ignored) across runs. Import it into a test module to use it.
* ``torch_test_device`` (device from TALKER_TEST_DEVICE, TF32 off, skip without CUDA) and the
  autouse ``one_torch_thread``: import them into a test module too.

The safetensors file is written tensor by tensor (the format is an 8-byte header length, a JSON
header, then raw little-endian data), so the 725 MB are never held in memory at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import pytest

DATA = Path(__file__).parent / "data" / "sadtalker"
sys.path.insert(0, str(DATA))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fill_weights  # noqa: E402

from talker.models.schema import SCHEMA_PATH, network_entries, schema  # noqa: E402
from talker.models.sadtalker_files import (  # noqa: E402
    MAPPING_NETWORKS,
    SAFETENSORS_NETWORKS,
    _pickle_layout,
    safetensors_name,
)

_ST_DTYPE = {"float32": "F32", "int64": "I64"}


def fill_network(name: str) -> dict[str, np.ndarray]:
    """The filled state dict of a schema network (numpy, schema order)."""
    entries = network_entries(name)
    return fill_weights.fill_state_dict({k: s for k, (s, _) in entries.items()}, {k: d for k, (_, d) in entries.items()})


def expected_digest(name: str) -> str:
    return json.loads((DATA / "fill_digests.json").read_text())[name]["sha256"]


def write_safetensors_streaming(path: Path, tensors: Iterable[tuple[str, tuple[int, ...], str]], produce) -> None:
    """Write a safetensors file; ``tensors`` lists (key, shape, dtype), ``produce(key)`` gives each array."""
    tensors = list(tensors)
    header, offset = {}, 0
    for key, shape, dtype in tensors:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        header[key] = {"dtype": _ST_DTYPE[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for key, shape, dtype in tensors:
            a = np.asarray(produce(key), dtype=np.dtype(dtype).newbyteorder("<"))
            assert a.shape == tuple(shape), (key, a.shape, shape)
            f.write(a.tobytes(order="C"))


def _write_safetensors(path: Path, networks: Iterable[str]) -> None:
    networks = list(networks)
    order = [k for k in schema()["files"]["safetensors"]["all_keys_in_order"] if k.split(".", 1)[0] in networks]
    entries = {net: network_entries(net) for net in networks}
    shapes = {net: {k: s for k, (s, _) in e.items()} for net, e in entries.items()}

    def produce(full_key: str) -> np.ndarray:
        net, key = full_key.split(".", 1)
        shape, dtype = entries[net][key]
        return fill_weights.fill_array(key, shape, dtype, sibling_shapes=shapes[net])

    specs = []
    for full_key in order:
        net, key = full_key.split(".", 1)
        shape, dtype = entries[net][key]
        specs.append((full_key, shape, dtype))
    write_safetensors_streaming(path, specs, produce)


def _torch_state(name: str) -> dict:
    import torch

    return {k: torch.from_numpy(a) for k, a in fill_network(name).items()}


def write_synthetic_sadtalker(
    dir: Path | str, size: int = 256, legacy: bool = False, only: Iterable[str] | None = None
) -> Path:
    """Write synthetic checkpoints in the official file layouts into ``dir``; returns ``dir``.

    only: the schema networks to include (default: all that the layout holds); files whose
        networks are all excluded are not written, containers keep only the included ones.
    """
    import torch

    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    mapping, legacy_layout = _pickle_layout()
    wanted = set(only) if only is not None else None

    def included(net: str) -> bool:
        return wanted is None or net in wanted

    for net in MAPPING_NETWORKS:
        if included(net):
            fname, key = mapping[net]
            torch.save({key: _torch_state(net), "epoch": int(fname.split("_")[1].split("-")[0])}, out / fname)
    if not legacy:
        nets = [n for n in SAFETENSORS_NETWORKS if included(n)]
        if nets:
            _write_safetensors(out / safetensors_name(size), nets)
        return out
    by_file: dict[str, dict] = {}
    for net, (fname, key) in legacy_layout.items():
        if included(net):
            by_file.setdefault(fname, {})[key] = _torch_state(net)
    for fname, content in by_file.items():
        torch.save({**content, "epoch": 1}, out / fname)
    return out


def _stamp() -> str:
    """Hash of what the files' content depends on: schema, filler, and the writer functions' source."""
    import inspect

    h = hashlib.sha256()
    for p in (SCHEMA_PATH, DATA / "fill_weights.py"):
        h.update(Path(p).read_bytes())
    for fn in (fill_network, write_safetensors_streaming, _write_safetensors, _torch_state, write_synthetic_sadtalker):
        h.update(inspect.getsource(fn).encode())
    return h.hexdigest()[:12]


def synthetic_sadtalker_dir(cache_root: Path | str, size: int = 256, legacy: bool = False) -> Path:
    """A complete synthetic checkpoint folder under ``cache_root``, built once (atomically) and reused."""
    cache_root = Path(cache_root)
    final = cache_root / f"sadtalker-{size}-{'legacy' if legacy else 'safetensors'}-{_stamp()}"
    if final.is_dir():
        return final
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_root))
    try:
        write_synthetic_sadtalker(tmp, size=size, legacy=legacy)
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():  # not just a concurrent build that finished first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in cache_root.glob(f"sadtalker-{size}-{'legacy' if legacy else 'safetensors'}-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


@pytest.fixture(scope="session")
def sadtalker_checkpoints_256(request, tmp_path_factory) -> Path:
    """Folder with the full synthetic 256 set (safetensors + both MappingNet files).

    Kept in pytest's cache folder across runs; in this session's temporary folder when the cache
    is disabled (``-p no:cacheprovider``).
    """
    cache = getattr(request.config, "cache", None)
    root = cache.mkdir("sadtalker-synthetic") if cache is not None else tmp_path_factory.mktemp("sadtalker-synthetic")
    return synthetic_sadtalker_dir(root, 256)


@pytest.fixture(scope="session")
def torch_test_device():
    """torch.device from TALKER_TEST_DEVICE (default cpu); TF32 off on CUDA; skips when CUDA is absent."""
    import torch

    name = os.environ.get("TALKER_TEST_DEVICE", "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            pytest.skip(f"TALKER_TEST_DEVICE={name} but CUDA is not available")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return device


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Run a module's torch work on one thread, restoring the count afterwards.

    On the shared 2-core test machine, two OpenMP threads competing with other processes made
    these small convolutions ~10x slower than one thread; results differ by <= 1.1e-6 (README).
    Autouse in every module that imports it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
