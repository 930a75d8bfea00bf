"""Job notifications: a JSON POST signed with HMAC-SHA256 over ``<timestamp>.<body>``.

Headers: ``X-Talker-Timestamp`` (Unix seconds), ``X-Talker-Signature: v1=<hex digest>``, keyed
with the tenant's ``webhook_secret``, and ``X-Talker-Event-Id`` (the same on every retry of one
event). A receiver recomputes the digest (``verify_signature``), refuses timestamps older than a
few minutes (replays) and drops event ids it has seen. Deliveries are retried with exponential
backoff by the notifier, a worker process of their own (``tasks``), never by a render process.
Addresses that resolve to loopback, private, link-local or reserved networks (also written as
IPv4-mapped, NAT64, 6to4 or Teredo IPv6) are refused unless the tenant has
``allow_private_webhooks``, and a delivery connects to the very address it checked.
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


# IPv6 forms that carry an IPv4 address: the IPv4 address decides (NAT64, IPv4-compatible)
_CARRIES_IPV4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("::/96"))


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a global unicast address. An IPv6 address that embeds an IPv4 one (IPv4-mapped
    ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d, 6to4 2002:AABB:CCDD::,
    Teredo) is judged by that IPv4 address too."""
    if not ip.is_global or ip.is_multicast:
        return False
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and any(ip in net for net in _CARRIES_IPV4):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public(embedded):
            return False
    return True


def check_url(url: str, allow_private: bool) -> list[str]:
    """The addresses ``url``'s host resolves to (one lookup), after checking that the URL is
    http(s) and (unless ``allow_private``) that every address is public; OptionError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionError(f"webhook {url!r} must be an http:// or https:// address")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise OptionError(f"webhook host {parts.hostname!r} does not resolve") from None
    addresses = list(dict.fromkeys(info[4][0].split("%")[0] for info in infos))
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if not allow_private and not is_public(ip):
            raise OptionError(
                f"webhook {url!r} resolves to {ip}, a loopback, private or reserved address; "
                "webhooks go to public addresses only (the tenant's allow_private_webhooks setting lifts this)"
            )
    return addresses


def post_signed(url: str, secret: str, payload: dict, event_id: str, timeout_s: float, allow_private: bool) -> int:
    """POST ``payload`` as JSON with the signature headers and ``X-Talker-Event-Id`` (the same on
    every retry of one event, so a receiver can drop repeats) to the address ``check_url`` checked:
    the name is resolved once, and the connection goes to that address (with the name as the Host
    header and, for https, as the TLS server name), so a second lookup cannot lead elsewhere.
    Returns the HTTP status; OptionError for a refused address."""
    import httpx

    parts = urlsplit(url)
    address = check_url(url, allow_private)[0]
    host = f"[{address}]" if ":" in address else address
    netloc = host + (f":{parts.port}" if parts.port else "")
    pinned = parts._replace(netloc=netloc).geturl()
    body = json.dumps(payload, sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "host": parts.netloc.rsplit("@", 1)[-1],
        "content-type": "application/json",
        "x-talker-timestamp": timestamp,
        "x-talker-signature": signature(secret, timestamp, body),
        "x-talker-event-id": event_id,
    }
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        request = client.build_request("POST", pinned, content=body, headers=headers, extensions=extensions)
        return client.send(request).status_code
