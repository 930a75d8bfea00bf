"""Folders made for a command's output, and removed again when the command fails.

A failed ``talker make`` or ``talker models download`` must leave nothing behind, empty folders
included, so the folders above an output file are made only once the checks have passed, and
``made_folders`` takes back the ones it made when the work inside it raises.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def missing_folders(path: Path | str) -> list[Path]:
    """The folders above file ``path`` that do not exist yet, outermost first."""
    missing = []
    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


def existing_ancestor(path: Path | str) -> Path:
    """The nearest folder (or file) above ``path`` that exists."""
    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


@contextmanager
def made_folders(*paths: Path | str | None) -> Iterator[list[Path]]:
    """Make the missing folders above each file path (None is skipped) and yield them; when the block
    raises (Ctrl-C included), remove those of them that are still empty, deepest first, and re-raise.

    Raises OSError (after taking back what it made) when a folder cannot be made.
    """
    made: list[Path] = []
    try:
        for path in paths:
            if path is None:
                continue
            for folder in missing_folders(path):
                folder.mkdir()
                made.append(folder)
        yield made
    except BaseException:
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                pass  # something was written into it (a resumable .part file): keep it
        raise
