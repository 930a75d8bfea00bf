"""The web form's options table and its mapping to MakeOptions (no browser, no Gradio server)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from talker.errors import OptionError
from talker.options import BACKENDS, ENHANCERS, PRECISIONS, MakeOptions
from talker.types import PREPROCESS_MODES
from talker.webui.form import FIELDS, GROUPS, INPUT_FIELDS, SERVER_FIELDS, build_options, form_fields


def test_every_option_is_in_the_page_once():
    names = [row.name for row in form_fields()]
    assert len(names) == len(set(names))
    settable = {f.name for f in fields(MakeOptions)} - set(INPUT_FIELDS) - set(SERVER_FIELDS)
    assert set(names) == settable
    assert {row.group for row in form_fields()} <= set(GROUPS)


def test_choices_are_the_clis():
    from talker.cli import build_parser

    make = build_parser()._subparsers._group_actions[0].choices["make"]
    flags = {a.dest: a for a in make._actions}
    for row in FIELDS:
        if row.choices is not None and flags[row.name].choices is not None:
            assert tuple(row.choice_values()) == tuple(flags[row.name].choices), row.name
    rows = {row.name: row for row in FIELDS}
    assert rows["preprocess"].choice_values() == PREPROCESS_MODES
    assert rows["backend"].choice_values() == BACKENDS
    assert rows["precision"].choice_values() == PRECISIONS
    assert rows["enhancer"].choice_values() == ENHANCERS


def test_page_widgets_start_at_the_make_options_defaults(tmp_path):
    """The built page's widgets show MakeOptions' defaults and choices (what `talker make` uses)."""
    pytest.importorskip("gradio")
    from talker.webui.app import build_blocks

    blocks = build_blocks(tmp_path)
    by_id = {b.elem_id: b for b in blocks.blocks.values() if getattr(b, "elem_id", None)}
    defaults = MakeOptions()
    for row in form_fields():
        widget = by_id[f"talker-{row.name.replace('_', '-')}"]
        expected = getattr(defaults, row.name)
        assert widget.value == ("" if expected is None and row.kind in ("text", "dropdown") else expected), row.name
        if row.kind == "dropdown":
            assert [c[1] for c in widget.choices] == list(row.choice_values()), row.name
    for group in ("inputs", *GROUPS[:-1]):
        assert any(getattr(b, "label", None) == group for b in blocks.blocks.values()), group


def test_widget_kinds():
    rows = {row.name: row for row in form_fields()}
    assert rows["preprocess"].kind == "dropdown"
    assert rows["pose_style"].kind == "slider"
    assert rows["still"].kind == "checkbox"
    assert rows["face_index"].kind == "number" and rows["face_index"].optional
    assert rows["language"].kind == "text"
    assert rows["batch_size"].kind == "number"
    assert rows["preset"].kind == "dropdown" and rows["preset"].choice_values()[:2] == ("", "auto")
    assert "fast" in rows["preset"].choice_values()


def test_form_values_become_make_options(tmp_path):
    out = tmp_path / "clip.mp4"
    values = {
        "preprocess": "full", "size": 512, "face_index": 1.0, "pose_style": 7.0, "still": True,
        "blink_rate": 10, "expression_scale": 1.5, "seed": 3.0, "language": " en ", "backend": "embedded",
        "batch_size": 4.0, "enhancer": "none", "enhance_strength": 0.5,
    }
    options = build_options(values, "face.png", "voice.wav", "  hello  ", out).validate()
    assert options.image == Path("face.png") and options.audio == Path("voice.wav") and options.out == out
    assert options.text == "hello" and options.force is False
    assert (options.preprocess, options.size, options.face_index, options.pose_style) == ("full", 512, 1, 7)
    assert options.still is True and options.blink_rate == 10.0 and isinstance(options.blink_rate, float)
    assert isinstance(options.seed, int) and isinstance(options.batch_size, int) and options.batch_size == 4
    assert options.language == "en" and options.expression_scale == 1.5 and options.enhance_strength == 0.5


def test_empty_boxes_keep_defaults_and_optional_ones_become_none(tmp_path):
    options = build_options({"face_index": None, "language": "  ", "seed": None}, "f.png", None, "", tmp_path / "a.mp4")
    defaults = MakeOptions()
    assert options.face_index is None and options.language == defaults.language and options.seed == defaults.seed
    assert options.text is None and options.audio is None
    assert build_options({"preset": ""}, "f.png", "v.wav", "", tmp_path / "a.mp4").preset is None
    assert build_options({"preset": "fast"}, "f.png", "v.wav", "", tmp_path / "a.mp4").preset == "fast"


def test_validation_is_make_options(tmp_path):
    """The form does not validate on its own: out-of-range values reach MakeOptions.validate."""
    options = build_options({"pose_style": 46}, "f.png", "v.wav", "", tmp_path / "a.mp4")
    with pytest.raises(OptionError, match="pose-style"):
        options.validate()
    with pytest.raises(OptionError, match="no speech"):
        build_options({}, "f.png", None, "  ", tmp_path / "a.mp4").validate()


def test_extra_model_dirs_are_searched_first(tmp_path, monkeypatch):
    """build_blocks(extra_model_dirs=...) puts them before $TALKER_REUSE_DIRS, which the model store reads."""
    pytest.importorskip("gradio")
    from talker.models.store import ENV_REUSE, discover_locations
    from talker.webui.app import build_blocks

    webui = tmp_path / "stable-diffusion-webui"
    (webui / "models" / "GFPGAN").mkdir(parents=True)
    monkeypatch.setenv(ENV_REUSE, str(tmp_path / "elsewhere"))
    build_blocks(tmp_path / "out", extra_model_dirs=[webui])
    assert os.environ[ENV_REUSE].split(os.pathsep) == [str(webui), str(tmp_path / "elsewhere")]
    assert any(loc.root == webui for loc in discover_locations())


def test_missing_gradio_is_an_actionable_error():
    code = "import sys; sys.modules['gradio'] = None; from talker.cli import main; sys.exit(main(['webui']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert 'pip install "talker[webui]"' in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_is_an_actionable_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "talker.cli", "webui", "--port", str(port), "--output-dir",
                               str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"cannot serve on 127.0.0.1:{port}: the port is in use" in done.stderr and "Traceback" not in done.stderr
