"""Streaming output: the fragmented MP4 and the HLS segments decode while the writer is still
writing; ``talker.streaming.follow`` serves a growing file whole; ``talker make -o -`` sends a
fragmented MP4 down a pipe."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from talker.media import VideoWriter, count_frames, probe_media
from talker.streaming import follow
from talker.types import Audio

FRAMES = 100  # 4 s at 25 fps


def tone(seconds: float) -> Audio:
    t = np.arange(int(seconds * 16000)) / 16000
    return Audio(samples=(0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))


def frame(i: int) -> np.ndarray:
    """A 96 x 128 frame with a bar moving one pixel per frame (so frames differ)."""
    f = np.full((96, 128, 3), 40, np.uint8)
    f[:, i % 118 : i % 118 + 10] = 230
    return f


def decoded_frames(source: str, data: bytes | None = None) -> int:
    """Frames ffmpeg decodes from a file (or from ``data`` on its standard input), 0 when none."""
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", source, "-map", "0:v:0", "-f", "framemd5", "-"],
        input=data, capture_output=True, timeout=60,
    )
    return sum(1 for line in done.stdout.decode().splitlines() if line and not line.startswith("#"))


def wait_for(condition, timeout_s: float = 10.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_fragmented_mp4_decodes_while_it_is_written(tmp_path):
    out, live = tmp_path / "out.mp4", tmp_path / "live.mp4"
    served, finished = [], threading.Event()
    with VideoWriter(out, (128, 96), tone(FRAMES / 25), stream=live) as writer:
        reader = threading.Thread(target=lambda: served.extend(follow(live, done=finished.is_set)))
        reader.start()
        for i in range(40):
            writer.write(frame(i))
        partial = wait_for(lambda: decoded_frames(str(live)))  # ffmpeg reads the file as it is now
        assert 1 <= partial <= 40 and not out.exists(), "the stream decodes before the render ends"
        for i in range(40, FRAMES):
            writer.write(frame(i))
    finished.set()
    reader.join(timeout=30)
    assert count_frames(out) == count_frames(live) == FRAMES
    assert probe_media(live)["audio"]["codec"] == "aac"
    assert b"".join(served) == live.read_bytes(), "follow served the whole file, in order"


def test_hls_segments_decode_while_the_playlist_grows(tmp_path):
    playlist = tmp_path / "live.m3u8"
    with VideoWriter(None, (128, 96), tone(FRAMES / 25), stream=playlist) as writer:
        for i in range(70):  # the first segment ends at the keyframe after 1 s
            writer.write(frame(i))
        first = wait_for(lambda: playlist.exists() and "live_00000.ts" in playlist.read_text())
        assert first and "#EXT-X-ENDLIST" not in playlist.read_text()
        assert 1 <= decoded_frames(str(tmp_path / "live_00000.ts")) <= 70
        for i in range(70, FRAMES):
            writer.write(frame(i))
    text = playlist.read_text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    assert decoded_frames(str(playlist)) == FRAMES
    assert not list(tmp_path.glob(".*partial*")), "no MP4 kept without a path"


def test_failed_stream_leaves_no_files(tmp_path):
    playlist = tmp_path / "live.m3u8"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(None, (128, 96), tone(4.0), stream=playlist) as writer:
            for i in range(60):
                writer.write(frame(i))
            wait_for(lambda: list(tmp_path.glob("live_*.ts")))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_make_to_stdout_is_a_fragmented_mp4(astronaut_png, speech_pbm, tmp_path):
    wav, _ = speech_pbm
    data, sr = sf.read(wav, dtype="float32")
    short = tmp_path / "short.wav"
    sf.write(short, data[: sr], sr)
    proc = subprocess.Popen(
        [sys.executable, "-m", "talker.cli", "make", "--image", str(astronaut_png), "--audio", str(short),
         "--backend", "embedded", "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    chunks = []
    for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
        chunks.append(chunk)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    blob = b"".join(chunks)
    assert blob[4:8] == b"ftyp" and b"moof" in blob, "a fragmented MP4"
    assert decoded_frames("pipe:0", blob) == 25
    assert decoded_frames("pipe:0", blob[: len(blob) // 2]) >= 1, "a cut-off stream still decodes up to the cut"
    assert not list(tmp_path.glob("*.mp4")) and not (tmp_path / "results").exists()
