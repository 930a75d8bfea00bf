"""Checks of one model file against its manifest entry: size, sha256 (where pinned), structure.

Structure means the networks the manifest names, with exactly the keys and shapes of the schemas
(talker/data/sadtalker_checkpoint_schema.json, talker/data/gfpgan_schema.json). Safetensors files
are checked from their JSON header alone (no tensor is read); torch pickles are opened with
``torch.load(weights_only=True, mmap=True)``, which maps the file instead of reading it.
Every failure is a ``CheckpointError`` that names the file, what is wrong and what to do.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

from talker.errors import CheckpointError
from talker.models.manifest import ModelFile

_HEADER_LIMIT = 100 * 2**20  # bytes; safetensors refuses larger headers too
_CHUNK = 4 * 2**20


def fetch_hint(entry: ModelFile) -> str:
    return f"fetch it again with `talker models download {entry.id}`"


def check_size(entry: ModelFile, path: Path) -> None:
    """The file has exactly the manifest's size."""
    size = path.stat().st_size
    if size != entry.size:
        raise CheckpointError(
            f"{path} is {size:,} bytes, but {entry.file} is {entry.size:,} bytes: it is incomplete or "
            f"not the published file; {fetch_hint(entry)}"
        )


def sha256_of(path: Path, progress: bool = False) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks (a tqdm bar on a terminal when ``progress``)."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, leave=False,
                                     desc=f"sha256 {path.name}", disable=None if progress else True) as bar:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def check_sha256(entry: ModelFile, path: Path, progress: bool = False) -> str | None:
    """Compare with the pinned digest (nothing to do when none is pinned); returns the digest computed."""
    if entry.sha256 is None:
        return None
    actual = sha256_of(path, progress)
    if actual != entry.sha256:
        raise CheckpointError(
            f"{path} has sha256 {actual[:16]}..., the published {entry.file} has {entry.sha256[:16]}...: "
            f"it is damaged or a different file; {fetch_hint(entry)}"
        )
    return actual


def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """key -> (dtype, shape) from a safetensors header; checks the header covers the whole file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= min(size - 8, _HEADER_LIMIT):
            raise CheckpointError(f"{path} is not a safetensors file (no valid header): it is damaged or cut short")
        try:
            header = json.loads(f.read(length))
            tensors, end = {}, 0
            for key, info in header.items():
                if key == "__metadata__":
                    continue
                tensors[key] = (str(info["dtype"]), tuple(int(s) for s in info["shape"]))
                end = max(end, int(info["data_offsets"][1]))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
            raise CheckpointError(f"{path} has an unreadable safetensors header ({err}): it is damaged") from None
    data = size - 8 - length
    if end != data:
        raise CheckpointError(
            f"{path}: its header describes {end:,} bytes of tensors but the file holds {data:,}: "
            "it is cut short or damaged"
        )
    return tensors


def load_torch_file(path: Path):
    """The object in a torch pickle (talker.models.torch_files.torch_load), or a CheckpointError
    saying the file is damaged or holds Python objects talker does not load."""
    from talker.models.torch_files import torch_load

    try:
        return torch_load(path)
    except Exception as err:  # UnpicklingError, RuntimeError (truncated zip), EOFError, ...
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path} cannot be read as a plain torch weight file ({first}): it is damaged, incomplete, "
            "or holds Python objects talker does not load"
        ) from None


def check_network(name: str, state: Mapping, path: Path) -> None:
    """One network's state (key -> tensor or shape) against its schema; 'gfpgan' is the GFPGAN schema."""
    if name == "gfpgan":
        from enhance.gfpgan_files import check_state_dict
        check_state_dict(state, path)
    else:
        from talker.models.schema import check_state_dict
        check_state_dict(name, state, path)


def check_structure(entry: ModelFile, path: Path) -> None:
    """The networks the manifest names are in the file with exactly the schema's keys and shapes."""
    if entry.format == "safetensors":
        shapes = {key: shape for key, (_, shape) in read_safetensors_header(path).items()}
        _check_prefixed(entry, shapes, path)
    else:
        _check_containers(entry, load_torch_file(path), path)


def _check_prefixed(entry: ModelFile, shapes: dict, path: Path) -> None:
    if not shapes:
        raise CheckpointError(f"{path} holds no tensors; {fetch_hint(entry)}")
    claimed: set[str] = set()
    for network, prefix in entry.networks.items():
        part = {k[len(prefix):]: s for k, s in shapes.items() if k.startswith(prefix)}
        claimed.update(prefix + k for k in part)
        check_network(network, part, path)
    stray = [k for k in shapes if k not in claimed]
    if entry.networks and stray:
        raise CheckpointError(
            f"{path} holds {len(stray)} tensors outside the networks of {entry.file} "
            f"({', '.join(stray[:3])}{' ...' if len(stray) > 3 else ''}); {fetch_hint(entry)}"
        )


def _check_containers(entry: ModelFile, data, path: Path) -> None:
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a dict of weights; {fetch_hint(entry)}")
    for network, where in entry.networks.items():
        key = next((k for k in where.split("|") if k in data), None)
        if key is None:
            top = ", ".join(map(str, list(data)[:5]))
            raise CheckpointError(f"{path} has no '{where}' entry (it has: {top}); {fetch_hint(entry)}")
        if not isinstance(data[key], Mapping):
            raise CheckpointError(f"{path}: '{key}' is a {type(data[key]).__name__}, not a state dict; {fetch_hint(entry)}")
        check_network(network, data[key], path)
    if not entry.networks and not _holds_tensors(data):
        raise CheckpointError(f"{path} holds no tensors; {fetch_hint(entry)}")


def _holds_tensors(data: Mapping) -> bool:
    """True when the dict, or a dict inside it, has tensor values."""
    import torch

    return any(isinstance(v, torch.Tensor) or (isinstance(v, Mapping) and _holds_tensors(v)) for v in data.values())


def verify_file(entry: ModelFile, path: Path, *, sha256: bool = True, progress: bool = False) -> str | None:
    """Size, then sha256 (where pinned and ``sha256``), then structure; returns the digest if computed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; fetch it with `talker models download {entry.id}`")
    check_size(entry, path)
    digest = check_sha256(entry, path, progress) if sha256 else None
    check_structure(entry, path)
    return digest
