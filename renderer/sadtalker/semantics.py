"""Renderer inputs from coefficients (SPEC §9): source/target semantics, 27-frame windows, batching,
free-view angle sequences, reference-pose transfer.

All arrays are numpy float32. Column layout of coefficients: exp 0:64, angle 64:67 (yaw, pitch,
roll, radians), trans 67:70, crop params 70:73 (s, t_x, t_y; only in full modes).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SEMANTIC_RADIUS = 13
"""A frame's window spans rows i - 13 ... i + 13 (clamped), 27 frames."""

EXP = slice(0, 64)
POSE = slice(64, 70)


def channels(full: bool) -> int:
    """Coefficient channels the MappingNet takes: 73 in full modes, else 70."""
    return 73 if full else 70


def source_semantics(source: np.ndarray, full: bool) -> np.ndarray:
    """(73,) source coefficients -> (C, 27): columns 0:C repeated over the window."""
    c = channels(full)
    return np.repeat(np.asarray(source, np.float32)[:c, None], 2 * SEMANTIC_RADIUS + 1, axis=1)


def target_coefficients(values: np.ndarray, source: np.ndarray, *, full: bool, still: bool = False,
                        expression_scale: float = 1.0) -> np.ndarray:
    """(T, 70) driving coefficients -> (T, C) rows the windows are cut from.

    Expression columns are multiplied by ``expression_scale``; full modes append the source's crop
    params to every row; ``still`` replaces columns 64: (pose, and crop params) by the source's.
    """
    source = np.asarray(source, np.float32)
    out = np.array(values, dtype=np.float32, copy=True)
    out[:, EXP] *= np.float32(expression_scale)
    if full:
        out = np.concatenate([out, np.repeat(source[None, 70:73], len(out), axis=0)], axis=1)
    if still:
        out[:, 64:] = source[64:out.shape[1]]
    return out


def window_indices(num_frames: int, frames: np.ndarray) -> np.ndarray:
    """(n, 27) row indices of the windows centred on ``frames`` (n,), clamped to [0, T - 1]."""
    offsets = np.arange(-SEMANTIC_RADIUS, SEMANTIC_RADIUS + 1)[None, :]
    return np.clip(np.asarray(frames)[:, None] + offsets, 0, num_frames - 1)


def windows(coeffs: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
    """(T, C) -> (n, C, 27) windows of the given frame indices (default: every frame)."""
    frames = np.arange(len(coeffs)) if frames is None else frames
    return np.ascontiguousarray(coeffs[window_indices(len(coeffs), frames)].transpose(0, 2, 1))


def batch_frames(num_frames: int, start: int, batch_size: int) -> np.ndarray:
    """(B,) frame indices of the batch starting at ``start``; past the end the last frame repeats
    (SadTalker pads the window list with copies of the last window)."""
    return np.minimum(np.arange(start, start + batch_size), num_frames - 1)


def free_view_degrees(values: Sequence[float] | float | None, num_frames: int) -> np.ndarray | None:
    """User angles in degrees -> (T,) per-frame degrees, or None when not given.

    One value: constant. Several values v0 ... vk: a path of constant step D / (T - 1),
    D = sum |v_{j+1} - v_j|; segment j is v_j, v_j +- step, ... (half-open, towards v_{j+1});
    concatenated, then cut or padded with its last value to T frames. Departures from SadTalker,
    which crashes on them: equal neighbours add no frames; a single frame takes v0.
    """
    if values is None:
        return None
    v = np.atleast_1d(np.asarray(values, np.float64))
    if len(v) == 0:
        return None
    total = np.abs(np.diff(v)).sum()
    if len(v) == 1 or num_frames < 2 or total == 0:
        return np.full(num_frames, v[0], np.float32)
    step = total / (num_frames - 1)
    path = np.concatenate([np.arange(a, b, step if b > a else -step) for a, b in zip(v[:-1], v[1:])])
    path = np.concatenate([path[:num_frames], np.full(max(0, num_frames - len(path)), path[-1] if len(path) else v[0])])
    return path.astype(np.float32)


def batch_rows(frames: np.ndarray, batch_size: int) -> np.ndarray:
    """SadTalker's batch layout: (T, ...) -> (B, L, ...), L = ceil(T / B).

    The sequence is padded to B * L by repeating its last entry and split into B contiguous rows
    (row b holds frames b L ... b L + L - 1); step j of SadTalker's loop renders column j.
    """
    t = len(frames)
    length = -(-t // batch_size)
    pad = np.repeat(frames[-1:], batch_size * length - t, axis=0)
    return np.concatenate([frames, pad]).reshape(batch_size, length, *frames.shape[1:])


def transfer_ref_pose(values: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Relative head motion from a reference video (SPEC §8): pose_t += ref_(t mod N) - ref_0.

    values: (T, 70) coefficients; ref: (N, >= 70) reference coefficients (columns 64:70 are used).
    Returns a new (T, 70) array.
    """
    ref_pose = np.asarray(ref, np.float32)[:, POSE]
    out = np.array(values, dtype=np.float32, copy=True)
    out[:, POSE] += ref_pose[np.arange(len(out)) % len(ref_pose)] - ref_pose[0]
    return out
