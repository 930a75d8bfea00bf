"""Serving a video while it renders.

``talker make --stream live.mp4`` (or ``MakeOptions`` + ``make(..., stream=path)``) writes a
fragmented MP4 that grows as frames are encoded: a fragment every 0.2 s of video, each playable
as soon as it is on disk (the movie header comes first, with no sample table). ``follow`` reads
such a file from the start and keeps reading as it grows, until the render is over, so an HTTP
handler can send a job's video while it renders::

    # FastAPI, in the job service
    return StreamingResponse(follow(job_dir / "live.mp4", done=lambda: job_finished(job_id)),
                             media_type="video/mp4")

The bytes it yields are the file's, in order; a player (or ``ffmpeg -i pipe:``) decodes them as
they come.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator


def follow(path: str | Path, done: Callable[[], bool], chunk: int = 1 << 16, poll_s: float = 0.05,
           appear_timeout_s: float = 60.0) -> Iterator[bytes]:
    """Yield the bytes of the growing file at ``path`` until ``done()`` is true and all are read.

    ``done``: returns True once the writer has finished (or failed); it is asked only when the
    file has no new bytes. Waits up to ``appear_timeout_s`` seconds for the file to appear
    (FileNotFoundError after that, or at once when ``done()`` is already true and it never came).
    ``chunk``: bytes read at a time; ``poll_s``: seconds between looks at a file that is not growing.
    """
    path = Path(path)
    waited = 0.0
    while not path.exists():
        if done() or waited >= appear_timeout_s:
            raise FileNotFoundError(f"no stream at {path}")
        time.sleep(poll_s)
        waited += poll_s
    with open(path, "rb") as f:
        while True:
            data = f.read(chunk)
            if data:
                yield data
                continue
            if done():
                rest = f.read()  # written between the last read and done()
                while rest:
                    yield rest[:chunk]
                    rest = rest[chunk:]
                return
            time.sleep(poll_s)
