"""A running job's heartbeat, sent by a small process of its own.

A render holds Python's global interpreter lock for long stretches (the phone recogniser held it
~40 s on a long clip), so a heartbeat thread in the render process can starve and the controller
would take a live job for a dead one and run it again. This process shares no lock with the render:
every ``heartbeat_s`` seconds it writes ``heartbeat_at`` while the render process still holds the
job, and it ends when the job is no longer that process's (finished, cancelled, taken over), when
the render process closes its pipe, or when the render process dies (the pipe closes with it), so a
dead worker stops heartbeating as before.

    python -m talker.service.heartbeat STORE_URL JOB_ID TOKEN HEARTBEAT_S
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time


class Heartbeat:
    """The heartbeat process of one claimed job, stopped by ``close`` (or the render process's death)."""

    def __init__(self, store_url: str, job_id: str, token: str, heartbeat_s: float):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "talker.service.heartbeat", store_url, job_id, token, repr(float(heartbeat_s))],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        )

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the heartbeat process reads end-of-file and ends
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def beat(store_url: str, job_id: str, token: str, heartbeat_s: float) -> None:
    """Write the job's heartbeat every ``heartbeat_s`` seconds until stdin closes or the job is no
    longer held by ``token``."""
    import logging

    from talker.service.jobs import RUNNING, open_store

    store = open_store(store_url)
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], heartbeat_s)
        if readable and not os.read(sys.stdin.fileno(), 1):
            return  # the render process ended the job or died
        try:
            if not store.update(job_id, only_if={"state": [RUNNING], "worker": [token]}, heartbeat_at=time.time()):
                return
        except Exception as err:  # the store is briefly unreachable: try again at the next beat
            logging.getLogger(__name__).warning("job %s: heartbeat not written (%s)", job_id, err)


if __name__ == "__main__":
    beat(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
