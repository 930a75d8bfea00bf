"""English phones with their times, from pocketsphinx 5 (the en-us model and CMUdict ship in its wheel).

Two ways in:

- ``align_phones``: forced alignment of a known transcript. Pocketsphinx 5 aligns in two passes: a
  word-level decode after ``set_align_text`` (which may insert silences between words), then a
  second pass after ``set_alignment()`` that yields the phone segmentation. (A hand-made grammar with
  explicit optional ``<sil>`` words breaks the second pass on most sentences; measured.)
- ``recognise_phones``: phone recognition without a transcript, in the style of Rhubarb Lip Sync
  (allphone search with the phonetic language model ``en-us-phone.lm.bin``, wide beams).

A phone is ``(start_s, end_s, name)``: times in seconds, ``name`` a lower-case CMU/ARPAbet phone
without stress digit ('aa', 'p', ...) or ``SILENCE`` for silence and noise.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading

import numpy as np

from audio2coeff.embedded.activity import runs
from talker.types import SAMPLE_RATE

SILENCE = "sil"
MIN_AUDIO_S = 0.1
FRAME_S = 0.01
"""Pocketsphinx analysis frame step (seconds): 100 frames a second."""

Phone = tuple[float, float, str]

_LOCK = threading.Lock()  # a pocketsphinx Decoder is not re-entrant
# Both decoders normalise cepstra per utterance (cmn 'batch') and reset their feature extraction
# before every pass (``_decode``): otherwise a result depends on what the decoder heard before.


class UnknownWordsError(ValueError):
    """The transcript has words that the pronunciation dictionary lacks."""


class DecoderError(ValueError):
    """pocketsphinx failed on the audio (for alignment: no path through the transcript)."""


@functools.lru_cache(maxsize=None)
def _aligner():
    import pocketsphinx

    # Wide beams: with the defaults, synthetic speech (espeak-ng) found no path through sentences
    # as plain as "Hello! I can talk now, and my lips move with the words." (measured).
    return pocketsphinx.Decoder(lm=None, cmn="batch", bestpath=False, beam=1e-80, wbeam=1e-60, pbeam=1e-80,
                                loglevel="FATAL")


@functools.lru_cache(maxsize=None)
def _recogniser():
    import pocketsphinx

    lm = os.path.join(pocketsphinx.get_model_path(), "en-us", "en-us-phone.lm.bin")
    # lw 2 with 1e-20 beams: best viseme-frame accuracy on Festival speech among lw 1..5 (measured).
    return pocketsphinx.Decoder(lm=None, allphone=lm, cmn="batch", lw=2.0, pip=1.0, beam=1e-20, pbeam=1e-20, loglevel="FATAL")


def _long_enough(samples: np.ndarray) -> np.ndarray:
    if len(samples) < MIN_AUDIO_S * SAMPLE_RATE:
        raise ValueError(f"audio shorter than {MIN_AUDIO_S} s: no phones to find")
    return samples


def _pcm16(samples: np.ndarray) -> bytes:
    """(N,) float waveform in [-1, 1] -> 16-bit little-endian PCM bytes."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


@contextlib.contextmanager
def _using(factory):
    """Hold the lock and yield the cached decoder made by ``factory``; a pocketsphinx failure drops
    that decoder (it may be left mid-utterance) and is raised as DecoderError."""
    with _LOCK:
        try:
            yield factory()
        except (RuntimeError, IndexError) as err:
            factory.cache_clear()
            raise DecoderError(f"pocketsphinx failed: {err}") from err


def _decode(dec, pcm: bytes) -> None:
    """One utterance through ``dec``, from a freshly reset feature extractor (reproducible)."""
    dec.reinit_feat()
    dec.start_utt()
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()


def _name(phone: str) -> str:
    """Pocketsphinx phone ('AA', 'SIL', '+NSN+') -> our name ('aa', SILENCE)."""
    phone = phone.lower()
    return SILENCE if phone == "sil" or phone.startswith("+") else phone


def transcript_words(text: str) -> list[str]:
    """Words of a transcript as the dictionary spells them: lower case, letters, digits and apostrophes."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def _pronounce(word: str) -> list[str]:
    """CMU phones for a word CMUdict lacks, from espeak-ng's rules ([] without its library)."""
    from talker import espeak

    try:
        phones = espeak.pronounce(word)
    except OSError:
        return []
    return [p for k, p in enumerate(phones) if k == 0 or p != phones[k - 1]]


def align_phones(samples: np.ndarray, transcript: str) -> list[Phone]:
    """Force-align ``transcript`` to ``samples`` ((N,) float32 at 16 kHz); returns phones covering the audio.

    Words CMUdict lacks (names, numbers, abbreviations) are pronounced by espeak-ng's rules and
    added to the decoder's dictionary. Raises UnknownWordsError when a word has no pronunciation
    even so (espeak-ng's library missing), ValueError when the transcript has no words, the audio is
    shorter than MIN_AUDIO_S or cannot be aligned to the transcript.
    """
    words = transcript_words(transcript)
    if not words:
        raise ValueError("the transcript has no words")
    pcm = _pcm16(_long_enough(samples))
    with _using(_aligner) as dec:
        unknown = sorted({w for w in words if dec.lookup_word(w) is None})
        for word in unknown:  # names, brands, numbers: pronounced by espeak-ng's rules
            spoken = _pronounce(word)
            if spoken:
                dec.add_word(word, " ".join(p.upper() for p in spoken), True)
        unknown = [w for w in unknown if dec.lookup_word(w) is None]
        if unknown:
            raise UnknownWordsError(f"words not in the pronunciation dictionary: {', '.join(unknown)}")
        dec.set_align_text(" ".join(words))
        _decode(dec, pcm)
        if dec.hyp() is None:
            raise RuntimeError("no path through the transcript")
        dec.set_alignment()  # second pass: phone segmentation of the words found
        _decode(dec, pcm)
        phones = [(p.start * FRAME_S, (p.start + p.duration) * FRAME_S, _name(p.name)) for p in dec.get_alignment().phones()]
    return _cover(phones, len(samples) / SAMPLE_RATE)


def align_phrases(samples: np.ndarray, transcript: str,
                  active: np.ndarray) -> tuple[list[Phone], list[tuple[float, float]]]:
    """``align_phones`` on the whole clip; where that finds no path, phrase by phrase: the transcript
    cut at its punctuation, the audio at as many of its longest pauses (``active``: voice activity
    on the 100 Hz grid), and a phrase that still fails is recognised instead (that stretch alone).

    Returns (phones covering the audio, the (start_s, end_s) stretches recognised rather than
    aligned). Raises what ``align_phones`` raises for the transcript as a whole, but DecoderError
    (no words, unknown words, too short).
    """
    try:
        return align_phones(samples, transcript), []
    except DecoderError:
        pass
    duration = len(samples) / SAMPLE_RATE
    phrases = [p for p in re.split(r"[,.;:!?]+", transcript) if transcript_words(p)]
    pauses = _pauses(active)
    while len(phrases) > len(pauses) + 1:  # fewer pauses than phrase breaks: join the shortest pair
        k = min(range(len(phrases) - 1),
                key=lambda i: len(transcript_words(phrases[i] + " " + phrases[i + 1])))
        phrases[k : k + 2] = [phrases[k] + " " + phrases[k + 1]]
    longest = sorted(sorted(pauses, key=lambda p: p[1] - p[0], reverse=True)[: len(phrases) - 1])
    bounds = [0.0, *[(a + b) / 2 * FRAME_S for a, b in longest], duration]
    out: list[Phone] = []
    recognised = []
    for phrase, start, end in zip(phrases, bounds[:-1], bounds[1:]):
        stretch = samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        try:
            found = align_phones(stretch, phrase)
        except ValueError:
            recognised.append((start, end))
            try:
                found = recognise_phones(stretch)
            except ValueError:
                found = [(0.0, end - start, SILENCE)]
        out += [(s + start, e + start, p) for s, e, p in found]
    return _cover(out, duration), recognised


def _pauses(active: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) 100 Hz frame ranges where voice activity stops between two stretches of speech."""
    return [(a, b) for a, b in runs(~active.astype(bool)) if 0 < a and b < len(active)]


def recognise_phones(samples: np.ndarray) -> list[Phone]:
    """Recognise English phones in ``samples`` ((N,) float32 at 16 kHz) without a transcript.

    Raises ValueError when the audio is shorter than MIN_AUDIO_S or pocketsphinx fails.
    """
    pcm = _pcm16(_long_enough(samples))
    with _using(_recogniser) as dec:
        _decode(dec, pcm)
        phones = [(s.start_frame * FRAME_S, (s.end_frame + 1) * FRAME_S, _name(s.word)) for s in dec.seg()]
    return _cover(phones, len(samples) / SAMPLE_RATE)


def _cover(phones: list[Phone], duration: float) -> list[Phone]:
    """Merge neighbouring silences and pad with silence so the phones cover [0, duration] seconds."""
    out: list[Phone] = []
    t = 0.0
    for start, end, name in phones:
        start, end = max(start, t), min(end, duration)
        if end <= start:
            continue
        if start > t:
            out.append((t, start, SILENCE))
        if out and out[-1][2] == name == SILENCE:
            out[-1] = (out[-1][0], end, SILENCE)
        else:
            out.append((start, end, name))
        t = end
    if t < duration:
        if out and out[-1][2] == SILENCE:
            out[-1] = (out[-1][0], duration, SILENCE)
        else:
            out.append((t, duration, SILENCE))
    return out
