#!/opt/talker/bin/python
"""Docker HEALTHCHECK: exit 0 when the container's talker processes are healthy, 1 when not.

Every ``talker serve [--port N]`` process in the container must answer ``GET /healthz`` on its port
(8000 when not given) with 200 within 3 s. A worker container has no HTTP server: Docker already
restarts it when its process exits, so it reports healthy while it runs.
"""

import sys
import urllib.request
from pathlib import Path


def serve_ports() -> list[str]:
    """The --port of each `talker serve` process visible here."""
    ports = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:  # the process ended while we looked
            continue
        if any(a == "talker" or a.endswith("/talker") for a in argv[:2]) and "serve" in argv:
            ports.append(argv[argv.index("--port") + 1] if "--port" in argv else "8000")
    return ports


def main() -> int:
    for port in serve_ports():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as reply:
                if reply.status != 200:
                    print(f"/healthz on port {port}: HTTP {reply.status}", file=sys.stderr)
                    return 1
        except OSError as err:
            print(f"/healthz on port {port}: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
