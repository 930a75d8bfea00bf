"""ComfyUI custom nodes (the V1 node API: INPUT_TYPES, RETURN_TYPES, FUNCTION, CATEGORY).

ComfyUI's types as these nodes read and write them:
    IMAGE  torch float32 (B, H, W, 3), RGB in 0..1
    AUDIO  {"waveform": torch float (B, C, N) in -1..1, "sample_rate": int Hz}
    STRING a path or text

Nodes (category "talker"):
    TalkerLoadPortrait   path -> IMAGE (1, H, W, 3), read as ``talker make`` reads --image
    TalkerMakeVideo      IMAGE + AUDIO + options -> MP4 path, its frames as IMAGE (T, H, W, 3), fps
    TalkerScore          MP4 path (+ AUDIO, IMAGE, transcript) -> report text, verdict, report plot IMAGE

Make builds the same ``MakeOptions`` as the CLI and the web page (``talker.webui.form``) and calls
``talker.pipeline.make`` (one place validates); its widgets are the page's option rows. The MP4 is written to ComfyUI's output
folder (``folder_paths.get_output_directory()``; ``./output`` outside ComfyUI) as
``<filename_prefix>_00001.mp4``, the next free number. User mistakes raise ``TalkerError`` with the
fix in its message, which ComfyUI shows on the node. Inside ComfyUI the render feeds the node's
progress bar and stops at the next frame batch when the queue is interrupted.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from talker.errors import OptionError
from talker.types import FPS

CATEGORY = "talker"


def image_to_rgb(image: torch.Tensor) -> np.ndarray:
    """A one-picture IMAGE batch (1, H, W, C) float 0..1 -> (H, W, 3) uint8 RGB.

    Raises OptionError for a batch of several pictures (pick one with ComfyUI's ImageFromBatch).
    """
    if image.ndim != 4 or image.shape[-1] < 3:
        raise OptionError(f"portrait must be an IMAGE (B, H, W, 3); got a tensor of shape {tuple(image.shape)}")
    if image.shape[0] != 1:
        raise OptionError(
            f"the portrait input holds {image.shape[0]} pictures; give one (pick it with an ImageFromBatch node)"
        )
    rgb = image[0, :, :, :3].detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return rgb.cpu().numpy()


def rgb_to_image(frames: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """uint8 RGB frames, (H, W, 3) each -> IMAGE (T, H, W, 3) float32 in 0..1."""
    return torch.from_numpy(np.stack(frames)).float().div_(255.0)


def write_audio(audio: dict, path: Path) -> Path:
    """Write the first clip of an AUDIO dict to ``path`` as 32-bit float WAV at its own rate and channels."""
    import soundfile as sf

    try:
        waveform, rate = audio["waveform"], int(audio["sample_rate"])
    except (TypeError, KeyError) as err:
        raise OptionError("audio must be an AUDIO dict with 'waveform' and 'sample_rate' (from a Load Audio node)") from err
    wave = torch.as_tensor(waveform).detach().float().cpu()
    if wave.ndim == 2:  # (C, N): tolerated, ComfyUI's own nodes always add the batch axis
        wave = wave[None]
    if wave.ndim != 3 or wave.shape[0] < 1:
        raise OptionError(f"audio waveform must be (B, C, N); got shape {tuple(wave.shape)}")
    sf.write(str(path), wave[0].T.numpy(), rate, subtype="FLOAT")
    return path


def output_root() -> Path:
    """ComfyUI's output folder, or ./output when running outside ComfyUI."""
    try:
        import folder_paths  # ComfyUI's module

        return Path(folder_paths.get_output_directory())
    except ImportError:
        return Path.cwd() / "output"


def next_output_path(filename_prefix: str, root: Path | None = None) -> Path:
    """``<root>/<prefix>_NNNNN.mp4`` with the first unused number; the prefix may name sub-folders
    (created) but must stay inside ``root``."""
    root = (root or output_root()).absolute()
    prefix = (filename_prefix or "").strip().replace("\\", "/")
    target = (root / prefix).resolve() if prefix else root
    if not prefix or prefix.endswith("/") or not target.is_relative_to(root.resolve()):
        raise OptionError(
            f"filename_prefix {filename_prefix!r} must name a file inside the output folder {root}, e.g. 'talker/clip'"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(target.name) + r"_(\d+)\.mp4$")
    used = [int(m.group(1)) for p in target.parent.iterdir() if (m := pattern.match(p.name))]
    return target.parent / f"{target.name}_{max(used, default=0) + 1:05d}.mp4"


def _comfy_progress():
    """A progress callback for ComfyUI (node progress bar, stop on interrupt); a no-op outside ComfyUI."""
    try:
        import comfy.model_management as mm
        import comfy.utils
    except ImportError:
        return None
    bar = None

    def report(p) -> None:
        nonlocal bar
        mm.throw_exception_if_processing_interrupted()
        if p.stage == "render" and p.total:
            bar = bar or comfy.utils.ProgressBar(p.total)
            bar.update_absolute(p.done, p.total)

    return report


class TalkerLoadPortrait:
    """A portrait file -> IMAGE, with the checks and EXIF rotation of ``talker make --image``."""

    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("portrait",)
    DESCRIPTION = "Read a jpg, png, webp or bmp portrait from a path."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": "", "tooltip": "path of the portrait file"})}}

    @classmethod
    def IS_CHANGED(cls, path):
        """Re-run when the file changes (size and modification time)."""
        try:
            st = os.stat(os.path.expanduser(path))
            return f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            return path

    def load(self, path: str):
        from talker.media import read_image

        return (rgb_to_image([read_image(path)]),)


class TalkerMakeVideo:
    """Portrait + speech -> a lip-synced MP4 through ``talker.pipeline.make``.

    The option widgets are the rows of ``talker.webui.form.FIELDS`` (the web page's table: the CLI's
    defaults, choices and slider ranges); ``face_index`` -1 means "the only face" (None). Besides its
    outputs it returns the MP4 as the node's preview (``ui``, as ComfyUI's own video savers do).
    """

    CATEGORY = CATEGORY
    FUNCTION = "make"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "IMAGE", "FLOAT")
    RETURN_NAMES = ("video_path", "frames", "fps")
    DESCRIPTION = "Make the portrait speak the audio; writes an MP4 (H.264 + AAC) to the output folder."

    @classmethod
    def INPUT_TYPES(cls):
        from talker.webui.form import FIELDS

        options = {row.name: _widget(row) for row in FIELDS}
        return {
            "required": {"portrait": ("IMAGE",), "audio": ("AUDIO",), **options,
                         "filename_prefix": ("STRING", {"default": "talker/clip"})},
            "optional": {"transcript": ("STRING", {"default": "", "multiline": True,
                                        "tooltip": "the words spoken, for sharper lip shapes (forced alignment)"})},
        }

    def make(self, portrait, audio, filename_prefix, transcript="", **options):
        from PIL import Image

        from talker.media import read_video_frames
        from talker.pipeline import make
        from talker.webui.form import build_options

        if options.get("face_index") == -1:
            options["face_index"] = None
        out = next_output_path(filename_prefix)
        with tempfile.TemporaryDirectory(prefix="talker-comfy-") as tmp:
            image_path = Path(tmp) / "portrait.png"
            Image.fromarray(image_to_rgb(portrait)).save(image_path)
            audio_path = write_audio(audio, Path(tmp) / "speech.wav")
            result = make(build_options(options, image_path, audio_path, transcript, out), progress=_comfy_progress())
        frames = rgb_to_image(list(read_video_frames(result.video)))
        subfolder = result.video.parent.relative_to(output_root().resolve()).as_posix()
        preview = {"filename": result.video.name, "subfolder": "" if subfolder == "." else subfolder, "type": "output"}
        return {"ui": {"images": [preview], "animated": (True,)}, "result": (str(result.video), frames, float(FPS))}


def _widget(row) -> tuple:
    """A ComfyUI widget for one ``talker.webui.form.FormField`` row, starting at its default."""
    opts = {"tooltip": f"{row.label}: {row.info}" if row.info else row.label}
    kind, default = row.kind, row.default
    if kind == "dropdown":
        return list(row.choice_values()), {"default": default, **opts}
    if kind == "checkbox":
        return "BOOLEAN", {"default": default, **opts}
    if kind == "slider":
        lo, hi, step = row.slider
        whole = isinstance(default, int) and float(step).is_integer()
        return ("INT" if whole else "FLOAT"), {"default": default, "min": lo, "max": hi, "step": step, **opts}
    if kind == "number" and row.optional:
        return "INT", {"default": -1, "min": -1, **{**opts, "tooltip": opts["tooltip"] + " (-1: none)"}}
    if kind == "number":
        return ("INT" if isinstance(default, int) else "FLOAT"), {"default": default, **opts}
    return "STRING", {"default": "" if default is None else str(default), **opts}


class TalkerScore:
    """Grade a talking video (``talker score``): writes <video>.report.json and .report.png beside it."""

    CATEGORY = CATEGORY
    FUNCTION = "score"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "STRING", "IMAGE")
    RETURN_NAMES = ("report", "verdict", "plot")
    DESCRIPTION = "Measure lip sync, blinks, jitter, identity and background; pass / warn / fail for each."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"video_path": ("STRING", {"default": "", "tooltip": "the MP4 to grade"})},
            "optional": {
                "audio": ("AUDIO", {"tooltip": "the speech it should follow (default: the video's own sound)"}),
                "portrait": ("IMAGE", {"tooltip": "the source portrait: enables identity, sharpness, background"}),
                "transcript": ("STRING", {"default": "", "multiline": True,
                               "tooltip": "the words spoken: enables the p/b/m and vowel checks"}),
            },
        }

    def score(self, video_path, audio=None, portrait=None, transcript=""):
        from talker.media import read_audio, read_image
        from talker.score import report_lines, score_and_write

        video = Path(video_path).expanduser()
        with tempfile.TemporaryDirectory(prefix="talker-comfy-") as tmp:
            speech = read_audio(write_audio(audio, Path(tmp) / "speech.wav") if audio is not None else video)
        image = image_to_rgb(portrait) if portrait is not None else None
        json_path = video.with_suffix(".report.json")
        report = score_and_write(video, speech, json_path, image=image, transcript=transcript.strip() or None)
        png_path = json_path.with_suffix(".png")
        lines = report_lines(report)
        lines.append(f"{report.verdict.upper()}: {json_path}")
        return ("\n".join(lines), report.verdict, rgb_to_image([read_image(png_path)]))


NODE_CLASS_MAPPINGS = {
    "TalkerLoadPortrait": TalkerLoadPortrait,
    "TalkerMakeVideo": TalkerMakeVideo,
    "TalkerScore": TalkerScore,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TalkerLoadPortrait": "Load Portrait (talker)",
    "TalkerMakeVideo": "Make Talking Video (talker)",
    "TalkerScore": "Score Talking Video (talker)",
}
