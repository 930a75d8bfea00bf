"""Blinks, brows and head motion that do not look mechanical (EMBEDDED.md §4).

All tracks are per video frame (FPS) and drawn from a ``numpy.random.Generator``: the same inputs and
generator state give bit-identical values.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from audio2coeff.embedded.activity import HOP_S
from talker.types import FPS

BLINK_MIN_GAP_S = 1.5
FIRST_BLINK_S = (1.0, 4.0)
"""The first blink's onset falls in this window (s) of every clip long enough to show it (humans blink
every 2-10 s; a clip that opens with several seconds of staring eyes looks frozen)."""
HEAD_CHANNELS = ("yaw", "pitch", "roll", "tx", "ty")


def blink_times(duration: float, rate_per_min: float, rng: np.random.Generator) -> list[float]:
    """Blink onsets in seconds: the first uniformly in FIRST_BLINK_S (earlier at very high rates; in
    clips under 4.3 s, in the 0.5 s before the last 0.3 s or later; none under 1 s), then gamma-distributed intervals
    (shape 3) with mean 60 / rate, at least ``BLINK_MIN_GAP_S`` apart (or half the mean interval at
    very high rates). None when rate <= 0."""
    if rate_per_min <= 0 or duration < 1.0:
        return []
    mean = 60.0 / rate_per_min
    gap = min(BLINK_MIN_GAP_S, 0.5 * mean)
    shape = 3.0
    lo, hi = min(FIRST_BLINK_S[0], 0.6 * mean), min(FIRST_BLINK_S[1], 2.0 * mean, duration - 0.3)
    times, t = [], rng.uniform(max(min(lo, hi - 0.5), 0.3), hi)
    while t < duration - 0.3:
        times.append(float(t))
        t += gap + rng.gamma(shape, (mean - gap) / shape)
    return times


def blink_track(times: list[float], num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(num_frames,) eyelid closure 0..1: each blink closes over 80-120 ms, stays shut for one video
    frame (so a frame always shows it closed) and opens 1.4 times slower than it closed."""
    t = (np.arange(num_frames) + 0.5) / FPS
    out = np.zeros(num_frames)
    for onset in times:
        close = rng.uniform(0.08, 0.12)
        hold, reopen = 1.0 / FPS, 1.4 * close
        rise = np.clip((t - onset) / close, 0.0, 1.0)
        fall = np.clip((onset + close + hold + reopen - t) / reopen, 0.0, 1.0)
        shape = np.minimum(rise, fall)
        out = np.maximum(out, 0.5 - 0.5 * np.cos(np.pi * shape))  # eased
    return out.astype(np.float32)


def accents(loudness: np.ndarray, f0: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stressed-syllable candidates: (times_s (K,), strength (K,) in 0..1) from the 100 Hz tracks.

    Peaks of the smoothed loudness inside speech, at least 250 ms apart; strength grows with the
    peak's prominence (dB) and with the pitch there relative to the speaker's median (a pitch accent).
    """
    smooth = ndimage.gaussian_filter1d(np.where(active, loudness, loudness.min()), 4.0)
    peaks, props = signal.find_peaks(smooth, prominence=3.0, distance=int(0.25 / HOP_S))
    inside = active[peaks]
    peaks, prominence = peaks[inside], props["prominences"][inside]
    if len(peaks) == 0:
        return np.zeros(0), np.zeros(0)
    voiced = f0[active & (f0 > 0)]
    ref = np.median(voiced) if len(voiced) else 0.0
    semis = np.array([12.0 * np.log2(max(f0[max(0, p - 5) : p + 6].max(), 1.0) / ref) if ref > 0 else 0.0 for p in peaks])
    strength = np.clip(prominence / 20.0, 0.0, 1.0) * 0.6 + np.clip(semis / 4.0, 0.0, 1.0) * 0.4
    return peaks * HOP_S, strength


def _bumps(times: np.ndarray, heights: np.ndarray, num_frames: int, width_s: float, lead_s: float = 0.0) -> np.ndarray:
    """(num_frames,) sum of raised-cosine bumps of total width ``width_s`` peaking ``lead_s`` before each time."""
    t = (np.arange(num_frames) + 0.5) / FPS
    out = np.zeros(num_frames)
    for time, h in zip(times, heights):
        x = np.clip((t - (time - lead_s)) / (width_s / 2), -1.0, 1.0)
        out += h * 0.5 * (1.0 + np.cos(np.pi * x))
    return out


def strongest(times: np.ndarray, strength: np.ndarray, min_strength: float, min_gap_s: float) -> np.ndarray:
    """Indices of accents at least ``min_strength`` strong and ``min_gap_s`` apart, strongest first (greedy), in time order."""
    keep: list[int] = []
    for i in np.argsort(-strength, kind="stable"):
        if strength[i] >= min_strength and all(abs(times[i] - times[j]) >= min_gap_s for j in keep):
            keep.append(int(i))
    return np.array(sorted(keep), dtype=int)


def brow_track(accent_times: np.ndarray, strength: np.ndarray, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(num_frames,) brow_raise in -1..1: small lifts (up to ~0.35) on the strongest accents, 1.5 s apart or more."""
    pick = strongest(accent_times, strength, 0.55, 1.5)
    heights = 0.35 * strength[pick] * rng.uniform(0.6, 1.0, len(pick))
    return np.clip(_bumps(accent_times[pick], heights, num_frames, 0.6, lead_s=0.05), -1.0, 1.0).astype(np.float32)


def pose_style_params(pose_style: int) -> dict[str, np.ndarray | float]:
    """The head-motion style for a pose_style number 0..45 (deterministic).

    amp: (3,) degrees of drift std for yaw, pitch, roll; bias: (3,) degrees of constant offset;
    tempo: drift bandwidth in Hz; nod: accent nod size in degrees; translate: tx/ty std in
    inter-ocular distances. Style 0 is the centred default; the others vary around it.
    """
    if pose_style == 0:
        return {"amp": np.array([2.5, 1.5, 1.0]), "bias": np.zeros(3), "tempo": 0.35, "nod": 2.0, "translate": 0.02}
    rng = np.random.default_rng([7919, pose_style])
    return {
        "amp": rng.uniform([1.0, 0.7, 0.4], [4.5, 3.0, 2.2]),
        "bias": rng.uniform(-3.0, 3.0, 3) * np.array([1.0, 0.7, 0.6]),
        "tempo": float(rng.uniform(0.2, 0.6)),
        "nod": float(rng.uniform(1.0, 3.5)),
        "translate": float(rng.uniform(0.01, 0.035)),
    }


def _drift(num_frames: int, tempo_hz: float, rng: np.random.Generator, count: int) -> np.ndarray:
    """(num_frames, count) smooth noise with unit standard deviation, band-limited to ``tempo_hz``."""
    pad = int(2 * FPS / tempo_hz)
    noise = rng.standard_normal((num_frames + 2 * pad, count))
    b, a = signal.butter(2, tempo_hz / (FPS / 2))
    smooth = signal.filtfilt(b, a, noise, axis=0)[pad : pad + num_frames]
    return smooth / max(float(smooth.std()), 1e-9)


def head_track(
    num_frames: int,
    speaking: np.ndarray,
    accent_times: np.ndarray,
    strength: np.ndarray,
    pose_style: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(num_frames, 5) yaw, pitch, roll (radians) and tx, ty (inter-ocular distances).

    speaking: (num_frames,) float 0..1, smoothed voice activity: the head drifts at 60 % in pauses.
    Nods (pitch down, a little ty) and small turns peak 50 ms before the clearer accents (0.6 s apart or more).
    """
    style = pose_style_params(pose_style)
    pick = strongest(accent_times, strength, 0.35, 0.6)
    accent_times, strength = accent_times[pick], strength[pick]
    drift = _drift(num_frames, style["tempo"], rng, 5)
    liveliness = 0.6 + 0.4 * speaking
    angles = drift[:, :3] * style["amp"] * liveliness[:, None] + style["bias"]
    turn_sign = rng.choice([-1.0, 1.0], len(accent_times))
    angles[:, 1] += _bumps(accent_times, style["nod"] * strength, num_frames, 0.45, lead_s=0.05)
    angles[:, 0] += _bumps(accent_times, 0.4 * style["nod"] * strength * turn_sign, num_frames, 0.7, lead_s=0.05)
    head = np.zeros((num_frames, 5))
    head[:, :3] = np.deg2rad(angles)
    head[:, 3:] = drift[:, 3:] * style["translate"] * liveliness[:, None]
    head[:, 4] += 0.004 * angles[:, 1]  # nodding moves the face down a little
    return head.astype(np.float32)
