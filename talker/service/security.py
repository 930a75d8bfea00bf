"""Who may call the API and what it accepts.

- API keys per tenant (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``): 401 without a valid
  key; a tenant sees only its own jobs (another tenant's job id is 404, as if it did not exist).
- Upload limits (bytes per file, pixels of a portrait, seconds of audio, characters and seconds of
  spoken text): 413 with the limit named. Lengths are measured, never read from a header: audio is
  decoded (at most the limit plus a second of it), text is spoken by espeak-ng.
- Wrong keys: a client address that sent ``limits.wrong_keys_per_minute`` wrong keys within a
  minute is refused (429) for the next minute, whatever key it sends.
- Per tenant: submissions a minute and jobs queued or running at once (429 with Retry-After), and
  the operator's options (device, precision, compile, batch_size) refused unless allowed (403).
- Types judged from the content (magic bytes, then decoding), never from file names: 415.
- Inputs that cannot make a video (a truncated picture, silent or too short audio): 422, before
  the job is accepted.
"""

from __future__ import annotations

from pathlib import Path

from talker.service.config import Limits, ServiceConfig, Tenant


class Refused(Exception):
    """A request the API turns down: HTTP ``status`` and a message that says what to change."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def tenant_of(config: ServiceConfig, headers) -> Tenant:
    """The tenant whose key the request carries; Refused(401) otherwise."""
    key = headers.get("x-api-key")
    auth = headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    tenant = config.tenant_by_key(key)
    if tenant is None:
        raise Refused(401, "missing or wrong API key: send 'Authorization: Bearer <key>' with a key from the service's config")
    return tenant


def check_operator_options(options: dict, tenant: Tenant) -> None:
    """Refused(403) when ``options`` set an operator option that ``tenant.allow_options`` does not list."""
    from talker.service.forms import OPERATOR_OPTIONS

    refused = [name for name in OPERATOR_OPTIONS if name in options and name not in tenant.allow_options]
    if refused:
        raise Refused(403, f"option{'s' if len(refused) > 1 else ''} {', '.join(refused)} {'are' if len(refused) > 1 else 'is'} "
                           "set by the service's operator; leave it out (or ask for it in the tenant's allow_options)")


class Lockout:
    """Client addresses that sent too many wrong keys, refused for a minute (per API process)."""

    WINDOW_S = 60.0

    def __init__(self, limit: int | None):
        import threading

        self.limit = limit
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Refused(429) while ``address`` is locked out."""
        import time

        if not self.limit:
            return
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(address, []) if t > now - self.WINDOW_S]
            self._failures[address] = recent
            if len(recent) >= self.limit:
                wait = int(recent[-self.limit] + self.WINDOW_S - now) + 1
                raise Refused(429, f"too many wrong API keys from {address}; try again in {wait} s",
                              {"Retry-After": str(wait)})

    def failed(self, address: str) -> None:
        import time

        if self.limit:
            with self._lock:
                self._failures.setdefault(address, []).append(time.monotonic())


class RateLimits:
    """Per-tenant submissions a minute (a token bucket per API process) and jobs queued or running
    at once (counted in the store); Refused(429) with Retry-After when over."""

    def __init__(self):
        import threading

        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, at monotonic seconds)
        self._lock = threading.Lock()

    def take(self, tenant: Tenant) -> None:
        """Spend one submission of ``tenant``'s rate_per_minute."""
        import time

        rate = tenant.rate_per_minute
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            tokens, at = self._buckets.get(tenant.name, (rate, now))
            tokens = min(rate, tokens + (now - at) * rate / 60.0)
            if tokens < 1.0:
                self._buckets[tenant.name] = (tokens, now)
                wait = max(1, int((1.0 - tokens) * 60.0 / rate + 0.999))
                raise Refused(429, f"tenant {tenant.name!r} may submit {rate:g} times a minute; try again in {wait} s",
                              {"Retry-After": str(wait)})
            self._buckets[tenant.name] = (tokens - 1.0, now)

    @staticmethod
    def check_active(tenant: Tenant, store, adding: int = 1) -> None:
        """Refused(429) when ``adding`` more jobs would put ``tenant`` over its max_active_jobs."""
        if tenant.max_active_jobs is None:
            return
        active = sum(1 for job in store.active() if job.tenant == tenant.name)
        if active + adding > tenant.max_active_jobs:
            raise Refused(429, f"tenant {tenant.name!r} has {active} jobs queued or running and may have "
                               f"{tenant.max_active_jobs} at once; submit again when some have ended",
                          {"Retry-After": "10"})


_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"BM", ".bmp"))
_AUDIO_MAGIC = ((b"ID3", ".mp3"), (b"OggS", ".ogg"), (b"fLaC", ".flac"), (b"\x1a\x45\xdf\xa3", ".webm"))


def image_type(head: bytes) -> str | None:
    """'.png', '.jpg', '.webp' or '.bmp' from the first bytes of a file, else None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return next((ext for magic, ext in _IMAGE_MAGIC if head.startswith(magic)), None)


def audio_type(head: bytes) -> str | None:
    """A file suffix for the audio container the first bytes show (wav, mp3, ogg, flac, m4a,
    webm, aiff), else None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return ".aiff"
    if head[4:8] == b"ftyp":
        return ".m4a"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return ".mp3"  # an MPEG audio frame header without an ID3 tag
    return next((ext for magic, ext in _AUDIO_MAGIC if head.startswith(magic)), None)


def _head(path: Path) -> bytes:
    """The first 16 bytes of a file: enough for every signature above."""
    with open(path, "rb") as f:
        return f.read(16)


def capped(request, max_bytes: int, what: str):
    """``request`` (a Starlette Request) with its body cut at ``max_bytes``: a declared
    Content-Length over it is refused before anything is read, and a body that streams past it
    (chunked, or longer than declared) is refused when the byte after the limit arrives, so nothing
    bigger is ever held in memory or spooled to disk. Refused(413) names ``what`` and the limit."""
    from starlette.requests import Request

    def refuse(size: str):
        return Refused(413, f"{what} is {size}, over the {max_bytes / 1e6:.3g} MB limit; send less")

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise refuse(f"{int(declared) / 1e6:.3g} MB")
    seen = 0

    async def receive():
        nonlocal seen
        message = await request.receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise refuse("longer")
        return message

    return Request(request.scope, receive)


def check_size(name: str, size: int, limits: Limits) -> None:
    if size > limits.upload_bytes:
        raise Refused(413, f"{name} is {size / 1e6:.1f} MB, over the {limits.upload_bytes / 1e6:.1f} MB upload limit; send a smaller file")


def check_text(text: str | None, limits: Limits, spoken: bool) -> None:
    """Refused 413 for text over the character limit and, when it is to be ``spoken`` (no audio
    given), for speech longer than the audio limit: espeak-ng speaks it here (about 0.2 s of CPU for
    5000 characters), so numbers, abbreviations and pauses count as they will be heard.
    OptionError (422) for text that gives no speech."""
    if text and len(text) > limits.text_chars:
        raise Refused(413, f"the text is {len(text)} characters, over the {limits.text_chars} character limit; split it into shorter scripts")
    if spoken and text:
        from talker.media import synthesize_speech
        from talker.types import SAMPLE_RATE

        seconds = len(synthesize_speech(text).samples) / SAMPLE_RATE
        if seconds > limits.audio_seconds:
            raise Refused(413, f"the text takes {seconds:.0f} s to speak, over the {limits.audio_seconds:.0f} s audio limit; "
                               "split it into shorter scripts")


def check_image(name: str, path: Path, limits: Limits) -> str:
    """Sniff and measure an uploaded portrait; returns its suffix. Refused 415 / 413."""
    from PIL import Image

    suffix = image_type(_head(path))
    if suffix is None:
        raise Refused(415, f"{name} is not a PNG, JPEG, WebP or BMP image (judged by its content, not its name); send a portrait picture")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height <= limits.image_pixels:
                im.load()  # the whole picture decodes: not truncated
    except Image.DecompressionBombError:  # Pillow refuses to open more than twice its own pixel limit
        raise Refused(413, f"{name} has more pixels than the {limits.image_pixels / 1e6:.0f} megapixel limit; downscale it") from None
    except Exception:
        raise Refused(415, f"{name} looks like a {suffix[1:].upper()} image but cannot be decoded (truncated or damaged); "
                           "send an intact picture") from None
    if width * height > limits.image_pixels:
        raise Refused(413, f"{name} is {width}x{height} pixels, over the {limits.image_pixels / 1e6:.0f} megapixel limit; downscale it")
    return suffix


def check_audio(name: str, path: Path, limits: Limits) -> str:
    """Sniff and measure uploaded speech by decoding it; returns its suffix. Refused 415 (not
    audio, undecodable), 413 (longer than the limit), 422 (silent or too short)."""
    from talker.media import MIN_AUDIO_SECONDS, SILENCE_PEAK

    suffix = audio_type(_head(path))
    if suffix is None:
        raise Refused(415, f"{name} is not audio in a known container (WAV, MP3, OGG, FLAC, M4A, WebM, AIFF; judged by its content); send a recording")
    import subprocess

    try:
        seconds, peak = measure_audio(path, limits.audio_seconds + 1.0)
    except subprocess.TimeoutExpired:
        raise Refused(422, f"{name} took longer than {MEASURE_TIMEOUT_S:.0f} s to decode; convert it to WAV") from None
    if seconds == 0.0:
        raise Refused(415, f"{name} looks like {suffix[1:].upper()} but holds no readable audio; send an intact recording")
    if seconds > limits.audio_seconds:
        raise Refused(413, f"{name} lasts at least {seconds:.0f} s, over the {limits.audio_seconds:.0f} s audio limit; "
                           "split it into shorter clips")
    if seconds < MIN_AUDIO_SECONDS:
        raise Refused(422, f"{name} is {seconds:.2f} s long; send at least {MIN_AUDIO_SECONDS:g} s of speech")
    if peak < SILENCE_PEAK:
        raise Refused(422, f"{name} contains only silence; send a recording with speech in it")
    return suffix


MEASURE_RATE = 8000  # Hz: enough to find the length and the loudest sample of speech
MEASURE_TIMEOUT_S = 30.0


def measure_audio(path: Path, max_seconds: float) -> tuple[float, float]:
    """(seconds, peak) of the first audio stream of ``path``, found by decoding it with ffmpeg to
    8 kHz mono, at most ``max_seconds`` of it (so a header that lies about the length, or a long
    file, costs no more than the limit); peak is the largest |sample| in [0, 1]. (0.0, 0.0) when
    nothing decodes; subprocess.TimeoutExpired after MEASURE_TIMEOUT_S."""
    import subprocess

    import imageio_ffmpeg
    import numpy as np

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
               "-i", str(path), "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(MEASURE_RATE),
               "-t", f"{max_seconds:.3f}", "-f", "s16le", "pipe:1"]
    done = subprocess.run(command, capture_output=True, timeout=MEASURE_TIMEOUT_S)
    samples = np.frombuffer(done.stdout[: len(done.stdout) // 2 * 2], np.int16)
    if samples.size == 0:
        return 0.0, 0.0
    return samples.size / MEASURE_RATE, float(np.abs(samples.astype(np.int32)).max()) / 32768.0
