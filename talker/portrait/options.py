"""What to draw: one ``PortraitOptions`` for ``talker portrait``, ``talker make --portrait-prompt`` and the API.

The task follows from the inputs: no ``init_image`` -> text to image; ``init_image`` -> restyle
(img2img, ``strength`` 0..1 = how much is redrawn); plus ``mask`` -> inpaint (white = redraw,
black = keep, pasted back unchanged); ``controlnet='canny'`` adds the init image's edges as a guide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from talker.errors import OptionError

CONTROLNETS = ("canny",)
MAX_SIDE = 2048
MAX_IMAGES = 16


@dataclass
class PortraitOptions:
    """Everything the portrait stage needs. Sizes in pixels (multiples of 8); ``None`` width/height:
    the init image's size (rounded down to a multiple of 8), else 512."""

    prompt: str | None = None
    prompt_file: Path | None = None  # a UTF-8 text file holding the prompt (instead of ``prompt``)
    negative_prompt: str = ""
    init_image: Path | None = None
    strength: float = 0.6
    mask: Path | None = None
    controlnet: str | None = None  # 'canny'
    controlnet_model: Path | None = None  # a ControlNet file or folder; None: looked up in the models folder
    controlnet_scale: float = 1.0
    canny_low: int = 100  # cv2.Canny hysteresis thresholds (0..255 gradient units)
    canny_high: int = 200
    steps: int = 25
    guidance: float = 7.5
    seed: int = 0
    width: int | None = None
    height: int | None = None
    num_images: int = 1
    sd_model: Path | None = None  # a .safetensors / .ckpt file or a diffusers folder; None: the models folder
    sd_config: Path | None = None  # a diffusers-layout config folder for a single file (default: shipped SD 1.5)
    preset: str = "auto"  # a portrait preset name or .yaml path, or 'auto'
    check_face: bool = True  # keep only pictures in which the face stage finds a face

    def validate(self) -> "PortraitOptions":
        """Normalise paths, read ``prompt_file``, check ranges and combinations (OptionError with the fix)."""
        for name in ("prompt_file", "init_image", "mask", "controlnet_model", "sd_model", "sd_config"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value).expanduser())
        if self.prompt_file is not None:
            if self.prompt:
                raise OptionError("give either --prompt or --prompt-file, not both")
            self.prompt = read_prompt_file(self.prompt_file)
            self.prompt_file = None
        if not self.prompt or not self.prompt.strip():
            raise OptionError('no prompt given: pass --prompt "portrait photo of ..." or --prompt-file FILE')
        if self.mask is not None and self.init_image is None:
            raise OptionError("--mask needs --init-image: the mask says which part of that picture to redraw")
        if self.controlnet is not None:
            if self.controlnet not in CONTROLNETS:
                raise OptionError(f"--controlnet must be one of {', '.join(CONTROLNETS)}; got {self.controlnet!r}")
            if self.init_image is None:
                raise OptionError("--controlnet canny needs --init-image: the edges are taken from that picture")
        if not 0.0 < self.strength <= 1.0:
            raise OptionError(f"--strength must be above 0 and at most 1, not {self.strength:g}")
        if not 1 <= self.steps <= 150:
            raise OptionError(f"--steps must be between 1 and 150, not {self.steps}")
        if self.init_image is not None and int(self.steps * self.strength) < 1:
            raise OptionError(f"--steps {self.steps} at --strength {self.strength:g} leaves no denoising step "
                              "(steps x strength < 1): raise --steps or --strength")
        if not 0.0 <= self.guidance <= 30.0:
            raise OptionError(f"--guidance must be between 0 and 30, not {self.guidance:g}")
        if not 0.0 <= self.controlnet_scale <= 2.0:
            raise OptionError(f"--controlnet-scale must be between 0 and 2, not {self.controlnet_scale:g}")
        if not 0 <= self.canny_low < self.canny_high <= 255:
            raise OptionError(f"canny thresholds need 0 <= low < high <= 255, not {self.canny_low}, {self.canny_high}")
        if not 1 <= self.num_images <= MAX_IMAGES:
            raise OptionError(f"--num-images must be between 1 and {MAX_IMAGES}, not {self.num_images}")
        if self.seed < 0:
            raise OptionError(f"--seed must be 0 or more, not {self.seed}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (value % 8 or not 64 <= value <= MAX_SIDE):
                raise OptionError(f"--{name} must be a multiple of 8 between 64 and {MAX_SIDE}, not {value}")
        return self

    @property
    def task(self) -> str:
        """'txt2img', 'img2img' or 'inpaint' (ControlNet is an addition to any of them)."""
        if self.mask is not None:
            return "inpaint"
        return "img2img" if self.init_image is not None else "txt2img"


def read_prompt_file(path: Path) -> str:
    """The prompt held in a UTF-8 text file (surrounding whitespace removed); OptionError when it is
    missing, unreadable, not text or empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OptionError(f"prompt file {path} does not exist; check --prompt-file") from None
    except IsADirectoryError:
        raise OptionError(f"prompt file {path} is a folder; give a text file") from None
    except UnicodeDecodeError:
        raise OptionError(f"prompt file {path} is not UTF-8 text; save it as plain UTF-8 text") from None
    except OSError as err:
        raise OptionError(f"cannot read prompt file {path}: {err.strerror}") from None
    if "\x00" in text:
        raise OptionError(f"prompt file {path} is not a text file (it holds NUL bytes); give a plain text file")
    if not text.strip():
        raise OptionError(f"prompt file {path} is empty; write the prompt in it")
    return text.strip()
