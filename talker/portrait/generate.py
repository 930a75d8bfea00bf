"""The portrait stage: PortraitOptions -> pictures from Stable Diffusion, checked by the face stage.

    1. check the options, the output path and the model files       (make_portrait)
    2. read the init image, the mask, draw the canny edges          -> PortraitInputs (load_inputs)
    3. load the pipeline with the preset's knobs and draw each image -> [Candidate]   (generate)
       on CUDA out-of-memory: once more with the preset's fallback, keeping the pictures already drawn
    4. keep the pictures in which the face stage finds a face, choose the most confident one
    5. write the chosen PNG (atomically) and, with --num-images > 1, the kept candidates beside it

Image ``i`` of a run uses seed ``seed + i`` with a CPU generator: the same seed gives the same picture
on the same device and preset.
"""

from __future__ import annotations

import gc
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from talker.errors import InputImageError, NoFaceError, OptionError
from talker.portrait.options import PortraitOptions

log = logging.getLogger(__name__)


@dataclass
class PortraitInputs:
    """The pictures a task needs, at the output size (``width`` x ``height`` px, multiples of 8):
    ``init`` RGB, ``mask`` L (255 = redraw), ``control`` RGB canny edges; None when not used."""

    width: int
    height: int
    init: object = None  # PIL.Image
    mask: object = None
    control: object = None


@dataclass
class Candidate:
    """One drawn picture: (H, W, 3) uint8 RGB, its seed, the preset it was drawn with, and the
    face-detector score of its largest face (None: not checked, 0.0: no face)."""

    seed: int
    rgb: np.ndarray
    preset: str
    face_score: float | None = None


@dataclass
class PortraitResult:
    """What ``make_portrait`` wrote: the chosen PNG, the kept candidates' PNGs (with --num-images > 1),
    all candidates drawn, and the presets tried in order (two when out-of-memory forced the fallback)."""

    path: Path
    candidates: list[Candidate]
    kept: list[Candidate]
    chosen: Candidate
    presets_tried: list[str]
    candidate_paths: list[Path] = field(default_factory=list)


def make_portrait(options: PortraitOptions, out: Path, force: bool = False) -> PortraitResult:
    """Steps 1-5: draw, check and write the portrait PNG at ``out``."""
    from talker.folders import made_folders
    from talker.media import check_output_path
    from talker.portrait.models import find_controlnet, find_sd_model

    # 1. Check everything that can be checked before loading a model.
    options.validate()
    out = check_output_path(out, force, suffix=".png")
    extra = [out.with_name(f"{out.stem}-seed{options.seed + i}.png") for i in range(options.num_images)]
    if options.num_images > 1 and not force:
        for path in extra:
            if path.exists():
                raise OptionError(f"candidate file {path} exists; pass --force to overwrite or choose another -o")
    model = find_sd_model(options.sd_model)
    controlnet = find_controlnet(options.controlnet_model) if options.controlnet else None

    # Missing folders above -o are made now and taken back if drawing fails.
    with made_folders(out):
        # 2. The pictures.
        inputs = load_inputs(options)

        # 3. Draw.
        presets_tried: list[str] = []
        candidates = generate(options, inputs, model, controlnet, presets_tried)

        # 4. Keep what the face stage can animate.
        kept = face_check(candidates) if options.check_face else candidates
        if not kept:
            raise NoFaceError(
                f"the face stage found no face to animate in {'any of the ' + str(len(candidates)) + ' pictures' if len(candidates) > 1 else 'the picture'} "
                "drawn (none, or smaller than 64 px): ask for one ('close-up portrait photo of ..., looking at the "
                "camera'), try other --seed values, or draw several with --num-images"
            )
        chosen = max(kept, key=lambda c: c.face_score or 0.0)

        # 5. Write.
        write_png(chosen.rgb, out)
        paths = []
        if options.num_images > 1:
            for c in kept:
                paths.append(write_png(c.rgb, out.with_name(f"{out.stem}-seed{c.seed}.png")))
        return PortraitResult(out, candidates, kept, chosen, presets_tried, paths)


def load_inputs(options: PortraitOptions) -> PortraitInputs:
    """Step 2: read and size the init image and the mask, draw the canny edges (InputImageError for a
    mask that does not match the init image)."""
    from PIL import Image

    from talker.media import read_image

    if options.init_image is None:
        return PortraitInputs(options.width or 512, options.height or 512)
    rgb = read_image(options.init_image)
    h, w = rgb.shape[:2]
    width, height = options.width or max(64, w // 8 * 8), options.height or max(64, h // 8 * 8)
    init = Image.fromarray(rgb).resize((width, height), Image.LANCZOS)
    mask = None
    if options.mask is not None:
        mask_rgb = read_image(options.mask)
        if mask_rgb.shape[:2] != (h, w):
            raise InputImageError(
                f"mask {options.mask} is {mask_rgb.shape[1]}x{mask_rgb.shape[0]} but the init image is {w}x{h}: "
                "paint the mask on a copy of the init image (white = redraw, black = keep)"
            )
        mask = Image.fromarray(mask_rgb).convert("L").resize((width, height), Image.BILINEAR)
        if not np.asarray(mask).any():
            raise InputImageError(f"mask {options.mask} is all black: nothing to redraw (white = redraw, black = keep)")
    control = canny_edges(np.asarray(init), options.canny_low, options.canny_high) if options.controlnet else None
    return PortraitInputs(width, height, init, mask, control)


def canny_edges(rgb: np.ndarray, low: int, high: int):
    """ControlNet canny conditioning: cv2.Canny edges of ``rgb`` (H, W, 3 uint8) as a white-on-black RGB picture."""
    import cv2
    from PIL import Image

    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high)
    return Image.fromarray(np.repeat(edges[:, :, None], 3, axis=2))


def generate(options: PortraitOptions, inputs: PortraitInputs, model: Path, controlnet: Path | None = None,
             presets_tried: list[str] | None = None) -> list[Candidate]:
    """Step 3: ``options.num_images`` pictures. On CUDA out-of-memory the run is retried once with the
    preset's fallback (logged as a warning); pictures drawn before the failure are kept.
    ``presets_tried`` (if given) receives the preset names used, in order."""
    import torch

    from talker.portrait.models import load_pipeline
    from talker.portrait.settings import free_gpu_gb, portrait_presets

    chain = portrait_presets(options.preset, free_gpu_gb())[:2]  # the preset, and one retry
    tried = presets_tried if presets_tried is not None else []
    done: list[Candidate] = []
    for attempt, preset in enumerate(chain):
        tried.append(preset.name)
        log.info("portrait: preset %s (%s)", preset.name, preset.description)
        pipe = None
        try:
            pipe = load_pipeline(options.task, model, preset.settings, options.sd_config, controlnet)
            with _tf32(preset.settings.tf32):
                while len(done) < options.num_images:
                    seed = options.seed + len(done)
                    done.append(Candidate(seed, draw(pipe, options, inputs, seed), preset.name))
            return done
        except torch.cuda.OutOfMemoryError:
            pipe = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if attempt + 1 == len(chain):
                raise OptionError(
                    f"out of GPU memory with portrait preset{'s' if len(tried) > 1 else ''} {' and '.join(tried)}: "
                    "choose --preset low-vram or cpu, or a smaller --width/--height"
                ) from None
            log.warning("out of GPU memory with portrait preset %s after %d of %d pictures; retrying once with %s",
                        preset.name, len(done), options.num_images, chain[attempt + 1].name)
        finally:
            del pipe


def draw(pipe, options: PortraitOptions, inputs: PortraitInputs, seed: int) -> np.ndarray:
    """One picture, (H, W, 3) uint8 RGB. Inpainting pastes the result back into the init image through
    the mask (diffusers' ``apply_overlay``), so what the mask keeps stays exactly as it was."""
    import torch

    generator = torch.Generator("cpu").manual_seed(seed)
    kwargs = dict(prompt=options.prompt, negative_prompt=options.negative_prompt or None,
                  num_inference_steps=options.steps, guidance_scale=options.guidance, generator=generator)
    control_key = "image"
    if options.task == "txt2img":
        kwargs.update(width=inputs.width, height=inputs.height)
    else:
        kwargs.update(image=inputs.init, strength=options.strength)
        control_key = "control_image"
    if options.task == "inpaint":
        kwargs.update(mask_image=inputs.mask, width=inputs.width, height=inputs.height)
    if inputs.control is not None:
        kwargs.update({control_key: inputs.control, "controlnet_conditioning_scale": options.controlnet_scale})
    image = pipe(**kwargs).images[0]
    if options.task == "inpaint":
        image = pipe.image_processor.apply_overlay(inputs.mask, inputs.init, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def face_check(candidates: list[Candidate]) -> list[Candidate]:
    """Step 4: score each candidate with the face stage's detector; those whose largest face is big
    enough to animate (``talker.face.MIN_FACE_SIDE`` px on each side), in seed order."""
    from talker.face import MIN_FACE_SIDE, detect_faces

    for c in candidates:
        faces = detect_faces(c.rgb)
        big = bool(faces) and min(faces[0].width, faces[0].height) >= MIN_FACE_SIDE
        c.face_score = faces[0].score if big else 0.0
        log.info("portrait seed %d: %s", c.seed, f"face, score {c.face_score:.2f}" if big else
                 f"face too small ({faces[0].width}x{faces[0].height} px)" if faces else "no face found")
    return [c for c in candidates if c.face_score]


def write_png(rgb: np.ndarray, path: Path) -> Path:
    """Write a PNG atomically: a temporary file in the same folder, renamed over ``path`` when complete."""
    from PIL import Image

    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".png.part", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(rgb).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@contextmanager
def _tf32(enabled: bool):
    """Allow TF32 matmuls and convolutions while drawing, restoring torch's flags afterwards."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if enabled:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
