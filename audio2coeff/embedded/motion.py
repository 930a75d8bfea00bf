"""Blinks, brows and head motion that do not look mechanical (EMBEDDED.md §4).

All tracks are per video frame (FPS) and drawn from a ``numpy.random.Generator``: the same inputs and
generator state give bit-identical values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from audio2coeff.embedded.activity import HOP_S, runs
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


@dataclass(frozen=True)
class Manner:
    """How a speaker moves their head.

    spread: (3,) std of yaw, pitch, roll over the clip of the postures and wander (degrees of the
        embedded renderer's head pose; nods and turns add a little).
    posture: (3,) weight of the posture each phrase takes (the head turns to it as the phrase starts
        and settles back part way in a pause); drift: (3,) weight of the slow wander inside a phrase;
    tempo: the wander's bandwidth (Hz); nod: degrees of pitch of a nod on the strongest stressed
        syllables; turn: degrees of yaw of the turns on them; tilt: degrees of constant roll (a
        listener's tilt; its side is drawn per clip); translate: tx/ty std (IOD).
    """

    name: str
    spread: tuple[float, float, float]
    posture: tuple[float, float, float]
    drift: tuple[float, float, float]
    tempo: float
    nod: float
    turn: float
    tilt: float = 0.0
    translate: float = 0.02


MANNERS = (
    Manner("presenter", spread=(9.0, 5.5, 3.3), posture=(1.0, 0.6, 0.6), drift=(0.6, 0.5, 0.6), tempo=0.18, nod=2.5, turn=1.0),
    Manner("animated", spread=(11.0, 6.5, 4.0), posture=(1.0, 0.7, 0.7), drift=(0.8, 0.7, 0.7), tempo=0.25, nod=3.5,
           turn=2.0, translate=0.03),
    Manner("listener", spread=(6.0, 4.0, 4.5), posture=(0.6, 0.4, 1.0), drift=(0.5, 0.4, 0.8), tempo=0.12, nod=1.5,
           turn=0.5, tilt=6.0),
    Manner("nodder", spread=(5.0, 6.0, 2.5), posture=(0.8, 0.4, 0.5), drift=(0.5, 0.4, 0.5), tempo=0.18, nod=5.0, turn=0.5),
)
"""The head-motion manners; ``--pose-style`` n uses MANNERS[n % 4] (style 0, the default: a calm
presenter, whose spreads lie inside those of real speakers: measured on talking-head recordings as
the nose's offset from the eyes, yaw 0.053-0.109 and pitch 0.043-0.071 inter-ocular distances, roll
3.2-3.4 degrees). Styles above 3 vary their manner's spreads, tempo and tilt by up to 20 %."""
PHRASE_PAUSE_S = 0.3
"""Voice-activity gaps at least this long (s) separate phrases."""
SETTLE = 0.4
"""Share of its phrase's posture the head keeps in a pause."""
POSTURE_EASE_S = 0.35
"""Standard deviation (s) of the Gaussian that eases the head from one posture to the next. Head
motion must be large but slow: the score's jitter is the rigid region's frame-to-frame acceleration,
which grows with the spread times the square of the motion's frequency."""
NOD_S = 0.8
"""Width (s) of a nod or turn on a stressed syllable."""
EASE_IN_S = 1.0
"""The head starts in the portrait's own pose and reaches its motion over this time (s; at most a
third of the clip)."""
FULL_SPREAD_S = 6.0
"""Clips shorter than this (s) get a spread smaller by the square root of their share of it: over a
few seconds a speaker's head covers less than over a minute, and packing a whole spread into a short
clip would make it move faster (and jitter more) than a long one. (A lower wander tempo for short
clips, fewer but fuller turns, left the README's 3.5 s example reading a nearly still head.)"""
MIN_POSTURE_STEP = 0.8
"""Least change (unit scale: postures are drawn with unit spread) from one phrase's posture to the
next's, and of the first from the portrait's own pose: a new posture drawn closer is moved this far
from the last one (towards the centre, or the side it was drawn on when the last one is central), so
every phrase start shows a change of posture: fewer but fuller changes. Unit normal draws land
within 0.8 of the last one in about 40 % of channels, a phrase start with little to see."""
MIN_RAW_SPREAD = 0.25
"""Least spread of the unscaled motion (its parts have unit scale) that is scaled up to the manner's:
a clip too short for the head to wander moves less instead of magnifying what little there is."""


def manner(pose_style: int) -> Manner:
    """The Manner of a pose_style 0..45: MANNERS[pose_style % 4], varied (seeded by the style) above 3."""
    base = MANNERS[pose_style % len(MANNERS)]
    if pose_style < len(MANNERS):
        return base
    rng = np.random.default_rng([7919, pose_style])
    vary = lambda v: tuple(float(x) for x in np.asarray(v) * rng.uniform(0.8, 1.2, np.size(v)))  # noqa: E731
    return Manner(base.name, vary(base.spread), base.posture, base.drift, vary(base.tempo)[0], base.nod, base.turn,
                  vary(base.tilt)[0], base.translate)


def phrases(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts_s, ends_s) of the phrases in a 100 Hz voice-activity mask: runs of activity whose gaps
    are shorter than PHRASE_PAUSE_S."""
    closed = ndimage.binary_closing(np.pad(active, 1), np.ones(int(PHRASE_PAUSE_S / HOP_S)))[1:-1] | active
    spans = np.array(runs(closed), dtype=float).reshape(-1, 2) * HOP_S
    return spans[:, 0], spans[:, 1]


def _drift(num_frames: int, tempo_hz: float, rng: np.random.Generator, count: int) -> np.ndarray:
    """(num_frames, count) smooth noise with unit standard deviation: white noise through a Gaussian
    of standard deviation 1 / (2 pi tempo_hz) s (its spectrum falls steeply above ``tempo_hz``)."""
    sigma = FPS / (2 * np.pi * tempo_hz)
    pad = int(4 * sigma)
    noise = rng.standard_normal((num_frames + 2 * pad, count))
    smooth = ndimage.gaussian_filter1d(noise, sigma, axis=0)[pad : pad + num_frames]
    return smooth / max(float(smooth.std()), 1e-9)


def _postures(num_frames: int, starts: np.ndarray, ends: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(num_frames, 3) unit-scale posture: a new random pose from 0.2 s before each phrase (at least
    MIN_POSTURE_STEP from the last in every channel), SETTLE of it from 0.2 s after the phrase ends
    until the next, eased by a Gaussian of POSTURE_EASE_S."""
    target = np.zeros((num_frames, 3))
    t = (np.arange(num_frames) + 0.5) / FPS
    last = np.zeros(3)  # the portrait's own pose
    for k, (start, end) in enumerate(zip(starts, ends)):
        pose = rng.standard_normal(3)
        step = pose - last
        away = np.where(np.abs(last) > MIN_POSTURE_STEP / 2, -np.sign(last), np.where(step < 0, -1.0, 1.0))
        pose = last = np.where(np.abs(step) < MIN_POSTURE_STEP, last + away * MIN_POSTURE_STEP, pose)
        stop = starts[k + 1] - 0.2 if k + 1 < len(starts) else np.inf
        target[(t >= start - 0.2) & (t < stop)] = pose
        target[(t >= end + 0.2) & (t < stop)] = SETTLE * pose
    return ndimage.gaussian_filter1d(target, POSTURE_EASE_S * FPS, axis=0, mode="nearest")


def head_track(
    num_frames: int,
    speaking: np.ndarray,
    active: np.ndarray,
    accent_times: np.ndarray,
    strength: np.ndarray,
    pose_style: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(num_frames, 5) yaw, pitch, roll (radians) and tx, ty (inter-ocular distances).

    speaking: (num_frames,) float 0..1, smoothed voice activity (the wander is half as lively in
    pauses); active: the 100 Hz voice-activity mask (phrases). The head takes a new posture at each
    phrase start and settles part way in pauses, wanders slowly inside phrases, nods (pitch down, a
    little ty) and turns a little on the clearer stressed syllables (0.6 s apart or more), peaking
    50 ms before them. Postures and wander are scaled to the manner's spread (``manner``; less in
    clips under FULL_SPREAD_S), measured as the motion is shown: after it eases in from the
    portrait's own pose over EASE_IN_S.
    """
    style = manner(pose_style)
    pick = strongest(accent_times, strength, 0.35, 0.6)
    accent_times, strength = accent_times[pick], strength[pick]
    starts, ends = phrases(active)
    drift = _drift(num_frames, style.tempo, rng, 5)
    angles = _postures(num_frames, starts, ends, rng) * style.posture
    angles += drift[:, :3] * style.drift * (0.5 + 0.5 * speaking)[:, None]
    angles -= angles.mean(axis=0)
    ease = _ease_in(num_frames)
    share = min(1.0, num_frames / FPS / FULL_SPREAD_S)
    angles *= np.sqrt(share) * np.asarray(style.spread) / np.maximum((angles * ease[:, None]).std(axis=0), MIN_RAW_SPREAD)
    angles[:, 1] += _bumps(accent_times, style.nod * strength, num_frames, NOD_S, lead_s=0.05)
    turn_sign = rng.choice([-1.0, 1.0], len(accent_times))
    angles[:, 0] += _bumps(accent_times, style.turn * strength * turn_sign, num_frames, NOD_S, lead_s=0.05)
    angles[:, 2] += style.tilt * rng.choice([-1.0, 1.0])
    head = np.zeros((num_frames, 5))
    head[:, :3] = np.deg2rad(angles) * ease[:, None]
    head[:, 3:] = drift[:, 3:] * style.translate * ((0.6 + 0.4 * speaking) * ease)[:, None]
    head[:, 4] += 0.004 * angles[:, 1] * ease  # nodding moves the face down a little
    return head.astype(np.float32)


def _ease_in(num_frames: int) -> np.ndarray:
    """(num_frames,) 0 at the first frame rising smoothly to 1 at EASE_IN_S."""
    x = np.clip(np.arange(num_frames) / max(min(EASE_IN_S * FPS, num_frames / 3), 1.0), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)
