"""The SadTalker checkpoint schema (talker/data/sadtalker_checkpoint_schema.json) and checks against it.

The schema lists, for every network, each state-dict key (inside the network, without a file
prefix), its shape and dtype, and where the published files keep it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from talker.errors import CheckpointError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "data" / "sadtalker_checkpoint_schema.json"

OPTIONAL_LEAVES = ("num_batches_tracked",)
"""Keys that may be absent from a file (old BatchNorm state dicts); PyTorch tolerates them."""

_SHOWN = 5  # how many offending keys an error message names


@lru_cache(maxsize=1)
def schema() -> dict:
    """The parsed schema JSON."""
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


def network(name: str) -> dict:
    """The schema record of one network (role, config, sources, entries, ...)."""
    networks = schema()["networks"]
    if name not in networks or not networks[name].get("entries"):
        known = ", ".join(k for k, v in networks.items() if v.get("entries"))
        raise KeyError(f"no network {name!r} in the SadTalker schema (known: {known})")
    return networks[name]


@lru_cache(maxsize=None)
def _entries(name: str) -> tuple[tuple[str, tuple[int, ...], str], ...]:
    return tuple((e["key"], tuple(e["shape"]), e["dtype"]) for e in network(name)["entries"])


def network_entries(name: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, dtype) of a schema network, in state-dict order."""
    return {key: (shape, dtype) for key, shape, dtype in _entries(name)}


def _shape_of(value) -> tuple[int, ...]:
    shape = getattr(value, "shape", value)
    if callable(shape):  # safetensors slices expose get_shape()
        shape = shape()
    return tuple(int(s) for s in shape)


def check_state_dict(name: str, state: Mapping, file: Path | str) -> None:
    """Raise CheckpointError unless ``state`` has exactly the schema's keys and shapes for ``name``.

    ``state`` maps key -> tensor, array, or shape tuple. A missing ``num_batches_tracked`` is
    tolerated. The message names the file and the first few missing, unexpected or
    wrong-shaped keys.
    """
    expected = network_entries(name)
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_LEAVES)]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {list(_shape_of(v))} (expected {list(expected[k][0])})"
        for k, v in state.items()
        if k in expected and _shape_of(v) != expected[k][0]
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:_SHOWN])}{more}")
    if problems:
        raise CheckpointError(
            f"{file} does not hold the SadTalker '{name}' network as published ({'; '.join(problems)}); "
            "download the official file again"
        )
