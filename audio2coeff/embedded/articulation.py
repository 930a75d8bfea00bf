"""Coarticulation: phones -> smooth mouth channels per video frame.

1. Target curves on the 100 Hz grid, piecewise constant per phone (``phone_targets``). Where a phone
   leaves a channel open (NaN: consonants do not set rounding or width), the curve is interpolated
   between the phones around it, so rounding spreads over the consonants of 'too' or 'mom'.
2. Anticipation and smoothing: each channel is read ``LOOK_AHEAD_S`` ahead (the mouth moves before
   the sound it makes) and smoothed with a Gaussian whose width suits the articulator: lip closure
   and tuck are quick, the jaw slower, rounding and width slowest.
3. Closures are never smoothed away: every video frame whose centre falls inside a p/b/m (or f/v)
   phone shows the lips fully closed (or tucked), however short the phone.
Vowel jaw targets are scaled by loudness (``loudness_gain``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from audio2coeff.embedded.activity import HOP_S, to_video_frames
from audio2coeff.embedded.visemes import MOUTH_CHANNELS, VOWELS, phone_targets, viseme_of
from talker.types import FPS

LOOK_AHEAD_S = 0.02
SMOOTH_S = {"jaw_open": 0.025, "lip_width": 0.035, "lip_round": 0.035, "lip_close": 0.012, "lip_tuck": 0.015, "upper_lip_raise": 0.03}
"""Gaussian standard deviation (s) per channel."""
_JAW, _CLOSE, _TUCK = (MOUTH_CHANNELS.index(c) for c in ("jaw_open", "lip_close", "lip_tuck"))


def loudness_gain(db: float, reference_db: float) -> float:
    """Jaw scale for a vowel at ``db`` dBFS given the speech's loud level: 1 at the reference, ~0.5 at -10 dB."""
    return float(np.clip(10.0 ** ((db - reference_db) / 30.0), 0.45, 1.1))


def target_curves(phones, n: int, loudness: np.ndarray | None = None, reference_db: float | None = None) -> np.ndarray:
    """(n, 6) mouth targets on the 100 Hz grid, NaN channels filled by interpolation between phones."""
    curves = np.zeros((n, len(MOUTH_CHANNELS)))
    for start, end, name in phones:
        k0, k1 = int(round(start / HOP_S)), max(int(round(start / HOP_S)) + 1, int(round(end / HOP_S)))
        targets = phone_targets(name)
        if name in VOWELS and loudness is not None and reference_db is not None and k0 < len(loudness):
            targets[_JAW] *= loudness_gain(float(np.mean(loudness[k0:k1])), reference_db)
        curves[k0:k1] = targets
    for c in range(curves.shape[1]):
        known = ~np.isnan(curves[:, c])
        if known.any() and not known.all():
            curves[~known, c] = np.interp(np.flatnonzero(~known), np.flatnonzero(known), curves[known, c])
        elif not known.any():
            curves[:, c] = 0.0
    return curves


def mouth_track(phones, num_frames: int, loudness: np.ndarray | None = None, reference_db: float | None = None) -> np.ndarray:
    """(num_frames, 6) float32 mouth channels (MOUTH_CHANNELS) from phones [(start_s, end_s, name), ...].

    loudness: optional (n,) dBFS on the 100 Hz grid; with ``reference_db`` (the loud speech level) it
    scales each vowel's jaw target by ``loudness_gain``.
    """
    n = max(int(np.ceil(num_frames / FPS / HOP_S)) + 1, 1)
    curves = target_curves(phones, n, loudness, reference_db)
    ahead = int(round(LOOK_AHEAD_S / HOP_S))
    curves = np.concatenate([curves[ahead:], np.repeat(curves[-1:], ahead, axis=0)])
    for c, name in enumerate(MOUTH_CHANNELS):
        curves[:, c] = ndimage.gaussian_filter1d(curves[:, c], SMOOTH_S[name] / HOP_S, mode="nearest")
    mouth = to_video_frames(curves, num_frames)

    t = (np.arange(num_frames) + 0.5) / FPS
    for start, end, name in phones:
        viseme = viseme_of(name)
        if viseme not in ("closed", "labiodental"):
            continue
        inside = (t >= start) & (t < end)
        inside[min(num_frames - 1, int((start + end) / 2 * FPS))] = True  # the frame holding the phone's centre
        if viseme == "closed":
            mouth[inside, _CLOSE] = np.maximum(mouth[inside, _CLOSE], 0.95)
            mouth[inside, _JAW] = np.minimum(mouth[inside, _JAW], 0.05)
        else:
            mouth[inside, _TUCK] = np.maximum(mouth[inside, _TUCK], 0.8)
    return mouth.astype(np.float32)
