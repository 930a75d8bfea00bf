"""talker.webui.compat with the installed Gradio (CI's current release): every decision picks the
native path, nothing the page passes is dropped, and the Gradio 3 fallbacks behave as documented.
(Gradio 3.41.2 and 4.40.0 themselves are checked by tools/check_gradio_versions.sh.)"""

from __future__ import annotations

import threading

import gradio as gr
import pytest

from talker.webui import app, compat


def test_the_installed_gradio_gets_the_native_paths():
    assert compat.STATIC_PATHS and compat.UNLOAD and compat.SESSION_HASH and compat.LABELLED_CHOICES and compat.UPLOAD_NAMES
    with gr.Blocks():
        event = gr.Button().click(lambda: None)
    arguments, lock = compat.render_queue(event.then, app.RENDER_QUEUE)
    assert arguments == {"concurrency_limit": 1, "concurrency_id": app.RENDER_QUEUE} and lock is None
    host = threading.Lock()
    assert compat.render_queue(event.then, app.RENDER_QUEUE, host)[1] is host  # a host's lock is held anyway
    assert compat.accepted(gr.Image.__init__, sources=["upload"], format="png") == {"sources": ["upload"], "format": "png"}
    assert compat.accepted(gr.Dataframe.__init__, column_widths=["1%"]) == {"column_widths": ["1%"]}


def test_gradio_3_fallbacks():
    def listener(fn, inputs=None, **kwargs):
        """A Gradio 3 style listener: no concurrency_id, a catch-all for the rest."""

    assert compat.accepted(listener, concurrency_id="x", inputs=1) == {"inputs": 1}
    arguments, lock = compat.render_queue(listener, app.RENDER_QUEUE)
    assert arguments == {} and lock is compat.RENDER_LOCK
    with gr.Blocks():
        box = compat.dropdown([("none", ""), ("256", 256)], 256, label="size")
    assert compat.chosen(box, box.value) == 256 and compat.chosen(gr.Textbox(), "256") == "256"


def test_idle_sessions_are_forgotten_without_unload(tmp_path):
    sessions = app.Sessions(tmp_path, idle_s=0.0)
    first = sessions.get(gr.Request(session_hash="a"), "a")
    assert sessions.get(gr.Request(session_hash="a"), "a") is first
    sessions.get(gr.Request(session_hash="b"), "b")  # "a" has been idle longer than 0 s: dropped
    assert sessions.get(gr.Request(session_hash="a"), "a") is not first


@pytest.mark.parametrize("keeps_names", [True, False])
def test_clips_are_named_after_the_users_files_on_every_gradio(tmp_path, monkeypatch, keeps_names):
    """Gradio >= 4 keeps an upload's name in its path; Gradio 3 makes up names (tmpXXXXXXXX.png,
    'image.png', '<stem>-0-100.wav'), and the browser reports the picture's name instead."""
    monkeypatch.setattr(compat, "UPLOAD_NAMES", keeps_names)
    stem = app.upload_stem
    assert stem("/tmp/gradio/1f3a/astronaut.png", "portrait") == "astronaut"
    assert stem("/tmp/gradio/1f3a/Jane Doe (1).jpg", "portrait") == "Jane_Doe_1"
    for made_up in ("/tmp/gradio/tmp4za8eysx.png", "/tmp/gradio/ab12/image.png", "/tmp/gradio/ab/audio.wav"):
        assert stem(made_up, "portrait") == "portrait", made_up
    assert stem("/tmp/gradio/tmp4za8eysx.png", "portrait", named="astronaut.png") == "astronaut"
    assert stem(None, "text") == "text"
    assert stem("/tmp/gradio/ab/voice-0-100.wav", "voice") == ("voice-0-100" if keeps_names else "voice")
    assert stem("/tmp/gradio/ab/take-0-100.wav", "voice") == ("take-0-100" if keeps_names else "take")

    session = app.Session(tmp_path / "session")
    first = session.next_output("astronaut", "hello")
    assert first.name == "astronaut_hello.mp4"
    first.write_bytes(b"a clip")
    assert session.next_output("astronaut", "hello").name == "astronaut_hello_2.mp4"
