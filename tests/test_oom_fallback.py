"""CUDA out-of-memory during the render: the render goes on from the first frame not encoded with
the next lower preset, says so, and the MP4 is complete and the same as a render without the error.

The error is the real ``torch.cuda.OutOfMemoryError``, raised by the backend's frame generator after
some frames (as the allocator raises it mid-clip on a GPU); everything else runs for real on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from talker.errors import GpuMemoryError
from talker.make_presets import MakeSettings, apply_preset
from talker.media import count_frames, probe_media, read_audio, read_video_frames
from talker.options import MakeOptions
from talker.pipeline import EmbeddedBackend, load_face, render_video

FRAMES, FAIL_AFTER = 30, 12  # 1.2 s of video; the error comes after three batches of 4


@pytest.fixture(scope="module")
def scene(tmp_path_factory, astronaut_png, speech_pbm):
    """(face, audio, track) of 1.2 s of speech on the astronaut, embedded backend."""
    wav, _ = speech_pbm
    data, sr = sf.read(wav, dtype="float32")
    short = tmp_path_factory.mktemp("oom") / "short.wav"
    sf.write(short, data[int(0.3 * sr): int(0.3 * sr) + FRAMES * sr // 25], sr)
    options = MakeOptions(image=astronaut_png, audio=short, backend="embedded").validate()
    face = load_face(options)
    audio = read_audio(short)
    track = EmbeddedBackend().coeffs(face, audio, options)
    assert track.num_frames == FRAMES
    return face, audio, track


@pytest.fixture
def presets(tmp_path, monkeypatch):
    """A user preset 'big' (batch 4) falling back to 'small' (batch 3), both on the CPU."""
    folder = tmp_path / "presets" / "make"
    folder.mkdir(parents=True)
    (folder / "big.yaml").write_text("gpu_memory_gb: 8\nfallback: small\nsettings:\n  batch_size: 4\n  device: cpu\n  precision: fp32\n")
    (folder / "small.yaml").write_text("gpu_memory_gb: 2\nsettings:\n  batch_size: 3\n  device: cpu\n  precision: fp32\n")
    monkeypatch.setenv("TALKER_PRESETS", str(tmp_path / "presets"))


def fail_once_after(monkeypatch, frames: int, calls: list):
    """Make EmbeddedBackend.frames raise torch.cuda.OutOfMemoryError after ``frames`` frames, the first time."""
    real = EmbeddedBackend.frames

    def frames_then_oom(self, face, track, options, start=0):
        calls.append((start, options.batch_size))
        done = start
        for batch in real(self, face, track, options, start):
            if len(calls) == 1 and done >= frames:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (test)")
            done += len(batch)
            yield batch

    monkeypatch.setattr(EmbeddedBackend, "frames", frames_then_oom)


def render(scene, options, out, fallbacks=()):
    face, audio, track = scene
    reports = []
    render_video(face, audio, track, EmbeddedBackend(), None, options, out, reports.append, fallbacks=fallbacks)
    return reports


def test_out_of_memory_falls_back_and_the_video_is_whole(scene, presets, tmp_path, monkeypatch, astronaut_png):
    options, chain = apply_preset(MakeOptions(image=astronaut_png, text="x", backend="embedded", preset="big"))
    assert [p.name for p in chain] == ["big", "small"] and options.batch_size == 4
    reference = tmp_path / "reference.mp4"
    render(scene, options, reference)

    calls = []
    fail_once_after(monkeypatch, FAIL_AFTER, calls)
    out = tmp_path / "fallback.mp4"
    reports = render(scene, options, out, fallbacks=chain[1:])
    assert calls == [(0, 4), (FAIL_AFTER, 3)], "resumed at the first frame not encoded, with the lower preset's batch size"
    notes = [r for r in reports if r.stage == "fallback"]
    assert len(notes) == 1 and notes[0].done == FAIL_AFTER and "preset 'small'" in notes[0].note
    assert [r.done for r in reports if r.stage == "render"][-1] == FRAMES

    assert count_frames(out) == FRAMES
    assert probe_media(out)["duration_s"] == pytest.approx(FRAMES / 25, abs=0.05)
    got = np.stack(list(read_video_frames(out))).astype(np.int16)
    want = np.stack(list(read_video_frames(reference))).astype(np.int16)
    # the same frames as the render that never failed, on both sides of the switch (the encoder is deterministic)
    assert np.abs(got - want).max() <= 2
    # continuous at the switch: the change from frame 11 to 12 is the one the motion makes, no jump, no repeat
    step = lambda v: np.abs(v[FAIL_AFTER] - v[FAIL_AFTER - 1]).mean()  # noqa: E731
    assert step(got) == pytest.approx(step(want), abs=0.2) and step(got) > 0.1


def test_out_of_memory_without_a_lower_preset_is_an_error_and_leaves_nothing(scene, tmp_path, monkeypatch, astronaut_png):
    fail_once_after(monkeypatch, 8, [])
    out = tmp_path / "none.mp4"
    with pytest.raises(GpuMemoryError, match="ran out of memory at frame 8 of 30; use --preset low-vram"):
        render(scene, MakeOptions(image=astronaut_png, text="x", batch_size=4).validate(), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no partial files left"
    assert MakeSettings().batch_size == MakeOptions().batch_size  # the settings' defaults are MakeOptions's
