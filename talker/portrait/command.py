"""``talker portrait``: draw or restyle a portrait with Stable Diffusion from local model files.

    talker portrait --prompt "portrait photo of a knight, studio light" -o knight.png
    talker portrait --init-image me.png --strength 0.5 --prompt "oil painting" -o me-oil.png
    talker portrait --init-image me.png --mask hair.png --prompt "red hair" -o me-red.png
    talker portrait --init-image me.png --controlnet canny --prompt "game character" -o me-game.png

Imports nothing heavy at module level: the CLI registers it with ``add_portrait_command(sub)``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from talker.portrait.options import CONTROLNETS
from talker.presets import preset_names


def add_portrait_command(sub) -> None:
    p = sub.add_parser(
        "portrait",
        help="draw or restyle a portrait with Stable Diffusion (needs talker[sd] and a local SD 1.5 model)",
        description="Draw a portrait from a prompt, restyle --init-image, redraw the white part of --mask, or follow "
        "the init image's edges (--controlnet canny). Keeps only pictures in which a face is found.",
    )
    add_portrait_arguments(p)
    p.add_argument("-o", "--out", type=Path, required=True, help="PNG to write (with --num-images > 1 the kept "
                   "candidates are written beside it as <name>-seed<N>.png)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(run=run_portrait)


def add_portrait_arguments(p, prefix: str = "") -> None:
    """The portrait options, also offered by ``talker make`` with ``prefix='portrait-'`` (its --seed,
    --steps... belong to the video)."""
    g = p.add_argument_group("portrait (Stable Diffusion)")
    g.add_argument(f"--{prefix or ''}prompt", dest="sd_prompt", help="what to draw")
    g.add_argument(f"--{prefix}prompt-file", dest="sd_prompt_file", type=Path, help="a UTF-8 text file holding the prompt")
    g.add_argument(f"--{prefix}negative-prompt", dest="sd_negative_prompt", default="", help="what to avoid")
    if not prefix:
        g.add_argument("--init-image", type=Path, help="a picture to restyle (img2img) or inpaint")
    g.add_argument(f"--{prefix}strength", dest="sd_strength", type=float, default=0.6,
                   help="how much of the init image is redrawn: 0 keeps it, 1 redraws everything")
    g.add_argument(f"--{prefix}mask", dest="sd_mask", type=Path,
                   help="inpaint: same size as the init image, white = redraw, black = keep unchanged")
    g.add_argument(f"--{prefix}controlnet", dest="sd_controlnet", choices=CONTROLNETS,
                   help="follow the init image's canny edges (keeps the face's layout)")
    g.add_argument(f"--{prefix}controlnet-model", dest="sd_controlnet_model", type=Path,
                   help="ControlNet canny file or folder (default: the models folder, A1111's models/ControlNet)")
    g.add_argument(f"--{prefix}controlnet-scale", dest="sd_controlnet_scale", type=float, default=1.0,
                   help="how strongly the edges guide (0-2)")
    g.add_argument(f"--{prefix}steps", dest="sd_steps", type=int, default=25, help="denoising steps")
    g.add_argument(f"--{prefix}guidance", dest="sd_guidance", type=float, default=7.5, help="prompt guidance scale")
    g.add_argument(f"--{prefix}seed", dest="sd_seed", type=int, default=0, help="same seed, same picture; image i uses seed+i")
    g.add_argument(f"--{prefix}width", dest="sd_width", type=int, help="pixels, multiple of 8 (default: init image's, else 512)")
    g.add_argument(f"--{prefix}height", dest="sd_height", type=int, help="pixels, multiple of 8 (default: init image's, else 512)")
    g.add_argument(f"--{prefix}num-images", dest="sd_num_images", type=int, default=1,
                   help="draw N candidates and keep those in which a face is found")
    g.add_argument("--sd-model", type=Path,
                   help="SD 1.x .safetensors / .ckpt file or diffusers folder (default: the models folder, A1111's models/Stable-diffusion)")
    g.add_argument("--sd-config", type=Path,
                   help="diffusers-layout config folder for a single file of another shape (default: the shipped SD 1.5 configs)")
    g.add_argument(f"--{prefix}preset" if prefix else "--preset", dest="sd_preset", default="auto",
                   help=f"speed/memory preset: {', '.join(preset_names('portrait'))}, a .yaml file, or auto (by free GPU "
                   "memory; never throughput, which compiles first)")


def portrait_options(args, init_image: Path | None = None):
    """A PortraitOptions from parsed arguments (``init_image`` overrides ``args.init_image``)."""
    from talker.portrait.options import PortraitOptions

    return PortraitOptions(
        prompt=args.sd_prompt, prompt_file=args.sd_prompt_file, negative_prompt=args.sd_negative_prompt,
        init_image=init_image if init_image is not None else getattr(args, "init_image", None),
        strength=args.sd_strength, mask=args.sd_mask, controlnet=args.sd_controlnet,
        controlnet_model=args.sd_controlnet_model, controlnet_scale=args.sd_controlnet_scale, steps=args.sd_steps,
        guidance=args.sd_guidance, seed=args.sd_seed, width=args.sd_width, height=args.sd_height,
        num_images=args.sd_num_images, sd_model=args.sd_model, sd_config=args.sd_config, preset=args.sd_preset,
    )


def run_portrait(args) -> int:
    from talker.portrait.generate import make_portrait

    result = make_portrait(portrait_options(args), args.out, args.force)
    report(result)
    print(result.path)
    return 0


def report(result) -> None:
    """One stderr line per fact the user should know: retries, rejected candidates, the choice."""
    if len(result.presets_tried) > 1:
        print(f"portrait: out of GPU memory with preset {result.presets_tried[0]}; "
              f"retried with {result.presets_tried[1]}", file=sys.stderr)
    if len(result.candidates) > 1:
        print(f"portrait: {len(result.kept)} of {len(result.candidates)} pictures show a face; chose seed "
              f"{result.chosen.seed} (face score {result.chosen.face_score:.2f})", file=sys.stderr)
