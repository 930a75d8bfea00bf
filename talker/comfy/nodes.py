"""ComfyUI custom nodes (the V1 node API: INPUT_TYPES, RETURN_TYPES, FUNCTION, CATEGORY).

Nodes (category "talker"), in ComfyUI's types (see ``talker.comfy.values``):
    TalkerLoadPortrait   a file of ComfyUI's input folder (listed, with an upload button) -> IMAGE
    TalkerTextToSpeech   text, espeak-ng language, variant and speed -> AUDIO, the text (STRING)
    TalkerMakeVideo      IMAGE + AUDIO + options -> VIDEO (the MP4, H.264 + 48 kHz AAC), the AUDIO it spoke
    TalkerScore          VIDEO (+ AUDIO, IMAGE, transcript) -> report text, verdict, report plot IMAGE;
                         the report files go to ComfyUI's output folder, the verdict and table to the node

Make renders into ComfyUI's temp folder and shows the clip on the node; core SaveVideo saves it,
core GetVideoComponents gives its frames. Frames are never decoded unless a node asks for them.

Make builds the same ``MakeOptions`` as the CLI and the web page (``talker.webui.form``) and calls
``talker.pipeline.make`` (one place validates); its widgets are the page's option rows, with their
ranges, and every default is one of the widget's values. User mistakes raise ``TalkerError`` with the
fix, in the node's terms (its inputs and widgets, the user's file names), which ComfyUI shows in its
error dialog. Inside ComfyUI the render feeds the node's progress bar and stops at the next frame
batch when the queue is interrupted.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from talker.comfy import folders
from talker.comfy.values import audio_value, image_to_rgb, rgb_to_image, video_path, video_value, write_audio
from talker.errors import TalkerError

CATEGORY = "talker"
NONE = "none"
"""The combo entry standing for an optional choice left empty (a preset of None)."""


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


def in_node_terms(err: TalkerError, names: dict[str, str], widgets: set[str] = frozenset()) -> TalkerError:
    """``err`` with its message in the node's words: each key of ``names`` (a temporary file's path
    or name) replaced by its value (the input it came from, or the user's file name), and each CLI
    flag ``--batch-size`` of a widget by the widget's name ``batch_size``. The error keeps its class."""
    message = str(err)
    for raw, said in sorted(names.items(), key=lambda item: -len(item[0])):
        message = message.replace(raw, said)
    message = re.sub(r"\b(portrait|audio|video) (the '\1' input)", r"\2", message)
    message = re.sub(r"--([a-z][a-z-]*)",
                     lambda m: m.group(1).replace("-", "_") if m.group(1).replace("-", "_") in widgets else m.group(0),
                     message)
    try:
        renamed = type(err)(message)
    except TypeError:  # an error class with more arguments
        renamed = TalkerError(message)
    return renamed.with_traceback(err.__traceback__)


class TalkerLoadPortrait:
    """A portrait of ComfyUI's input folder -> IMAGE, with the checks and EXIF rotation of ``talker make --image``."""

    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("portrait",)
    DESCRIPTION = "Load a jpg, png, webp or bmp portrait from ComfyUI's input folder (or upload one)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (folders.input_images(), {"image_upload": True,
                                                                "tooltip": "a portrait in ComfyUI's input folder"})}}

    @classmethod
    def IS_CHANGED(cls, image):
        """Re-run when the file changes (size and modification time)."""
        try:
            st = os.stat(folders.input_file(image, "image"))
            return f"{st.st_size}:{st.st_mtime_ns}"
        except (OSError, TalkerError):
            return image

    @classmethod
    def VALIDATE_INPUTS(cls, image):
        """True, or the reason the file cannot be read (ComfyUI shows it before the run)."""
        try:
            folders.input_file(image, "image")
        except TalkerError as err:
            return str(err)
        return True

    def load(self, image: str):
        from talker.media import read_image

        path = folders.input_file(image, "image")
        try:
            return (rgb_to_image([read_image(path)]),)
        except TalkerError as err:
            raise in_node_terms(err, {str(path): image}) from None


class TalkerTextToSpeech:
    """Text -> speech by espeak-ng (its own voices, no model files), as ``talker make --text`` speaks it."""

    CATEGORY = CATEGORY
    FUNCTION = "speak"
    RETURN_TYPES = ("AUDIO", "STRING")
    RETURN_NAMES = ("audio", "text")
    DESCRIPTION = "Speak the text with espeak-ng; gives the AUDIO and the text (a transcript for Make)."

    @classmethod
    def INPUT_TYPES(cls):
        from talker import espeak

        languages = [name for name, _ in espeak.voices()] or ["en-us"]
        variants = [NONE, *(name for name, _ in espeak.voices(variants=True))]
        return {"required": {
            "text": ("STRING", {"default": "Hello! I am a talking portrait.", "multiline": True,
                                "tooltip": "the words to say"}),
            "language": (languages, {"default": "en-us" if "en-us" in languages else languages[0],
                                     "tooltip": "espeak-ng's language (and accent) of the voice"}),
            "variant": (variants, {"default": NONE, "tooltip": "espeak-ng's voice variant (none: the language's own)"}),
            "speed": ("INT", {"default": espeak.DEFAULT_WPM, "min": 80, "max": 450, "step": 5,
                              "tooltip": "words per minute"}),
        }}

    def speak(self, text: str, language: str, variant: str, speed: int):
        from talker import espeak
        from talker.errors import MissingDependencyError, OptionError, apt_get_install

        if not text.strip():
            raise OptionError("the text widget is empty; type the words to say")
        if not espeak.available():
            raise MissingDependencyError(f"Text to Speech needs espeak-ng: run `{apt_get_install('espeak-ng')}` "
                                         "(Debian/Ubuntu) or `brew install espeak-ng` (macOS), then restart ComfyUI")
        voice = language if variant == NONE else f"{language}+{variant}"
        try:
            samples, rate, _ = espeak.speak(text, voice, wpm=speed)
        except ValueError as err:
            raise OptionError(f"espeak-ng has no voice {voice!r}: pick a language and variant from the lists") from err
        return (audio_value(samples, rate), text)


class TalkerMakeVideo:
    """Portrait + speech -> a lip-synced MP4 through ``talker.pipeline.make``, as a VIDEO.

    The option widgets are the rows of ``talker.webui.form.FIELDS`` (the web page's table: the CLI's
    defaults, choices and ranges); ``face_index`` -1 means "the only face" (None), ``preset`` "none"
    no preset. The MP4 goes to ComfyUI's temp folder and is shown on the node (``ui``, as ComfyUI's
    own video previews are); save it with core SaveVideo.
    """

    CATEGORY = CATEGORY
    FUNCTION = "make"
    OUTPUT_NODE = True
    RETURN_TYPES = ("VIDEO", "AUDIO")
    RETURN_NAMES = ("video", "audio")
    DESCRIPTION = ("Make the portrait speak the audio: a VIDEO (MP4, H.264 + 48 kHz AAC) for Save Video, and the "
                   "AUDIO it spoke. Its frames: Get Video Components.")

    @classmethod
    def INPUT_TYPES(cls):
        from talker.webui.form import FIELDS

        return {
            "required": {"portrait": ("IMAGE",), "audio": ("AUDIO",), **{row.name: _widget(row) for row in FIELDS}},
            "optional": {"transcript": ("STRING", {"default": "", "multiline": True,
                                        "tooltip": "the words spoken, for sharper lip shapes (forced alignment)"})},
        }

    def make(self, portrait, audio, transcript="", **options):
        from PIL import Image

        from talker.pipeline import make
        from talker.webui.form import FIELDS, build_options

        for row in FIELDS:
            if row.optional and options.get(row.name) in (-1, NONE):
                options[row.name] = None
        out = folders.next_free_path("talker/clip", ".mp4", kind="temp")
        with tempfile.TemporaryDirectory(prefix="talker-comfy-") as tmp:
            image_path = Path(tmp) / "portrait.png"
            Image.fromarray(image_to_rgb(portrait)).save(image_path)
            audio_path = write_audio(audio, Path(tmp) / "speech.wav")
            names = {str(image_path): "the 'portrait' input", image_path.name: "the 'portrait' input",
                     str(audio_path): "the 'audio' input", str(out): "the temp folder's clip"}
            try:
                result = make(build_options(options, image_path, audio_path, transcript, out),
                              progress=_comfy_progress())
            except TalkerError as err:
                raise in_node_terms(err, names, {row.name for row in FIELDS}) from None
        preview = {"images": [folders.saved_result(result.video, "temp")], "animated": (True,)}
        return {"ui": preview, "result": (video_value(result.video), audio)}


def _widget(row) -> tuple:
    """A ComfyUI widget for one ``talker.webui.form.FormField`` row; its default is always one of its values."""
    opts = {"tooltip": f"{row.label}: {row.info}" if row.info else row.label}
    kind, default = row.kind, row.default
    if kind == "dropdown":
        values = [NONE if v == "" else v for v in row.choice_values()]
        return values, {"default": NONE if default is None else default, **opts}
    if kind == "checkbox":
        return "BOOLEAN", {"default": default, **opts}
    if kind == "slider":
        lo, hi, step = row.slider
        whole = isinstance(default, int) and float(step).is_integer()
        return ("INT" if whole else "FLOAT"), {"default": default, "min": lo, "max": hi, "step": step, **opts}
    if kind == "number":
        lo, hi = row.bounds or (None, None)
        limits = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        if row.optional:
            return "INT", {**opts, "default": -1, **limits, "min": -1, "tooltip": opts["tooltip"] + " (-1: none)"}
        if row.name == "seed":
            limits["control_after_generate"] = True
        return ("INT" if isinstance(default, int) else "FLOAT"), {"default": default, **limits, **opts}
    return "STRING", {"default": "" if default is None else str(default), **opts}


class TalkerScore:
    """Grade a talking video (``talker score``): the report goes to ComfyUI's output folder as
    ``<filename_prefix>_NNNNN.report.json`` and ``.report.png``; the verdict and table show on the node."""

    CATEGORY = CATEGORY
    FUNCTION = "score"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "STRING", "IMAGE")
    RETURN_NAMES = ("report", "verdict", "plot")
    DESCRIPTION = "Measure lip sync, blinks, jitter, identity and background; pass / warn / fail for each."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "the talking video to grade"}),
                "filename_prefix": ("STRING", {"default": "talker/score",
                                               "tooltip": "where the report files go, inside the output folder"}),
            },
            "optional": {
                "audio": ("AUDIO", {"tooltip": "the speech it should follow (default: the video's own sound)"}),
                "portrait": ("IMAGE", {"tooltip": "the source portrait: enables identity, sharpness, background"}),
                "transcript": ("STRING", {"default": "", "multiline": True,
                               "tooltip": "the words spoken: enables the p/b/m and vowel checks"}),
            },
        }

    def score(self, video, filename_prefix, audio=None, portrait=None, transcript=""):
        from talker.media import read_audio, read_image
        from talker.score import report_lines, score_and_write

        json_path = folders.next_free_path(filename_prefix, ".report.json")
        image = image_to_rgb(portrait) if portrait is not None else None
        with tempfile.TemporaryDirectory(prefix="talker-comfy-") as tmp:
            clip = video_path(video, Path(tmp) / "video.mp4")
            speech_file = write_audio(audio, Path(tmp) / "speech.wav") if audio is not None else clip
            names = {str(clip): "the 'video' input", str(speech_file): "the 'audio' input"}
            try:
                report = score_and_write(clip, read_audio(speech_file), json_path, image=image,
                                         transcript=transcript.strip() or None)
            except TalkerError as err:
                raise in_node_terms(err, names) from None
        where = json_path.relative_to(folders.folder("output").resolve()).as_posix()
        text = "\n".join([f"{report.verdict.upper()}: output/{where}", *report_lines(report)])
        plot = rgb_to_image([read_image(json_path.with_suffix(".png"))])
        return {"ui": {"text": (text,)}, "result": (text, report.verdict, plot)}


NODE_CLASS_MAPPINGS = {
    "TalkerLoadPortrait": TalkerLoadPortrait,
    "TalkerTextToSpeech": TalkerTextToSpeech,
    "TalkerMakeVideo": TalkerMakeVideo,
    "TalkerScore": TalkerScore,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TalkerLoadPortrait": "Load Portrait (talker)",
    "TalkerTextToSpeech": "Text to Speech (talker)",
    "TalkerMakeVideo": "Make Talking Video (talker)",
    "TalkerScore": "Score Talking Video (talker)",
}
