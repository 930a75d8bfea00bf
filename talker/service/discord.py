"""The Discord front end: a slash command ``/talk text:<words> avatar:<name>`` makes a video.

Discord POSTs interactions to ``/v1/discord/interactions`` and wants an answer within 3 s, so the
endpoint checks the Ed25519 signature (``X-Signature-Ed25519`` over ``X-Signature-Timestamp`` +
body, with the application's public key), enqueues a job and answers type 5 ("deferred"); the worker
later posts the video through the interaction's webhook (``follow_up``), at the configurable
``discord.api_base`` (tests point it at a loopback fake).
"""

from __future__ import annotations

import json
from pathlib import Path

PING, APPLICATION_COMMAND = 1, 2
PONG, DEFERRED_CHANNEL_MESSAGE = 1, 5


def verify(public_key_hex: str, signature_hex: str, timestamp: str, body: bytes) -> bool:
    """True when ``signature_hex`` is the Ed25519 signature of timestamp + body."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(bytes.fromhex(public_key_hex)).verify(timestamp.encode() + body, bytes.fromhex(signature_hex))
        return True
    except (BadSignatureError, ValueError):
        return False


def command_options(interaction: dict) -> dict:
    """The slash command's options as name -> value."""
    return {o["name"]: o.get("value") for o in (interaction.get("data") or {}).get("options") or []}


def follow_up(api_base: str, job_discord: dict, video: Path | None, message: str, timeout_s: float) -> int:
    """Post the follow-up message (with the MP4 attached when given); returns the HTTP status."""
    import httpx

    url = f"{api_base.rstrip('/')}/webhooks/{job_discord['application_id']}/{job_discord['token']}"
    payload = {"content": message}
    if video is None:
        return httpx.post(url, json=payload, timeout=timeout_s).status_code
    payload["attachments"] = [{"id": 0, "filename": video.name}]
    with open(video, "rb") as f:
        files = {"files[0]": (video.name, f, "video/mp4")}
        return httpx.post(url, data={"payload_json": json.dumps(payload)}, files=files, timeout=timeout_s).status_code
