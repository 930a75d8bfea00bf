"""Who may call the API and what it accepts.

- API keys per tenant (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``): 401 without a valid
  key; a tenant sees only its own jobs (another tenant's job id is 404, as if it did not exist).
- Upload limits (bytes per file, pixels of a portrait, seconds of audio, characters of text): 413
  with the limit named.
- Types judged from the content (magic bytes, then decoding), never from file names: 415.
"""

from __future__ import annotations

from pathlib import Path

from talker.service.config import Limits, ServiceConfig, Tenant


class Refused(Exception):
    """A request the API turns down: HTTP ``status`` and a message that says what to change."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


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


def check_size(name: str, size: int, limits: Limits) -> None:
    if size > limits.upload_bytes:
        raise Refused(413, f"{name} is {size / 1e6:.1f} MB, over the {limits.upload_bytes / 1e6:.1f} MB upload limit; send a smaller file")


def check_text(text: str | None, limits: Limits) -> None:
    if text and len(text) > limits.text_chars:
        raise Refused(413, f"the text is {len(text)} characters, over the {limits.text_chars} character limit; split it into shorter scripts")


def check_image(name: str, path: Path, limits: Limits) -> str:
    """Sniff and measure an uploaded portrait; returns its suffix. Refused 415 / 413."""
    from PIL import Image

    suffix = image_type(_head(path))
    if suffix is None:
        raise Refused(415, f"{name} is not a PNG, JPEG, WebP or BMP image (judged by its content, not its name); send a portrait picture")
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception:
        raise Refused(415, f"{name} looks like a {suffix[1:].upper()} image but cannot be decoded; send an intact picture") from None
    if width * height > limits.image_pixels:
        raise Refused(413, f"{name} is {width}x{height} pixels, over the {limits.image_pixels / 1e6:.0f} megapixel limit; downscale it")
    return suffix


def check_audio(name: str, path: Path, limits: Limits) -> str:
    """Sniff and measure uploaded speech; returns its suffix. Refused 415 / 413."""
    from talker.media import probe_media

    suffix = audio_type(_head(path))
    if suffix is None:
        raise Refused(415, f"{name} is not audio in a known container (WAV, MP3, OGG, FLAC, M4A, WebM, AIFF; judged by its content); send a recording")
    try:
        facts = probe_media(path)
    except ValueError:
        facts = {"audio": None}
    if facts.get("audio") is None:
        raise Refused(415, f"{name} looks like {suffix[1:].upper()} but holds no readable audio stream; send an intact recording")
    seconds = facts.get("duration_s") or 0.0
    if seconds > limits.audio_seconds:
        raise Refused(413, f"{name} lasts {seconds:.0f} s, over the {limits.audio_seconds:.0f} s audio limit; split it into shorter clips")
    return suffix
