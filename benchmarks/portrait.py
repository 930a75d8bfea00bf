"""Portrait stage speed and memory: each shipped preset against diffusers' defaults, in one run.

    python benchmarks/portrait.py --out benchmarks/out/portrait_h200.json          (on a CUDA GPU)
    python benchmarks/portrait.py --tiny --out /tmp/portrait_smoke.json            (CPU smoke test)

A full-size SD 1.5-shaped pipeline with random weights is built from the shipped configs
(talker/data/sd15: UNet 860M, VAE 84M, CLIP text 123M parameters; nothing is downloaded), written
as an fp16 single-file checkpoint in the original key layout (tests/sd_factory.to_original_layout),
and then every configuration loads that file itself:

    default      diffusers' defaults: StableDiffusionPipeline.from_single_file(fp32) + .to('cuda'), no knobs
    <preset>     talker.portrait.models.load_pipeline with the preset's settings (fast, balanced, low-vram)

For each: load seconds, the first picture's seconds (warm-up: cuDNN autotune, torch.compile),
then seconds per picture over ``--images`` pictures (512x512, 25 steps, guidance 7.5, one prompt),
and the peak GPU memory allocated by torch during the pictures (GiB; with offload, what is on the
GPU at its fullest). Speed-ups are against ``default`` measured in the same run. Random weights
draw noise, not portraits; the arithmetic (and so the time and memory) is that of a real SD 1.5.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from talker.portrait.models import SD15_CONFIG, dtype_argument, load_pipeline  # noqa: E402
from talker.portrait.settings import KIND, PortraitSettings  # noqa: E402
from talker.presets import load_preset  # noqa: E402

PROMPT = "portrait photo of a smiling woman, studio light, 85 mm"


def build_checkpoint(path: Path, tiny: bool) -> Path:
    """Random SD 1.5-shaped weights (or the tests' tiny ones) as an fp16 original-layout single file."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from sd_factory import TINY_TEXT, TINY_UNET, TINY_VAE, to_original_layout

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialise on the GPU: seconds instead of a minute of CPU init
        if tiny:
            unet, vae = UNet2DConditionModel(**TINY_UNET), AutoencoderKL(**TINY_VAE)
            text = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
        else:
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(SD15_CONFIG / "unet"))
            vae = AutoencoderKL.from_config(AutoencoderKL.load_config(SD15_CONFIG / "vae"))
            text = CLIPTextModel(CLIPTextConfig.from_pretrained(SD15_CONFIG / "text_encoder"))
    state = {k: v.half().cpu() for k, v in to_original_layout(unet, vae, text).items()}
    save_file(state, str(path))
    return path


def run_config(name: str, make_pipe, size: int, steps: int, images: int) -> dict:
    """Load, warm up and time one configuration; frees the GPU afterwards."""
    cuda = torch.cuda.is_available()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    pipe = make_pipe()
    load_s = time.perf_counter() - t
    kwargs = dict(prompt=PROMPT, num_inference_steps=steps, guidance_scale=7.5, width=size, height=size)

    def one(seed: int) -> float:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        pipe(generator=torch.Generator("cpu").manual_seed(seed), **kwargs)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first_s = one(0)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = [one(1 + i) for i in range(images)]
    row = {
        "config": name, "load_s": round(load_s, 2), "first_image_s": round(first_s, 3),
        "s_per_image": round(sum(times) / len(times), 3), "image_s": [round(x, 3) for x in times],
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3) if cuda else None,
    }
    del pipe
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="JSON file for the raw results")
    ap.add_argument("--presets", default="fast,balanced,low-vram", help="shipped or user portrait presets to time")
    ap.add_argument("--extra", default="fast+compile", help="variants: PRESET+compile, PRESET+graphs (compile with CUDA graphs); empty: none")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--images", type=int, default=3, help="timed pictures per configuration (after one warm-up)")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test: the tests' tiny nets, presets moved to the CPU")
    ap.add_argument("--budget-s", type=float, default=1e9, help="skip the remaining configurations after this many seconds")
    args = ap.parse_args()
    started = time.perf_counter()
    from diffusers import StableDiffusionPipeline

    with tempfile.TemporaryDirectory() as tmp:
        tiny_root = None
        if args.tiny:
            from sd_factory import build_tiny_sd

            tiny_root = build_tiny_sd(Path(tmp) / "tiny")["config"]
        t = time.perf_counter()
        ckpt = build_checkpoint(Path(tmp) / "sd15-random.safetensors", args.tiny)
        build_s = time.perf_counter() - t
        config = tiny_root or SD15_CONFIG
        device = "cuda" if torch.cuda.is_available() else "cpu"

        def default():
            pipe = StableDiffusionPipeline.from_single_file(str(ckpt), config=str(config), local_files_only=True,
                                                            **dtype_argument(torch.float32), safety_checker=None)
            return pipe.to(device)

        rows = [run_config("default", default, args.size, args.steps, args.images)]
        variants = [(p, "") for p in args.presets.split(",") if p]
        variants += [tuple(e.split("+", 1)) for e in args.extra.split(",") if e]
        for preset_name, extra in variants:
            name = preset_name + (f"+{extra}" if extra else "")
            if time.perf_counter() - started > args.budget_s:
                print(f"skipped {name}: over --budget-s", flush=True)
                continue
            preset = load_preset(KIND, preset_name, PortraitSettings)
            settings = dataclasses.replace(preset.settings, compile=bool(extra) or preset.settings.compile,
                                           cuda_graphs=extra == "graphs" or preset.settings.cuda_graphs)
            if args.tiny:
                settings = dataclasses.replace(settings, device="cpu", precision="fp32", offload="none",
                                               compile=False, cuda_graphs=False)
            row = run_config(name, lambda s=settings: load_pipeline("txt2img", ckpt, s, tiny_root), args.size,
                             args.steps, args.images)
            row.update(settings=dataclasses.asdict(settings), gpu_memory_gb=preset.gpu_memory_gb)
            rows.append(row)
        base = rows[0]["s_per_image"]
        for row in rows:
            row["speedup_vs_default"] = round(base / row["s_per_image"], 2)
        result = {
            "what": "SD 1.5-shaped pipeline, random weights, txt2img", "size": args.size, "steps": args.steps,
            "images_timed": args.images, "build_checkpoint_s": round(build_s, 1),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch": torch.__version__, "diffusers": __import__("diffusers").__version__,
            "python": platform.python_version(), "rows": rows,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for row in rows:
        mem = "-" if row["peak_allocated_gib"] is None else f"{row['peak_allocated_gib']:.2f} GiB"
        print(f"{row['config']:14s} {row['s_per_image']:7.3f} s/image  x{row['speedup_vs_default']:<5}  peak {mem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
