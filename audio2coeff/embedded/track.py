"""The embedded backend's audio -> CoeffTrack: phones or energy for the mouth, procedural eyes and head.

Steps: (1) loudness, voicing and voice activity on a 100 Hz grid; (2) phones, by forced alignment
of the transcript or by phone recognition (English), else the loudness/formant fallback; (3) mouth
channels with coarticulation, back to the portrait's own rest in pauses; (4) blinks, brows and head
motion; (5) scale, clip and assemble the EMBEDDED_CHANNELS columns at FPS.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from audio2coeff.embedded import activity, motion, phones as phones_mod
from audio2coeff.embedded.articulation import mouth_track
from audio2coeff.embedded.energy import energy_mouth
from audio2coeff.embedded.visemes import MOUTH_CHANNELS
from talker.errors import OptionError
from talker.types import EMBEDDED_CHANNELS, FPS, Audio, CoeffTrack

log = logging.getLogger(__name__)

MIN_PHONE_RATE = 4.0
"""Phones per second of voice-active audio below which recognition is judged to have found too little."""
MIN_COVERAGE = 0.5
"""Least share of voice-active time that recognition must explain with speech phones (not noise or
silence). Measured: Festival English 0.94-0.96, espeak English 0.63-0.86, espeak French 0.39, a
synthetic sung vowel line 0.55 (with 3.6 phones/s)."""

PAUSE_CLOSE_RAMP = 3
"""Frames (40 ms each) between a p/b/m's closure at a pause's edge and the rest inside the pause."""

NEAR_SPEECH = 2
"""Frames around speech whose lip_close is kept (articulation shuts the lips up to 60 ms before a
p/b/m that starts after a pause)."""

_RANGES = {"lip_width": (-1.0, 1.0), "brow_raise": (-1.0, 1.0)}  # the other mouth/eye channels are 0..1


def pause_gate(mouth: np.ndarray, speaking_now: np.ndarray) -> np.ndarray:
    """(T, 6) mouth channels (MOUTH_CHANNELS) scaled towards 0, the portrait's own rest, where
    ``speaking_now`` (T,) in 0..1 (voice activity smoothed over 70 ms, at each video frame) falls.

    lip_close is not scaled where speech touches a pause: its value near speech (within NEAR_SPEECH
    frames of speaking_now > 0: that holds the closure leading out of a pause into a p/b/m) is
    spread into the pause by a linear ramp over PAUSE_CLOSE_RAMP frames (a grey dilation), so a
    p/b/m at a pause's edge stays fully shut and the lips move between it and their rest over
    160 ms (0.25, 0.5, 0.75 of the closure on the frames between), not in one frame; further inside
    a pause every channel is exactly 0."""
    close = MOUTH_CHANNELS.index("lip_close")
    out = mouth * speaking_now[:, None]
    near = ndimage.maximum_filter1d(speaking_now > 0, 2 * NEAR_SPEECH + 1)
    closure = np.where(near, mouth[:, close], 0.0)
    spread = closure.copy()
    for d in range(1, PAUSE_CLOSE_RAMP + 1):
        weight = 1.0 - d / (PAUSE_CLOSE_RAMP + 1)
        spread[d:] = np.maximum(spread[d:], closure[:-d] * weight)
        spread[:-d] = np.maximum(spread[:-d], closure[d:] * weight)
    out[:, close] = speaking_now * closure + (1.0 - speaking_now) * spread
    return out.astype(np.float32)


def _gate_phones(phones: list, active: np.ndarray) -> list:
    """Replace the parts of phones that fall outside voice activity (100 Hz mask) by silence."""
    n = len(active)
    labels = np.full(n, phones_mod.SILENCE, dtype=object)
    for start, end, name in phones:
        labels[int(round(start / activity.HOP_S)) : int(round(end / activity.HOP_S))] = name
    labels[~active] = phones_mod.SILENCE
    edges = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    bounds = np.concatenate([[0], edges, [n]])
    return [(round(a * activity.HOP_S, 3), round(b * activity.HOP_S, 3), str(labels[a])) for a, b in zip(bounds[:-1], bounds[1:])]


def _english_phones(audio: Audio, active: np.ndarray) -> tuple[str, list] | None:
    """('synthesised' | 'aligned' | 'recognised', phones) for English speech, or None when recognition
    fails or finds too little (few phones a second of voice activity, or most of the voice called
    noise: low confidence). Speech talker synthesised brings its own phones."""
    if audio.phones:
        return "synthesised", audio.phones
    if audio.transcript and audio.transcript.strip():
        try:
            aligned, recognised = phones_mod.align_phrases(audio.samples, audio.transcript, active)
        except ValueError as err:  # UnknownWordsError included
            log.warning("forced alignment failed (%s); recognising phones instead", err)
        else:
            if recognised:
                log.warning("forced alignment failed on %d phrase(s) of the transcript; recognised phones there",
                            len(recognised))
            return "aligned", aligned
    try:
        found = phones_mod.recognise_phones(audio.samples)
    except ValueError as err:
        log.warning("phone recognition failed (%s); using the loudness/formant fallback", err)
        return None
    speech_s = active.sum() * activity.HOP_S
    speech = [p for p in _gate_phones(found, active) if p[2] != phones_mod.SILENCE]
    rate = len(speech) / speech_s
    covered = sum(e - s for s, e, _ in speech) / speech_s
    if rate < MIN_PHONE_RATE or covered < MIN_COVERAGE:
        log.warning(
            "phone recognition found too little (%.1f phones/s, %.0f%% of the speech explained); using the loudness/formant fallback",
            rate,
            100 * covered,
        )
        return None
    return "recognised", found


def embedded_track(
    audio: Audio,
    *,
    seed: int = 0,
    language: str = "auto",
    blink_rate: float = 17.0,
    blink: bool = True,
    pose_style: int = 0,
    head_motion: float = 1.0,
    expression_scale: float = 1.0,
) -> CoeffTrack:
    """Audio -> CoeffTrack in the 'embedded' space: (T, 13) float32, columns EMBEDDED_CHANNELS, T = audio.num_frames.

    seed: seeds every random choice (blinks, head drift, brow heights); same inputs and seed give
        bit-identical values.
    language: 'auto' or 'en' use English phones (the synthesiser's for speech talker made, else
        aligned to ``audio.transcript`` when set, else recognised) and fall back to loudness/formants
        when recognition finds too little; any other value uses the loudness/formant fallback.
    blink_rate: mean blinks per minute (0 or ``blink=False``: none).
    pose_style: 0..45, picks the head-motion manner (motion.manner). head_motion: scales the head
        channels (0 = still, 2 = twice the default spread).
    expression_scale: scales the mouth and brow channels (then clipped to their ranges).
    Raises OptionError for a pose_style outside 0..45 or a negative rate or scale.
    meta: seed, method ('synthesised' | 'aligned' | 'recognised' | 'energy'), phones [(start_s, end_s, phone), ...]
    after the pause gate ([] for 'energy'), blink_times (s), and the other arguments.
    """
    if not 0 <= pose_style <= 45:
        raise OptionError(f"pose_style must be between 0 and 45, not {pose_style}")
    for name, value in (("blink_rate", blink_rate), ("head_motion", head_motion), ("expression_scale", expression_scale)):
        if value < 0:
            raise OptionError(f"{name} must not be negative, got {value:g}")
    num_frames = audio.num_frames
    rng_blink, rng_brow, rng_head = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))

    # 1. analysis on the 100 Hz grid
    samples = np.asarray(audio.samples, dtype=np.float32)
    loudness = activity.loudness_db(samples)
    f0, _ = activity.voicing(samples)
    active = activity.voice_activity(samples)
    n = min(len(loudness), len(f0), len(active))
    loudness, f0, active = loudness[:n], f0[:n], active[:n]

    # 2. phones, or the fallback
    found = _english_phones(audio, active) if language in ("auto", "en") and active.any() else None
    if found is None:
        method, used = "energy", []
        log.info("mouth from loudness and formants")
        mouth = energy_mouth(samples, loudness, active, f0 > 0, num_frames)
    else:
        method, used = found[0], _gate_phones(found[1], active)
        log.info("mouth from %s phones", method)
        mouth = mouth_track(used, num_frames, loudness, float(np.percentile(loudness[active], 90)), method == "recognised")

    # 3. pauses return the mouth to the portrait's own rest (every mouth channel 0: the portrait's
    #    smile or parted lips), with 70 ms ramps; only a p/b/m at a pause's edge keeps its closure
    #    and eases out of (or into) it over PAUSE_CLOSE_RAMP frames inside the pause
    gate = np.convolve(active.astype(np.float64), np.ones(7) / 7.0, mode="same")
    speaking_now = activity.to_video_frames(gate, num_frames)
    mouth = pause_gate(mouth, speaking_now)

    # 4. eyes, brows, head
    times = motion.blink_times(audio.duration, blink_rate, rng_blink) if blink else []
    blinks = motion.blink_track(times, num_frames, rng_blink)
    accent_times, strength = motion.accents(loudness, f0, active)
    brows = motion.brow_track(accent_times, strength, num_frames, rng_brow)
    speaking = activity.to_video_frames(np.convolve(active.astype(np.float64), np.ones(101) / 101.0, mode="same"), num_frames)
    head = motion.head_track(num_frames, speaking, active, accent_times, strength, pose_style, rng_head) * head_motion

    # 5. assemble
    values = np.zeros((num_frames, len(EMBEDDED_CHANNELS)), np.float32)
    for k, name in enumerate(MOUTH_CHANNELS):
        values[:, EMBEDDED_CHANNELS.index(name)] = mouth[:, k] * expression_scale
    values[:, EMBEDDED_CHANNELS.index("blink")] = blinks
    values[:, EMBEDDED_CHANNELS.index("brow_raise")] = brows * expression_scale
    for k, name in enumerate(motion.HEAD_CHANNELS):
        values[:, EMBEDDED_CHANNELS.index(name)] = head[:, k] if head_motion > 0 else 0.0
    for k, name in enumerate(EMBEDDED_CHANNELS[:8]):
        lo, hi = _RANGES.get(name, (0.0, 1.0))
        values[:, k] = np.clip(values[:, k], lo, hi)
    meta = {
        "seed": int(seed),
        "method": method,
        "phones": [[float(s), float(e), p] for s, e, p in used],
        "blink_times": [round(t, 3) for t in times],
        "language": language,
        "pose_style": int(pose_style),
        "head_motion": float(head_motion),
        "expression_scale": float(expression_scale),
        "blink_rate": float(blink_rate) if blink else 0.0,
        "fps": FPS,
    }
    return CoeffTrack(values=values, space="embedded", meta=meta)
