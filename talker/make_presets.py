"""Presets for ``talker make``: named speed and memory budgets (``--preset fast`` ...), and ``auto``.

The shipped presets are ``talker/data/presets/make/{quality,balanced,fast,low-vram,cpu}.yaml``
(see ``talker.presets`` for the file format and where users put their own). Each sets the fields
of ``MakeSettings``: size, precision, batch size, enhancer, compile and device; ``gpu_memory_gb``
says the GPU memory it fits and ``fallback`` names the next lower one, tried when the GPU runs out
of memory during the render (``talker.pipeline.render_video``).

Explicit values win over the preset: ``apply_preset`` sets a field only when the options leave it
at ``MakeOptions``'s default and it is not named in ``keep`` (the CLI passes the flags given on
the command line there, so ``--preset quality --size 256`` renders at 256 px). The web UI and the
service build ``MakeOptions`` with ``preset`` set and get the same rule: any value they change
from the default wins.

``--preset auto`` picks the first of AUTO_ORDER whose ``gpu_memory_gb`` fits the free memory of the
GPU (``torch.cuda.mem_get_info``), or ``cpu`` when there is no CUDA GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Literal

from talker.errors import OptionError
from talker.options import MakeOptions
from talker.presets import Preset, fallback_chain, pick_by_memory

KIND = "make"
AUTO = "auto"
AUTO_ORDER = ("quality", "balanced", "fast", "low-vram", "cpu")
"""Best first: ``auto`` takes the first that fits the free GPU memory."""


@dataclass
class MakeSettings:
    """The settings a make preset may set; each is the ``MakeOptions`` field of the same name."""

    size: int = 256
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    batch_size: int = 8
    enhancer: Literal["none", "gfpgan"] = "none"
    compile: bool | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def validate(self) -> None:
        if self.size not in (256, 512):
            raise OptionError(f"size must be 256 or 512, not {self.size}")
        if self.batch_size < 1:
            raise OptionError(f"batch_size must be at least 1, not {self.batch_size}")


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(MakeSettings))
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(MakeOptions)}


def free_gpu_gb() -> float | None:
    """Free memory of the current CUDA GPU in GiB, or None without a usable CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info()
    return free / 2**30


def preset_chain(name: str) -> list[Preset[MakeSettings]]:
    """The preset ``name`` (a name, a .yaml path or 'auto') followed by its fallbacks, in order."""
    if name == AUTO:
        name = pick_by_memory(KIND, list(AUTO_ORDER), free_gpu_gb(), MakeSettings).name
    return fallback_chain(KIND, name, MakeSettings)


def apply_preset(options: MakeOptions, keep: Iterable[str] = ()) -> tuple[MakeOptions, list[Preset[MakeSettings]]]:
    """(options with the preset's settings filled in, the fallback chain); ([], unchanged) without a preset.

    A setting is taken from the preset only where ``options`` holds MakeOptions's default and the
    field is not in ``keep``. Returns a copy; ``options`` is not changed.
    """
    if not options.preset:
        return options, []
    chain = preset_chain(options.preset)
    return with_settings(options, chain[0].settings, keep), chain


def with_settings(options: MakeOptions, settings: MakeSettings, keep: Iterable[str] = ()) -> MakeOptions:
    """A copy of ``options`` with the fields of ``settings`` that are at their default (and not in ``keep``) replaced."""
    keep = set(keep)
    changes = {
        name: getattr(settings, name)
        for name in SETTING_NAMES
        if name not in keep and getattr(options, name) == _DEFAULTS[name]
    }
    return dataclasses.replace(options, **changes)


def fallback_options(options: MakeOptions, preset: Preset[MakeSettings]) -> MakeOptions:
    """The options to continue a render with after a CUDA out-of-memory error: ``preset``'s precision,
    batch size, compile and device. Size and enhancer stay as the render started, so the frames
    after the switch match those already encoded (same resolution, same restoration)."""
    s = preset.settings
    return dataclasses.replace(options, precision=s.precision, batch_size=s.batch_size, compile=s.compile,
                               device=s.device)
