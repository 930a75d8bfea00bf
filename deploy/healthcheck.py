#!/opt/talker/bin/python
"""Docker HEALTHCHECK: exit 0 when the container's talker process is healthy, 1 when not.

In an API container (a ``talker serve --port N`` process) ``GET /healthz`` on that port must answer
200 within 3 s. A worker container has no HTTP server: Docker already restarts it when its process
exits, so it reports healthy while it runs.
"""

import sys
import urllib.request
from pathlib import Path


def serve_port() -> str | None:
    """The --port of the `talker serve` process in this container (8000 when not given), else None."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:  # the process ended while we looked
            continue
        if any(a.endswith("/talker") or a == "talker" for a in argv) and "serve" in argv:
            return argv[argv.index("--port") + 1] if "--port" in argv else "8000"
    return None


def main() -> int:
    port = serve_port()
    if port is None:
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as reply:
            return 0 if reply.status == 200 else 1
    except OSError as err:
        print(f"/healthz on port {port}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
