"""`talker portrait` and `talker make --portrait-prompt` on tiny random SD nets: outputs, --force,
the face check, models found in an A1111 folder, and a clear error for each user mistake."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import media_factory as mf
from sd_factory import one_thread, tiny  # noqa: F401 (fixtures)
from talker.cli import main
from talker.media import read_image

pytest.importorskip("diffusers")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def face_and_mask(tmp_path_factory):
    """A 192x192 crop of the astronaut (face 114 px wide) and a mask that redraws the right strip (the face stays)."""
    folder = tmp_path_factory.mktemp("portrait-cli")
    face = mf.save_png(np.ascontiguousarray(mf.astronaut()[16:208, 144:336]), folder / "face.png")
    mask = np.zeros((192, 192), np.uint8)
    mask[:, 160:] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return face, folder / "mask.png"


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    """An empty models folder and home: nothing is found unless a test puts it there."""
    monkeypatch.setenv("TALKER_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TALKER_REUSE_DIRS", raising=False)
    monkeypatch.delenv("SADTALKER_CHECKPOINTS", raising=False)
    return tmp_path


def portrait(tiny, *args, model=True):
    base = ["portrait", "--steps", "2", "--preset", "cpu", "--sd-config", str(tiny["config"])]
    return main([*base, *(["--sd-model", str(tiny["single"])] if model else []), *map(str, args)])


def test_inpaint_candidates_with_a_face_are_written_and_force_is_needed(tiny, face_and_mask, tmp_path, capsys):
    face, mask = face_and_mask
    out = tmp_path / "out" / "me.png"
    assert portrait(tiny, "--prompt", "red hair", "--init-image", face, "--mask", mask, "--num-images", "2",
                    "--seed", "7", "-o", out) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "2 of 2 pictures show a face" in captured.err
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == ["me-seed7.png", "me-seed8.png", "me.png"]  # no temporary file is left
    chosen = read_image(out)
    assert chosen.shape == (192, 192, 3)
    assert any(np.array_equal(chosen, read_image(out.parent / n)) for n in ("me-seed7.png", "me-seed8.png"))
    assert portrait(tiny, "--prompt", "red hair", "--init-image", face, "--mask", mask, "-o", out) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert portrait(tiny, "--prompt", "red hair", "--init-image", face, "--mask", mask, "-o", out, "--force") == 0


def test_a_picture_without_a_face_is_refused_and_nothing_is_written(tiny, tmp_path, capsys):
    out = tmp_path / "noise.png"
    assert portrait(tiny, "--prompt", "a face", "--width", "64", "--height", "64", "-o", out) == 2
    assert "the face stage found no face to animate in the picture drawn" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_models_are_found_in_an_a1111_folder(tiny, face_and_mask, no_models, monkeypatch, capsys):
    webui = no_models / "stable-diffusion-webui"
    (webui / "models" / "Stable-diffusion").mkdir(parents=True)
    (webui / "extensions" / "sd-webui-controlnet" / "models").mkdir(parents=True)
    (webui / "webui.py").write_text("")
    (webui / "models" / "Stable-diffusion" / "tiny.safetensors").write_bytes(tiny["single"].read_bytes())
    (webui / "extensions" / "sd-webui-controlnet" / "models" / "canny.safetensors").write_bytes(
        tiny["controlnet_single"].read_bytes())
    face, mask = face_and_mask
    out = no_models / "styled.png"
    args = ["--prompt", "game character", "--init-image", face, "--mask", mask, "--controlnet", "canny", "-o", out]
    assert portrait(tiny, *args, model=False) == 2  # A1111's folder is not known yet
    assert "no Stable Diffusion model found" in capsys.readouterr().err
    monkeypatch.setenv("TALKER_REUSE_DIRS", str(webui))
    assert portrait(tiny, *args, model=False) == 0  # both models found there, used in place
    assert out.is_file()


@pytest.mark.parametrize("case, message", [
    ("missing prompt file", "prompt file .* does not exist"),
    ("empty prompt file", "prompt file .* is empty"),
    ("binary prompt file", "prompt file .* is not UTF-8 text"),
    ("missing model", "Stable Diffusion model .*nowhere.safetensors does not exist"),
    ("truncated checkpoint", "is damaged or not a safetensors file"),
    ("not an SD checkpoint", "holds no Stable Diffusion UNet"),
    ("garbage ckpt", "cannot load Stable Diffusion model .*bad.ckpt"),
    ("wrong-size mask", "mask .* is 64x64 but the init image is 192x192"),
    ("mask without init image", "--mask needs --init-image"),
    ("bad size", "--width must be a multiple of 8"),
    ("no denoising step", "leaves no denoising step"),
])
def test_user_mistakes_get_one_clear_error(case, message, tiny, face_and_mask, tmp_path, capsys):
    face, mask = face_and_mask
    out = tmp_path / "x.png"
    args = ["--prompt", "a face", "--width", "64", "--height", "64", "-o", out]
    model = tiny["single"]
    if case.endswith("prompt file"):
        path = tmp_path / "prompt.txt"
        if case.startswith("empty"):
            path.write_text("  \n")
        elif case.startswith("binary"):
            path.write_bytes(b"\xff\xfe\x00portrait")
        args = ["--prompt-file", path, "-o", out]
    elif case == "missing model":
        model = tmp_path / "nowhere.safetensors"
    elif case == "truncated checkpoint":
        model = tmp_path / "cut.safetensors"
        model.write_bytes(tiny["single"].read_bytes()[:5000])
    elif case == "not an SD checkpoint":
        model = tmp_path / "other.safetensors"
        save_file({"encoder.weight": torch.zeros(2, 2)}, str(model))
    elif case == "garbage ckpt":
        model = tmp_path / "bad.ckpt"
        model.write_bytes(b"this is not a torch pickle" * 100)
    elif case == "wrong-size mask":
        small = tmp_path / "small-mask.png"
        Image.fromarray(np.full((64, 64), 255, np.uint8)).save(small)
        args = ["--prompt", "a face", "--init-image", face, "--mask", small, "-o", out]
    elif case == "mask without init image":
        args += ["--mask", mask]
    elif case == "bad size":
        args[3] = "60"
    elif case == "no denoising step":
        args = ["--prompt", "a face", "--init-image", face, "--strength", "0.3", "-o", out]
    status = main(["portrait", "--steps", "2", "--preset", "cpu", "--sd-config", str(tiny["config"]),
                   "--sd-model", str(model), *map(str, args)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    import re

    assert re.search(message, err), err
    assert not out.exists()


def test_make_draws_the_portrait_first_and_saves_it_beside_the_video(tiny, face_and_mask, tmp_path, capsys):
    face, mask = face_and_mask
    video = tmp_path / "clip.mp4"
    status = main(["make", "--image", str(face), "--text", "Hello there.", "--backend", "embedded", "-o", str(video),
                   "--portrait-prompt", "red hair", "--portrait-mask", str(mask), "--portrait-steps", "2",
                   "--portrait-preset", "cpu", "--sd-model", str(tiny["single"]), "--sd-config", str(tiny["config"])])
    assert status == 0, capsys.readouterr().err
    portrait_png = tmp_path / "clip.portrait.png"
    assert video.stat().st_size > 1000 and portrait_png.is_file()
    drawn, original = read_image(portrait_png).astype(int), read_image(face).astype(int)
    assert np.abs(drawn - original)[:, :156].max() <= 1 and np.abs(drawn - original)[:, 160:].mean() > 20


def test_without_diffusers_the_error_says_how_to_install_it(tiny, monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "diffusers", None)  # what `import diffusers` meets when it is not installed
    assert portrait(tiny, "--prompt", "a face", "--width", "64", "--height", "64", "-o", tmp_path / "x.png") == 2
    assert "pip install 'talker[sd]'" in capsys.readouterr().err
