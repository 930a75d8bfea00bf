"""The Discord front end: a slash command ``/talk text:<words> avatar:<name>`` makes a video.

Discord POSTs interactions to ``/v1/discord/interactions`` and wants an answer within 3 s, so the
endpoint reads at most a few kB, checks the Ed25519 signature (``X-Signature-Ed25519`` over
``X-Signature-Timestamp`` + body, with the application's public key), refuses a timestamp more than
5 minutes from the server's clock and an interaction id it has already handled (a replayed
request), enqueues a job and answers type 5 ("deferred"); the worker
later posts the video through the interaction's webhook (``follow_up``), at the configurable
``discord.api_base`` (tests point it at a loopback fake).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
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


MAX_AGE_S = 300.0  # a signed request is accepted this long (seconds) either side of the server's clock


def fresh(timestamp: str, max_age_s: float = MAX_AGE_S) -> bool:
    """True when ``timestamp`` (Unix seconds, as Discord sends it) is within ``max_age_s`` of now."""
    try:
        return abs(time.time() - float(timestamp)) <= max_age_s
    except ValueError:
        return False


class SeenInteractions:
    """Interaction ids handled in the last 2 x MAX_AGE_S seconds (older ones are refused by their
    timestamp anyway), kept in this API process's memory."""

    def __init__(self):
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, interaction_id: str) -> bool:
        """Remember ``interaction_id``; False when it was seen already."""
        now = time.monotonic()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - 2 * MAX_AGE_S:
                self._seen.popitem(last=False)
            if interaction_id in self._seen:
                return False
            self._seen[interaction_id] = now
            return True


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
