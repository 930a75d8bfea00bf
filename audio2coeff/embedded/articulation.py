"""Coarticulation: phones -> smooth mouth channels per video frame.

1. Target curves on the 100 Hz grid, piecewise constant per phone (``phone_targets``). Where a phone
   leaves a channel open (NaN: consonants do not set rounding or width), the curve is interpolated
   between the phones around it, so rounding spreads over the consonants of 'too' or 'mom', and
   relaxes towards rest with the distance from the nearest phone that sets it (``RELAX_S``): a
   cluster of consonants between two rounded vowels is not held rounded throughout.
   Recognised phones (no transcript) may be wrong: their rounding, width and lip-raise targets are
   scaled by ``RECOGNISED_STRENGTH`` and phones under ``MIN_RECOGNISED_S`` take their neighbours'
   shape, so a recognition error smooths towards rest instead of making a strong wrong shape.
2. Anticipation and smoothing: each channel is read ``LOOK_AHEAD_S`` ahead (the mouth moves before
   the sound it makes) and smoothed with a Gaussian whose width suits the articulator: lip closure
   and tuck are quick, the jaw slower, rounding and width slowest.
3. Closures are never smoothed away: every video frame that overlaps a p/b/m (or f/v) phone by
   MIN_OVERLAP_S shows the lips fully closed (or tucked), however short the phone, and out of a
   pause the lips stay shut into a p/b/m.
Vowel jaw targets are scaled by loudness (``loudness_gain``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from audio2coeff.embedded.activity import HOP_S, to_video_frames
from audio2coeff.embedded.visemes import MOUTH_CHANNELS, REST, VOWELS, phone_targets, viseme_of
from talker.types import FPS

LOOK_AHEAD_S = 0.02
SMOOTH_S = {"jaw_open": 0.025, "lip_width": 0.035, "lip_round": 0.035, "lip_close": 0.012, "lip_tuck": 0.015, "upper_lip_raise": 0.03}
"""Gaussian standard deviation (s) per channel."""
RELAX_S = 0.06
"""Decay length (s) of an interpolated rounding or width towards rest, away from the phones that set it."""
RECOGNISED_STRENGTH = 0.6
"""Scale of recognised phones' rounding, width and upper-lip targets (aligned phones: 1)."""
MIN_RECOGNISED_S = 0.03
"""Recognised phones shorter than this (s) set no shape of their own (closures excepted)."""
MIN_OVERLAP_S = 0.02
"""A frame shows a p/b/m (or f/v) when its 40 ms overlap the phone by this much (s): half a frame."""
MIN_CLOSED_FRAMES = 2
"""A p/b/m (or f/v) shows in at least this many video frames. A single shut frame between open ones
does not survive the video encoding: the 'b' of 'blue boots' (between two rounded vowels), shut in
one frame, rendered 0.007 IOD open and read 0.033 open in the MP4, its neighbour (lip_close 0.9)
0.023; two shut frames read shut."""
CLOSE_FROM_PAUSE_S = 0.06
"""After a pause, a p/b/m's lips are shut this long (s) before the phone starts."""
_JAW, _CLOSE, _TUCK = (MOUTH_CHANNELS.index(c) for c in ("jaw_open", "lip_close", "lip_tuck"))
_SHAPE = [MOUTH_CHANNELS.index(c) for c in ("lip_width", "lip_round", "upper_lip_raise")]


def closure_frames(start: float, end: float, num_frames: int) -> np.ndarray:
    """(num_frames,) bool: the video frames whose 40 ms overlap [start, end] s by at least
    MIN_OVERLAP_S, and the frame holding the middle. Not only the frames whose centre falls in the
    phone: a 45-60 ms p/b/m then shows in one frame, which an alignment 20 ms off misses (measured
    on Festival speech against pocketsphinx's alignment: a 'b' after a pause shut at 20.50 s and
    open again at 20.54 s, the true phone's middle). Never fewer than MIN_CLOSED_FRAMES frames."""
    i = np.arange(num_frames)
    overlap = np.minimum(end, (i + 1) / FPS) - np.maximum(start, i / FPS)
    inside = overlap >= min(MIN_OVERLAP_S, 0.5 * (end - start)) - 1e-6  # phone times on a 10 ms grid: exact halves count
    if num_frames:
        middle = min(num_frames - 1, max(0, int((start + end) / 2 * FPS)))
        inside[middle] = True
        if inside.sum() < MIN_CLOSED_FRAMES:  # the neighbour nearer the phone's middle (before it on a tie)
            after = (middle + 0.5) / FPS < (start + end) / 2
            neighbour = middle + 1 if (after or middle == 0) and middle + 1 < num_frames else middle - 1
            inside[neighbour] = True
    return inside


def loudness_gain(db: float, reference_db: float) -> float:
    """Jaw scale for a vowel at ``db`` dBFS given the speech's loud level: 1 at the reference, ~0.5 at -10 dB."""
    return float(np.clip(10.0 ** ((db - reference_db) / 30.0), 0.45, 1.1))


def target_curves(
    phones, n: int, loudness: np.ndarray | None = None, reference_db: float | None = None, recognised: bool = False
) -> np.ndarray:
    """(n, 6) mouth targets on the 100 Hz grid, NaN channels filled by interpolation between phones
    (rounding and width relaxing towards rest, RELAX_S); ``recognised`` weakens the shapes (module doc)."""
    curves = np.zeros((n, len(MOUTH_CHANNELS)))
    for start, end, name in phones:
        k0, k1 = int(round(start / HOP_S)), max(int(round(start / HOP_S)) + 1, int(round(end / HOP_S)))
        targets = phone_targets(name)
        if name in VOWELS and loudness is not None and reference_db is not None and k0 < len(loudness):
            targets[_JAW] *= loudness_gain(float(np.mean(loudness[k0:k1])), reference_db)
        if recognised:
            targets[_SHAPE] *= RECOGNISED_STRENGTH
            if end - start < MIN_RECOGNISED_S and viseme_of(name) != "closed":
                targets[:] = np.nan
                targets[[_CLOSE, _TUCK]] = 0.0
        curves[k0:k1] = targets
    for c in range(curves.shape[1]):
        known = ~np.isnan(curves[:, c])
        if known.any() and not known.all():
            gaps = np.flatnonzero(~known)
            curves[gaps, c] = np.interp(gaps, np.flatnonzero(known), curves[known, c])
            if c in _SHAPE[:2]:
                curves[gaps, c] *= np.exp(-_distance_to_known(known)[gaps] * HOP_S / RELAX_S)
        elif not known.any():
            curves[:, c] = 0.0
    return curves


def _distance_to_known(known: np.ndarray) -> np.ndarray:
    """(n,) steps from each sample to the nearest True of ``known`` (0 on them)."""
    return ndimage.distance_transform_edt(~known)


def mouth_track(
    phones, num_frames: int, loudness: np.ndarray | None = None, reference_db: float | None = None, recognised: bool = False
) -> np.ndarray:
    """(num_frames, 6) float32 mouth channels (MOUTH_CHANNELS) from phones [(start_s, end_s, name), ...].

    loudness: optional (n,) dBFS on the 100 Hz grid; with ``reference_db`` (the loud speech level) it
    scales each vowel's jaw target by ``loudness_gain``. recognised: the phones come from recognition
    without a transcript (weaker shapes, see the module doc).
    """
    n = max(int(np.ceil(num_frames / FPS / HOP_S)) + 1, 1)
    curves = target_curves(phones, n, loudness, reference_db, recognised)
    ahead = int(round(LOOK_AHEAD_S / HOP_S))
    curves = np.concatenate([curves[ahead:], np.repeat(curves[-1:], ahead, axis=0)])
    for c, name in enumerate(MOUTH_CHANNELS):
        curves[:, c] = ndimage.gaussian_filter1d(curves[:, c], SMOOTH_S[name] / HOP_S, mode="nearest")
    mouth = to_video_frames(curves, num_frames)

    for k, (start, end, name) in enumerate(phones):
        viseme = viseme_of(name)
        if viseme not in ("closed", "labiodental"):
            continue
        inside = closure_frames(start, end, num_frames)
        if viseme == "closed" and k > 0 and viseme_of(phones[k - 1][2]) == REST:
            # out of a pause the lips close a little ahead of the closure (from the rest, pause_gate)
            inside |= closure_frames(max(phones[k - 1][0], start - CLOSE_FROM_PAUSE_S), start, num_frames)
        if viseme == "closed":
            mouth[inside, _CLOSE] = 1.0
            mouth[inside, _JAW] = 0.0
        else:
            mouth[inside, _TUCK] = np.maximum(mouth[inside, _TUCK], 0.8)
    return mouth.astype(np.float32)
