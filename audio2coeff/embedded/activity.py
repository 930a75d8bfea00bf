"""Loudness, voicing, voice activity and a speech/music check, on a 100 Hz analysis grid.

Analysis frame k is centred at ``k * HOP_S`` seconds (25 ms windows, 10 ms hop), the same grid as
pocketsphinx. Video frame i (at ``FPS``) covers ``[i / FPS, (i + 1) / FPS)``; ``to_video_frames``
samples a 100 Hz track at the video frame centres.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from talker.types import FPS, SAMPLE_RATE, Audio

HOP = SAMPLE_RATE // 100  # 160 samples
HOP_S = HOP / SAMPLE_RATE  # 0.01 s
WIN = 400  # 25 ms
SILENCE_DB = -90.0
"""Loudness floor (dBFS): digital silence reads as this."""


def frames(samples: np.ndarray, win: int = WIN) -> np.ndarray:
    """(n, win) windows of ``samples`` centred every HOP samples; n = ceil(N / HOP)."""
    n = max(1, int(np.ceil(len(samples) / HOP)))
    padded = np.pad(samples.astype(np.float32), (win // 2, win // 2 + n * HOP))
    return np.lib.stride_tricks.sliding_window_view(padded, win)[::HOP][:n]


def loudness_db(samples: np.ndarray) -> np.ndarray:
    """(n,) RMS loudness in dBFS per 10 ms frame (25 ms window), floored at SILENCE_DB."""
    rms2 = np.concatenate(by_blocks(frames(samples), lambda w: np.mean(np.square(w, dtype=np.float64), axis=1)))
    return np.maximum(10.0 * np.log10(rms2 + 1e-12), SILENCE_DB)


BLOCK = 2000
"""Analysis frames (20 s) per block for the per-frame spectra of this module and ``energy``: bounds
their memory (tens of MB) whatever the audio's length."""


def by_blocks(windows: np.ndarray, fn) -> list:
    """``fn`` applied to consecutive blocks of BLOCK rows of ``windows`` (a strided view), in order."""
    return [fn(windows[k : k + BLOCK]) for k in range(0, len(windows), BLOCK)]


def voicing(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Periodicity per 10 ms frame from the normalised autocorrelation of 40 ms windows.

    Returns (f0_hz (n,), clarity (n,)): f0 from the best lag in 60-400 Hz (0 where clarity < 0.5),
    clarity the autocorrelation peak in 0..1 (about 1 for a clean periodic voice, near 0 for noise).
    Computed in blocks (``by_blocks``).
    """
    parts = by_blocks(frames(samples, 640), _voicing_block)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _voicing_block(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = windows.astype(np.float64)
    w = (w - w.mean(axis=1, keepdims=True)) * np.hanning(640)
    spec = np.fft.rfft(w, 1024, axis=1)  # >= 640 + 320: no wrap-around at the lags used
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :320]
    # undo the window's own taper so periodic signals peak near 1
    win_ac = np.correlate(np.hanning(640), np.hanning(640), "full")[639:959]
    ac = ac / np.maximum(ac[:, :1], 1e-12) / (win_ac / win_ac[0])
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    rows = np.arange(len(ac))
    left, mid, right = ac[rows, lag - 1], ac[rows, lag], ac[rows, lag + 1]
    curve = left - 2.0 * mid + right
    shift = np.where(curve < 0, 0.5 * (left - right) / np.minimum(curve, -1e-12), 0.0)  # parabolic peak
    clarity = np.clip(mid, 0.0, 1.0)
    f0 = np.where(clarity >= 0.5, SAMPLE_RATE / (lag + np.clip(shift, -0.5, 0.5)), 0.0)
    return f0, clarity


def voice_activity(samples: np.ndarray, *, bridge_s: float = 0.12, lead_s: float = 0.04, hang_s: float = 0.06) -> np.ndarray:
    """(n,) bool per 10 ms frame: speech present.

    Energy above an adaptive noise floor (a running minimum over 3 s, smoothed) by 30 % of the
    floor-to-peak range, kept within 5-12 dB (measured on Festival speech in added noise: 96 % of
    speech frames found at 10 dB SNR, 89 % at 5 dB), with gaps shorter
    than ``bridge_s`` filled (stop closures), blips under 40 ms dropped, then widened by ``lead_s``
    before each stretch and ``hang_s`` after it (hangover).
    """
    db = loudness_db(samples)
    peak = np.percentile(db, 98)
    floor = ndimage.minimum_filter1d(db, 301, mode="nearest")
    floor = ndimage.uniform_filter1d(floor, 101, mode="nearest")
    floor = np.maximum(floor, peak - 60.0)
    active = (db > floor + np.clip(0.3 * (peak - floor), 5.0, 12.0)) & (db > peak - 50.0)
    active = ndimage.binary_closing(active, np.ones(int(round(bridge_s / HOP_S)) + 1), border_value=0) | active
    active = ndimage.binary_opening(active, np.ones(4))
    lead, hang = int(round(lead_s / HOP_S)), int(round(hang_s / HOP_S))
    out = active.copy()
    for k in range(1, lead + 1):
        out[:-k] |= active[k:]
    for k in range(1, hang + 1):
        out[k:] |= active[:-k]
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index ranges of the runs of True in a 1-D mask, in order."""
    return [(s.start, s.stop) for (s,) in ndimage.find_objects(ndimage.label(np.asarray(mask, bool))[0])]


def to_video_frames(track: np.ndarray, num_frames: int) -> np.ndarray:
    """Sample a 100 Hz track (n, ...) at the centres of ``num_frames`` video frames -> (num_frames, ...)."""
    idx = np.round((np.arange(num_frames) + 0.5) / FPS / HOP_S).astype(int)
    return track[np.clip(idx, 0, len(track) - 1)]


def detect_speech(audio: Audio) -> np.ndarray:
    """(T,) bool, T = audio.num_frames: voice activity at each video frame's centre."""
    return to_video_frames(voice_activity(audio.samples), audio.num_frames)


def speech_features(samples: np.ndarray) -> dict[str, float]:
    """Cues that separate speech from music and noise (computed over frames within 40 dB of the peak).

    voiced: fraction of active frames that are periodic (clarity >= 0.5).
    steady: fraction of voiced frames whose pitch stays within 0.25 semitone over +-50 ms
        (sustained musical notes are steady, speech glides).
    flux_cv: coefficient of variation of the spectral flux (speech changes spectrum in bursts).
    """
    db = loudness_db(samples)
    f0, clarity = voicing(samples)
    n = min(len(db), len(f0))
    db, f0, clarity = db[:n], f0[:n], clarity[:n]
    active = db > np.percentile(db, 98) - 40.0
    if active.sum() < 20:
        return {"voiced": 0.0, "steady": 1.0, "flux_cv": 0.0}
    voiced_frames = active & (f0 > 0)
    voiced = float(voiced_frames.sum() / active.sum())
    semis = 12.0 * np.log2(np.maximum(f0, 1.0) / 100.0)
    spread = ndimage.maximum_filter1d(semis, 11) - ndimage.minimum_filter1d(semis, 11)
    stable = voiced_frames & ndimage.minimum_filter1d(voiced_frames.astype(np.uint8), 11).astype(bool)
    steady = float((stable & (spread < 0.25)).sum() / max(stable.sum(), 1))
    flux = _spectral_flux(frames(samples, 512)[:n])[active[1:]]
    flux_cv = float(flux.std() / max(flux.mean(), 1e-9))
    return {"voiced": voiced, "steady": steady, "flux_cv": flux_cv}


def _spectral_flux(windows: np.ndarray) -> np.ndarray:
    """(n - 1,) RMS change between consecutive log-magnitude spectra of (n, 512) windows, the
    magnitudes normalised by their overall peak; two passes over blocks (peak, then flux)."""

    def magnitude(block):
        return np.abs(np.fft.rfft(block * np.hanning(512), axis=1))

    peak = max(max(float(m.max()) for m in by_blocks(windows, magnitude)), 1e-9)
    # each block carries its predecessor's last window so the flux crosses block edges
    flux = []
    for k in range(0, len(windows), BLOCK):
        mag = np.log1p(magnitude(windows[max(k - 1, 0) : k + BLOCK]) / peak * 1000.0)
        flux.append(np.sqrt(np.mean(np.diff(mag, axis=0) ** 2, axis=1)))
    return np.concatenate(flux)


def is_speech(audio: Audio) -> bool:
    """False when the audio sounds like music or noise without a voice, True otherwise.

    Built to rarely say False on speech (the pipeline refuses what it rejects): it needs clear
    evidence. Measured on 47 speech samples (Festival, espeak-ng in 8 languages and 4 voices, speech
    in noise down to 5 dB SNR): voiced 0.50-0.88, steady <= 0.03, flux_cv >= 0.06; none rejected.
    - noise: almost no periodic frames and a spectrum that never changes in bursts;
    - held notes: many sustained steady pitches (>= 35 %) and hardly any unvoiced frames (speech
      and singing have consonants);
    - quick notes: periodic throughout (>= 97 %) with a spectrum that jumps at note onsets.
    Music with vibrato or with consonant-like noise can pass as speech: misses are the cheap error.
    """
    f = speech_features(audio.samples)
    noise = f["voiced"] < 0.15 and f["flux_cv"] < 0.2
    held_notes = f["steady"] >= 0.35 and f["voiced"] >= 0.95
    quick_notes = f["voiced"] >= 0.97 and f["flux_cv"] >= 1.0
    return not (noise or held_notes or quick_notes)
