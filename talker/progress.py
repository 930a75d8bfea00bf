"""Progress on a terminal: one tqdm bar for rendering (frames, fps, ETA), a line per earlier stage.

Shown only when stderr is a terminal, so logs and scripts stay clean.
"""

from __future__ import annotations

import sys

from talker.pipeline import Progress

_STAGE_TEXT = {
    "face": "finding the face",
    "audio": "reading the speech",
    "motion": "turning speech into motion",
}


class TerminalProgress:
    """A ``talker.pipeline.ProgressCallback`` that draws on stderr; use as a context manager."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._bar = None

    def __enter__(self) -> "TerminalProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        if p.stage != "render":
            print(f"talker: {p.note or _STAGE_TEXT.get(p.stage, p.stage) + '...'}", file=self.stream)
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=p.total, unit="frame", desc="rendering", file=self.stream, dynamic_ncols=True)
        self._bar.update(p.done - self._bar.n)
