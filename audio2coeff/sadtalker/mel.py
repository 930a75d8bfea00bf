"""The log-mel front end of SadTalker's audio networks (SPEC §5), in NumPy.

16 kHz mono -> pre-emphasis -> |STFT| (n_fft 800, hop 200, periodic Hann, centred) -> Slaney mel
(80 bands, 55..7600 Hz) -> dB -> normalised to [-4, 4] -> one (80, 16) window per 25-fps frame.
Everything is computed in float64 and returned as float32, as the reference does.

Padding of the centred STFT: ``"zero"`` (400 zeros at each end; librosa >= 0.9, what SadTalker
pins, the default) or ``"reflect"`` (librosa <= 0.8, what the SD-WebUI extension installs).
The two differ only in mel columns 0, 1, M-2 and M-1.
"""

from __future__ import annotations

import numpy as np

from talker.types import SAMPLE_RATE, SAMPLES_PER_FRAME

N_FFT = 800
HOP = 200
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
WINDOW_COLUMNS = 16
PADDINGS = ("zero", "reflect")


def crop_waveform(samples: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames * 640,) float32: ``samples`` cut, or zero-padded at the end, to whole frames."""
    n = num_frames * SAMPLES_PER_FRAME
    out = np.zeros(n, dtype=np.float32)
    m = min(n, len(samples))
    out[:m] = samples[:m]
    return out


def preemphasize(samples: np.ndarray) -> np.ndarray:
    """(N,) float64: y[n] = x[n] - 0.97 x[n-1], y[0] = x[0]."""
    x = np.asarray(samples, dtype=np.float64)
    y = x.copy()
    y[1:] -= PREEMPHASIS * x[:-1]
    return y


COLUMNS_PER_PASS = 4096
"""STFT columns (20.5 s of audio) transformed at a time: memory stays flat in the clip length."""


def stft_frames(signal: np.ndarray, padding: str = "zero") -> np.ndarray:
    """(1 + N // 200, 800) float64: the centred STFT frames of ``signal``, a strided view of one
    padded copy (n_fft 800, hop 200). The signal is padded with 400 samples at each end, zeros
    (``padding="zero"``) or mirrored without repeating the edge (``"reflect"``)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")
    half = N_FFT // 2
    padded = np.pad(np.asarray(signal, dtype=np.float64), half, mode="constant" if padding == "zero" else "reflect")
    num_columns = 1 + (len(padded) - N_FFT) // HOP
    return np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:num_columns]


def frames_magnitude(frames: np.ndarray) -> np.ndarray:
    """(C, 800) STFT frames -> (401, C) float64 |rfft| under a periodic Hann window of 800."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    return np.abs(np.fft.rfft(frames * window, axis=1)).T


def stft_magnitude(signal: np.ndarray, padding: str = "zero") -> np.ndarray:
    """(401, 1 + N // 200) float64: |STFT| of ``signal`` with centred frames (see ``stft_frames``)."""
    return frames_magnitude(stft_frames(signal, padding))


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * 3.0 / 200.0
    log_step = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step, linear)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), mel * 200.0 / 3.0)


def mel_basis() -> np.ndarray:
    """(80, 401) float32 triangular filterbank: Slaney mel scale, Slaney area normalisation.

    Band edges are 82 points evenly spaced in mel between 55 and 7600 Hz; band i rises from edge i
    to edge i+1 and falls to edge i+2 over the FFT bin frequencies, then is scaled by
    2 / (edge[i+2] - edge[i]) (Hz) so that each band has about the same area.
    """
    edges = _slaney_mel_to_hz(np.linspace(_hz_to_slaney_mel(FMIN), _hz_to_slaney_mel(FMAX), N_MELS + 2))
    bins = np.linspace(0.0, SAMPLE_RATE / 2.0, 1 + N_FFT // 2)
    widths = np.diff(edges)
    offsets = edges[:, None] - bins[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(samples: np.ndarray, padding: str = "zero") -> np.ndarray:
    """(80, 1 + N // 200) float32 normalised log-mel of a 16 kHz waveform, values in [-4, 4].

    ``samples`` should already be cut to whole frames (``crop_waveform``).
    """
    frames, basis = stft_frames(preemphasize(samples), padding), mel_basis().astype(np.float64)
    mel = np.concatenate([basis @ frames_magnitude(frames[start: start + COLUMNS_PER_PASS])
                          for start in range(0, len(frames), COLUMNS_PER_PASS)], axis=1)
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - 20.0
    return np.clip(8.0 * (db + 100.0) / 100.0 - 4.0, -4.0, 4.0).astype(np.float32)


def window_indices(num_frames: int, num_columns: int) -> np.ndarray:
    """(T, 16) int64 mel columns of each frame's window: start trunc(16 (i - 2) / 5), clamped."""
    i = np.arange(num_frames)
    start = np.trunc(16.0 * (i - 2) / 5.0).astype(np.int64)
    return np.clip(start[:, None] + np.arange(WINDOW_COLUMNS)[None, :], 0, num_columns - 1)


def frame_windows(mel: np.ndarray, num_frames: int) -> np.ndarray:
    """(T, 80, 16) float32 per-frame windows of a (80, M) log-mel."""
    idx = window_indices(num_frames, mel.shape[1])
    return np.ascontiguousarray(mel[:, idx].transpose(1, 0, 2))


def audio_windows(samples: np.ndarray, num_frames: int, padding: str = "zero") -> np.ndarray:
    """(T, 80, 16) float32 network input for ``num_frames`` video frames of a 16 kHz waveform.

    The waveform is cut or zero-padded to ``num_frames * 640`` samples first (SPEC §5.2).
    """
    return frame_windows(log_mel(crop_waveform(samples, num_frames), padding), num_frames)
