"""ComfyUI nodes: loaded the way ComfyUI loads a custom node folder, then run on a real portrait and speech.

The nodes are called as ComfyUI calls them (``getattr(node(), FUNCTION)(**inputs)``) with ComfyUI's
data layouts: IMAGE (B, H, W, 3) float 0..1, AUDIO {"waveform": (B, C, N), "sample_rate"}. Outside
ComfyUI a VIDEO is ``talker.comfy.values.VideoFile``; the last test runs the VIDEO through the real
``comfy_api`` in ComfyUI's own Python when a ComfyUI checkout is found ($TALKER_COMFYUI, the folder
holding ComfyUI/ and venv/).
"""

from __future__ import annotations

import inspect
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import media_factory as mf
from talker.comfy import nodes
from talker.comfy.values import VideoFile
from talker.errors import InputAudioError, OptionError
from talker.media import probe_media, read_image
from talker.types import FPS

ROOT = Path(__file__).resolve().parents[1]
SPOKEN = "Hello there, my friend."
COMFY_HOST = Path(os.environ.get("TALKER_COMFYUI", "/work/hosts/comfy"))

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
out = {"web": os.path.abspath(os.path.join(folder, module.WEB_DIRECTORY)), "nodes": {}}
for key, cls in module.NODE_CLASS_MAPPINGS.items():
    out["nodes"][key] = {"display": module.NODE_DISPLAY_NAME_MAPPINGS[key], "function": cls.FUNCTION,
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


@pytest.fixture
def comfy_dirs(tmp_path, monkeypatch, astronaut_png):
    """A working directory standing for ComfyUI's: input/ holding the portrait 'astronaut.png'."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input").mkdir()
    shutil.copy(astronaut_png, tmp_path / "input" / "astronaut.png")
    return tmp_path


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
    assert "not loaded" not in proc.stdout
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    found = loaded["nodes"]
    assert sorted(p.name for p in Path(loaded["web"]).glob("*.js")) == ["talker_score.js"]
    assert set(found) == {"TalkerLoadPortrait", "TalkerTextToSpeech", "TalkerMakeVideo", "TalkerScore"}
    assert found["TalkerMakeVideo"]["returns"] == ["VIDEO", "AUDIO"]
    assert found["TalkerMakeVideo"]["inputs"]["required"]["portrait"] == "IMAGE"
    assert found["TalkerMakeVideo"]["inputs"]["required"]["audio"] == "AUDIO"
    assert found["TalkerLoadPortrait"]["returns"] == ["IMAGE"]
    assert found["TalkerLoadPortrait"]["inputs"]["required"]["image"] == "COMBO"
    assert found["TalkerTextToSpeech"]["returns"] == ["AUDIO", "STRING"]
    assert found["TalkerScore"]["returns"] == ["STRING", "STRING", "IMAGE"]
    assert found["TalkerScore"]["inputs"]["required"]["video"] == "VIDEO"
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


def test_a_missing_dependency_is_one_console_line_and_no_nodes(tmp_path):
    folder = tmp_path / "talker"
    folder.mkdir()
    for name in ("__init__.py", "talker"):
        (folder / name).symlink_to(ROOT / name)
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    (folder / "requirements.txt").write_text("\n".join([*lines, "talker-test-absent-package>=1"]) + "\n")
    script = LOAD_LIKE_COMFYUI + "\nassert not module.NODE_CLASS_MAPPINGS\n"
    proc = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout.strip().splitlines()[:-1]
    assert len(said) == 1 and "talker-test-absent-package>=1" in said[0], proc.stdout
    assert "-m pip install -r" in said[0] and str(folder / "requirements.txt") in said[0]
    assert not proc.stderr.strip(), proc.stderr


def test_requirements_txt_is_the_package_dependencies_without_torch():
    import tomllib

    listed = [ln for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert listed == [d for d in project["project"]["dependencies"] if not d.startswith("torch")]
    comfy = project["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]


def _widgets(cls):
    for section in cls.INPUT_TYPES().values():
        for name, spec in section.items():
            if len(spec) > 1 and (isinstance(spec[0], list) or spec[0] in ("INT", "FLOAT", "BOOLEAN", "STRING")):
                yield name, spec[0], spec[1]


def test_every_widget_default_is_one_of_its_values(comfy_dirs):
    """What ComfyUI's prompt validation checks (a combo's value in its list, a number within
    min..max), applied to every widget's default and to the ends of every range of Make."""
    from talker.options import SEED_MAX
    from talker.webui.form import build_options

    checked = 0
    for key, cls in nodes.NODE_CLASS_MAPPINGS.items():
        for name, kind, opts in _widgets(cls):
            assert "default" in opts or isinstance(kind, list), (key, name)
            default = opts.get("default")
            if isinstance(kind, list):
                assert kind, (key, name)  # never an empty list here: input/ holds a portrait
                assert default is None or default in kind, (key, name, default)
            elif kind in ("INT", "FLOAT"):
                assert "min" in opts and "max" in opts, (key, name)
                assert opts["min"] <= default <= opts["max"], (key, name, default)
                assert isinstance(default, int) if kind == "INT" else isinstance(default, float), (key, name)
            elif kind == "BOOLEAN":
                assert isinstance(default, bool), (key, name)
            checked += 1
    assert checked >= 25

    spec = nodes.TalkerMakeVideo.INPUT_TYPES()["required"]
    seed = spec["seed"][1]
    assert (seed["min"], seed["max"], seed["control_after_generate"]) == (0, SEED_MAX, True)
    assert spec["batch_size"][1]["min"] == 1
    assert (spec["pose_style"][1]["min"], spec["pose_style"][1]["max"]) == (0, 45)
    # Make's defaults and the two ends of every range are values the options accept
    defaults = widget_defaults(nodes.TalkerMakeVideo)
    for name, kind, opts in _widgets(nodes.TalkerMakeVideo):
        ends = [opts["min"], opts["max"]] if kind in ("INT", "FLOAT") else [opts.get("default")]
        for value in ends:
            values = {**defaults, name: value}
            for key in ("face_index", "preset"):
                values[key] = None if values[key] in (-1, nodes.NONE) else values[key]
            build_options(values, "a.png", "b.wav", "", Path("c.mp4")).validate()


def test_option_defaults_equal_the_cli_defaults():
    from talker.options import MakeOptions
    from talker.webui.form import FIELDS

    defaults = widget_defaults(nodes.TalkerMakeVideo)
    assert set(defaults) == {row.name for row in FIELDS}
    cli = MakeOptions()
    for row in FIELDS:
        widget = defaults[row.name]
        assert getattr(cli, row.name) == (None if row.optional and widget in (-1, nodes.NONE) else widget), row.name


def test_load_portrait_lists_and_reads_only_the_input_folder(comfy_dirs):
    (comfy_dirs / "input" / "notes.txt").write_text("not a picture")
    (comfy_dirs / "output").mkdir()
    shutil.copy(comfy_dirs / "input" / "astronaut.png", comfy_dirs / "output" / "made.png")
    listed = nodes.TalkerLoadPortrait.INPUT_TYPES()["required"]["image"]
    assert listed[0] == ["astronaut.png"] and listed[1]["image_upload"] is True

    (image,) = run_node(nodes.TalkerLoadPortrait, image="astronaut.png")
    assert image.dtype == torch.float32 and tuple(image.shape) == (1, 512, 512, 3)
    assert np.array_equal(nodes.image_to_rgb(image), read_image(comfy_dirs / "input" / "astronaut.png"))
    (same,) = run_node(nodes.TalkerLoadPortrait, image="made.png [output]")  # ComfyUI's annotated names
    assert torch.equal(same, image)

    outside = comfy_dirs / "secret.png"
    shutil.copy(comfy_dirs / "input" / "astronaut.png", outside)
    for name in ("../secret.png", str(outside), "../../etc/passwd", "../secret.png [output]", ""):
        reason = nodes.TalkerLoadPortrait.VALIDATE_INPUTS(name)
        assert isinstance(reason, str) and reason.startswith(f"image {name!r} is not a file of ComfyUI's"), name
        with pytest.raises(OptionError, match="not a file of ComfyUI's"):
            run_node(nodes.TalkerLoadPortrait, image=name)
    with pytest.raises(OptionError, match="upload it again"):
        run_node(nodes.TalkerLoadPortrait, image="gone.png")
    assert nodes.TalkerLoadPortrait.VALIDATE_INPUTS("astronaut.png") is True


def test_load_portrait_errors_name_the_users_file(comfy_dirs):
    mf.save_png(np.zeros((40, 40, 3), np.uint8), comfy_dirs / "input" / "tiny.png")
    with pytest.raises(Exception, match="tiny.png") as caught:
        run_node(nodes.TalkerLoadPortrait, image="tiny.png")
    assert str(comfy_dirs) not in str(caught.value)


def test_make_gives_a_video_and_its_audio_and_score_reports_into_output(comfy_dirs, speech):
    audio, wav = speech
    (portrait,) = run_node(nodes.TalkerLoadPortrait, image="astronaut.png")
    inputs = {**widget_defaults(nodes.TalkerMakeVideo), "backend": "embedded"}
    made = run_node(nodes.TalkerMakeVideo, portrait=portrait, audio=audio, **inputs)
    video, spoken = made["result"]
    assert spoken is audio
    assert made["ui"] == {"images": [{"filename": "clip_00001.mp4", "subfolder": "talker", "type": "temp"}],
                          "animated": (True,)}
    assert isinstance(video, VideoFile)  # no comfy_api here; inside ComfyUI it is VideoFromFile
    clip = Path(video.get_stream_source())
    assert clip == comfy_dirs / "temp" / "talker" / "clip_00001.mp4" and clip.is_file()
    assert not (comfy_dirs / "output").exists()
    facts = probe_media(clip)
    assert facts["video"]["codec"] == "h264" and facts["audio"]["codec"] == "aac"
    assert facts["audio"]["sample_rate"] == 48000 and facts["audio"]["channels"] == 2
    seconds = sf.info(wav).duration
    assert abs(facts["duration_s"] - seconds) <= 1.5 / FPS

    again, _ = run_node(nodes.TalkerMakeVideo, portrait=portrait, audio=audio, **inputs)["result"]
    assert Path(again.get_stream_source()).name == "clip_00002.mp4" and clip.is_file()

    scored = run_node(nodes.TalkerScore, video=video, filename_prefix="talker/score", audio=audio,
                      portrait=portrait, transcript=SPOKEN)
    text, verdict, plot = scored["result"]
    assert scored["ui"] == {"text": (text,)}
    assert verdict in ("pass", "warn", "fail")
    assert text.splitlines()[0] == f"{verdict.upper()}: output/talker/score_00001.report.json"
    assert "av_offset_ms" in text and "closure_rate" in text
    written = sorted(p.relative_to(comfy_dirs).as_posix() for p in (comfy_dirs / "output").rglob("*"))
    assert written == ["output/talker", "output/talker/score_00001.report.json", "output/talker/score_00001.report.png"]
    report = json.loads((comfy_dirs / "output/talker/score_00001.report.json").read_text())
    assert report["verdict"] == verdict
    assert plot.ndim == 4 and plot.shape[0] == 1 and plot.shape[-1] == 3 and plot.shape[1] > 100

    class BytesVideo:  # a VIDEO held in memory, as core CreateVideo's is
        def get_stream_source(self):
            return io.BytesIO(clip.read_bytes())

    text2, verdict2, _ = run_node(nodes.TalkerScore, video=BytesVideo(), filename_prefix="talker/score")["result"]
    assert text2.splitlines()[0].endswith("score_00002.report.json")
    for prefix in ("../escape", "/tmp/x", ""):
        with pytest.raises(OptionError, match="filename_prefix"):
            run_node(nodes.TalkerScore, video=video, filename_prefix=prefix)


def test_make_errors_name_the_inputs_and_widgets(comfy_dirs, speech):
    audio, _ = speech
    (portrait,) = run_node(nodes.TalkerLoadPortrait, image="astronaut.png")
    inputs = {**widget_defaults(nodes.TalkerMakeVideo), "backend": "embedded"}
    with pytest.raises(OptionError, match="ImageFromBatch"):
        run_node(nodes.TalkerMakeVideo, portrait=portrait.repeat(2, 1, 1, 1), audio=audio, **inputs)
    for widget, value in (("pose_style", 99), ("batch_size", 0), ("seed", -5)):
        with pytest.raises(OptionError) as caught:
            run_node(nodes.TalkerMakeVideo, portrait=portrait, audio=audio, **{**inputs, widget: value})
        assert str(caught.value).startswith(widget + " ") and "--" not in str(caught.value), caught.value
    silent = {"waveform": torch.zeros(1, 1, 16000), "sample_rate": 16000}
    with pytest.raises(InputAudioError) as caught:
        run_node(nodes.TalkerMakeVideo, portrait=portrait, audio=silent, **inputs)
    message = str(caught.value)
    assert "the 'audio' input" in message and "speech.wav" not in message and "talker-comfy" not in message, message
    faceless = torch.full((1, 256, 256, 3), 0.5)
    with pytest.raises(Exception) as caught:
        run_node(nodes.TalkerMakeVideo, portrait=faceless, audio=audio, **inputs)
    assert "the 'portrait' input" in str(caught.value) and "portrait.png" not in str(caught.value), caught.value
    assert not list(comfy_dirs.rglob("*.mp4"))


def test_text_to_speech_speaks_with_the_language_variant_and_speed():
    widgets = widget_defaults(nodes.TalkerTextToSpeech)
    audio, text = run_node(nodes.TalkerTextToSpeech, **{**widgets, "text": SPOKEN})
    assert text == SPOKEN
    wave, rate = audio["waveform"], audio["sample_rate"]
    assert wave.dtype == torch.float32 and wave.ndim == 3 and wave.shape[:2] == (1, 1) and rate > 8000
    assert 0.05 < float(wave.abs().max()) <= 1.0
    fast, _ = run_node(nodes.TalkerTextToSpeech, **{**widgets, "text": SPOKEN, "speed": 350})
    assert fast["waveform"].shape[-1] < 0.75 * wave.shape[-1]
    woman, _ = run_node(nodes.TalkerTextToSpeech, **{**widgets, "text": SPOKEN, "variant": "f3"})
    assert woman["waveform"].shape != wave.shape or not torch.equal(woman["waveform"], wave)
    german, _ = run_node(nodes.TalkerTextToSpeech, **{**widgets, "text": SPOKEN, "language": "de"})
    assert not torch.equal(german["waveform"][..., :1000], wave[..., :1000]) or german["waveform"].shape != wave.shape
    with pytest.raises(OptionError, match="text widget"):
        run_node(nodes.TalkerTextToSpeech, **{**widgets, "text": "  "})
    with pytest.raises(OptionError, match="no voice"):
        run_node(nodes.TalkerTextToSpeech, **{**widgets, "text": SPOKEN, "language": "xx-nowhere"})


REAL_COMFY_VIDEO = """
import io, json, sys
sys.path.insert(0, sys.argv[1])  # the ComfyUI checkout: comfy_api
from comfy_api.input_impl import VideoFromFile
from talker.comfy.values import video_path, video_value
video = video_value(sys.argv[2])
parts = video.get_components()  # what core GetVideoComponents returns
spilled = video_path(type("V", (), {"get_stream_source": lambda self: io.BytesIO(open(sys.argv[2], "rb").read())})(),
                     __import__("pathlib").Path(sys.argv[3]))
print(json.dumps({"cls": type(video).__name__, "is_core": isinstance(video, VideoFromFile),
                  "frames": list(parts.images.shape), "fps": float(parts.frame_rate),
                  "rate": parts.audio["sample_rate"], "own": video_path(video, None).as_posix(),
                  "spilled": spilled.stat().st_size}))
"""


@pytest.mark.skipif(not (COMFY_HOST / "venv/bin/python").is_file(), reason="no ComfyUI checkout with its venv")
def test_make_video_is_comfyui_core_video_in_real_comfyui(tmp_path, astronaut_png, speech):
    """The VIDEO the node gives, made inside ComfyUI's Python, is comfy_api's VideoFromFile, and core
    GetVideoComponents' call decodes it to frames and 48 kHz audio."""
    from talker.media import VideoWriter, read_audio

    rgb = read_image(astronaut_png)[:256, :256]
    clip = tmp_path / "clip.mp4"
    spoken = read_audio(speech[1])
    with VideoWriter(clip, (256, 256), spoken) as writer:
        writer.write(np.repeat(rgb[None], writer.frames_expected, axis=0))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([str(COMFY_HOST / "venv/bin/python"), "-c", REAL_COMFY_VIDEO, str(COMFY_HOST / "ComfyUI"),
                           str(clip), str(tmp_path / "spill.mp4")], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["cls"] == "VideoFromFile" and got["is_core"]
    assert got["frames"][1:] == [256, 256, 3] and got["frames"][0] >= 25 and got["fps"] == FPS
    assert got["rate"] == 48000 and got["own"] == clip.as_posix() and got["spilled"] == clip.stat().st_size


def test_the_example_workflows_fit_the_nodes(comfy_dirs):
    """examples/comfyui: every talker node of the API workflow gets each of its required inputs, only
    inputs it declares, and widget values it accepts (what ComfyUI's /prompt validation checks); the
    UI workflow has the same nodes and links."""
    api = json.loads((ROOT / "examples/comfyui/talker_api.json").read_text())
    ui = json.loads((ROOT / "examples/comfyui/talker.json").read_text())
    (comfy_dirs / "input" / "portrait.png").write_bytes((comfy_dirs / "input" / "astronaut.png").read_bytes())
    for key, node in api.items():
        cls = nodes.NODE_CLASS_MAPPINGS.get(node["class_type"])
        if cls is None:
            assert node["class_type"] == "SaveVideo" and node["inputs"]["video"] == ["3", 0]
            continue
        declared = cls.INPUT_TYPES()
        spec = {**declared["required"], **declared.get("optional", {})}
        assert set(declared["required"]) <= set(node["inputs"]) <= set(spec), key
        for name, value in node["inputs"].items():
            kind, opts = spec[name][0], spec[name][1] if len(spec[name]) > 1 else {}
            if isinstance(value, list):  # a link: [node id, output index]
                source = nodes.NODE_CLASS_MAPPINGS.get(api[value[0]]["class_type"])
                assert source is None or source.RETURN_TYPES[value[1]] == kind, (key, name)
            elif isinstance(kind, list):
                assert value in kind, (key, name, value)
            elif kind in ("INT", "FLOAT"):
                assert opts["min"] <= value <= opts["max"], (key, name, value)
    assert {n["id"]: n["type"] for n in ui["nodes"]} == {int(k): v["class_type"] for k, v in api.items()}
    links = {(link[1], link[3]) for link in ui["links"]}  # [id, from node, from slot, to node, to slot, type]
    wanted = {(int(v[0]), int(k)) for k, node in api.items() for v in node["inputs"].values() if isinstance(v, list)}
    assert links == wanted
