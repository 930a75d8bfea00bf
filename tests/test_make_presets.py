"""Make presets (talker/data/presets/make): the shipped ones load and chain, bad files are refused
with the file named, explicit values win over a preset, and `talker make --preset` uses them."""

from __future__ import annotations

import dataclasses

import pytest
import soundfile as sf

from conftest import run_talker
from talker.errors import OptionError
from talker.make_presets import AUTO_ORDER, MakeSettings, apply_preset, fallback_options, preset_chain
from talker.media import probe_media
from talker.options import MakeOptions
from talker.presets import SHIPPED, load_preset


def test_shipped_presets_load_and_fall_back_in_order():
    assert sorted(p.stem for p in (SHIPPED / "make").glob("*.yaml")) == sorted(AUTO_ORDER)
    chain = preset_chain("quality")
    assert [p.name for p in chain] == ["quality", "balanced", "fast", "low-vram", "cpu"]
    memory = [p.gpu_memory_gb for p in chain]
    assert memory[-1] is None and memory[:-1] == sorted(memory[:-1], reverse=True), "each fallback needs less GPU memory"
    for p in chain:  # every preset names every setting explicitly
        text = p.path.read_text()
        assert p.description and all(f"{name}:" in text for name in ("size", "precision", "batch_size", "enhancer", "compile"))
    assert chain[0].settings == MakeSettings(size=512, precision="fp16", batch_size=8, enhancer="gfpgan", compile=True, device="cuda")
    assert chain[-1].settings.device == "cpu" and chain[-1].settings.precision == "fp32"


@pytest.mark.parametrize("text, message", [
    ("settings:\n  size: 384\n", "size must be 256 or 512"),
    ("settings:\n  precision: fp64\n", "'precision' = 'fp64' must be one of"),
    ("settings:\n  batch_size: 0\n", "batch_size must be at least 1"),
    ("settings:\n  enhancer: codeformer\n", "'enhancer' = 'codeformer'"),
    ("settings:\n  speed: 3\n", "unknown setting 'speed'"),
    ("gpu_memory_gb: lots\n", "gpu_memory_gb must be a positive number"),
])
def test_a_bad_preset_file_is_refused_with_the_file_named(tmp_path, monkeypatch, text, message):
    monkeypatch.setenv("TALKER_PRESETS", str(tmp_path))
    (tmp_path / "make").mkdir()
    (tmp_path / "make" / "mine.yaml").write_text(text)
    with pytest.raises(OptionError, match=message) as err:
        load_preset("make", "mine", MakeSettings)
    assert str(tmp_path / "make" / "mine.yaml") in str(err.value)
    with pytest.raises(OptionError, match=message):  # MakeOptions.validate checks the preset too
        MakeOptions(image="a.png", text="hi", preset="mine").validate()


def test_unknown_preset_names_the_choices():
    with pytest.raises(OptionError, match="unknown make preset 'turbo': choose one of balanced, cpu, fast, low-vram, quality"):
        MakeOptions(image="a.png", text="hi", preset="turbo").validate()


def test_explicit_values_win_over_the_preset():
    base = MakeOptions(image="a.png", text="hi", preset="quality")
    options, chain = apply_preset(base)
    assert (options.size, options.precision, options.batch_size, options.enhancer, options.compile, options.device) == (
        512, "fp16", 8, "gfpgan", True, "cuda")
    assert base.size == 256, "apply_preset returns a copy"
    changed, _ = apply_preset(dataclasses.replace(base, batch_size=3, precision="bf16"))
    assert (changed.size, changed.batch_size, changed.precision) == (512, 3, "bf16")  # values changed from the default win
    kept, _ = apply_preset(base, keep=("size", "device"))  # flags given on the command line win, default or not
    assert (kept.size, kept.device, kept.precision) == (256, "auto", "fp16")
    assert apply_preset(MakeOptions(image="a.png", text="hi")) == (MakeOptions(image="a.png", text="hi"), [])
    lower = fallback_options(options, chain[3])  # low-vram: batch, precision, compile change; size and enhancer stay
    assert (lower.size, lower.enhancer, lower.batch_size, lower.precision, lower.compile) == (512, "gfpgan", 2, "fp16", False)


def test_auto_picks_by_free_gpu_memory(monkeypatch):
    import talker.make_presets as mp

    monkeypatch.setattr(mp, "free_gpu_gb", lambda: 5.0)
    assert [p.name for p in preset_chain("auto")] == ["fast", "low-vram", "cpu"]
    monkeypatch.setattr(mp, "free_gpu_gb", lambda: None)  # no CUDA GPU
    assert [p.name for p in preset_chain("auto")] == ["cpu"]


def test_cli_preset_with_explicit_flags(astronaut_png, speech_pbm, tmp_path):
    wav, _ = speech_pbm
    data, sr = sf.read(wav, dtype="float32")
    short = tmp_path / "short.wav"
    sf.write(short, data[: sr], sr)
    out = tmp_path / "out.mp4"
    # quality says 512 px, fp16, GFPGAN on CUDA: every one of them is overridden here
    proc = run_talker("make", "--image", astronaut_png, "--audio", short, "--backend", "embedded", "--preset", "quality",
                      "--size", "256", "--device", "cpu", "--precision", "fp32", "--enhancer", "none", "-o", out,
                      env={"OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    assert probe_media(out)["video"]["width"] == 256
    bad = run_talker("make", "--image", astronaut_png, "--audio", short, "--preset", "quality", "--device", "cpu",
                     "--precision", "fp32", "-o", tmp_path / "bad.mp4",
                     env={"TALKER_MODELS": str(tmp_path / "models"), "HOME": str(tmp_path)})
    assert bad.returncode == 2 and "error: face restoration needs GFPGAN" in bad.stderr  # the preset's enhancer applied
    assert not (tmp_path / "bad.mp4").exists()
