"""One configuration object for a run, validated at the edge.

The CLI, the HTTP API and the web UI all build a ``MakeOptions`` and call ``validate()``; the
pipeline trusts it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from talker.errors import OptionError
from talker.types import PREPROCESS_MODES

BACKENDS = ("auto", "embedded", "sadtalker")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # auto: fp16 on CUDA, fp32 on the CPU
ENHANCERS = ("none", "gfpgan")
SEED_MAX = 2**32 - 1  # numpy's seeds are 0..2**32-1


@dataclass
class MakeOptions:
    """Everything ``talker make`` needs. Paths may be str or Path; ``validate`` normalises them."""

    # inputs
    image: Path | None = None
    audio: Path | None = None
    text: str | None = None
    # output
    out: Path | None = None
    force: bool = False
    # face
    preprocess: str = "crop"
    size: int = 256
    face_index: int | None = None
    # speech and motion
    language: str = "auto"  # 'auto' (English phones, falls back to energy) | 'en' | anything else forces energy
    blink_rate: float = 17.0  # blinks per minute
    no_blink: bool = False
    pose_style: int = 0  # 0..45
    head_motion: float = 1.0  # scales head motion; 0 = still
    still: bool = False
    expression_scale: float = 1.0
    seed: int = 0
    # backend and compute
    backend: str = "auto"
    checkpoints: Path | None = None
    device: str = "auto"
    precision: str = "auto"  # 'auto': fp16 on CUDA (the fast path), fp32 on the CPU
    batch_size: int = 8
    compile: bool | None = None  # torch.compile the networks; None: on for fp16/bf16 on CUDA
    preset: str | None = None  # a make preset (name, .yaml path or 'auto'); see talker.make_presets
    # enhancement
    enhancer: str = "none"
    enhance_strength: float = 1.0
    # the portrait stage: a talker.portrait.PortraitOptions; when set, the portrait is drawn first
    # (``image`` is its init image, optional) and saved beside the video as <out>.portrait.png
    portrait: object = None
    # extras
    extra: dict = field(default_factory=dict)

    def validate(self) -> "MakeOptions":
        """Check ranges and combinations; raise OptionError with the fix. Returns self."""
        for f in fields(self):
            if f.name in ("image", "audio", "out", "checkpoints"):
                v = getattr(self, f.name)
                if v is not None and not isinstance(v, Path):
                    setattr(self, f.name, Path(v).expanduser())
        if self.image is None and self.portrait is None:
            raise OptionError("no portrait given: pass --image PATH (jpg, png, webp or bmp), or --portrait-prompt to draw one")
        if self.portrait is not None:
            self.portrait.validate()
        if self.audio is None and not self.text:
            raise OptionError("no speech given: pass --audio PATH, or --text \"words to say\" to synthesise it")
        _choice("preprocess", self.preprocess, PREPROCESS_MODES)
        _choice("backend", self.backend, BACKENDS)
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("enhancer", self.enhancer, ENHANCERS)
        if self.size not in (256, 512):
            raise OptionError(f"--size must be 256 or 512, not {self.size}")
        if not 0 <= self.pose_style <= 45:
            raise OptionError(f"--pose-style must be between 0 and 45, not {self.pose_style}")
        _range("blink-rate", self.blink_rate, 0.0, 60.0)
        _range("head-motion", self.head_motion, 0.0, 5.0)
        _range("expression-scale", self.expression_scale, 0.0, 5.0)
        _range("enhance-strength", self.enhance_strength, 0.0, 1.0)
        if self.face_index is not None and self.face_index < 0:
            raise OptionError(f"--face-index counts from 0, got {self.face_index}")
        if not 0 <= self.seed <= SEED_MAX:
            raise OptionError(f"--seed must be between 0 and {SEED_MAX}, not {self.seed}")
        if self.batch_size < 1:
            raise OptionError(f"--batch-size must be at least 1, not {self.batch_size}")
        if self.preset and self.preset != "auto":
            from talker.make_presets import preset_chain

            preset_chain(self.preset)  # an unknown name or a bad file is an OptionError naming it
        return self

    @property
    def default_out(self) -> Path:
        """results/<image stem or 'portrait'>_<audio stem or 'text'>.mp4"""
        audio = self.audio.stem if self.audio is not None else "text"
        image = Path(self.image).stem if self.image is not None else "portrait"
        return Path("results") / f"{image}_{audio}.mp4"


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise OptionError(f"--{name} must be one of {', '.join(allowed)}; got {value!r}")


def _range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise OptionError(f"--{name} must be between {lo:g} and {hi:g}, not {value:g}")
