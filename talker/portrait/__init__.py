"""The portrait stage (optional extra ``talker[sd]``): Stable Diffusion 1.x makes or restyles the portrait.

    PortraitOptions        what to draw: prompt, init image + strength, mask, ControlNet canny, seed ... (options.py)
    PortraitSettings       speed and memory knobs, chosen by a YAML preset (settings.py)
    find_sd_model, load_pipeline   local model files -> diffusers pipeline, never a hub (models.py)
    make_portrait(options, out)    draw, keep the pictures with a face, write the PNG (generate.py)

diffusers, transformers and torch are imported on first use, not with this package.
"""

from talker.portrait.generate import Candidate, PortraitInputs, PortraitResult, generate, load_inputs, make_portrait
from talker.portrait.options import PortraitOptions
from talker.portrait.settings import PortraitSettings

__all__ = [
    "Candidate",
    "PortraitInputs",
    "PortraitOptions",
    "PortraitResult",
    "PortraitSettings",
    "generate",
    "load_inputs",
    "make_portrait",
]
