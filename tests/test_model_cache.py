"""Networks are loaded once per process (talker.model_cache): the web UI, the job service's workers
and ComfyUI render many clips in one process and must not reload the checkpoints for each."""

from __future__ import annotations

import os

import pytest

from sadtalker_checkpoints import sadtalker_checkpoints_256  # noqa: F401  (session fixture)
from talker import model_cache
from talker.options import MakeOptions
from talker.pipeline import choose_backend, load_audio, load_face
from test_sadtalker_end_to_end import short_speech  # noqa: F401  (module fixture: 6 frames of speech)


@pytest.fixture(autouse=True)
def empty_cache():
    model_cache.clear()
    yield
    model_cache.clear()


def test_cached_builds_once_per_key_and_keeps_the_most_recent():
    builds = []

    def build(name):
        builds.append(name)
        return object()

    first = model_cache.cached("a", lambda: build("a"))
    assert model_cache.cached("a", lambda: build("a")) is first
    others = [f"n{i}" for i in range(model_cache.MAX_ENTRIES)]
    for name in others:
        model_cache.cached(name, lambda name=name: build(name))
    assert builds == ["a", *others]
    assert list(model_cache.entries()) == others  # 'a' was the least recently used
    assert model_cache.cached("a", lambda: build("a")) is not first


def test_different_keys_build_at_the_same_time_and_one_key_builds_once():
    """The renderer loads in a thread while the audio networks are built: a build of one key must not
    wait for another key's build (here 'a' can only finish once 'b' has been built meanwhile)."""
    import threading

    b_built, calls = threading.Event(), []

    def build_a():
        calls.append("a")
        assert b_built.wait(10), "the build of 'b' waited for the build of 'a'"
        return "A"

    def build_b():
        calls.append("b")
        b_built.set()
        return "B"

    results = {}
    threads = [threading.Thread(target=lambda: results.setdefault("a1", model_cache.cached("a", build_a))),
               threading.Thread(target=lambda: results.setdefault("a2", model_cache.cached("a", build_a)))]
    for t in threads:
        t.start()
    assert model_cache.cached("b", build_b) == "B"
    for t in threads:
        t.join(10)
    assert results == {"a1": "A", "a2": "A"} and calls.count("a") == 1


def test_file_key_changes_when_a_file_is_replaced(tmp_path):
    path = tmp_path / "net.pth"
    path.write_bytes(b"1234")
    before = model_cache.file_key(path, None)
    path.write_bytes(b"12345")
    os.utime(path, ns=(1, 1))
    assert model_cache.file_key(path) != before
    assert model_cache.file_key(path) == model_cache.file_key(path)


def test_a_second_sadtalker_job_reuses_the_networks(sadtalker_checkpoints_256, short_speech, astronaut_png):  # noqa: F811
    options = MakeOptions(image=astronaut_png, audio=short_speech, backend="sadtalker",
                          checkpoints=sadtalker_checkpoints_256, device="cpu").validate()
    face, audio = load_face(options), load_audio(options)

    def job():
        backend = choose_backend(options)  # each make() picks its backend afresh
        track = backend.coeffs(face, audio, options)
        backend.frames(face, track, options)  # loads the renderer's networks (rendering is lazy)
        return model_cache.entries()

    first = job()
    assert sorted(key[0] for key in first) == ["sadtalker-audio", "sadtalker-renderer"]
    second = job()
    assert second.keys() == first.keys()
    assert all(second[key] is first[key] for key in first)
