"""ComfyUI's IMAGE, AUDIO and VIDEO values, converted to and from talker's arrays and files.

    IMAGE  torch float32 (B, H, W, 3), RGB in 0..1
    AUDIO  {"waveform": torch float32 (B, C, N) in -1..1, "sample_rate": int Hz}
    VIDEO  a ``comfy_api`` VideoInput: ``VideoFromFile`` of an MP4 (frames are decoded only when a
           node such as core GetVideoComponents asks for them); ``get_stream_source()`` gives the
           file's path, or a BytesIO for a video made from frames (core CreateVideo)

Outside ComfyUI (no ``comfy_api`` to import) a VIDEO is a ``VideoFile``, which has the one method
of VideoInput the talker nodes use: ``get_stream_source()``.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from talker.errors import OptionError


def image_to_rgb(image: torch.Tensor, widget: str = "portrait") -> np.ndarray:
    """A one-picture IMAGE batch (1, H, W, C) float 0..1 -> (H, W, 3) uint8 RGB.

    Raises OptionError naming the ``widget`` input for a batch of several pictures (pick one with
    ComfyUI's ImageFromBatch) or a tensor that is not an IMAGE.
    """
    if image.ndim != 4 or image.shape[-1] < 3:
        raise OptionError(f"the {widget} input must be an IMAGE (B, H, W, 3); got a tensor of shape "
                          f"{tuple(image.shape)}")
    if image.shape[0] != 1:
        raise OptionError(
            f"the {widget} input holds {image.shape[0]} pictures; give one (pick it with an ImageFromBatch node)"
        )
    rgb = image[0, :, :, :3].detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return rgb.cpu().numpy()


def rgb_to_image(frames: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """uint8 RGB frames, (H, W, 3) each -> IMAGE (T, H, W, 3) float32 in 0..1."""
    return torch.from_numpy(np.stack(frames)).float().div_(255.0)


def audio_value(samples: np.ndarray, sample_rate: int) -> dict:
    """Mono samples (N,) (float in -1..1, or int16) -> AUDIO with one clip of one channel."""
    wave = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples.astype(np.float32)
    return {"waveform": torch.from_numpy(wave)[None, None], "sample_rate": int(sample_rate)}


def write_audio(audio: dict, path: Path, widget: str = "audio") -> Path:
    """Write the first clip of an AUDIO value to ``path`` as 32-bit float WAV at its own rate and
    channels. Raises OptionError naming the ``widget`` input when it is not an AUDIO."""
    import soundfile as sf

    try:
        waveform, rate = audio["waveform"], int(audio["sample_rate"])
    except (TypeError, KeyError) as err:
        raise OptionError(f"the {widget} input must be an AUDIO (from a Load Audio node)") from err
    wave = torch.as_tensor(waveform).detach().float().cpu()
    if wave.ndim == 2:  # (C, N): tolerated, ComfyUI's own nodes always add the batch axis
        wave = wave[None]
    if wave.ndim != 3 or wave.shape[0] < 1:
        raise OptionError(f"the {widget} input's waveform must be (B, C, N); got shape {tuple(wave.shape)}")
    sf.write(str(path), wave[0].T.numpy(), rate, subtype="FLOAT")
    return path


@dataclass(frozen=True)
class VideoFile:
    """A VIDEO outside ComfyUI: an MP4 on disk (``comfy_api``'s VideoFromFile stands in inside it)."""

    path: Path

    def get_stream_source(self) -> str:
        return str(self.path)


def video_value(path: Path):
    """The VIDEO of an MP4 on disk: comfy_api's ``VideoFromFile`` inside ComfyUI, else a ``VideoFile``."""
    try:
        from comfy_api.input_impl import VideoFromFile
    except ImportError:
        return VideoFile(Path(path))
    return VideoFromFile(str(path))


def video_path(video, spill: Path, widget: str = "video") -> Path:
    """The file of a VIDEO value: its own path when it is a file, else its bytes written to ``spill``
    (an .mp4 path in a temporary folder). Raises OptionError naming the ``widget`` input when the
    value is not a VIDEO."""
    source = getattr(video, "get_stream_source", None)
    if source is None:
        raise OptionError(f"the {widget} input must be a VIDEO (from Make Talking Video, Load Video or Create Video)")
    source = source()
    if isinstance(source, io.IOBase):
        with open(spill, "wb") as out:
            shutil.copyfileobj(source, out)
        return spill
    return Path(source)
