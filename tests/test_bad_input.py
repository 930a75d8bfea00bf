"""Bad input through the real command line: one actionable line, non-zero exit, no traceback,
and nothing left behind in the output folder (an existing file is never touched)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import media_factory as mf
from conftest import run_talker


def assert_clean_failure(proc, out_dir: Path, *words: str, keep: set[str] = frozenset()) -> str:
    """The run failed with one 'error:' line naming ``words``, no traceback, and ``out_dir``
    holds nothing but ``keep``."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or "error:" in ln.split(" ", 1)[0]]
    assert len(errors) == 1, proc.stderr
    message = errors[0]
    for word in words:
        assert word.lower() in message.lower(), message
    assert {p.name for p in out_dir.iterdir()} == set(keep), list(out_dir.iterdir())
    return message


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut_png, speech_pbm):
    d = tmp_path_factory.mktemp("bad")
    wav, _ = speech_pbm
    speech, sr = sf.read(wav, dtype="float32")
    files = {"face": astronaut_png, "speech": wav}

    (d / "empty.png").write_bytes(b"")
    files["zero_byte_image"] = d / "empty.png"
    data = astronaut_png.read_bytes()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    files["truncated_image"] = d / "truncated.png"
    (d / "notes.png").write_text("this is not a picture\n")
    files["text_as_image"] = d / "notes.png"
    files["no_face"] = mf.save_png(np.full((400, 400, 3), (90, 140, 200), np.uint8), d / "sky.png")

    canvas = np.full((480, 480, 3), 235, np.uint8)
    small = mf.astronaut()[::3, ::3]  # face about 40 px wide
    canvas[150:150 + small.shape[0], 150:150 + small.shape[1]] = small
    files["tiny_face"] = mf.save_png(canvas, d / "tiny.png")

    pair = np.concatenate([mf.astronaut(), mf.astronaut()[:, ::-1]], axis=1)
    files["two_faces"] = mf.save_png(pair, d / "two.png")

    (d / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(3000))
    files["corrupt_audio"] = d / "corrupt.wav"
    sf.write(d / "empty.wav", np.zeros(0, np.float32), 16000)
    files["empty_audio"] = d / "empty.wav"
    (d / "zero.mp3").write_bytes(b"")
    files["zero_byte_audio"] = d / "zero.mp3"
    sf.write(d / "one_frame.wav", speech[int(0.5 * sr): int(0.54 * sr)], sr)
    files["one_frame_audio"] = d / "one_frame.wav"
    sf.write(d / "silence.wav", np.zeros(3 * 16000, np.float32), 16000)
    files["silent_audio"] = d / "silence.wav"

    t = np.arange(int(6 * 22050)) / 22050
    notes = 220 * 2 ** (np.array([0, 4, 7, 12, 7, 4, 0, 5, 9, 12, 9, 5]) / 12)
    f0 = notes[(t * 2).astype(int) % len(notes)]
    music = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 22050) / k for k in range(1, 6)) * 0.2
    sf.write(d / "music.wav", music.astype(np.float32), 22050)
    files["music_audio"] = d / "music.wav"

    up = np.interp(np.arange(int(len(speech) * 96000 / sr)) * sr / 96000, np.arange(len(speech)), speech)
    sf.write(d / "eight.wav", np.stack([up * (0.2 + 0.1 * k) for k in range(8)], axis=1).astype(np.float32), 96000)
    files["eight_channels_96k"] = d / "eight.wav"
    return files


@pytest.fixture
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


IMAGE_CASES = {
    "zero_byte_image": ("empty",),
    "truncated_image": ("truncated",),
    "text_as_image": ("image",),
    "no_face": ("no face",),
    "tiny_face": ("px",),
    "two_faces": ("--face-index",),
}


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_bad_image(inputs, out_dir, case):
    proc = run_talker("make", "--image", inputs[case], "--audio", inputs["speech"], "-o", out_dir / "x.mp4")
    assert_clean_failure(proc, out_dir, *IMAGE_CASES[case])


AUDIO_CASES = {
    "corrupt_audio": ("corrupt.wav",),
    "empty_audio": ("empty.wav",),
    "zero_byte_audio": ("zero.mp3",),
    "one_frame_audio": ("0.2 s",),
    "silent_audio": ("silence",),
    "music_audio": ("no speech",),
}


@pytest.mark.parametrize("case", sorted(AUDIO_CASES))
def test_bad_audio(inputs, out_dir, case):
    proc = run_talker("make", "--image", inputs["face"], "--audio", inputs[case], "-o", out_dir / "x.mp4")
    assert_clean_failure(proc, out_dir, *AUDIO_CASES[case])


def test_missing_files(inputs, out_dir):
    proc = run_talker("make", "--image", out_dir / "nope.png", "--audio", inputs["speech"], "-o", out_dir / "x.mp4")
    assert_clean_failure(proc, out_dir, "nope.png")
    proc = run_talker("make", "--image", inputs["face"], "--audio", out_dir / "nope.wav", "-o", out_dir / "x.mp4")
    assert_clean_failure(proc, out_dir, "nope.wav")


def test_no_speech_given(inputs, out_dir):
    proc = run_talker("make", "--image", inputs["face"], "-o", out_dir / "x.mp4")
    assert_clean_failure(proc, out_dir, "--audio", "--text")


def test_option_out_of_range(inputs, out_dir):
    proc = run_talker("make", "--image", inputs["face"], "--audio", inputs["speech"], "--pose-style", "99", "-o", out_dir / "x.mp4")
    assert_clean_failure(proc, out_dir, "--pose-style")


def test_negative_seed_is_refused_by_name(inputs, out_dir):
    proc = run_talker("make", "--image", inputs["face"], "--audio", inputs["speech"], "--seed", "-5", "-o", out_dir / "x.mp4")
    assert_clean_failure(proc, out_dir, "--seed", "4294967295")


def test_unwritable_output_folder(inputs, out_dir):
    blocker = out_dir / "file"
    blocker.write_text("a file, not a folder")
    proc = run_talker("make", "--image", inputs["face"], "--audio", inputs["speech"], "-o", blocker / "sub" / "x.mp4")
    assert_clean_failure(proc, out_dir, keep={"file"})


def test_failed_run_leaves_no_folder(inputs, out_dir):
    """Neither the default results/ folder nor the missing folders of a deep -o stay behind."""
    proc = run_talker("make", "--image", inputs["no_face"], "--audio", inputs["speech"], cwd=out_dir)
    assert_clean_failure(proc, out_dir, "no face")
    proc = run_talker("make", "--image", inputs["no_face"], "--audio", inputs["speech"], "-o", out_dir / "a" / "b" / "x.mp4")
    assert_clean_failure(proc, out_dir, "no face")


def test_out_in_missing_folders_is_made(inputs, out_dir):
    out = out_dir / "a" / "b" / "c.mp4"
    proc = run_talker("make", "--image", inputs["face"], "--audio", inputs["speech"], "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert [p.relative_to(out_dir) for p in out_dir.rglob("*")] == [Path("a"), Path("a/b"), Path("a/b/c.mp4")]


def test_existing_output_is_kept(inputs, out_dir):
    existing = out_dir / "x.mp4"
    existing.write_bytes(b"precious")
    proc = run_talker("make", "--image", inputs["face"], "--audio", inputs["speech"], "-o", existing)
    assert_clean_failure(proc, out_dir, "--force", keep={"x.mp4"})
    assert existing.read_bytes() == b"precious"


def test_failure_after_start_keeps_existing_output(inputs, out_dir):
    """--force with bad audio: the run fails after the output check and the old file survives."""
    existing = out_dir / "x.mp4"
    existing.write_bytes(b"precious")
    proc = run_talker("make", "--image", inputs["face"], "--audio", inputs["corrupt_audio"], "-o", existing, "--force")
    assert_clean_failure(proc, out_dir, keep={"x.mp4"})
    assert existing.read_bytes() == b"precious"


def test_eight_channel_96k_audio_is_accepted(inputs, out_dir):
    """Unusual but valid audio is downmixed and resampled, not refused."""
    out = out_dir / "x.mp4"
    proc = run_talker("make", "--image", inputs["face"], "--audio", inputs["eight_channels_96k"], "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out_dir.iterdir()} == {"x.mp4"}


def test_enhancer_without_its_model_file(inputs, out_dir, tmp_path):
    empty = tmp_path / "models"
    empty.mkdir()
    proc = run_talker("make", "--image", inputs["face"], "--audio", inputs["speech"], "--enhancer", "gfpgan",
                      "-o", out_dir / "x.mp4", env={"TALKER_MODELS": str(empty), "HOME": str(tmp_path)})
    assert_clean_failure(proc, out_dir, "GFPGANv1.4.pth", "talker models download gfpgan")


def test_stopped_render_keeps_existing_output(inputs, out_dir, long_speech):
    """SIGTERM (a `kill`, a container stopping) mid-render: exit 143, one 'stopped' line, ffmpeg's
    half-written files deleted and the file already at --out untouched, as for Ctrl-C."""
    existing = out_dir / "x.mp4"
    existing.write_bytes(b"precious")
    proc = subprocess.Popen([sys.executable, "-m", "talker.cli", "make", "--image", str(inputs["face"]),
                             "--audio", str(long_speech[0]), "-o", str(existing), "--force"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not any(p.name.endswith(".partial.mp4") and p.stat().st_size > 0 for p in out_dir.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr, stderr
    assert "stopped: nothing was written" in stderr, stderr
    assert {p.name for p in out_dir.iterdir()} == {"x.mp4"}
    assert existing.read_bytes() == b"precious"
