"""Language-free mouth motion from loudness and formants (the fallback when phones are unusable).

jaw_open follows loudness and the first formant (F1 rises as the jaw opens), lip_round the second
formant (rounded vowels have a low F2), lip_close short energy dips inside speech (most are stop or
nasal closures). Less precise than phones, but plausible for any language or for singing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from audio2coeff.embedded.activity import HOP_S, by_blocks, frames, runs, to_video_frames
from audio2coeff.embedded.visemes import MOUTH_CHANNELS
from talker.types import SAMPLE_RATE

LPC_ORDER = 16
JAW_QUANTILES = ((0.0, 0.0), (10.0, 0.10), (25.0, 0.175), (50.0, 0.205), (75.0, 0.32), (90.0, 0.42), (100.0, 0.8))
"""(percentile, jaw_open) of the phone path's jaw over voice-active frames (p/b/m excepted), on
Festival and espeak-ng English (3-29 s; each clip within 0.03 of these up to the 90th percentile).
The loudness path's jaw is mapped onto it by rank, so speech in any language opens the mouth as
much as English does, whatever the voice's loudness or formant range: jaw_open from loudness alone
(30 dB of range, 0.35-1 by F1) read 2x the phone path's median (0.45 against 0.2), and on a
closed-lipped face 2.5x its opening in the video."""
UPPER_LIP_RAISE = 0.25
"""upper_lip_raise follows jaw_open up to this (the phone path's consonants part the lips so: its
'teeth' shape). With the jaw alone (0.2 x jaw), and the closures spread to their neighbours by the
low-pass, the mouth the renderer drew over speech was 0.87 of the phone path's; now 0.96-0.99."""


def _lpc(windows: np.ndarray, order: int) -> np.ndarray:
    """(n, order + 1) prediction-error polynomials of (n, W) windows (autocorrelation method, Levinson-Durbin).

    Vectorised over frames: librosa.lpc (Burg, numba) took 13 s to compile on first use and 3.3 s for
    2000 frames here, against 0.07 s, and it raises on silent frames.
    """
    spec = np.fft.rfft(windows, 2 * windows.shape[1], axis=1)
    r = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, : order + 1]
    r[:, 0] = r[:, 0] * (1.0 + 1e-6) + 1e-12  # white-noise floor keeps silent frames well conditioned
    a = np.zeros((len(r), order + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, order + 1):
        k = -(a[:, :i] * r[:, i:0:-1]).sum(axis=1) / err
        a[:, 1 : i + 1] = a[:, 1 : i + 1] + k[:, None] * a[:, i - 1 :: -1][:, :i]
        err *= 1.0 - k**2
    return a


def formants(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F1, F2) in Hz per 10 ms frame from LPC roots (0 where none is found); median-smoothed over 50 ms."""
    emphasised = np.append(samples[:1], samples[1:] - 0.97 * samples[:-1])
    parts = by_blocks(frames(emphasised), _formant_block)
    f1, f2 = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return ndimage.median_filter(f1, 5, mode="nearest"), ndimage.median_filter(f2, 5, mode="nearest")


def _formant_block(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw (F1, F2) in Hz of (n, 400) windows, 0 where none is found."""
    a = _lpc(windows.astype(np.float64) * np.hamming(400), LPC_ORDER)
    companion = np.zeros((len(a), LPC_ORDER, LPC_ORDER))
    companion[:, 0, :] = -a[:, 1:]
    companion[:, np.arange(1, LPC_ORDER), np.arange(LPC_ORDER - 1)] = 1.0
    roots = np.linalg.eigvals(companion)
    freq = np.angle(roots) * SAMPLE_RATE / (2 * np.pi)
    bandwidth = -np.log(np.maximum(np.abs(roots), 1e-9)) * SAMPLE_RATE / np.pi
    ok = (roots.imag > 0) & (freq > 200.0) & (freq < 3500.0) & (bandwidth < 500.0)
    freq = np.sort(np.where(ok, freq, np.inf), axis=1)
    return np.where(np.isfinite(freq[:, 0]), freq[:, 0], 0.0), np.where(np.isfinite(freq[:, 1]), freq[:, 1], 0.0)


def _as_phone_jaw(jaw: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """(n,) jaw_open mapped by its rank among the ``speech`` (n,) bool frames onto JAW_QUANTILES
    (monotonic: a louder, more open vowel still opens more; the least open speech frame and anything
    under it, silence, map to 0). Unchanged when there are no speech frames."""
    if not speech.any():
        return jaw
    pct, value = np.array(JAW_QUANTILES).T
    return np.interp(jaw, np.percentile(jaw[speech], pct), value)


def energy_mouth(samples: np.ndarray, loudness: np.ndarray, active: np.ndarray, voiced: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames, 6) float32 mouth channels (MOUTH_CHANNELS) without phones, before the pause gate.

    loudness: (n,) dBFS, active: (n,) bool voice activity, voiced: (n,) bool periodic frames, all on
    the 100 Hz grid of ``activity``.
    """
    n = len(loudness)
    f1, f2 = (f[:n] for f in formants(samples))
    level = loudness[active] if active.any() else loudness
    loud = np.percentile(level, 90)
    openness = np.clip((loudness - (loud - 30.0)) / 30.0, 0.0, 1.0) ** 1.5  # 0 at -30 dB, 1 at the loud level
    # formants relative to the speaker's own range (voices differ by ~20 %): F1 from its 10th to 90th
    # percentile opens the jaw (i, u .. aa); F2 under its median rounds the lips (ao, ow) unless F1 is
    # high too (aa is back but open and unrounded); F2 above the median widens them (iy, ey)
    vowel = voiced & active & (f1 > 0) & (f2 > 0)
    if vowel.sum() >= 10:
        f1_lo, f1_hi = np.percentile(f1[vowel], [10, 90])
        f2_mid = float(np.median(f2[vowel]))
    else:
        f1_lo, f1_hi, f2_mid = 300.0, 800.0, 1600.0
    f1_open = np.clip((f1 - f1_lo) / max(f1_hi - f1_lo, 100.0), 0.0, 1.0)
    jaw = openness * np.where(vowel, 0.35 + 0.65 * f1_open, 0.35)
    rounding = np.where(vowel, np.clip((f2_mid - 150.0 - f2) / 500.0, 0.0, 1.0), 0.0)
    rounding *= np.clip(openness * 2.0, 0.0, 1.0) * (1.0 - 0.8 * f1_open)
    width = np.where(vowel, np.clip((f2 - f2_mid) / 700.0, 0.0, 1.0) * 0.4, 0.0) - 0.5 * rounding

    # short dips (30-150 ms) at least 20 dB under the surrounding speech: stop and nasal closures (fricatives dip less)
    envelope = ndimage.maximum_filter1d(loudness, 21)
    dip = active & (loudness < envelope - 20.0)
    closure = np.zeros(n)
    for start, stop in runs(dip):
        if 3 <= stop - start <= 15:  # widened to 50 ms or more: a video frame centre falls inside
            closure[max(0, start - 1) : stop + 1] = 1.0
    mouth = np.zeros((n, len(MOUTH_CHANNELS)))
    mouth[:, MOUTH_CHANNELS.index("jaw_open")] = jaw
    mouth[:, MOUTH_CHANNELS.index("lip_width")] = width
    mouth[:, MOUTH_CHANNELS.index("lip_round")] = rounding * 0.8
    mouth[:, MOUTH_CHANNELS.index("lip_close")] = closure
    # zero-phase 6 Hz low-pass (articulators move at syllable rate); closures stay exact, as the
    # phone path's p/b/m do (low-passed, they half shut the lips on the frames beside them)
    b, a = signal.butter(2, 6.0 * 2 * HOP_S)
    mouth = signal.filtfilt(b, a, mouth, axis=0, padlen=min(n - 1, 15))
    close, jaw_col = MOUTH_CHANNELS.index("lip_close"), MOUTH_CHANNELS.index("jaw_open")
    mouth[:, close] = closure
    mouth[:, jaw_col] = _as_phone_jaw(mouth[:, jaw_col], active & (closure == 0)) * (1.0 - closure)
    mouth[:, MOUTH_CHANNELS.index("upper_lip_raise")] = np.minimum(mouth[:, jaw_col], UPPER_LIP_RAISE)
    return to_video_frames(mouth, num_frames).astype(np.float32)
