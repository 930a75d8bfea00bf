"""Job notifications: a JSON POST signed with HMAC-SHA256 over ``<timestamp>.<body>``.

Headers: ``X-Talker-Timestamp`` (Unix seconds) and ``X-Talker-Signature: v1=<hex digest>``, keyed
with the tenant's ``webhook_secret``. A receiver recomputes the digest (``verify_signature``) and
refuses timestamps older than a few minutes (replays). Deliveries are retried with exponential
backoff by the worker (``tasks``). Addresses that resolve to loopback, private, link-local or
reserved networks are refused unless the tenant has ``allow_private_webhooks``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from urllib.parse import urlsplit

from talker.errors import OptionError


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 of ``timestamp.body`` keyed with ``secret``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, header: str, max_age_s: float = 300.0) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        fresh = abs(time.time() - float(timestamp)) <= max_age_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(signature(secret, timestamp, body), header)


def check_url(url: str, allow_private: bool) -> None:
    """Raise OptionError unless ``url`` is http(s) and (unless ``allow_private``) every address its
    host resolves to is public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionError(f"webhook {url!r} must be an http:// or https:// address")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise OptionError(f"webhook host {parts.hostname!r} does not resolve") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise OptionError(
                f"webhook {url!r} resolves to {ip}, a loopback, private or reserved address; "
                "webhooks go to public addresses only (the tenant's allow_private_webhooks setting lifts this)"
            )


def post_signed(url: str, secret: str, payload: dict, timeout_s: float) -> int:
    """POST ``payload`` as JSON with the signature headers; returns the HTTP status."""
    import httpx

    body = json.dumps(payload, sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "x-talker-timestamp": timestamp,
        "x-talker-signature": signature(secret, timestamp, body),
    }
    return httpx.post(url, content=body, headers=headers, timeout=timeout_s, follow_redirects=False).status_code
