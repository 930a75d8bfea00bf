"""espeak-ng through its C library (libespeak-ng, which the espeak-ng package installs): speech with
the time of every phoneme it speaks, and pronunciations of any word.

The library reports each phoneme as it synthesises it (``espeakEVENT_PHONEME``, at its sample in the
output), so speech that talker makes itself needs no recogniser to know where its phones are. Its
text rules also pronounce what a dictionary lacks: names, brands, numbers ("3000" is "three
thousand"), abbreviations.

Phones are given as CMU/ARPAbet names without stress ('hh', 'ah', 'l', 'ow'), the recogniser's and
the viseme table's set; ``SILENCE`` for pauses. ``available()`` says whether the library loads; the
callers fall back to the ``espeak-ng`` program and to recognition when it does not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading

import numpy as np

SILENCE = "sil"

# espeak-ng's English phoneme mnemonics -> CMU phones (a diphthong with r gives two)
_CMU = {
    "@": "ah", "@2": "ah", "@5": "ah", "@-": "ah", "@L": "ah l", "3": "er", "3:": "er", "a": "ae", "a#": "ah",
    "aa": "aa", "A:": "aa", "A@": "aa r", "aI": "ay", "aI@": "ay er", "aI3": "ay er", "aU": "aw", "e": "eh",
    "E": "eh", "e@": "eh r", "eI": "ey", "i": "iy", "i:": "iy", "i@": "iy er", "i@3": "iy er", "I": "ih",
    "I2": "ih", "I#": "ih", "0": "aa", "O": "ao", "O:": "ao", "O2": "ao", "O@": "ao r", "o@": "ao r",
    "OI": "oy", "oU": "ow", "u:": "uw", "U": "uh", "U@": "uh r", "V": "ah",
    "b": "b", "d": "d", "D": "dh", "dZ": "jh", "f": "f", "g": "g", "h": "hh", "j": "y", "k": "k", "l": "l",
    "l/": "l", "m": "m", "m-": "m", "n": "n", "n-": "n", "N": "ng", "p": "p", "r": "r", "r-": "r", "s": "s",
    "S": "sh", "t": "t", "t#": "d", "t2": "t", "T": "th", "tS": "ch", "v": "v", "w": "w", "x": "k", "z": "z",
    "Z": "zh", "?": "t",
}
_VOWEL_START = set("@3aAeEiIoOuUV0")

# libespeak-ng's API (speak_lib.h)
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS
_PHONEME_EVENTS, _DONT_EXIT = 0x0001, 0x8000
_EVENT_END_OF_LIST, _EVENT_PHONEME = 0, 7
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_RATE = 1  # espeakRATE: words per minute
DEFAULT_WPM = 175  # espeak-ng's own default speed


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


class _Voice(ctypes.Structure):  # espeak_VOICE
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_lock = threading.Lock()  # the library keeps one global state


class _Library:
    """The loaded libespeak-ng, initialised for synchronous synthesis with phoneme events."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        self.rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, None, _PHONEME_EVENTS | _DONT_EXIT)
        if self.rate <= 0:
            raise OSError("espeak_Initialize failed (no espeak-ng data?)")
        self.samples: list[np.ndarray] = []
        self.events: list[tuple[int, str]] = []
        self._callback = _Callback(self._collect)  # kept alive as long as the library uses it
        lib.espeak_SetSynthCallback(self._callback)
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self.samples.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_END_OF_LIST:
            if events[i].type == _EVENT_PHONEME:
                self.events.append((events[i].sample, events[i].id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def voice(self, name: str) -> None:
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {name!r}; see `espeak-ng --voices` for the names")


@functools.lru_cache(maxsize=None)
def _library() -> _Library | None:
    name = ctypes.util.find_library("espeak-ng")
    for candidate in filter(None, (name, "libespeak-ng.so.1", "libespeak-ng.dylib")):
        try:
            return _Library(ctypes.CDLL(candidate))
        except OSError:
            continue
    return None


def available() -> bool:
    """Whether libespeak-ng loads and initialises in this process."""
    return _library() is not None


def cmu_phones(mnemonic: str) -> list[str]:
    """CMU phones for one espeak-ng phoneme mnemonic ([] for a pause or a mark)."""
    name = mnemonic.strip("ˈˌ',%=!;")
    if not name or name.startswith("_"):
        return []
    if name in _CMU:
        return _CMU[name].split()
    if name[:2] in _CMU:
        return _CMU[name[:2]].split()
    if name[:1] in _CMU:
        return _CMU[name[:1]].split()
    return ["ah"] if name[0] in _VOWEL_START else []


def speak(text: str, voice: str = "en-us",
          wpm: int = DEFAULT_WPM) -> tuple[np.ndarray, int, list[tuple[float, float, str]]]:
    """Speak ``text`` at ``wpm`` words per minute (espeak-ng takes 80..450): (samples (N,) int16,
    sample rate in Hz, phones [(start_s, end_s, CMU phone or SILENCE)] covering the samples).
    ``voice`` is a language ('en-us', 'de') with an optional variant ('en-us+f3'). Raises ValueError
    for an unknown voice, OSError when the library is missing."""
    lib = _library()
    if lib is None:
        raise OSError("libespeak-ng is not available")
    data = text.encode("utf-8")
    with _lock:
        lib.voice(voice)
        lib.lib.espeak_SetParameter(_RATE, int(wpm), 0)
        lib.samples, lib.events = [], []
        lib.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.lib.espeak_Synchronize()
        samples = np.concatenate(lib.samples) if lib.samples else np.zeros(0, np.int16)
        events = list(lib.events)
        rate = lib.rate
    duration = len(samples) / rate
    phones: list[tuple[float, float, str]] = []
    starts = [s / rate for s, _ in events] + [duration]
    for (start, name), end in zip(((s / rate, n) for s, n in events), starts[1:]):
        end = min(end, duration)
        if end <= start:
            continue
        parts = cmu_phones(name) or [SILENCE]
        step = (end - start) / len(parts)
        phones += [(start + k * step, start + (k + 1) * step, p) for k, p in enumerate(parts)]
    return samples, rate, _merged(phones, duration)


def _merged(phones: list[tuple[float, float, str]], duration: float) -> list[tuple[float, float, str]]:
    """Neighbouring silences merged; silence from 0 to the first phone and from the last to ``duration``."""
    out: list[tuple[float, float, str]] = []
    t = 0.0
    for start, end, name in phones + [(duration, duration, SILENCE)]:
        if start > t:
            out.append((t, start, SILENCE))
        if out and out[-1][2] == SILENCE and name == SILENCE:
            out[-1] = (out[-1][0], max(end, out[-1][1]), SILENCE)
        elif end > start:
            out.append((start, end, name))
        t = max(t, end)
    return [p for p in out if p[1] > p[0]]


def voices(variants: bool = False) -> list[tuple[str, str]]:
    """(name, description) of each voice espeak-ng has, sorted by name: its languages ('en-us',
    'de', ...), or with ``variants`` the variants ('f3', 'Alicia', ...) a language takes after a '+'.
    [] when the library is missing."""
    lib = _library()
    if lib is None:
        return []
    spec = _Voice(languages=b"variant") if variants else None
    found: dict[str, str] = {}
    with _lock:
        listed = lib.lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
        i = 0
        while listed[i]:
            voice = listed[i].contents
            name = voice.name.decode("utf-8", "replace")
            if variants:
                found[voice.identifier.decode("utf-8", "replace").split("/")[-1]] = name
            else:  # languages: (priority byte, name, NUL) repeated, ending with a 0 priority
                raw = ctypes.string_at(voice.languages, 256)
                first = raw[1:raw.index(b"\0", 1)].decode("utf-8", "replace")
                found.setdefault(first, name)
            i += 1
    return sorted(found.items(), key=lambda item: item[0].lower())


def pronounce(word: str, voice: str = "en-us") -> list[str]:
    """CMU phones of ``word`` (any text: a name, a number, an abbreviation) by espeak-ng's rules.
    Raises OSError when the library is missing."""
    lib = _library()
    if lib is None:
        raise OSError("libespeak-ng is not available")
    out: list[str] = []
    with _lock:
        lib.voice(voice)
        text = ctypes.c_char_p(word.encode("utf-8"))
        pointer = ctypes.pointer(text)
        separator = ord("|") << 8  # phonemes separated by '|', espeak's own mnemonics
        while pointer.contents.value:
            chunk = lib.lib.espeak_TextToPhonemes(pointer, _CHARS_UTF8, separator)
            if not chunk:
                break
            for token in chunk.decode("utf-8", "replace").replace(" ", "|").split("|"):
                out += cmu_phones(token)
    return out
