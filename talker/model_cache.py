"""Networks loaded once per process and reused by every later render in it.

The web UI, the job service's worker processes and the ComfyUI nodes render many clips in one
process; loading the SadTalker networks (about 725 MB at 256) and GFPGAN again for each clip would
dominate short jobs. ``cached(key, build)`` returns the object built for ``key`` earlier in this
process, or builds it. Keys name the files by path, size and modification time (``file_key``), so a
replaced checkpoint is loaded afresh. The ``MAX_ENTRIES`` most recently used objects are kept.

Cached objects are shared: a user must not change them (the renderer and the restorer only read
their networks; the fast renderer folds weights into copies of its own).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

MAX_ENTRIES = 6
_lock = threading.Lock()
_entries: OrderedDict[Hashable, object] = OrderedDict()
_building: dict[Hashable, threading.Lock] = {}


def cached(key: Hashable, build: Callable[[], T]) -> T:
    """The object ``build()`` made for ``key`` in this process, building it on first use.

    Two threads asking for the same key build it once (the second waits for the first); builds
    of different keys run at the same time (the renderer loads while the audio networks work).
    """
    with _lock:
        if key in _entries:
            _entries.move_to_end(key)
            return _entries[key]
        building = _building.setdefault(key, threading.Lock())
    with building:
        with _lock:
            if key in _entries:
                _entries.move_to_end(key)
                return _entries[key]
        value = build()
        with _lock:
            _entries[key] = value
            _building.pop(key, None)
            while len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)
            return value


def file_key(*paths: Path | None) -> tuple:
    """(path, size in bytes, mtime in ns) of each existing file: changes when a file is replaced."""
    key = []
    for path in paths:
        if path is not None:
            st = Path(path).stat()
            key.append((str(Path(path).resolve()), st.st_size, st.st_mtime_ns))
    return tuple(key)


def entries() -> dict:
    """A copy of what is cached now: key -> object, least recently used first."""
    with _lock:
        return dict(_entries)


def clear() -> None:
    """Forget every cached object (frees their memory once no render holds them)."""
    with _lock:
        _entries.clear()
