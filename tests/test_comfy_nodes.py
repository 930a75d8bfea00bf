"""ComfyUI nodes: loaded the way ComfyUI loads a custom node folder, then run on a real portrait and speech.

The nodes are called as ComfyUI calls them (``getattr(node(), FUNCTION)(**inputs)``) with ComfyUI's
data layouts: IMAGE (B, H, W, 3) float 0..1, AUDIO {"waveform": (B, C, N), "sample_rate"}.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import media_factory as mf
from talker.comfy import nodes
from talker.errors import OptionError
from talker.media import probe_media, read_image
from talker.types import FPS

ROOT = Path(__file__).resolve().parents[1]
SPOKEN = "Hello there, my friend."

# ComfyUI's loader for a custom node folder (nodes.load_custom_node): the module is named after the
# folder's path, registered in sys.modules, then executed; custom_nodes/ is on sys.path, the folder is not.
LOAD_LIKE_COMFYUI = """
import importlib.util, json, os, sys
folder = sys.argv[1]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != folder]
name = folder.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"))
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
out = {}
for key, cls in module.NODE_CLASS_MAPPINGS.items():
    out[key] = {"display": module.NODE_DISPLAY_NAME_MAPPINGS[key], "function": cls.FUNCTION,
                "category": cls.CATEGORY, "returns": list(cls.RETURN_TYPES), "names": list(cls.RETURN_NAMES),
                "inputs": {k: {n: v[0] if isinstance(v[0], str) else "COMBO" for n, v in d.items()}
                           for k, d in cls.INPUT_TYPES().items()}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """(AUDIO dict, path): about 1.5 s of Festival speech as ComfyUI's Load Audio gives it, made stereo."""
    wav = tmp_path_factory.mktemp("comfy_speech") / "hello.wav"
    mf.festival_speech(SPOKEN, wav)
    data, rate = sf.read(wav, dtype="float32", always_2d=True)
    stereo = np.repeat(data, 2, axis=1).T  # (2, N)
    return {"waveform": torch.from_numpy(stereo)[None], "sample_rate": rate}, wav


def run_node(cls, **inputs):
    """Call a node as ComfyUI's executor does: an instance, its FUNCTION, the inputs by name."""
    return getattr(cls(), cls.FUNCTION)(**inputs)


def widget_defaults(cls) -> dict:
    """The value each widget of a node starts with (ComfyUI's default, or a combo's first entry)."""
    out = {}
    for name, spec in cls.INPUT_TYPES()["required"].items():
        kind, opts = spec[0], spec[1] if len(spec) > 1 else {}
        if isinstance(kind, list):
            out[name] = opts.get("default", kind[0])
        elif "default" in opts:
            out[name] = opts["default"]
    return out


def test_comfyui_loads_the_folder_and_every_node_is_well_formed(tmp_path):
    proc = subprocess.run([sys.executable, "-c", LOAD_LIKE_COMFYUI, str(ROOT)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(found) == {"TalkerLoadPortrait", "TalkerMakeVideo", "TalkerScore"}
    assert found["TalkerMakeVideo"]["returns"] == ["STRING", "IMAGE", "FLOAT"]
    assert found["TalkerMakeVideo"]["inputs"]["required"]["portrait"] == "IMAGE"
    assert found["TalkerMakeVideo"]["inputs"]["required"]["audio"] == "AUDIO"
    assert found["TalkerLoadPortrait"]["returns"] == ["IMAGE"]
    assert found["TalkerScore"]["returns"] == ["STRING", "STRING", "IMAGE"]
    for key, node in found.items():
        cls = nodes.NODE_CLASS_MAPPINGS[key]
        assert node["category"] == "talker" and len(node["names"]) == len(node["returns"])
        # ComfyUI passes every input by name: they must bind to the FUNCTION's parameters
        params = inspect.signature(getattr(cls, node["function"])).parameters
        named = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD} - {"self"}
        declared = {n for d in node["inputs"].values() for n in d}
        assert named <= declared, key
        assert declared <= named or any(p.kind is p.VAR_KEYWORD for p in params.values()), key
        for name in named & set(node["inputs"]["required"]):
            assert params[name].default is inspect.Parameter.empty, (key, name)


def test_make_widgets_are_the_page_rows_with_the_cli_defaults():
    from talker.options import MakeOptions
    from talker.webui.form import FIELDS

    defaults = widget_defaults(nodes.TalkerMakeVideo)
    assert set(defaults) == {row.name for row in FIELDS} | {"filename_prefix"}
    cli = MakeOptions()
    for row in FIELDS:
        assert getattr(cli, row.name) == (None if defaults[row.name] == -1 and row.optional else defaults[row.name]), row.name
    spec = nodes.TalkerMakeVideo.INPUT_TYPES()["required"]
    assert spec["pose_style"][0] == "INT" and (spec["pose_style"][1]["min"], spec["pose_style"][1]["max"]) == (0, 45)
    assert spec["head_motion"][0] == "FLOAT" and spec["still"][0] == "BOOLEAN"


def test_load_portrait_gives_one_image_batch(astronaut_png):
    (image,) = run_node(nodes.TalkerLoadPortrait, path=str(astronaut_png))
    assert image.dtype == torch.float32 and tuple(image.shape) == (1, 512, 512, 3)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert np.array_equal(nodes.image_to_rgb(image), read_image(astronaut_png))


def test_make_and_score_nodes_on_a_real_portrait_and_speech(tmp_path, monkeypatch, astronaut_png, speech):
    monkeypatch.chdir(tmp_path)  # outside ComfyUI the output folder is ./output
    audio, wav = speech
    (portrait,) = run_node(nodes.TalkerLoadPortrait, path=str(astronaut_png))
    inputs = {**widget_defaults(nodes.TalkerMakeVideo), "backend": "embedded"}
    made = run_node(nodes.TalkerMakeVideo, portrait=portrait, audio=audio, **inputs)
    video_path, frames, fps = made["result"]
    assert made["ui"]["images"] == [{"filename": "clip_00001.mp4", "subfolder": "talker", "type": "output"}]

    video = Path(video_path)
    assert video == tmp_path / "output" / "talker" / "clip_00001.mp4" and video.is_file()
    facts = probe_media(video)
    assert facts["video"]["codec"] == "h264" and facts["audio"]["codec"] == "aac"
    assert facts["audio"]["channels"] == 2  # the recording as given, not the 16 kHz mono copy
    seconds = sf.info(wav).duration
    expected = round(seconds * FPS)
    assert abs(facts["duration_s"] - seconds) <= 1.5 / FPS
    assert fps == FPS
    assert frames.dtype == torch.float32
    assert tuple(frames.shape) == (expected, facts["video"]["height"], facts["video"]["width"], 3)
    assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0
    assert float(frames.std(dim=0).mean()) > 0.002  # the face moves: not one picture repeated

    # a second run takes the next number; nothing is overwritten
    again, _, _ = run_node(nodes.TalkerMakeVideo, portrait=portrait, audio=audio, **inputs)["result"]
    assert Path(again).name == "clip_00002.mp4" and video.is_file()

    text, verdict, plot = run_node(nodes.TalkerScore, video_path=video_path, audio=audio, portrait=portrait,
                                   transcript=SPOKEN)
    assert verdict in ("pass", "warn", "fail")
    assert "av_offset_ms" in text and "closure_rate" in text and text.splitlines()[-1].startswith(verdict.upper())
    report = json.loads(video.with_suffix(".report.json").read_text())
    assert report["verdict"] == verdict and report["video"] == str(video)
    assert plot.ndim == 4 and plot.shape[0] == 1 and plot.shape[-1] == 3 and plot.shape[1] > 100


def test_bad_inputs_are_refused_with_the_fix(tmp_path, monkeypatch, astronaut_png, speech):
    monkeypatch.chdir(tmp_path)
    audio, _ = speech
    (portrait,) = run_node(nodes.TalkerLoadPortrait, path=str(astronaut_png))
    inputs = {**widget_defaults(nodes.TalkerMakeVideo), "backend": "embedded"}
    with pytest.raises(OptionError, match="ImageFromBatch"):
        run_node(nodes.TalkerMakeVideo, portrait=portrait.repeat(2, 1, 1, 1), audio=audio, **inputs)
    with pytest.raises(OptionError, match="inside the output folder"):
        run_node(nodes.TalkerMakeVideo, portrait=portrait, audio=audio, **{**inputs, "filename_prefix": "../escape"})
    with pytest.raises(OptionError, match="pose-style"):
        run_node(nodes.TalkerMakeVideo, portrait=portrait, audio=audio, **{**inputs, "pose_style": 99})
    assert not list((tmp_path / "output").rglob("*.mp4"))
