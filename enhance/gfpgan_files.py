"""Finding, checking and loading the published GFPGAN v1.3 / v1.4 weight files.

A file is a torch pickle holding a dict; the generator's state dict is under ``params_ema`` (else
``params``). It must match ``talker/data/gfpgan_schema.json`` exactly (285 keys, their shapes);
anything else is refused with a ``CheckpointError`` that names the file and the first offending keys.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from talker.errors import CheckpointError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "talker" / "data" / "gfpgan_schema.json"
FILE_NAMES = ("GFPGANv1.4.pth", "GFPGANv1.3.pth")
"""Accepted file names, preferred first."""
SUBFOLDERS = (".", "gfpgan", "gfpgan/weights")
"""Where under a models folder the files are looked for (SadTalker keeps them in gfpgan/weights)."""
DOWNLOAD_COMMAND = "talker models download gfpgan"
_SHOWN = 3  # offending keys named in an error message


@lru_cache(maxsize=1)
def schema() -> dict:
    """The parsed GFPGAN schema: ``entries`` (key -> shape, dtype), ``config``, ``top_level_key``."""
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


def find_gfpgan(models_dir: Path | str) -> Path | None:
    """The first existing GFPGANv1.4.pth / GFPGANv1.3.pth under ``models_dir`` (see SUBFOLDERS), or None."""
    root = Path(models_dir).expanduser()
    for name in FILE_NAMES:
        for sub in SUBFOLDERS:
            path = root / sub / name
            if path.is_file():
                return path.resolve()
    return None


def missing_gfpgan_message(models_dir: Path | str) -> str:
    """One actionable sentence for a missing GFPGAN file: what is missing, where, and how to fetch it."""
    return (f"face restoration needs {FILE_NAMES[0]} (or {FILE_NAMES[1]}) in {Path(models_dir).expanduser()} "
            f"or its gfpgan/weights folder, and it is not there: fetch it with `{DOWNLOAD_COMMAND}`, "
            f"or run without --enhancer")


def _name_keys(keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def check_state_dict(state: Mapping, file: Path | str) -> None:
    """Raise CheckpointError unless ``state`` (key -> tensor) has exactly the schema's keys and shapes."""
    entries = schema()["entries"]
    missing = [k for k in entries if k not in state]
    unexpected = [k for k in state if k not in entries]
    wrong = [f"{k} {tuple(state[k].shape)} instead of {tuple(entries[k]['shape'])}"
             for k in entries if k in state and tuple(state[k].shape) != tuple(entries[k]["shape"])]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_name_keys(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_name_keys(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} wrong shapes: {_name_keys(wrong)}")
    if problems:
        raise CheckpointError(f"{file} is not a GFPGAN v1.3/v1.4 generator ({'; '.join(problems)}); "
                              f"fetch the official file with `{DOWNLOAD_COMMAND}`")


def load_state_dict(path: Path | str) -> dict:
    """The checked generator state dict (key -> float32 CPU tensor) of a GFPGAN .pth file."""
    from talker.models.torch_files import torch_load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: fetch it with `{DOWNLOAD_COMMAND}`")
    try:
        data = torch_load(path)
    except Exception as err:  # truncated download, not a torch file, foreign pickle
        raise CheckpointError(f"{path} cannot be read as a torch checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:120] if str(err) else ''}); it is probably "
                              f"damaged or incomplete: fetch it again with `{DOWNLOAD_COMMAND}`") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a GFPGAN checkpoint dict: "
                              f"fetch the official file with `{DOWNLOAD_COMMAND}`")
    state = data.get("params_ema", data.get("params"))
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} has neither 'params_ema' nor 'params' (top-level keys: "
                              f"{_name_keys([str(k) for k in data])}): "
                              f"fetch the official file with `{DOWNLOAD_COMMAND}`")
    check_state_dict(state, path)
    return {k: v.float() for k, v in state.items()}


def build_generator():
    """An uninitialised GFPGANv1Clean with the schema's constructor values (CPU, float32)."""
    from enhance.gfpgan import GFPGANv1Clean

    return GFPGANv1Clean(**schema()["config"])


def load_generator(path: Path | str, device: str = "cpu", dtype=None):
    """The generator with the file's weights, in eval mode, on ``device`` in ``dtype`` (default float32)."""
    import torch

    model = build_generator()
    model.load_state_dict(load_state_dict(path), strict=True)
    return model.eval().requires_grad_(False).to(device=device, dtype=dtype or torch.float32)
