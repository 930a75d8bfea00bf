"""The portrait stage on tiny random SD 1.x nets (tests/sd_factory.py): both file layouts, the four tasks,
seeds, paste-back of the kept pixels, the face check and the out-of-memory fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

import media_factory as mf
from sd_factory import one_thread, tiny  # noqa: F401 (fixtures)
from talker.portrait import PortraitOptions, generate, load_inputs
from talker.portrait.generate import Candidate, face_check

pytest.importorskip("diffusers")
STEPS = 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A 128x128 astronaut, a mask of its left third (white = redraw) and a noise picture."""
    folder = tmp_path_factory.mktemp("portrait-pictures")
    face = np.asarray(Image.fromarray(mf.astronaut()).resize((128, 128), Image.LANCZOS))
    mask = np.zeros((128, 128), np.uint8)
    mask[:, :40] = 255
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    return {
        "face": mf.save_png(face, folder / "face.png"), "noise": mf.save_png(noise, folder / "noise.png"),
        "mask": folder / "mask.png", "face_rgb": face, "mask_arr": mask, "noise_rgb": noise,
        "_": Image.fromarray(mask).save(folder / "mask.png"),
    }


def draw(tiny, single=True, **kw):
    """One generate() call on the tiny model (single file with its --sd-config, or the folder)."""
    model = kw.pop("sd_model", tiny["single"] if single else tiny["diffusers"])
    o = PortraitOptions(prompt=kw.pop("prompt", "portrait photo of an astronaut"), steps=STEPS, preset="cpu",
                        sd_model=model, sd_config=tiny["config"] if single else None, **kw).validate()
    if o.init_image is None:
        o.width = o.height = o.width or 64
    return [c.rgb for c in generate(o, load_inputs(o), o.sd_model, o.controlnet_model)]


def test_txt2img_single_file_equals_folder_and_seeds_repeat(tiny):
    a = draw(tiny, single=True, seed=3)[0]
    b = draw(tiny, single=False, seed=3)[0]
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    # the single file (original key layout, converted by diffusers) holds the folder's weights exactly
    assert np.array_equal(a, b)
    assert np.array_equal(a, draw(tiny, seed=3)[0])  # same seed, same picture
    from safetensors.torch import load_file

    ckpt = tiny["single"].with_name("tiny-sd.ckpt")  # the same weights as a torch pickle, as old .ckpt files hold them
    torch.save({"state_dict": load_file(str(tiny["single"]))}, ckpt)
    assert np.array_equal(draw(tiny, sd_model=ckpt, seed=3)[0], a)
    two = draw(tiny, seed=3, num_images=2)  # image i uses seed + i
    assert np.array_equal(two[0], a) and not np.array_equal(two[1], a)
    assert np.array_equal(two[1], draw(tiny, seed=4)[0])
    assert np.abs(a.astype(int) - draw(tiny, seed=3, prompt="a red car")[0]).mean() > 1  # the prompt matters


def test_img2img_follows_the_init_image(tiny, pictures):
    face = draw(tiny, init_image=pictures["face"], strength=0.5)[0]
    noise = draw(tiny, init_image=pictures["noise"], strength=0.5)[0]
    assert face.shape == (128, 128, 3)  # the init image's size
    assert np.abs(face.astype(int) - noise).mean() > 2
    assert draw(tiny, init_image=pictures["face"], strength=0.5, width=64, height=96)[0].shape == (96, 64, 3)


def test_inpaint_keeps_the_pixels_outside_the_mask(tiny, pictures):
    out = draw(tiny, init_image=pictures["face"], mask=pictures["mask"], strength=1.0)[0].astype(int)
    face = pictures["face_rgb"].astype(int)
    keep, redraw = pictures["mask_arr"] == 0, pictures["mask_arr"] == 255
    # pasted back through the mask: unchanged up to 8-bit rounding of the alpha blend (no VAE round trip)
    assert np.abs(out - face)[keep].max() <= 1
    assert np.abs(out - face)[redraw].mean() > 20  # the random nets redrew the white part


def test_controlnet_canny_guides_the_picture(tiny, pictures):
    plain = draw(tiny, init_image=pictures["face"], strength=0.8)[0].astype(int)
    kw = dict(init_image=pictures["face"], strength=0.8, controlnet="canny")
    single = draw(tiny, controlnet_model=tiny["controlnet_single"], **kw)[0]
    folder = draw(tiny, controlnet_model=tiny["controlnet"], **kw)[0]
    assert np.array_equal(single, folder)  # the ControlNet single file equals its folder
    diffusers_file = tiny["controlnet"] / "diffusion_pytorch_model.safetensors"  # the layout of sd-controlnet-canny
    assert np.array_equal(draw(tiny, controlnet_model=diffusers_file, **kw)[0], folder)
    assert np.abs(single - plain).mean() > 1  # the edges change the picture
    fewer_edges = draw(tiny, controlnet_model=tiny["controlnet"], canny_low=200, canny_high=250, **kw)[0]
    assert not np.array_equal(fewer_edges, folder)  # other edges, another picture
    masked = draw(tiny, controlnet_model=tiny["controlnet"], mask=pictures["mask"], **kw)[0].astype(int)
    assert np.abs(masked - pictures["face_rgb"])[pictures["mask_arr"] == 0].max() <= 1  # ControlNet inpaint


def test_face_check_keeps_the_pictures_with_a_face_big_enough_to_animate(pictures):
    close_up = np.ascontiguousarray(mf.astronaut()[16:208, 144:336])  # face 114 px wide
    small = pictures["face_rgb"]  # the whole astronaut at 128 px: a 26 px face
    kept = face_check([Candidate(0, pictures["noise_rgb"], "cpu"), Candidate(1, close_up, "cpu"), Candidate(2, small, "cpu")])
    assert [c.seed for c in kept] == [1] and kept[0].face_score > 0.5


def test_out_of_memory_retries_once_with_the_fallback_preset(tiny, tmp_path, monkeypatch, caplog):
    """The second picture's first try raises the real CUDA OOM; the run goes on with the lower preset."""
    import diffusers

    monkeypatch.setenv("TALKER_PRESETS", str(tmp_path))
    (tmp_path / "portrait").mkdir()
    (tmp_path / "portrait" / "big.yaml").write_text("gpu_memory_gb: 40\nfallback: small\nsettings:\n  device: cpu\n")
    (tmp_path / "portrait" / "small.yaml").write_text(
        "gpu_memory_gb: 2\nfallback: null\nsettings:\n  device: cpu\n  attention_slicing: true\n  vae_slicing: true\n")
    real = diffusers.StableDiffusionPipeline.__call__
    calls = []

    def once_out_of_memory(self, *args, **kwargs):
        calls.append(self.vae.use_slicing)
        if len(calls) == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "__call__", once_out_of_memory)
    o = PortraitOptions(prompt="a face", steps=STEPS, width=64, height=64, num_images=2, seed=5, preset="big",
                        sd_model=tiny["single"], sd_config=tiny["config"]).validate()
    tried = []
    with caplog.at_level(logging.WARNING, logger="talker.portrait.generate"):
        out = generate(o, load_inputs(o), o.sd_model, presets_tried=tried)
    assert tried == ["big", "small"] and calls == [False, False, True]  # the retry runs with small's knobs
    assert [(c.seed, c.preset) for c in out] == [(5, "big"), (6, "small")]  # the first picture was kept
    assert "out of GPU memory with portrait preset big after 1 of 2 pictures; retrying once with small" in caplog.text
    monkeypatch.undo()
    again = draw(tiny, seed=6, prompt="a face")[0].astype(int)  # the retried picture is the one seed 6 gives
    assert np.abs(out[1].rgb - again).max() <= 2  # (sliced attention sums in another order)


def test_out_of_memory_twice_is_a_clear_error(tiny, tmp_path, monkeypatch):
    import diffusers

    from talker.errors import TalkerError

    def always(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setenv("TALKER_PRESETS", str(tmp_path))
    (tmp_path / "portrait").mkdir()
    (tmp_path / "portrait" / "big.yaml").write_text("fallback: cpu\nsettings:\n  device: cpu\n")
    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "__call__", always)
    o = PortraitOptions(prompt="a face", steps=STEPS, width=64, height=64, preset="big",
                        sd_model=tiny["single"], sd_config=tiny["config"]).validate()
    with pytest.raises(TalkerError, match="out of GPU memory with portrait presets big and cpu: choose --preset low-vram"):
        generate(o, load_inputs(o), o.sd_model)


def test_shipped_portrait_presets_chain_down_and_cuda_graphs_need_compile():
    from talker.errors import OptionError
    from talker.portrait.settings import PortraitSettings, portrait_presets

    chain = portrait_presets("throughput", None)
    assert [p.name for p in chain] == ["throughput", "fast", "balanced", "low-vram", "cpu"]
    assert chain[0].settings.compile and chain[0].settings.cuda_graphs
    with pytest.raises(OptionError, match="cuda_graphs needs compile"):
        PortraitSettings(device="cuda", precision="fp16", cuda_graphs=True).validate()
