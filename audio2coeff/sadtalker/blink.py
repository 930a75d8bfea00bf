"""The eye-blink ratio input of Audio2Exp (SPEC §6): one value in [0, 1] per frame, 1 = eyes shut.

SadTalker draws blink positions from Python's unseeded ``random``; here the draw comes from a
``numpy.random.Generator`` so that a seed reproduces it.
"""

from __future__ import annotations

import numpy as np

BLINK_SHAPE = (0.5, 0.9, 1.0, 0.9, 0.5)
"""Ratio over the five frames of one blink."""

MIN_FRAMES = 21
"""Clips shorter than this get no blinks."""


def blink_ratio(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 1) float32 blink ratio.

    From frame 0 on, repeatedly draw a gap uniformly from the integers [min(10, T), min(T // 2, 70))
    and put a blink at frames pos+gap .. pos+gap+4 while it ends before the last frame; the next
    gap counts from the frame after the blink. Clips of fewer than 21 frames, and those where the
    range is empty (T = 21, where SadTalker crashes), get none.
    """
    ratio = np.zeros((num_frames, 1), dtype=np.float32)
    lo, hi = min(10, num_frames), min(num_frames // 2, 70)
    if num_frames < MIN_FRAMES or hi <= lo:
        return ratio
    pos = 0
    while True:
        start = pos + int(rng.integers(lo, hi))
        if start + len(BLINK_SHAPE) > num_frames - 1:
            return ratio
        ratio[start : start + len(BLINK_SHAPE), 0] = BLINK_SHAPE
        pos = start + len(BLINK_SHAPE)
