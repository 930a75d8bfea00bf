"""Phones -> visemes -> mouth articulation targets (EMBEDDED.md §1, the ~9 shapes of Rhubarb Lip Sync).

Phone names are lower-case CMU/ARPAbet; Festival's extra radio-set names (ax, axr, ix, el, em, en,
nx, dx, hv, pau, h#) map to their CMU neighbours, so Festival reference phones and pocketsphinx
phones go through the same table.
"""

from __future__ import annotations

import numpy as np

from talker.types import FPS

MOUTH_CHANNELS = ("jaw_open", "lip_width", "lip_round", "lip_close", "lip_tuck", "upper_lip_raise")
"""The mouth columns of EMBEDDED_CHANNELS, in that order (units in talker/types.py)."""

# viseme -> phones (Festival radio-set names included)
_VISEME_PHONES = {
    "closed": "p b m em",  # lips pressed together
    "teeth": "k g s z t d n ng sh zh ch jh iy ih y ix dx nx en",  # nearly closed, teeth together
    "open": "eh ae ah ay ey hh ax hv",
    "wide": "aa aw",
    "round": "ao er r axr",  # slightly rounded
    "pucker": "uw ow w uh oy",
    "labiodental": "f v",  # lower lip under the upper teeth
    "tongue": "l th dh el",  # tongue tip showing
}
PHONE_VISEME = {p: v for v, phones in _VISEME_PHONES.items() for p in phones.split()}
REST = "rest"

# Targets, columns MOUTH_CHANNELS: jaw_open, lip_width, lip_round, lip_close, lip_tuck, upper_lip_raise
VISEME_TARGETS = {
    REST: (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "closed": (0.0, 0.0, 0.0, 1.0, 0.0, 0.0),
    "teeth": (0.2, 0.25, 0.0, 0.0, 0.0, 0.25),  # lips ~4 mm apart: most consonants part them
    "open": (0.65, 0.2, 0.0, 0.0, 0.0, 0.15),
    "wide": (0.95, 0.05, 0.0, 0.0, 0.0, 0.1),
    "round": (0.45, -0.2, 0.5, 0.0, 0.0, 0.05),
    "pucker": (0.22, -0.4, 0.9, 0.0, 0.0, 0.0),
    "labiodental": (0.08, 0.05, 0.0, 0.0, 0.9, 0.35),
    "tongue": (0.3, 0.1, 0.0, 0.0, 0.0, 0.1),
}

VOWELS = frozenset("aa ae ah ao aw ax axr ay eh er ey ih ix iy ow oy uh uw".split())
_WIDTH, _ROUND = MOUTH_CHANNELS.index("lip_width"), MOUTH_CHANNELS.index("lip_round")


def phone_targets(phone: str) -> np.ndarray:
    """(6,) float64 mouth targets of a phone (MOUTH_CHANNELS), NaN where the phone leaves a channel to its
    neighbours (coarticulation): consonants other than r/w/y do not set lip width or rounding, so
    the 't' of 'too' is rounded; 'hh' takes the whole shape of the vowel around it."""
    name = phone.lower().rstrip("012")
    viseme = viseme_of(name)
    targets = np.array(VISEME_TARGETS[viseme], dtype=np.float64)
    if viseme != REST and name not in VOWELS and name not in ("r", "w", "y"):
        targets[[_WIDTH, _ROUND]] = np.nan
    if name in ("hh", "hv"):
        targets[:] = np.nan
        targets[MOUTH_CHANNELS.index("lip_close")] = 0.0
        targets[MOUTH_CHANNELS.index("lip_tuck")] = 0.0
    return targets


def viseme_of(phone: str) -> str:
    """Viseme name of a phone ('p' -> 'closed'); silence, pauses and unknown names -> 'rest'."""
    return PHONE_VISEME.get(phone.lower().rstrip("012"), REST)


def frame_visemes(phones, num_frames: int) -> list[str]:
    """Viseme at the centre of each video frame (FPS), from phones [(start_s, end_s, name), ...]."""
    out = [REST] * num_frames
    for start, end, name in phones:
        first = max(0, int(np.floor(start * FPS - 0.5)))
        for i in range(first, min(num_frames, int(np.ceil(end * FPS)))):
            if start <= (i + 0.5) / FPS < end:
                out[i] = viseme_of(name)
    return out


def viseme_accuracy(phones, reference, num_frames: int) -> float:
    """Share of video frames whose viseme from ``phones`` equals the one from ``reference``."""
    a, b = frame_visemes(phones, num_frames), frame_visemes(reference, num_frames)
    return float(np.mean([x == y for x, y in zip(a, b)]))
