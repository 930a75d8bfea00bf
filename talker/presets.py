"""Presets: named YAML files of speed and memory settings that users can copy and edit.

Each kind of preset belongs to one stage and has its own settings dataclass: ``make`` (the render:
size, precision, batch size, enhancer, compile) and ``portrait`` (the Stable Diffusion knobs). The
shipped presets live in ``talker/data/presets/<kind>/<name>.yaml``. A preset is named on the command
line by its name, looked for first in the user's folder (``$TALKER_PRESETS/<kind>/``, else
``~/.config/talker/presets/<kind>/``) and then among the shipped ones, or by a path to a ``.yaml`` file.

A preset file is a mapping::

    description: one line saying what it is for
    gpu_memory_gb: 6        # the GPU memory it fits, in GiB (null: runs on the CPU)
    fallback: low-vram      # the next lower preset, tried on CUDA out-of-memory (null: none)
    settings:               # the kind's settings dataclass, field by field
      precision: fp16
      ...

Settings not given keep the dataclass's defaults; unknown keys and wrong types are refused with the
file and the key named.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from talker.errors import OptionError

ENV_PRESETS = "TALKER_PRESETS"
SHIPPED = Path(__file__).parent / "data" / "presets"
_TOP_KEYS = {"description", "gpu_memory_gb", "fallback", "settings"}

T = TypeVar("T")


@dataclass(frozen=True)
class Preset(Generic[T]):
    """One loaded preset. ``gpu_memory_gb`` is None for CPU presets; ``fallback`` names the next lower one."""

    kind: str
    name: str
    path: Path
    description: str
    gpu_memory_gb: float | None
    fallback: str | None
    settings: T


def user_presets_dir() -> Path:
    """Where a user's own presets live (may not exist)."""
    if os.environ.get(ENV_PRESETS):
        return Path(os.environ[ENV_PRESETS]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "talker" / "presets"


def preset_names(kind: str) -> list[str]:
    """Names of the presets of ``kind``: the user's and the shipped ones, sorted, without duplicates."""
    names = {p.stem for folder in _folders(kind) if folder.is_dir() for p in folder.glob("*.yaml")}
    return sorted(names)


def find_preset(kind: str, name_or_path: str | Path) -> Path:
    """The YAML file for a preset name (user folder first, then shipped) or an explicit path."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise OptionError(f"preset file {path} does not exist")
        return path
    for folder in _folders(kind):
        path = folder / f"{text}.yaml"
        if path.is_file():
            return path
    known = ", ".join(preset_names(kind)) or "none"
    raise OptionError(f"unknown {kind} preset {text!r}: choose one of {known}, or give a path to a .yaml file")


def load_preset(kind: str, name_or_path: str | Path, settings_type: type[T]) -> Preset[T]:
    """Read and validate one preset; ``settings_type`` is the kind's settings dataclass.

    If the dataclass has a ``validate()`` method it is called (for ranges and combinations) and may
    raise OptionError; the message is prefixed with the file.
    """
    import yaml

    path = find_preset(kind, name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise OptionError(f"preset {path} is not valid YAML{line}: fix the file or copy a shipped one") from None
    except OSError as err:
        raise OptionError(f"cannot read preset {path}: {err.strerror}") from None
    if not isinstance(data, dict):
        raise OptionError(f"preset {path} must be a mapping with keys {', '.join(sorted(_TOP_KEYS))}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise OptionError(f"preset {path}: unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    memory = data.get("gpu_memory_gb")
    if memory is not None and (not isinstance(memory, (int, float)) or isinstance(memory, bool) or memory <= 0):
        raise OptionError(f"preset {path}: gpu_memory_gb must be a positive number of GiB or null, not {memory!r}")
    fallback = data.get("fallback")
    if fallback is not None and not isinstance(fallback, str):
        raise OptionError(f"preset {path}: fallback must be the name of another preset or null, not {fallback!r}")
    settings = _settings(path, data.get("settings") or {}, settings_type)
    return Preset(
        kind=kind, name=path.stem, path=path, description=str(data.get("description", "")),
        gpu_memory_gb=None if memory is None else float(memory), fallback=fallback, settings=settings,
    )


def fallback_chain(kind: str, name_or_path: str | Path, settings_type: type[T]) -> list[Preset[T]]:
    """The preset and, in order, each lower one its ``fallback`` names (a cycle ends the chain)."""
    chain = [load_preset(kind, name_or_path, settings_type)]
    seen = {chain[0].path.resolve()}
    while chain[-1].fallback is not None:
        nxt = load_preset(kind, chain[-1].fallback, settings_type)
        if nxt.path.resolve() in seen:
            break
        seen.add(nxt.path.resolve())
        chain.append(nxt)
    return chain


def pick_by_memory(kind: str, names: list[str], free_gb: float | None, settings_type: type[T]) -> Preset[T]:
    """For ``--preset auto``: the first of ``names`` (best first) whose ``gpu_memory_gb`` fits ``free_gb``.

    ``free_gb`` None means no GPU: the first CPU preset (``gpu_memory_gb: null``) is chosen.
    """
    presets = [load_preset(kind, n, settings_type) for n in names]
    for p in presets:
        if free_gb is None and p.gpu_memory_gb is None:
            return p
        if free_gb is not None and p.gpu_memory_gb is not None and p.gpu_memory_gb <= free_gb:
            return p
    need = "a CPU preset" if free_gb is None else f"one that fits {free_gb:.1f} GiB of free GPU memory"
    raise OptionError(f"--preset auto: none of the {kind} presets {', '.join(names)} is {need}; name a preset")


def _folders(kind: str) -> list[Path]:
    return [user_presets_dir() / kind, SHIPPED / kind]


def _settings(path: Path, values: dict, settings_type: type[T]) -> T:
    """Build the settings dataclass from a mapping, checking names and simple types."""
    if not isinstance(values, dict):
        raise OptionError(f"preset {path}: settings must be a mapping of option names to values")
    hints = typing.get_type_hints(settings_type)
    names = [f.name for f in dataclasses.fields(settings_type)]
    for key, value in values.items():
        if key not in hints:
            raise OptionError(f"preset {path}: unknown setting {key!r}; allowed: {', '.join(names)}")
        if not _fits(value, hints[key]):
            raise OptionError(f"preset {path}: setting {key!r} = {value!r} must be {_type_name(hints[key])}")
    settings = settings_type(**values)
    validate = getattr(settings, "validate", None)
    if validate is not None:
        try:
            validate()
        except OptionError as err:
            raise OptionError(f"preset {path}: {err}") from None
    return settings


def _fits(value, hint) -> bool:
    """Whether a YAML value fits a field type (bool, int, float, str, Literal, X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _type_name(hint) -> str:
    """'a bool', 'an int', 'one of 'fp16', 'bf16'', 'a number or null', ... for messages."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in args)
    return {bool: "a bool", int: "an int", float: "a number", str: "a string", type(None): "null"}.get(hint, str(hint))
