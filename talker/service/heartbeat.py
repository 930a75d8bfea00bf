"""The heartbeats of a render process's jobs, sent by a small process of its own.

A render holds Python's global interpreter lock for long stretches (the phone recogniser held it
~40 s on a long clip), so a heartbeat thread in the render process can starve and the controller
would take a live job for a dead one and run it again. The heartbeat process shares no lock with
the render: the render process tells it (a line on its stdin) which job it holds, and every
``heartbeat_s`` seconds it writes that job's ``heartbeat_at`` while the job is still held by that
claim. It stops beating for a job when told, or when the job is no longer the claim's (finished,
cancelled, taken over), and it ends when the render process dies (its stdin closes), so a dead
worker stops heartbeating as before. One heartbeat process serves all the jobs of its render
process, one after another (it starts with the first).

    python -m talker.service.heartbeat STORE_URL HEARTBEAT_S      # then lines: "hold JOB TOKEN" / "release"
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time

_lock = threading.Lock()
_process: dict = {}  # (pid, store_url, heartbeat_s) -> Popen: this render process's heartbeat process


def _heartbeat_process(store_url: str, heartbeat_s: float) -> subprocess.Popen:
    """This process's heartbeat process for ``store_url``, started on first use (and again after a
    fork or if it ended)."""
    key = (os.getpid(), store_url, float(heartbeat_s))
    with _lock:
        proc = _process.get(key)
        if proc is None or proc.poll() is not None:
            proc = _process[key] = subprocess.Popen(
                [sys.executable, "-m", "talker.service.heartbeat", store_url, repr(float(heartbeat_s))],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, bufsize=1,
            )
        return proc


def hold(store_url: str, heartbeat_s: float, job_id: str, token: str) -> None:
    """Start the heartbeats of ``job_id`` held by the claim ``token``."""
    _tell(store_url, heartbeat_s, f"hold {job_id} {token}")


def release(store_url: str, heartbeat_s: float) -> None:
    """Stop the heartbeats of the job held now (a beat already on its way finds the job ended or
    no longer this claim's, and changes nothing)."""
    _tell(store_url, heartbeat_s, "release")


def _tell(store_url: str, heartbeat_s: float, line: str) -> None:
    proc = _heartbeat_process(store_url, heartbeat_s)
    try:
        proc.stdin.write(line + "\n")
    except (BrokenPipeError, ValueError):  # it died: a new one takes the line
        with _lock:
            _process.pop((os.getpid(), store_url, float(heartbeat_s)), None)
        _heartbeat_process(store_url, heartbeat_s).stdin.write(line + "\n")


def beat(store_url: str, heartbeat_s: float) -> None:
    """The heartbeat process: read hold/release lines from stdin, write the held job's heartbeat
    every ``heartbeat_s`` seconds, end at end-of-file."""
    import logging

    from talker.service.jobs import RUNNING, open_store

    store = open_store(store_url)
    held: tuple[str, str] | None = None
    due = time.monotonic() + heartbeat_s
    buffered = ""
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], max(0.0, due - time.monotonic()))
        if readable:
            chunk = os.read(sys.stdin.fileno(), 4096).decode()
            if not chunk:
                return  # the render process ended or died
            buffered += chunk
            *lines, buffered = buffered.split("\n")
            for line in lines:
                words = line.split()
                held = (words[1], words[2]) if words[:1] == ["hold"] and len(words) == 3 else None
            continue
        due = time.monotonic() + heartbeat_s
        if held is None:
            continue
        try:
            if not store.update(held[0], only_if={"state": [RUNNING], "worker": [held[1]]}, heartbeat_at=time.time()):
                held = None  # ended, cancelled or taken over
        except Exception as err:  # the store is briefly unreachable: try again at the next beat
            logging.getLogger(__name__).warning("job %s: heartbeat not written (%s)", held[0], err)


if __name__ == "__main__":
    beat(sys.argv[1], float(sys.argv[2]))
