"""End to end: `talker make` on generated speech and real portraits, judged on the output video.

The judge measures the decoded MP4 with the landmark model (talker.measure) and compares it with
Festival's exact phone times.
"""

from __future__ import annotations

import numpy as np
import pytest

import media_factory as mf
from conftest import run_talker
from talker.face import prepare_face
from talker.measure import count_blinks, measure_frames, measure_video
from talker.media import probe_media, read_video_frames
from talker.score import OPEN_VOWELS, phone_frames

CLOSURES = {"p", "b", "m"}
FPS = 25
REST_TOLERANCE = 0.02
"""Inner-lip opening (IOD) by which a frame in a pause may differ from the portrait's own."""


def frames_of(phone, n_frames: int) -> range:
    """Video frames whose centre lies inside the phone."""
    return phone_frames(phone.start, phone.end, n_frames)


def test_container_is_h264_aac_25fps_and_as_long_as_the_audio(full_mode_video, long_speech):
    wav, phones = long_speech
    info = probe_media(full_mode_video)
    audio_s = len(mf.read_wav_16k(wav)) / 16000
    assert info["video"]["codec"] == "h264" and info["video"]["pix_fmt"] == "yuv420p"
    assert info["audio"]["codec"] == "aac"
    assert info["video"]["fps"] == pytest.approx(25.0)
    n = sum(1 for _ in read_video_frames(full_mode_video))
    assert abs(n / FPS - audio_s) <= 1 / FPS + 1e-6
    assert abs(info["duration_s"] - audio_s) <= 1 / FPS + 0.03  # container rounding


@pytest.fixture(scope="module")
def full_mode_measures(full_mode_video, astronaut_png):
    face = prepare_face(mf.astronaut(), mode="full", size=256)
    return measure_video(full_mode_video, box=face.box)


def test_lips_close_on_p_b_m_and_open_on_vowels(full_mode_measures, long_speech):
    _, phones = long_speech
    mouth = full_mode_measures.mouth_open
    open_median = np.nanmedian([mouth[i] for p in phones if p.phone in OPEN_VOWELS for i in frames_of(p, len(mouth))])
    assert open_median > 0.08, f"open vowels barely open the mouth: {open_median:.3f} IOD"
    closures = [p for p in phones if p.phone in CLOSURES]
    closed = [
        np.nanmin([mouth[i] for i in frames_of(p, len(mouth))] or [np.inf]) <= 0.3 * open_median
        for p in closures
    ]
    assert np.mean(closed) >= 0.8, f"lips closed in {np.mean(closed):.0%} of {len(closures)} p/b/m segments"


def test_mouth_rests_in_silence(full_mode_measures, long_speech):
    """In every pause the mouth is the portrait's own (the astronaut rests with parted lips, 0.12
    IOD open), not shut and not moving."""
    _, phones = long_speech
    mouth = full_mode_measures.mouth_open
    face = prepare_face(mf.astronaut(), mode="full", size=256)
    own = measure_frames([face.source], box=face.box).mouth_open[0]
    assert own > 0.1
    # every pause of at least 400 ms, 160 ms after its start and 240 ms before its end (the lips take
    # about that long to reach their rest after the last sound, and leave it about 220 ms before a
    # p/b/m to be shut when it sounds)
    pauses = [p for p in phones if p.phone == "pau" and p.end - p.start >= 0.4]
    assert len(pauses) >= 5
    for p in pauses:
        mid = [i for i in frames_of(p, len(mouth)) if p.start + 0.16 <= (i + 0.5) / FPS <= p.end - 0.24]
        assert np.nanmax(np.abs(mouth[mid] - own)) <= REST_TOLERANCE, f"mouth not at rest in the pause at {p.start:.2f}s"


def test_blinks_at_a_human_rate(full_mode_measures):
    eye = full_mode_measures.eye_open
    minutes = len(eye) / FPS / 60
    rate = count_blinks(eye) / minutes
    assert 8 <= rate <= 30, f"{rate:.1f} blinks per minute"


def test_background_stays_still_in_full_mode(full_mode_video):
    face = prepare_face(mf.astronaut(), mode="full", size=256)
    source = face.source.astype(np.int16)
    x0, y0, x1, y1 = face.box
    outside = np.ones(source.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    for k, frame in enumerate(read_video_frames(full_mode_video)):
        if k % 25:
            continue
        diff = np.abs(frame.astype(np.int16) - source)[outside]
        assert diff.mean() < 2.5, f"frame {k}: background changed by {diff.mean():.2f} on average"
        assert np.percentile(diff, 99) < 16, f"frame {k}: background 99th percentile diff {np.percentile(diff, 99)}"


def test_second_portrait_crop_mode_with_espeak_text(tmp_path, hopper_png):
    out = tmp_path / "hopper.mp4"
    proc = run_talker(
        "make", "--image", str(hopper_png), "--text", "Hello, my name is Grace. I wrote the first compiler.",
        "--size", "256", "-o", str(out), "--seed", "3",
    )
    assert proc.returncode == 0, proc.stderr
    info = probe_media(out)
    assert info["video"]["width"] == 256 and info["audio"] is not None
    m = measure_video(out)
    assert np.isnan(m.mouth_open).mean() < 0.05, "the face is lost in the rendered frames"
    assert np.nanmax(m.mouth_open) > 2.5 * np.nanmin(m.mouth_open) + 0.02, "the mouth never moves"


def test_same_seed_same_video(tmp_path, hopper_png, speech_pbm):
    wav, _ = speech_pbm
    outs = []
    for name in ("a.mp4", "b.mp4"):
        out = tmp_path / name
        proc = run_talker("make", "--image", str(hopper_png), "--audio", str(wav), "--seed", "7", "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        outs.append(np.stack(list(read_video_frames(out))))
    assert np.array_equal(outs[0], outs[1])
