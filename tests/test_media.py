"""talker.media: portraits, audio and the output video, with inputs made on the spot (Pillow, ffmpeg, espeak-ng)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

import media_factory as mf
from talker import media
from talker.errors import InputAudioError, InputImageError, MissingDependencyError, OptionError, OutputError, apt_get_install
from talker.types import SAMPLE_RATE, Audio

TONE_SECONDS = 1.3
TONE_HZ = 440.0


def ffmpeg(*args) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True, timeout=60)


def pattern_image(height: int = 96, width: int = 128) -> np.ndarray:
    """(H, W, 3) uint8 smooth colour ramps (red across, green down, blue 90) with a pure blue 16x16 block at the top-left corner."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)], axis=2).astype(np.uint8)
    image[:16, :16] = (0, 0, 255)
    return image




def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


# ----------------------------------------------------------------------------------------- images


@pytest.mark.parametrize("pillow_format, suffix, tolerance", [
    ("PNG", ".jpg", 0), ("JPEG", ".png", 6), ("WEBP", ".bmp", 6), ("BMP", ".webp", 0),
])  # fmt: skip
def test_read_image_formats_by_content(tmp_path, pillow_format, suffix, tolerance):
    """Each format decodes to the same RGB picture whatever the extension says."""
    image = pattern_image()
    path = tmp_path / f"portrait{suffix}"
    Image.fromarray(image).save(path, format=pillow_format, quality=95)
    out = media.read_image(path)
    assert out.shape == (96, 128, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image).mean() <= tolerance


def test_read_image_alpha_flattened_on_white(tmp_path):
    image = pattern_image()
    alpha = np.full((96, 128), 255, np.uint8)
    alpha[:, :64] = 0  # left half fully transparent
    alpha[:, 64:96] = 128  # half transparent band
    rgba = np.dstack([image, alpha])
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = media.read_image(path).astype(int)
    assert (out[:, :64] == 255).all()
    expected_band = (image[:, 64:96].astype(int) * 128 + 255 * 127) / 255
    assert np.abs(out[:, 64:96] - expected_band).max() <= 1
    assert (out[:, 96:] == image[:, 96:]).all()


def test_read_image_palette_with_transparency_and_la(tmp_path):
    palette = Image.fromarray(pattern_image()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    index = np.asarray(palette)
    transparent = int(index[50, 100])
    palette.info["transparency"] = transparent
    palette.save(tmp_path / "p.png", transparency=transparent)
    out = media.read_image(tmp_path / "p.png")
    assert (out[index == transparent] == 255).all()
    assert (out[index != transparent] != 255).any()

    gray = np.tile(np.arange(128, dtype=np.uint8), (96, 1))
    alpha = np.where(np.arange(96)[:, None] < 48, 0, 255).astype(np.uint8).repeat(128, axis=1)
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(tmp_path / "la.png")
    out = media.read_image(tmp_path / "la.png")
    assert (out[:48] == 255).all() and (out[48:, :, 0] == gray[48:]).all()


def test_read_image_grayscale_16bit_and_cmyk(tmp_path):
    gray = np.tile(np.arange(128, dtype=np.uint8) * 2, (96, 1))
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    out = media.read_image(tmp_path / "gray.png")
    assert out.shape == (96, 128, 3) and (out == gray[:, :, None]).all()

    deep = np.tile(np.linspace(0, 65535, 128).astype(np.uint16), (96, 1))
    Image.fromarray(deep).save(tmp_path / "gray16.png")
    out = media.read_image(tmp_path / "gray16.png")
    assert np.abs(out[:, :, 1].astype(int) - np.rint(deep / 257)).max() <= 1  # scaled, not clipped at 255
    assert out[0, -1, 0] == 255 and out[0, 64, 0] > 100

    image = pattern_image()
    Image.fromarray(image).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    out = media.read_image(tmp_path / "cmyk.jpg")
    assert out.shape == (96, 128, 3) and np.abs(out.astype(int) - image).mean() < 8


def test_read_image_applies_exif_orientation(tmp_path):
    """Orientation 6 means 'rotate 90 degrees clockwise to display': W x H swap, top-left goes top-right."""
    image = pattern_image()  # 96 high, 128 wide, blue block at the top-left
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(image).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = media.read_image(tmp_path / "rotated.jpg")
    assert out.shape == (128, 96, 3)
    blue_error = lambda block: np.abs(block.astype(int) - [0, 0, 255]).mean()  # noqa: E731
    assert blue_error(out[2:14, -14:-2]) < 10  # the blue block is now at the top-right
    assert min(blue_error(out[2:14, 2:14]), blue_error(out[-14:-2, 2:14]), blue_error(out[-14:-2, -14:-2])) > 40


def test_read_image_bomb_guard(tmp_path):
    """Huge declared sizes are refused from the header, before the pixels are decoded."""
    Image.new("1", (10000, 10000)).save(tmp_path / "bomb.png")  # 100 MP, a few kB on disk
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    with pytest.raises(InputImageError, match="bomb.png.*too large|bomb.png.*megapixel"):
        media.read_image(tmp_path / "bomb.png")
    Image.new("1", (7000, 6000)).save(tmp_path / "big.png")  # 42 MP: under Pillow's own limit, over ours
    with pytest.raises(InputImageError, match=r"big.png is 7000x6000 \(42 megapixels\)"):
        media.read_image(tmp_path / "big.png")


def test_read_image_refuses_broken_inputs(tmp_path):
    def refused(path: Path, words: str) -> None:
        with pytest.raises(InputImageError, match=words) as err:
            media.read_image(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)

    refused(tmp_path / "missing.png", "does not exist")
    refused(tmp_path, "is a folder")
    (tmp_path / "zero.png").write_bytes(b"")
    refused(tmp_path / "zero.png", "empty")
    for fmt in ("PNG", "JPEG"):
        buffer = tmp_path / f"whole.{fmt}"
        Image.fromarray(pattern_image()).save(buffer, format=fmt)
        data = buffer.read_bytes()
        (tmp_path / f"cut.{fmt}").write_bytes(data[: len(data) // 2])
        refused(tmp_path / f"cut.{fmt}", "truncated or corrupt")
    (tmp_path / "notes.png").write_text("this is not a picture\n")
    refused(tmp_path / "notes.png", "not an image")
    sf.write(tmp_path / "voice.jpg", np.zeros(16000, np.float32), 16000, format="WAV")
    refused(tmp_path / "voice.jpg", "not an image")
    Image.fromarray(pattern_image(40, 200)).save(tmp_path / "tiny.png")
    refused(tmp_path / "tiny.png", "200x40 pixels")
    Image.fromarray(pattern_image()).save(tmp_path / "anim.gif")
    refused(tmp_path / "anim.gif", "GIF")


# ------------------------------------------------------------------------------------------ audio


@pytest.fixture(scope="module")
def tone_wav(tmp_path_factory) -> Path:
    """TONE_SECONDS of a 440 Hz tone, 44.1 kHz stereo 16-bit WAV."""
    t = np.arange(int(TONE_SECONDS * 44100)) / 44100
    tone = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    sf.write(path, np.stack([tone, tone], axis=1), 44100, subtype="PCM_16")
    return path


@pytest.mark.parametrize("suffix, codec", [
    (".mp3", ["-c:a", "libmp3lame"]), (".m4a", ["-c:a", "aac"]), (".ogg", ["-c:a", "libopus"]),
    (".flac", ["-c:a", "flac"]), (".mp4", None),
])  # fmt: skip
def test_read_audio_formats(tmp_path, tone_wav, suffix, codec):
    path = tmp_path / f"speech{suffix}"
    if codec is None:  # a video file with an audio track
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=25", "-i", tone_wav, "-map", "0:v", "-map", "1:a",
               "-t", TONE_SECONDS, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", path)  # fmt: skip
    else:
        ffmpeg("-i", tone_wav, *codec, path)
    audio = media.read_audio(path, transcript="la")
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(len(audio.samples) - TONE_SECONDS * SAMPLE_RATE) <= 0.020 * SAMPLE_RATE
    assert abs(dominant_hz(audio.samples) - TONE_HZ) < 3
    assert 0.4 < np.abs(audio.samples).max() < 0.6
    assert audio.transcript == "la" and audio.source == path


def test_read_audio_downmixes_every_channel(tmp_path):
    """8 channels at 96 kHz, a different tone in each: all eight reach the mono mix with equal weight."""
    t = np.arange(int(TONE_SECONDS * 96000)) / 96000
    tones = [300 + 150 * c for c in range(8)]
    channels = np.stack([0.1 * np.sin(2 * np.pi * hz * t) for hz in tones], axis=1)
    sf.write(tmp_path / "octo.wav", channels, 96000, subtype="PCM_24")
    audio = media.read_audio(tmp_path / "octo.wav")
    assert abs(len(audio.samples) - TONE_SECONDS * SAMPLE_RATE) <= 0.020 * SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(audio.samples[:16000])) / 8000  # 1 s: 1 Hz bins, amplitude scale
    levels = np.array([spectrum[hz] for hz in tones])
    assert np.allclose(levels, 0.1 / 8, rtol=0.1), levels


def test_read_audio_refuses_broken_inputs(tmp_path):
    def refused(path: Path, words: str) -> None:
        with pytest.raises(InputAudioError, match=words) as err:
            media.read_audio(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)

    refused(tmp_path / "missing.wav", "does not exist")
    (tmp_path / "zero.wav").write_bytes(b"")
    refused(tmp_path / "zero.wav", "empty")
    (tmp_path / "corrupt.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    refused(tmp_path / "corrupt.mp3", "cannot decode.*Invalid data")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    refused(tmp_path / "empty.wav", "no samples")
    sf.write(tmp_path / "frame.wav", 0.5 * np.ones(640, np.float32), 16000)
    refused(tmp_path / "frame.wav", r"is 0.04 s long; give at least 0.2 s of speech")
    sf.write(tmp_path / "silent.wav", np.zeros(32000, np.float32), 16000)
    refused(tmp_path / "silent.wav", "contains only silence")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=25", "-t", 0.5, "-c:v", "libx264", tmp_path / "mute.mp4")
    refused(tmp_path / "mute.mp4", "no audio track")


def test_synthesize_speech():
    audio = media.synthesize_speech("Peter bought a big map of Boston.")
    assert audio.duration > 0.5 and audio.transcript == "Peter bought a big map of Boston." and audio.source is None
    assert np.abs(audio.samples).max() > 0.05
    with pytest.raises(OptionError):
        media.synthesize_speech("   ")


def test_synthesize_speech_without_espeak(tmp_path, monkeypatch):
    """Neither libespeak-ng nor the espeak-ng program (both come with the espeak-ng package)."""
    from talker import espeak

    monkeypatch.setattr(espeak, "available", lambda: False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError, match=re.escape(apt_get_install("espeak-ng")) + ".*brew install espeak-ng"):
        media.synthesize_speech("hello")


def test_the_apt_line_of_the_messages_runs_as_root_without_sudo_and_through_sudo(tmp_path):
    """The install line the messages give, run by bash with stand-ins for apt-get and sudo that log
    their calls: without sudo (root in a container) apt-get is called itself; with sudo, through it."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()

    def stand_in(name: str, body: str) -> None:
        (bin_dir / name).write_text(f"#!{shutil.which('sh')}\necho \"{name} $*\" >> {log}\n{body}\n")
        (bin_dir / name).chmod(0o755)

    def calls() -> list[str]:
        subprocess.run([shutil.which("bash"), "-c", apt_get_install("espeak-ng")], env={"PATH": str(bin_dir)}, check=True)
        lines = log.read_text().splitlines()
        log.unlink()
        return lines

    stand_in("apt-get", "")
    assert calls() == ["apt-get update", "apt-get install -y espeak-ng"]
    stand_in("sudo", '"$@"')
    assert calls() == ["sudo apt-get update", "apt-get update", "sudo apt-get install -y espeak-ng",
                       "apt-get install -y espeak-ng"]


def test_without_the_library_the_program_speaks_and_phones_are_found(monkeypatch):
    """Where libespeak-ng does not load, the espeak-ng program speaks and no phones come with the audio."""
    from talker import espeak

    monkeypatch.setattr(espeak, "available", lambda: False)
    audio = media.synthesize_speech("Peter bought a big map of Boston.")
    assert audio.phones is None and audio.duration > 1.0
    monkeypatch.undo()
    with_library = media.synthesize_speech("Peter bought a big map of Boston.")
    assert with_library.phones and abs(with_library.phones[-1][1] - with_library.duration) < 0.05
    assert 0.7 < with_library.duration / audio.duration <= 1.0  # the program adds a pause at the end


# ----------------------------------------------------------------------------------------- output


def test_check_output_path(tmp_path):
    assert media.check_output_path(tmp_path / "a.mp4", force=False) == tmp_path / "a.mp4"
    assert list(tmp_path.iterdir()) == []  # the write test cleaned up

    # missing folders at any depth are allowed, and left for the caller to make (talker.folders)
    deep = media.check_output_path(tmp_path / "no" / "such" / "c.mp4", force=False)
    assert deep == tmp_path / "no" / "such" / "c.mp4" and not (tmp_path / "no").exists()

    (tmp_path / "old.mp4").write_bytes(b"old")
    with pytest.raises(OutputError, match="exists; pass --force to overwrite or choose another --out"):
        media.check_output_path(tmp_path / "old.mp4", force=False)
    assert media.check_output_path(tmp_path / "old.mp4", force=True) == tmp_path / "old.mp4"
    assert (tmp_path / "old.mp4").read_bytes() == b"old"

    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        media.check_output_path(tmp_path / "dir.mp4", force=True)
    with pytest.raises(OutputError, match=r"\.mp4"):
        media.check_output_path(tmp_path / "clip.avi", force=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        media.check_output_path(tmp_path / "file" / "d.mp4", force=False)
    with pytest.raises(OutputError, match="not a folder"):
        media.check_output_path(tmp_path / "file" / "deeper" / "d.mp4", force=False)


def test_check_output_path_unwritable_folder(tmp_path):
    # /proc and /sys refuse new files even to root
    for folder in ("/proc", "/sys"):
        with pytest.raises(OutputError, match=f"cannot write into folder {folder}"):
            media.check_output_path(f"{folder}/talker-test.mp4", force=False)
    with pytest.raises(OutputError, match="cannot write into folder /proc"):
        media.check_output_path("/proc/talker-test/out.mp4", force=False)
    if os.geteuid() != 0:  # permission bits bind only non-root users
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="cannot write into folder"):
            media.check_output_path(locked / "e.mp4", force=False)


def numbered_frames(count: int, height: int, width: int) -> np.ndarray:
    """(count, H, W, 3): four colour quadrants; the top 16 rows are gray at level 5 * frame index."""
    frames = np.empty((count, height, width, 3), np.uint8)
    frames[:, : height // 2, : width // 2] = (224, 172, 150)
    frames[:, : height // 2, width // 2 :] = (30, 60, 200)
    frames[:, height // 2 :, : width // 2] = (128, 128, 128)
    frames[:, height // 2 :, width // 2 :] = (40, 180, 60)
    frames[:, :16] = (5 * np.arange(count))[:, None, None, None]
    return frames


def speech_like(seconds: float) -> Audio:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return Audio(samples=(0.4 * np.sin(2 * np.pi * 220 * t) * np.sin(np.pi * 3 * t) ** 2).astype(np.float32))


@pytest.mark.parametrize("width, height", [(256, 256), (255, 201)])
def test_video_writer(tmp_path, width, height):
    audio = speech_like(2.0 + 200 / SAMPLE_RATE)  # not a whole number of frames: the track is trimmed
    assert audio.num_frames == 50
    frames = numbered_frames(50, height, width)
    out = tmp_path / "talk.mp4"
    with media.VideoWriter(out, (width, height), audio) as writer:
        writer.write(frames[0])  # one (H, W, 3) frame
        for start in range(1, 50, 7):
            writer.write(frames[start : start + 7])
        assert writer.frames_written == 50
    assert [p.name for p in tmp_path.iterdir()] == ["talk.mp4"]  # no temporary files left

    info = media.probe_media(out)
    even = (width + width % 2, height + height % 2)
    assert info["video"] == {"codec": "h264", "pix_fmt": "yuv420p", "width": even[0], "height": even[1], "fps": 25.0}
    assert info["audio"]["codec"] == "aac" and info["audio"]["channels"] == 1
    assert abs(info["duration_s"] - 2.0) <= 0.04
    assert media.count_frames(out) == 50

    decoded = list(media.read_video_frames(out))
    assert len(decoded) == 50 and decoded[0].shape == (even[1], even[0], 3)
    for index, frame in enumerate(decoded):
        crop = frame[:height, :width].astype(int)
        assert abs(crop[4:12, 8:-8].mean() - 5 * index) < 3  # frames arrive in order
        assert np.abs(crop[24:-8, 8:-8] - frames[index, 24:-8, 8:-8]).mean() < 6  # colours survive (BT.709 both ways)
    if width % 2:
        assert np.abs(decoded[10][:, -1].astype(int) - decoded[10][:, -2]).mean() < 3  # padded by repeating the edge

    track = media.read_audio(out)  # the muxed audio is the input audio, aligned
    assert abs(track.duration - 2.0) <= 0.04
    n = min(len(track.samples), 32000)
    assert np.corrcoef(track.samples[:n], audio.samples[:n])[0, 1] > 0.99


def test_video_writer_leaves_nothing_on_failure(tmp_path):
    audio = speech_like(1.0)
    frames = numbered_frames(25, 64, 64)
    out = tmp_path / "talk.mp4"

    with pytest.raises(KeyError):  # an exception inside the block
        with media.VideoWriter(out, (64, 64), audio) as writer:
            writer.write(frames[:10])
            raise KeyError("renderer failed")
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(RuntimeError, match="only 24 of 25 frames"):
        with media.VideoWriter(out, (64, 64), audio) as writer:
            writer.write(frames[:24])
    assert list(tmp_path.iterdir()) == []

    with media.VideoWriter(out, (64, 64), audio) as writer:
        with pytest.raises(ValueError, match="uint8"):
            writer.write(frames[:3, :, :32])
        with pytest.raises(ValueError, match="26 frames"):
            writer.write(np.concatenate([frames, frames[:1]]))
        writer.write(frames)
    assert out.is_file()


def test_video_writer_keeps_existing_file_when_ffmpeg_fails(tmp_path):
    out = tmp_path / "talk.mp4"
    out.write_bytes(b"earlier video")
    frames = numbered_frames(25, 64, 64)
    with pytest.raises(media.VideoEncodeError, match="could not write") as err:
        with media.VideoWriter(out, (64, 64), speech_like(1.0), preset="no-such-preset") as writer:
            writer.write(frames)
    assert isinstance(err.value, OutputError) and any("preset" in line.lower() for line in err.value.log)
    assert out.read_bytes() == b"earlier video"
    assert [p.name for p in tmp_path.iterdir()] == ["talk.mp4"]

    with pytest.raises(ZeroDivisionError):
        with media.VideoWriter(out, (64, 64), speech_like(1.0)) as writer:
            writer.write(frames)
            1 / 0
    assert out.read_bytes() == b"earlier video"

    with media.VideoWriter(out, (64, 64), speech_like(1.0)) as writer:  # a clean run replaces it
        writer.write(frames)
    assert media.count_frames(out) == 25


def test_probe_media_layouts_and_errors(tmp_path):
    assert media._layout_channels("5.1(side)") == 6 and media._layout_channels("22.2") == 24
    assert media._layout_channels("stereo") == 2 and media._layout_channels("3 channels (FL+FR+LFE)") == 3
    sf.write(tmp_path / "six.wav", np.zeros((800, 6), np.float32), 48000)
    info = media.probe_media(tmp_path / "six.wav")
    assert info["audio"] == {"codec": "pcm_s16le", "sample_rate": 48000, "channels": 6}
    assert info["video"] is None and abs(info["duration_s"] - 800 / 48000) < 0.01
    (tmp_path / "junk.mp4").write_text("no video here")
    with pytest.raises(ValueError, match="cannot read"):
        media.probe_media(tmp_path / "junk.mp4")
    with pytest.raises(FileNotFoundError):
        media.probe_media(tmp_path / "missing.mp4")


def test_video_writer_muxes_the_original_recording(tmp_path):
    """A file-backed Audio is muxed at its own quality: a 10 kHz tone (above the 8 kHz that 16 kHz
    samples can carry) and stereo survive; the track is still cut to the video's length."""
    sr = 44100
    t = np.arange(int(1.3 * sr)) / sr
    left, right = 0.3 * np.sin(2 * np.pi * 10000 * t), 0.3 * np.sin(2 * np.pi * 440 * t)
    source = tmp_path / "voice.wav"
    sf.write(source, np.stack([left, right], axis=1).astype(np.float32), sr)
    audio = media.read_audio(source)
    out = tmp_path / "out.mp4"
    with media.VideoWriter(out, (64, 64), audio) as writer:
        writer.write(np.zeros((audio.num_frames, 64, 64, 3), np.uint8))
    assert media.probe_media(out)["audio"]["channels"] == 2
    pcm = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(out), "-f", "f32le", "-ac", "2",
                          "-ar", "48000", "-"], capture_output=True, check=True).stdout
    decoded = np.frombuffer(pcm, np.float32).reshape(-1, 2)
    assert abs(len(decoded) / 48000 - audio.num_frames / 25) < 0.03
    spectrum = np.abs(np.fft.rfft(decoded[4800:-4800, 0]))
    freqs = np.fft.rfftfreq(len(decoded) - 9600, 1 / 48000)
    assert abs(freqs[np.argmax(spectrum)] - 10000) < 20



def posterised(rgb: np.ndarray) -> np.ndarray:
    """Flat colour in six levels a channel, with dark one-pixel outlines where the levels change."""
    flat = (rgb // 43 * 43 + 21).astype(np.uint8)
    edges = (np.abs(np.diff(flat.astype(int).sum(2), axis=0, prepend=0)) > 60) | (
        np.abs(np.diff(flat.astype(int).sum(2), axis=1, prepend=0)) > 60)
    flat[edges] = (flat[edges] * 0.35).astype(np.uint8)
    return flat


@pytest.mark.parametrize("style", ["photo", "flat colour"])
def test_video_writer_keeps_the_fine_detail_of_a_face_moving_by_fractions_of_a_pixel(tmp_path, style):
    # A talking face moves by fractions of a pixel from frame to frame. At x264's default tuning and
    # CRF 18 the encode smoothed away 13 % (photo) and 15 % (flat colour) of the face's detail (variance
    # of the Laplacian against the frames'); talker's encode keeps over 90 %, and adds no noise.
    import cv2

    face = cv2.resize(mf.astronaut()[0:300, 100:400], (256, 256), interpolation=cv2.INTER_AREA)
    picture = face if style == "photo" else posterised(face)
    frames = []
    for i in range(50):
        turn = 0.01 * np.sin(i / 5)  # radians
        move = np.float32([[np.cos(turn), -np.sin(turn), 0.45 * np.sin(i / 3)],
                           [np.sin(turn), np.cos(turn), 0.35 * np.cos(i / 4)]])
        frames.append(cv2.warpAffine(picture, move, (256, 256), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT))
    out = tmp_path / "face.mp4"
    with media.VideoWriter(out, (256, 256), speech_like(2.0)) as writer:
        writer.write(np.stack(frames))

    def detail(rgb):
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float64)
        return cv2.Laplacian(grey, cv2.CV_64F, ksize=1)[8:-8, 8:-8].var()

    kept = [detail(d) / detail(f) for d, f in zip(media.read_video_frames(out), frames)]
    assert len(kept) == 50
    assert np.median(kept) > 0.9, f"the encode keeps {np.median(kept):.2f} of the frames' detail"
    assert max(kept) < 1.1  # detail kept, not noise added
