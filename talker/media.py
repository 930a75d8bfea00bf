"""Reading the user's media and writing the output video.

Images are read with Pillow. Audio and video go through the ffmpeg binary that imageio-ffmpeg
bundles, run as a subprocess; there is no ffprobe, so stream facts are parsed from the report
``ffmpeg -i`` prints. Arrays are RGB uint8 (H, W, 3) and 16 kHz mono float32 inside the product;
colour order and sample format are converted here, at the edge.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections import deque
from pathlib import Path
from typing import Iterator

import imageio_ffmpeg
import numpy as np
import soundfile as sf
from PIL import Image, ImageOps, UnidentifiedImageError

from talker.errors import (
    InputAudioError,
    InputImageError,
    MissingDependencyError,
    OptionError,
    OutputError,
    apt_get_install,
)
from talker.types import FPS, SAMPLE_RATE, Audio

MAX_IMAGE_PIXELS = 40_000_000
"""Largest portrait accepted (width * height), checked before the pixels are decoded."""

MIN_IMAGE_SIDE = 64
"""Smallest accepted portrait side in pixels."""

IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP")
"""Pillow format names accepted, identified from the file's content (MPO: a camera JPEG)."""

MIN_AUDIO_SECONDS = 0.2
SILENCE_PEAK = 1e-4
"""Audio whose absolute peak (full scale 1.0) stays below this is silence."""

DECODE_TIMEOUT_S = 120.0


class VideoEncodeError(OutputError):
    """ffmpeg failed while writing the video. ``log`` holds the last lines of its report."""

    def __init__(self, message: str, log: list[str]):
        super().__init__(message)
        self.log = log


# ----------------------------------------------------------------------------------------- images


def read_image(path: str | Path) -> np.ndarray:
    """Read a portrait: (H, W, 3) uint8 RGB, EXIF orientation applied, transparency flattened on white.

    Accepts JPEG, PNG, WebP and BMP (recognised by content, not by extension) in any mode
    (grayscale, palette, 16-bit, CMYK, with alpha). Raises InputImageError when the file is
    missing, empty, truncated, not an image, larger than MAX_IMAGE_PIXELS or smaller than
    MIN_IMAGE_SIDE on a side.
    """
    path = Path(path).expanduser()
    _check_input_file(path, InputImageError, "portrait")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format not in IMAGE_FORMATS:
                    raise InputImageError(
                        f"portrait {path} is a {im.format} image; convert it to PNG or JPEG (jpg, png, webp and bmp are read)"
                    )
                width, height = im.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise InputImageError(
                        f"portrait {path} is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the "
                        f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixel limit; downscale it (2048 px on the long side is plenty)"
                    )
                im.load()  # decode every pixel now, so that a truncated file fails here
                rgb = _to_rgb(ImageOps.exif_transpose(im))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InputImageError(
            f"portrait {path} is too large to decode safely ({err}); downscale it below "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
        ) from err
    except UnidentifiedImageError as err:
        raise InputImageError(f"{path} is not an image; give a jpg, png, webp or bmp portrait") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise InputImageError(
            f"portrait {path} is truncated or corrupt ({_one_line(err)}); export it again as PNG or JPEG"
        ) from err
    height, width = rgb.shape[:2]
    if min(width, height) < MIN_IMAGE_SIDE:
        raise InputImageError(
            f"portrait {path} is only {width}x{height} pixels; give one at least {MIN_IMAGE_SIDE} px on each side "
            "(256 px or more across the face works best)"
        )
    return rgb


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB; 16-bit gray is scaled to 8 bits, alpha composited on white."""
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        levels = np.asarray(im).astype(np.float64)
        full_scale = 255.0 if im.mode == "I" and levels.max() <= 255 else 65535.0
        gray = np.clip(np.rint(levels * (255.0 / full_scale)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info:
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im.convert("RGBA"))
    return np.array(im.convert("RGB"), dtype=np.uint8)


# ------------------------------------------------------------------------------------------ audio


def read_audio(path: str | Path, transcript: str | None = None, timeout_s: float = DECODE_TIMEOUT_S) -> Audio:
    """Decode any audio ffmpeg reads (or a video's first audio track) to 16 kHz mono float32.

    All channels are averaged with equal weight. Raises InputAudioError when the file is missing,
    empty, undecodable, has no audio track, is shorter than MIN_AUDIO_SECONDS, is silent, or takes
    longer than ``timeout_s`` seconds to decode.
    """
    path = Path(path).expanduser()
    _check_input_file(path, InputAudioError, "audio")
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats",
        "-i", _file_url(path), "-map", "0:a:0?", "-vn", "-sn", "-dn",
        "-c:a", "pcm_f32le", "-ar", str(SAMPLE_RATE), "-f", "wav", "pipe:1",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        raise InputAudioError(
            f"decoding audio {path} took longer than {timeout_s:g} s; convert it to WAV or give a shorter clip"
        ) from err
    report = done.stderr.decode("utf-8", "replace")
    found = _parse_ffmpeg_report(report)
    if found["streams"] and found["audio"] is None:
        raise InputAudioError(f"{path} has no audio track; give a file with the speech in it")
    if done.returncode != 0:
        raise InputAudioError(
            f"cannot decode audio {path} (ffmpeg: {_gist(report)}); convert it to WAV, MP3 or M4A and try again"
        )
    try:
        samples, _ = sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=True)
    except sf.LibsndfileError:  # ffmpeg wrote no samples at all
        samples = np.zeros((0, 1), np.float32)
    mono = np.clip(np.nan_to_num(samples.mean(axis=1)), -1.0, 1.0).astype(np.float32)
    if len(mono) == 0:
        raise InputAudioError(f"audio {path} contains no samples; export the recording again")
    seconds = len(mono) / SAMPLE_RATE
    if seconds < MIN_AUDIO_SECONDS:
        raise InputAudioError(f"audio {path} is {seconds:.2f} s long; give at least {MIN_AUDIO_SECONDS:g} s of speech")
    if float(np.abs(mono).max()) < SILENCE_PEAK:
        raise InputAudioError(f"audio {path} contains only silence; give a recording with speech in it")
    return Audio(samples=mono, transcript=transcript, source=path)


def synthesize_speech(text: str, voice: str = "en-us", timeout_s: float = DECODE_TIMEOUT_S) -> Audio:
    """Speak ``text`` with espeak-ng (voice name as ``espeak-ng --voices`` lists) -> Audio at 16 kHz.

    ``transcript`` is ``text``; ``source`` is None; ``phones`` are the synthesiser's own phones and
    their times when its library (libespeak-ng) loads, else None (the program speaks, and the
    phones are then found in the audio). Raises OptionError for empty text or an unknown voice,
    MissingDependencyError when espeak-ng is not installed.
    """
    if text is None or not text.strip():
        raise OptionError('--text is empty; give the words to say, e.g. --text "Hello there", or pass --audio')
    from talker import espeak

    if espeak.available():
        try:
            samples, rate, phones = espeak.speak(text, voice)
        except ValueError as err:
            raise OptionError(str(err)) from err
        with tempfile.TemporaryDirectory(prefix="talker-tts-") as tmp:
            wav = Path(tmp) / "speech.wav"
            sf.write(wav, samples, rate, subtype="PCM_16")
            audio = _speech_audio(wav, text)
        audio.phones = phones
        return audio
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingDependencyError(
            "--text needs the espeak-ng speech synthesiser, which is not installed: run "
            f"`{apt_get_install('espeak-ng')}` (Debian/Ubuntu) or `brew install espeak-ng` (macOS), or pass --audio"
        )
    with tempfile.TemporaryDirectory(prefix="talker-tts-") as tmp:
        wav = Path(tmp) / "speech.wav"
        done = subprocess.run(
            [exe, "-v", voice, "-w", str(wav), "--stdin"], input=text.encode("utf-8"), capture_output=True, timeout=timeout_s
        )
        if done.returncode != 0 or not wav.is_file():
            raise OptionError(
                f"espeak-ng cannot speak with voice {voice!r} ({_gist(done.stderr.decode('utf-8', 'replace'))}); "
                "see `espeak-ng --voices` for the names"
            )
        return _speech_audio(wav, text)


def _speech_audio(wav: Path, text: str) -> Audio:
    """The synthesised ``wav`` of ``text`` as Audio (no source)."""
    try:
        audio = read_audio(wav, transcript=text)
    except InputAudioError as err:
        raise OptionError(f"--text {text[:40]!r} gives no usable speech; give a sentence of words") from err
    audio.source = None
    return audio


# ----------------------------------------------------------------------------------------- output


def check_output_path(path: str | Path, force: bool, suffix: str = ".mp4") -> Path:
    """Check, before any heavy work, that a ``suffix`` file (an MP4 by default) can be written at
    ``path``; returns it made absolute.

    Missing folders above ``path`` are allowed (any depth) when the nearest existing one can be
    written; nothing is created here: the caller makes them with ``talker.folders.made_folders``,
    which takes them back if the work fails. Raises OutputError when the suffix is not ``suffix``,
    ``path`` is a folder, a file stands where a folder should be, the folder cannot be written, or
    a file exists at ``path`` and ``force`` is False.
    """
    from talker.folders import existing_ancestor

    path = Path(os.path.abspath(Path(path).expanduser()))
    if path.suffix.lower() != suffix:
        raise OutputError(f"output {path} must end in {suffix}; choose another --out, e.g. {path.with_suffix(suffix).name}")
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name inside it, e.g. --out {path / 'talk.mp4'}")
    folder = existing_ancestor(path)
    if not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder; choose another --out")
    if path.exists() and not force:
        raise OutputError(f"output {path} exists; pass --force to overwrite or choose another --out")
    try:
        fd, probe = tempfile.mkstemp(prefix=".talker-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"cannot write into folder {folder} ({err.strerror}); choose another --out") from err
    return path


X264_TUNE = "grain"
"""x264's tuning for every video talker writes. A talking face moves by fractions of a pixel, and at
x264's default tuning the encode smooths away much of the face's fine detail on such frames (the
one-pixel outlines of painted and cel-shaded faces, lashes, a photo's grain). ``grain`` keeps it
(psycho-visual rate-distortion and trellis, weaker deblocking, small coefficients kept). On nine
held-out portraits rendered in ``full`` mode (3.6 s clips) the MP4 at CRF 15 keeps 0.95-1.02 of the
frames' face detail (median variance of the Laplacian; a noisy photo reads more, its grain encoded
anew), against 0.79-0.92 at the default tuning and CRF 18, and is 0.4-2.9 dB closer to the frames
(PSNR over the face), for files 1.3-1.9 times as large."""


class VideoWriter:
    """Stream RGB frames into ffmpeg and mux ``audio``: H.264 yuv420p (BT.709) + AAC 128 kb/s MP4.

    The video is x264 at constant quality ``crf`` (15) with its ``grain`` tuning (see ``X264_TUNE``).

    Use as a context manager::

        with VideoWriter(out, (width, height), audio) as writer:
            for batch in frames:          # uint8 (B, height, width, 3) or (height, width, 3), RGB
                writer.write(batch)

    Exactly ``frames_expected`` frames (``audio.num_frames`` at 25 fps) must be written; the audio
    track is trimmed or padded with silence to frames / fps seconds, so both streams end together.
    The sound comes from ``audio.source`` when it is a file (the user's recording at its own quality,
    mono or stereo), else from ``audio.samples`` (16 kHz, e.g. synthesised speech).
    Odd sides are padded to even by repeating the last column/row. The file is written under a
    hidden temporary name in the target folder and renamed onto ``path`` only when everything
    succeeded; on an exception in the block, an ffmpeg failure or too few frames, nothing is left
    behind and an existing file at ``path`` is untouched. The caller checks ``path`` first with
    ``check_output_path`` and makes its folder (``talker.folders.made_folders``).

    ``stream`` also writes the video while it is encoded (one encode, ffmpeg's tee muxer), for
    playback before the render ends: a path ending in ``.m3u8`` is an HLS playlist (MPEG-TS
    segments of about one second, ``<stem>_NNNNN.ts`` beside it, the playlist rewritten after each
    segment and closed with ``#EXT-X-ENDLIST``); another path is a fragmented MP4 (a fragment every
    0.2 s, readable while it grows: see ``talker.streaming.follow``); ``"-"`` is a fragmented MP4 on
    this process's standard output. ``path`` may then be None (no MP4 kept). Streaming encodes with
    x264's ``zerolatency`` tuning as well and a keyframe every second, so frames leave the encoder at once.
    Stream files are written in place; on failure they are deleted like the temporary MP4.
    """

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        audio: Audio,
        fps: int = FPS,
        crf: int = 15,
        preset: str = "medium",
        stream: str | Path | None = None,
    ):
        if path is None and stream is None:
            raise ValueError("VideoWriter needs a path, a stream or both")
        self.path = Path(path) if path is not None else None
        self.stream = None if stream is None else stream if str(stream) == "-" else Path(stream)
        self.width, self.height = int(size[0]), int(size[1])
        if self.width < 1 or self.height < 1:
            raise ValueError(f"size must be (width, height) in pixels, got {size}")
        self.audio, self.fps, self.crf, self.preset = audio, fps, crf, preset
        self.frames_expected = max(1, int(round(len(audio.samples) * fps / SAMPLE_RATE)))
        token = secrets.token_hex(4)
        anchor = self.path if self.path is not None else Path(tempfile.gettempdir()) / "talker-stream.mp4"
        self._tmp_video = anchor.parent / f".{anchor.name}.{token}.partial.mp4"
        self._tmp_audio = anchor.parent / f".{anchor.name}.{token}.partial.wav"
        self._frames_written = 0
        self._proc: subprocess.Popen | None = None
        self._log: deque[str] = deque(maxlen=40)
        self._log_reader: threading.Thread | None = None

    @property
    def frames_written(self) -> int:
        return self._frames_written

    def __enter__(self) -> "VideoWriter":
        self._write_audio_track()
        try:
            to_stdout = str(self.stream) == "-"
            self._proc = subprocess.Popen(
                self._command(), stdin=subprocess.PIPE, stdout=None if to_stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError:
            self.abort()
            raise
        self._log_reader = threading.Thread(target=self._read_log, args=(self._proc.stderr,), daemon=True)
        self._log_reader.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def write(self, frames: np.ndarray) -> None:
        """Send uint8 RGB frames, (B, height, width, 3) or one (height, width, 3), to the encoder."""
        if self._proc is None:
            raise RuntimeError("VideoWriter.write called outside its with-block")
        batch = np.asarray(frames)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.dtype != np.uint8 or batch.shape[1:] != (self.height, self.width, 3):
            raise ValueError(
                f"frames must be uint8 (B, {self.height}, {self.width}, 3) RGB; got {batch.dtype} {batch.shape}"
            )
        if self._frames_written + len(batch) > self.frames_expected:
            raise ValueError(
                f"{self._frames_written + len(batch)} frames written but the audio covers {self.frames_expected}"
            )
        try:
            self._proc.stdin.write(memoryview(np.ascontiguousarray(batch)).cast("B"))
        except OSError as err:  # ffmpeg exited: the pipe is broken
            self._fail(f"ffmpeg stopped while receiving frames ({err.strerror})")
        self._frames_written += len(batch)

    def close(self) -> None:
        """Finish the file and rename it onto ``path``; aborts (and raises) when frames are missing or ffmpeg fails."""
        if self._proc is None:
            raise RuntimeError("VideoWriter.close called outside its with-block")
        if self._frames_written < self.frames_expected:
            self.abort()
            raise RuntimeError(
                f"only {self._frames_written} of {self.frames_expected} frames were written; {self.path} was not saved"
            )
        status = self._end_process(kill=False)
        if status != 0:
            self._fail(f"ffmpeg exited with status {status}")
        if self.path is None:
            self._tmp_audio.unlink(missing_ok=True)
            return
        try:
            os.replace(self._tmp_video, self.path)
        except OSError as err:
            self.abort()
            raise OutputError(f"cannot save {self.path} ({err.strerror}); choose another --out") from err
        self._tmp_audio.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop ffmpeg and delete the temporary files; ``path`` is left as it was."""
        if self._proc is not None:
            self._end_process(kill=True)
        self._tmp_video.unlink(missing_ok=True)
        self._tmp_audio.unlink(missing_ok=True)
        for written in self._stream_files():
            written.unlink(missing_ok=True)

    def _stream_files(self) -> list[Path]:
        """The files the stream has written so far (none for standard output)."""
        if not isinstance(self.stream, Path):
            return []
        if self.stream.suffix != ".m3u8":
            return [self.stream]
        # the segments, and the playlist's temporary copy that ffmpeg renames onto it
        return [self.stream, self.stream.with_name(self.stream.name + ".tmp"),
                *self.stream.parent.glob(f"{self.stream.stem}_*.ts")]

    def _end_process(self, kill: bool) -> int:
        """Close ffmpeg's input (after killing it when ``kill``), wait for it and its log; returns its exit status."""
        proc, self._proc = self._proc, None
        if kill and proc.poll() is None:
            proc.kill()
        try:
            proc.stdin.close()
        except OSError:
            pass  # ffmpeg already exited; its status says why
        status = proc.wait()
        self._log_reader.join()
        proc.stderr.close()
        return status

    def _fail(self, what: str) -> None:
        self.abort()
        log = list(self._log)
        raise VideoEncodeError(f"could not write {self.path}: {what}: {_gist(chr(10).join(log))}", log)

    @property
    def _original(self) -> Path | None:
        """The user's audio file, muxed as it is (resampled, trimmed or padded by ffmpeg), if any."""
        source = self.audio.source
        return Path(source) if source is not None and Path(source).is_file() else None

    def _write_audio_track(self) -> None:
        """The samples as 16-bit PCM WAV, exactly frames_expected / fps seconds long (when there is
        no original file to mux)."""
        if self._original is not None:
            return
        n = int(round(self.frames_expected * SAMPLE_RATE / self.fps))
        samples = np.zeros(n, np.float32)
        head = np.asarray(self.audio.samples, np.float32)[:n]
        samples[: len(head)] = head
        try:
            sf.write(self._tmp_audio, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        except (OSError, RuntimeError) as err:
            self._tmp_audio.unlink(missing_ok=True)
            raise OutputError(f"cannot write into {self.path.parent} ({_one_line(err)}); choose another --out") from err

    def _command(self) -> list[str]:
        even_w, even_h = self.width + self.width % 2, self.height + self.height % 2
        filters = []
        if (even_w, even_h) != (self.width, self.height):
            filters += [
                f"pad={even_w}:{even_h}:0:0",
                f"fillborders=right={even_w - self.width}:bottom={even_h - self.height}:mode=smear",
            ]
        filters.append("scale=out_color_matrix=bt709:out_range=tv,format=yuv420p")
        tune = f"{X264_TUNE},zerolatency" if self.stream else X264_TUNE
        live = ["-g", str(self.fps), "-keyint_min", str(self.fps)] if self.stream else []
        return [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "warning", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
            "-framerate", str(self.fps), "-i", "pipe:0",
            "-i", _file_url(self._original or self._tmp_audio),
            "-map", "0:v:0", "-map", "1:a:0", "-vf", ",".join(filters),
            "-af", f"aformat=channel_layouts=mono|stereo,apad,atrim=end={self.frames_expected / self.fps:.6f}",
            "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-tune", tune,
            "-pix_fmt", "yuv420p", *live,
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
            "-c:a", "aac", "-b:a", "128k", "-ar", "48000", *self._outputs(),
        ]  # fmt: skip

    def _outputs(self) -> list[str]:
        """ffmpeg's output arguments: the MP4, the stream, or both through the tee muxer."""
        mp4 = ("mp4", {"movflags": "+faststart"}, _file_url(self._tmp_video)) if self.path is not None else None
        live = None
        if self.stream is not None:
            frag = {"movflags": "+frag_keyframe+empty_moov+default_base_moof", "frag_duration": "200000",
                    "flush_packets": "1"}
            if str(self.stream) == "-":
                live = ("mp4", frag, "pipe:1")
            elif self.stream.suffix == ".m3u8":
                segments = self.stream.parent / f"{self.stream.stem}_%05d.ts"
                live = ("hls", {"hls_time": "1", "hls_list_size": "0", "hls_playlist_type": "event",
                                "hls_segment_filename": os.path.abspath(segments)}, _file_url(self.stream))
            else:
                live = ("mp4", frag, _file_url(self.stream))
        outputs = [o for o in (mp4, live) if o is not None]
        if len(outputs) == 1:
            fmt, opts, url = outputs[0]
            return [arg for k, v in opts.items() for arg in (f"-{k}", v)] + ["-f", fmt, url]
        # tee: "[f=mp4:movflags=...]url|[f=hls:...]url"; option values escaped for the tee syntax
        spec = "|".join(
            "[" + ":".join([f"f={fmt}"] + [f"{k}={_tee_escape(v)}" for k, v in opts.items()]) + "]" + _tee_escape(url)
            for fmt, opts, url in outputs
        )
        return ["-flags", "+global_header", "-f", "tee", spec]

    def _read_log(self, stream) -> None:
        for line in stream:
            self._log.append(line.decode("utf-8", "replace").rstrip())


# ------------------------------------------------------------------------------------- inspection


def probe_media(path: str | Path) -> dict:
    """Stream facts from ``ffmpeg -i``: {"duration_s": float | None, "video": dict | None, "audio": dict | None}.

    video: {"codec", "pix_fmt", "width", "height", "fps"} of the first video stream (cover art is
    skipped); audio: {"codec", "sample_rate", "channels"} of the first audio stream.
    Raises FileNotFoundError for a missing file and ValueError when ffmpeg cannot read it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _file_url(path)],
        capture_output=True,
        timeout=DECODE_TIMEOUT_S,
    )
    report = done.stderr.decode("utf-8", "replace")
    found = _parse_ffmpeg_report(report)
    if not found["streams"]:
        raise ValueError(f"ffmpeg cannot read {path}: {_gist(report)}")
    return {"duration_s": found["duration_s"], "video": found["video"], "audio": found["audio"]}


def read_video_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of a video one by one as read-only (H, W, 3) uint8 RGB arrays."""
    frames = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        width, height = next(frames)["size"]
        for buffer in frames:
            yield np.frombuffer(buffer, np.uint8).reshape(height, width, 3)
    finally:
        frames.close()


def count_frames(path: str | Path) -> int:
    """Number of video frames, counted by decoding the whole stream."""
    return int(imageio_ffmpeg.count_frames_and_secs(str(path))[0])


# -------------------------------------------------------------------------------------- internals

_STREAM = re.compile(r"^\s*Stream #\S+: (Video|Audio): (.*)$")
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_NAMED_LAYOUTS = {
    "mono": 1, "stereo": 2, "binaural": 2, "downmix": 2, "quad": 4,
    "hexagonal": 6, "octagonal": 8, "cube": 8, "hexadecagonal": 16,
}  # fmt: skip


def _parse_ffmpeg_report(report: str) -> dict:
    """The first input's duration (s) and first video and audio streams from ffmpeg's stderr report.

    "streams" counts the input's streams (0 when ffmpeg could not open it).
    """
    found = {"duration_s": None, "video": None, "audio": None, "streams": 0}
    inside = False
    for line in report.splitlines():
        if line.startswith("Input #"):
            if inside:
                break
            inside = True
            continue
        if not inside:
            continue
        if line.startswith(("Output #", "Stream mapping:")):
            break
        duration = _DURATION.search(line)
        if duration and found["duration_s"] is None:
            h, m, s = duration.groups()
            found["duration_s"] = int(h) * 3600 + int(m) * 60 + float(s)
        stream = _STREAM.match(line)
        if not stream:
            continue
        found["streams"] += 1
        kind, rest = stream.groups()
        fields = _split_fields(rest)
        if kind == "Video" and found["video"] is None and "(attached pic)" not in rest:
            found["video"] = _video_fields(fields)
        elif kind == "Audio" and found["audio"] is None:
            found["audio"] = _audio_fields(fields)
    return found


def _split_fields(text: str) -> list[str]:
    """Split a stream description at the commas that are not inside parentheses."""
    fields, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            fields.append(text[start:i].strip())
            start = i + 1
    fields.append(text[start:].strip())
    return fields


def _video_fields(fields: list[str]) -> dict:
    info = {"codec": fields[0].split()[0], "pix_fmt": None, "width": None, "height": None, "fps": None}
    for i, field in enumerate(fields[1:], start=1):
        size = re.match(r"(\d+)x(\d+)", field)
        if size and info["width"] is None:
            info["width"], info["height"] = int(size[1]), int(size[2])
            if i == 2:
                info["pix_fmt"] = re.match(r"\w*", fields[1])[0] or None
        rate = re.fullmatch(r"([\d.]+)(k?) (fps|tbr)", field)
        if rate and (info["fps"] is None or rate[3] == "fps"):
            info["fps"] = float(rate[1]) * (1000 if rate[2] else 1)
    return info


def _audio_fields(fields: list[str]) -> dict:
    info = {"codec": fields[0].split()[0], "sample_rate": None, "channels": None}
    for i, field in enumerate(fields):
        rate = re.fullmatch(r"(\d+) Hz", field)
        if rate:
            info["sample_rate"] = int(rate[1])
            if i + 1 < len(fields):
                info["channels"] = _layout_channels(fields[i + 1])
    return info


def _layout_channels(layout: str) -> int | None:
    """Channel count of an ffmpeg layout name: 'mono' 1, '5.1(side)' 6, '22.2' 24, '3 channels (FL+FR+LFE)' 3."""
    counted = re.match(r"(\d+) channels", layout)
    if counted:
        return int(counted[1])
    name = layout.split("(")[0].strip()
    if re.fullmatch(r"\d+(\.\d+)+", name):
        return sum(int(part) for part in name.split("."))
    return _NAMED_LAYOUTS.get(name)


def _gist(report: str) -> str:
    """ffmpeg's last report line without its '[component @ 0x...]' prefix, at most 200 characters."""
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    if not lines:
        return "no message"
    return re.sub(r"^\[[^\]]*\]\s*", "", lines[-1])[:200]


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


def _tee_escape(text: str) -> str:
    """Escape the characters the tee muxer's syntax reserves (``\\ : | [ ]``) in an option value or URL."""
    return re.sub(r"([\\:|\[\]])", r"\\\1", text)


def _file_url(path: Path) -> str:
    """An ffmpeg URL that reads ``path`` as a plain file (a name like 'http:x' or 'concat:x' stays a file)."""
    return "file:" + os.path.abspath(path)


def _check_input_file(path: Path, error: type, what: str) -> None:
    """Raise ``error`` when ``path`` is missing, a folder, unreadable or empty."""
    if not path.exists():
        raise error(f"{what} file {path} does not exist; check the path")
    if path.is_dir():
        raise error(f"{path} is a folder, not a {what} file; give the path of a file")
    if not os.access(path, os.R_OK):
        raise error(f"{what} file {path} cannot be read (permission denied); check its permissions")
    if path.stat().st_size == 0:
        raise error(f"{what} file {path} is empty (0 bytes); export it again")
