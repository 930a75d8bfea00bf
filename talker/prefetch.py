"""Run a producer of batches one step ahead of its consumer, in a thread.

The pipeline's render loop asks the renderer for frames (GPU work) and then pastes, restores and
encodes them; ``prefetch`` lets the renderer work on the next batches meanwhile, so neither side
waits for the other (torch, OpenCV and the pipe to ffmpeg release the GIL while they work).
"""

from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from typing import Iterator, TypeVar

T = TypeVar("T")
_END = object()


@contextmanager
def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[Iterator[T]]:
    """Context manager yielding an iterator over ``items``, which a thread draws up to ``depth`` ahead.

    An exception raised by ``items`` is re-raised by the iterator, in order. On leaving the block
    (normally, by an exception or by ``break``) the thread is stopped and ``items`` is closed.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                slots.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as err:  # handed to the consumer, raised there
            put((_END, err))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def consume() -> Iterator[T]:
        while True:
            item, err = slots.get()
            if err is not None:
                raise err
            if item is _END:
                return
            yield item

    worker = threading.Thread(target=produce, name="talker-prefetch", daemon=True)
    worker.start()
    try:
        yield consume()
    finally:
        stop.set()
        worker.join()
