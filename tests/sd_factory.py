"""Tiny randomly initialised Stable Diffusion 1.x models, written in both layouts talker reads.

``build_tiny_sd(folder)`` writes, under ``folder``:

    diffusers/          a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)
    config/             the same folder without weights, plus controlnet/config.json: the ``--sd-config``
                        for the single files
    tiny-sd.safetensors the same weights in the original CompVis / A1111 single-file key layout
                        (model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*)
    controlnet/         a ControlNetModel folder (config.json + weights)
    tiny-controlnet.safetensors  the same ControlNet in the original layout (control_model.*)

The nets have SD 1.5's structure (4 UNet levels, 2 layers per level, 3 cross-attention levels, a
4-level VAE, a CLIP text encoder with the real 49408-token vocabulary and the shipped tokenizer) with
a few channels each, so a 64x64 picture takes a fraction of a second on a CPU. The single files are
converted back from the diffusers state dicts with the key maps of diffusers'
``scripts/convert_diffusers_to_original_stable_diffusion.py`` (Apache-2.0), extended to ControlNet;
loading them with talker and comparing with the folder proves both directions agree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from talker.portrait.models import SD15_CONFIG

TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(16, 16, 32, 32),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=32, attention_head_dim=2, norm_num_groups=8,
)
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(8, 8, 16, 16),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8,
    sample_size=64,
)
TINY_TEXT = dict(
    hidden_size=32, intermediate_size=37, num_attention_heads=2, num_hidden_layers=2, max_position_embeddings=77,
    vocab_size=49408, bos_token_id=0, eos_token_id=2, pad_token_id=1, projection_dim=32, hidden_act="quick_gelu",
)


def build_tiny_sd(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Write the tiny models (see the module docstring); returns their paths by name."""
    from diffusers import AutoencoderKL, ControlNetModel, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**TINY_UNET)
    vae = AutoencoderKL(**TINY_VAE)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 8, 8))
    with torch.no_grad():  # ControlNet's zero convolutions start at zero: give them weight, so the guide shows
        for name, p in controlnet.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")):
                p.normal_(0.0, 0.3)
    tokenizer = CLIPTokenizer.from_pretrained(str(SD15_CONFIG / "tokenizer"), local_files_only=True)
    scheduler = PNDMScheduler.from_pretrained(str(SD15_CONFIG), subfolder="scheduler", local_files_only=True)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    paths = {
        "diffusers": folder / "diffusers", "config": folder / "config", "single": folder / "tiny-sd.safetensors",
        "controlnet": folder / "controlnet", "controlnet_single": folder / "tiny-controlnet.safetensors",
    }
    pipe.save_pretrained(paths["diffusers"], safe_serialization=True)
    controlnet.save_pretrained(paths["controlnet"], safe_serialization=True)
    shutil.copytree(paths["diffusers"], paths["config"], ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    shutil.copytree(paths["controlnet"], paths["config"] / "controlnet", ignore=shutil.ignore_patterns("*.safetensors"))
    save_file(to_original_layout(unet, vae, text_encoder), str(paths["single"]))
    save_file(controlnet_to_original_layout(controlnet), str(paths["controlnet_single"]))
    return paths


def to_original_layout(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """One CompVis-layout state dict (what A1111 and civitai files hold) from diffusers components."""
    sd = {f"model.diffusion_model.{k}": v for k, v in _unet_keys(unet.state_dict()).items()}
    sd.update({f"first_stage_model.{k}": v for k, v in _vae_keys(vae.state_dict()).items()})
    sd.update({f"cond_stage_model.transformer.{_text_key(k)}": v for k, v in text_encoder.state_dict().items()})
    return {k: v.contiguous() for k, v in sd.items()}


def controlnet_to_original_layout(controlnet) -> dict[str, torch.Tensor]:
    """A ControlNet state dict in the layout of lllyasviel's control_*.pth files (control_model.*)."""
    out = {}
    for key, value in _unet_keys(controlnet.state_dict()).items():
        if key.startswith("controlnet_down_blocks."):
            i, rest = key[len("controlnet_down_blocks."):].split(".", 1)
            key = f"zero_convs.{i}.0.{rest}"
        elif key.startswith("controlnet_mid_block."):
            key = "middle_block_out.0." + key[len("controlnet_mid_block."):]
        elif key.startswith("controlnet_cond_embedding."):
            rest = key[len("controlnet_cond_embedding."):]
            if rest.startswith("conv_in."):
                key = "input_hint_block.0." + rest[len("conv_in."):]
            elif rest.startswith("conv_out."):
                key = "input_hint_block.14." + rest[len("conv_out."):]
            else:
                j, tail = rest[len("blocks."):].split(".", 1)
                key = f"input_hint_block.{2 * (int(j) + 1)}.{tail}"
        out[f"control_model.{key}"] = value.contiguous()
    return out


def _text_key(key: str) -> str:
    """The original files name the CLIP text model's weights ``text_model.*`` (transformers 5 drops the prefix)."""
    return key if key.startswith("text_model.") else f"text_model.{key}"


# --- key maps: diffusers -> original (after diffusers' convert_diffusers_to_original_stable_diffusion.py)


def _unet_map() -> tuple[list, list, list]:
    plain = [("time_embed.0.weight", "time_embedding.linear_1.weight"), ("time_embed.0.bias", "time_embedding.linear_1.bias"),
             ("time_embed.2.weight", "time_embedding.linear_2.weight"), ("time_embed.2.bias", "time_embedding.linear_2.bias"),
             ("input_blocks.0.0.weight", "conv_in.weight"), ("input_blocks.0.0.bias", "conv_in.bias"),
             ("out.0.weight", "conv_norm_out.weight"), ("out.0.bias", "conv_norm_out.bias"),
             ("out.2.weight", "conv_out.weight"), ("out.2.bias", "conv_out.bias")]
    resnet = [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"),
              ("out_layers.3", "conv2"), ("emb_layers.1", "time_emb_proj"), ("skip_connection", "conv_shortcut")]
    layer = []
    for i in range(4):
        for j in range(2):
            layer.append((f"input_blocks.{3 * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if i < 3:
                layer.append((f"input_blocks.{3 * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(3):
            layer.append((f"output_blocks.{3 * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if i > 0:
                layer.append((f"output_blocks.{3 * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < 3:
            layer.append((f"input_blocks.{3 * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            layer.append((f"output_blocks.{3 * i + 2}.{1 if i == 0 else 2}.", f"up_blocks.{i}.upsamplers.0."))
    layer.append(("middle_block.1.", "mid_block.attentions.0."))
    for j in range(2):
        layer.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))
    return plain, resnet, layer


def _unet_keys(state: dict) -> dict:
    plain, resnet, layer = _unet_map()
    plain = {hf: sd for sd, hf in plain}
    out = {}
    for key, value in state.items():
        new = plain.get(key, key)
        if "resnets" in new:
            for sd, hf in resnet:
                new = new.replace(hf, sd)
        for sd, hf in layer:
            new = new.replace(hf, sd)
        out[new] = value
    return out


def _vae_keys(state: dict) -> dict:
    pairs = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"), ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(4):
        for j in range(2):
            pairs.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < 3:
            pairs.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            pairs.append((f"up.{3 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        for j in range(3):
            pairs.append((f"decoder.up.{3 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
    for i in range(2):
        pairs.append((f"mid.block_{i + 1}.", f"mid_block.resnets.{i}."))
    attn = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")]
    out = {}
    for key, value in state.items():
        new = key
        for sd, hf in pairs:
            new = new.replace(hf, sd)
        if "attn_1." in new:
            for sd, hf in attn:
                new = new.replace(hf, sd)
            if value.ndim == 2:  # the original VAE's attention projections are 1x1 convolutions
                value = value.reshape(*value.shape, 1, 1)
        out[new] = value
    return out


_BUILT: dict[str, dict[str, Path]] = {}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """The paths of ``build_tiny_sd``, built once per test session (import this fixture into a test module)."""
    if "paths" not in _BUILT:
        _BUILT["paths"] = build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))
    return _BUILT["paths"]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: on 2 cores shared with other work, two threads spin-wait and run 3x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
