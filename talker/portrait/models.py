"""Stable Diffusion 1.x from local files only: find the model files, build the diffusers pipeline, apply
a preset's knobs.

A model is a single file (``.safetensors`` or ``.ckpt``, the original CompVis / A1111 key layout,
loaded with diffusers' ``from_single_file``) or a diffusers folder (``model_index.json`` and one
sub-folder per component). A single file holds weights only: the component configs and the CLIP
tokenizer come from ``talker/data/sd15/`` (shipped; see its NOTICE.md), or from ``--sd-config DIR``
(any diffusers-layout folder) for a checkpoint of another shape. Nothing is fetched from a hub:
every load passes ``local_files_only=True`` and ``HF_HUB_OFFLINE`` is set before diffusers is imported.

Without ``--sd-model`` the model is looked for in the models folder's ``Stable-diffusion/`` and in
the A1111 WebUI's ``models/Stable-diffusion`` (``ControlNet/``, ``models/ControlNet`` and the
sd-webui-controlnet extension's ``models/`` for ControlNet files); see talker.models.store.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from talker.errors import CheckpointError, MissingDependencyError, OptionError

log = logging.getLogger(__name__)

SD15_CONFIG = Path(__file__).resolve().parents[1] / "data" / "sd15"
"""Diffusers-layout configs of SD 1.5 (UNet, VAE, CLIP text encoder, scheduler, tokenizer) and ControlNet v1.1."""
SD_SUFFIXES = (".safetensors", ".ckpt")
SD_FOLDER, CONTROLNET_FOLDER = "Stable-diffusion", "ControlNet"
_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
_CROSS_K = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def find_model(given: Path | None, folder: str, entry_id: str, what: str, fix: str) -> Path:
    """``given`` (checked to exist), else the manifest's ``entry_id`` file or the only model file in
    the store's ``folder`` directories. CheckpointError says what to do when there is none or several."""
    if given is not None:
        given = Path(given).expanduser()
        if not given.exists():
            raise CheckpointError(f"{what} {given} does not exist; check the path ({fix})")
        if given.is_dir():
            if not (given / "model_index.json").is_file() and not (given / "config.json").is_file():
                raise CheckpointError(f"{what} folder {given} is not a diffusers folder (no model_index.json "
                                      f"or config.json); give a .safetensors / .ckpt file or a diffusers folder")
        elif given.suffix.lower() not in SD_SUFFIXES:
            raise CheckpointError(f"{what} {given} must be a .safetensors or .ckpt file or a diffusers folder")
        return given
    from talker.models.manifest import load_manifest
    from talker.models.store import open_store

    store = open_store()
    manifest = load_manifest()
    if entry_id in manifest.by_id:
        path = store.find(manifest.by_id[entry_id])
        if path is not None:
            return path
    dirs = [d for d in store.folders(folder) if d != store.root]
    files = sorted({p for d in dirs for p in d.iterdir() if p.suffix.lower() in SD_SUFFIXES and p.is_file()})
    if len(files) == 1:
        return files[0]
    if files:
        names = ", ".join(str(p) for p in files[:4]) + (", ..." if len(files) > 4 else "")
        raise OptionError(f"several {what} files found ({names}); choose one with {fix.split(',')[0]}")
    looked = ", ".join(map(str, dirs)) or f"{store.root / folder}"
    raise CheckpointError(f"no {what} found (looked in {looked}): {fix}")


def find_sd_model(given: Path | None) -> Path:
    return find_model(given, SD_FOLDER, "sd15", "Stable Diffusion model",
                      "pass --sd-model FILE.safetensors (or .ckpt, or a diffusers folder), "
                      "or run 'talker models download sd15'")


def find_controlnet(given: Path | None) -> Path:
    return find_model(given, CONTROLNET_FOLDER, "controlnet-canny", "ControlNet canny model",
                      "pass --controlnet-model FILE, or run 'talker models download controlnet-canny'")


def check_single_file(path: Path, shipped_config: bool) -> None:
    """Refuse, before diffusers reads it, a .safetensors file that is damaged or is not SD 1.x (header only)."""
    if path.suffix.lower() != ".safetensors":
        return
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            shapes = {k: f.get_slice(k).get_shape() for k in (_UNET_IN, _CROSS_K) if k in keys}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is damaged or not a safetensors file ({_one_line(err)}); download it again") from None
    if not any(k.startswith("model.diffusion_model.") for k in keys):
        raise CheckpointError(f"{path} holds no Stable Diffusion UNet (no model.diffusion_model.* weights): "
                              "give an SD 1.x checkpoint in the original single-file layout, or a diffusers folder")
    if shipped_config and _CROSS_K in shapes and shapes[_CROSS_K][1] != 768:
        raise CheckpointError(f"{path} is not an SD 1.x model (text width {shapes[_CROSS_K][1]}, SD 1.x has 768: "
                              "SD 2.x / SDXL are not supported); give an SD 1.5-class checkpoint")
    if shipped_config and _UNET_IN in shapes and shapes[_UNET_IN][1] != 4:
        raise CheckpointError(f"{path} is an inpainting checkpoint ({shapes[_UNET_IN][1]} UNet input channels): "
                              "give its diffusers folder, or use any SD 1.5 checkpoint with --mask")


def import_diffusers():
    """The diffusers module, or MissingDependencyError saying how to install the extra."""
    try:
        import diffusers
    except ImportError:
        raise MissingDependencyError("the portrait stage needs diffusers and transformers: "
                                     "pip install 'talker[sd]' (or pip install diffusers transformers accelerate)") from None
    return diffusers


def pipeline_class(task: str, controlnet: bool):
    """The diffusers pipeline class for 'txt2img' / 'img2img' / 'inpaint', with or without ControlNet."""
    diffusers = import_diffusers()

    names = {
        ("txt2img", False): "StableDiffusionPipeline",
        ("img2img", False): "StableDiffusionImg2ImgPipeline",
        ("inpaint", False): "StableDiffusionInpaintPipeline",
        ("txt2img", True): "StableDiffusionControlNetPipeline",
        ("img2img", True): "StableDiffusionControlNetImg2ImgPipeline",
        ("inpaint", True): "StableDiffusionControlNetInpaintPipeline",
    }
    return getattr(diffusers, names[task, controlnet])


def dtype_argument(dtype) -> dict:
    """The keyword that gives diffusers the weights' dtype: ``dtype`` in the releases that take it
    (they deprecate ``torch_dtype`` with a FutureWarning), ``torch_dtype`` in the older ones."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401 - present where dtype is taken
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def load_pipeline(task: str, model: Path, settings, config: Path | None = None, controlnet: Path | None = None):
    """A diffusers pipeline for ``task`` from local files, on the preset's device, dtype and knobs
    (``settings``: PortraitSettings). CheckpointError when a file cannot be read as SD 1.x.

    CUDA out-of-memory while moving to the GPU propagates (the caller retries with a lower preset).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if settings.device == "cuda" and not torch.cuda.is_available():
        raise OptionError("this portrait preset runs on a CUDA GPU and torch sees none: use --preset cpu (or auto)")
    cls = pipeline_class(task, controlnet is not None)
    dtype = getattr(torch, _DTYPES[settings.precision])
    kwargs = dict(**dtype_argument(dtype), local_files_only=True, safety_checker=None, requires_safety_checker=False)
    if controlnet is not None:
        kwargs["controlnet"] = load_controlnet(controlnet, dtype, config)
    try:
        if model.is_dir():
            pipe = cls.from_pretrained(str(model), **kwargs)
        else:
            check_single_file(model, shipped_config=config is None)
            pipe = cls.from_single_file(str(model), config=str(config or SD15_CONFIG), **kwargs)
    except (CheckpointError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as err:  # diffusers / transformers / torch raise many kinds for foreign or damaged files
        raise CheckpointError(f"cannot load Stable Diffusion model {model} ({_one_line(err)}): give an SD 1.x "
                              "checkpoint (.safetensors / .ckpt) or a diffusers folder; --sd-config DIR for "
                              "a single file of another shape") from err
    from diffusers import DPMSolverMultistepScheduler

    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)  # DPM++ 2M: good at 20-25 steps
    apply_settings(pipe, settings)
    return pipe


def load_controlnet(path: Path, dtype, config: Path | None = None):
    """A ControlNetModel from a folder, or from a single file configured by ``<config>/controlnet/config.json``
    (``config``: the ``--sd-config`` folder; None: the shipped ControlNet v1.1 SD 1.5 config)."""
    ControlNetModel = import_diffusers().ControlNetModel

    try:
        if path.is_dir():
            return ControlNetModel.from_pretrained(str(path), **dtype_argument(dtype), local_files_only=True)
        return ControlNetModel.from_single_file(str(path), config=str((config or SD15_CONFIG) / "controlnet"),
                                                **dtype_argument(dtype), local_files_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot load ControlNet model {path} ({_one_line(err)}): give an SD 1.5 ControlNet "
                              "canny file (.safetensors / .pth) or its diffusers folder") from err


def apply_settings(pipe, settings) -> None:
    """Attention, memory format, slicing, tiling, offload and compile as the preset says."""
    import torch

    if not settings.sdpa:
        from diffusers.models.attention_processor import AttnProcessor

        pipe.unet.set_attn_processor(AttnProcessor())
        pipe.vae.set_attn_processor(AttnProcessor())
    if settings.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if settings.attention_slicing:
        pipe.enable_attention_slicing()
    if settings.vae_slicing:
        pipe.vae.enable_slicing()
    if settings.vae_tiling:
        pipe.vae.enable_tiling()
    if settings.offload == "model":
        pipe.enable_model_cpu_offload()
    elif settings.offload == "sequential":
        pipe.enable_sequential_cpu_offload()
    else:
        pipe.to(settings.device)
    if settings.compile:
        pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead" if settings.cuda_graphs else None)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__
