"""The preset loader (talker.presets): lookup order, validation messages, fallback chains, auto pick."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from talker.errors import OptionError
from talker.presets import fallback_chain, find_preset, load_preset, pick_by_memory, preset_names


@dataclass
class Knobs:
    precision: Literal["fp32", "fp16"] = "fp32"
    batch_size: int = 1
    scale: float = 1.0
    compile: bool = False
    note: str | None = None

    def validate(self):
        if self.batch_size < 1:
            raise OptionError(f"batch_size must be at least 1, not {self.batch_size}")


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKER_PRESETS", str(tmp_path))
    (tmp_path / "demo").mkdir()
    return tmp_path / "demo"


def write(folder, name, text):
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_user_preset_loads_with_defaults_and_chain(user_dir):
    write(user_dir, "fast", "description: quick\ngpu_memory_gb: 8\nfallback: small\nsettings:\n  precision: fp16\n  batch_size: 16\n  scale: 2\n")
    write(user_dir, "small", "gpu_memory_gb: 2\nfallback: cpu\nsettings:\n  batch_size: 2\n")
    write(user_dir, "cpu", "gpu_memory_gb: null\nfallback: fast\n")  # a cycle back to the top ends the chain
    p = load_preset("demo", "fast", Knobs)
    assert p.settings == Knobs(precision="fp16", batch_size=16, scale=2, compile=False)
    assert (p.name, p.gpu_memory_gb, p.fallback, p.description) == ("fast", 8.0, "small", "quick")
    assert [q.name for q in fallback_chain("demo", "fast", Knobs)] == ["fast", "small", "cpu"]
    assert preset_names("demo") == ["cpu", "fast", "small"]
    assert pick_by_memory("demo", ["fast", "small", "cpu"], 4.0, Knobs).name == "small"
    assert pick_by_memory("demo", ["fast", "small", "cpu"], None, Knobs).name == "cpu"
    with pytest.raises(OptionError, match="fits 1.0 GiB"):
        pick_by_memory("demo", ["fast", "small"], 1.0, Knobs)


def test_path_and_unknown_name(user_dir, tmp_path):
    path = write(tmp_path, "mine", "settings:\n  compile: true\n")
    assert load_preset("demo", path, Knobs).settings.compile is True
    with pytest.raises(OptionError, match="unknown demo preset 'nope'"):
        find_preset("demo", "nope")
    with pytest.raises(OptionError, match="does not exist"):
        find_preset("demo", tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "text, message",
    [
        ("settings: [1, 2\n", "not valid YAML at line"),
        ("- a list\n", "must be a mapping"),
        ("speed: 3\n", "unknown key 'speed'"),
        ("gpu_memory_gb: -1\n", "gpu_memory_gb must be a positive number"),
        ("fallback: 3\n", "fallback must be the name"),
        ("settings:\n  batchsize: 4\n", "unknown setting 'batchsize'; allowed: precision, batch_size"),
        ("settings:\n  batch_size: four\n", "'batch_size' = 'four' must be an int"),
        ("settings:\n  compile: 1\n", "'compile' = 1 must be a bool"),
        ("settings:\n  precision: fp64\n", "must be one of 'fp32', 'fp16'"),
        ("settings:\n  note: 3\n", "'note' = 3 must be a string or null"),
        ("settings:\n  batch_size: 0\n", "batch_size must be at least 1"),
    ],
)
def test_bad_preset_files_are_refused_with_the_file_named(user_dir, text, message):
    path = write(user_dir, "bad", text)
    with pytest.raises(OptionError, match=message) as err:
        load_preset("demo", "bad", Knobs)
    assert str(path) in str(err.value)
