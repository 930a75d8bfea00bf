"""`talker score`: grade a talking-head video from what it shows and what it says.

Every measure is taken on the decoded video with the pipeline's own landmark model (talker.measure)
and on the audio; each becomes pass / warn / fail with a short reason through the thresholds in
``THRESHOLDS``. ``score_video`` returns a ``ScoreReport``; ``write_report`` writes it as JSON and a
one-page PNG (mouth opening against loudness with the phone timeline, eye opening with blinks, head
motion).

Measures (units):
  av_offset_ms        lag of mouth motion behind loudness (ms, + = video late), by cross-correlation
  av_sync_corr        best correlation of the mouth's opening (whole, or beyond its rest) or of the chin's drop with
                      the loudness, their changes over 120 ms, within +-160 ms (-1..1)
  mouth_speech_ratio  how far the mouth moves from its rest opening (the median in silent frames 200 ms
                      or more from speech) in speech frames over how far it moves in those silent frames
                      (means; the same for portraits resting with closed or parted lips)
  mouth_motion        spread of mouth opening during speech (inter-ocular distances, 10-90 % range)
  closure_rate        share of p/b/m phones with closed lips (needs a transcript)
  vowel_opening       share of open vowels (60 ms or longer) whose peak opening exceeds the median of speech
                      (needs a transcript)
  script_following    correlation, over the speech, of the mouth opening with the opening the aligned
                      phones call for (open vowels wide, other vowels half, consonants a little, p/b/m
                      shut; needs a transcript): low when the mouth moves but not with the words
  blink_rate          blinks per minute (too many warn at most in a clip under 10 s: blinks come in bursts);
                      eye_motion: spread of eye opening (2-98 % range over the median)
  head_motion         spread of the nose position (inter-ocular distances, std; reported, not graded)
  head_turn           the larger spread (std) of the head's turn and nod as the picture shows them: the
                      nose tip's offset from the eyes' midpoint along and across the eye line (IOD).
                      Real speakers measure 0.053-0.109 (turn) and 0.043-0.071 (nod); far below, a warning
                      (never a failure: a still head can be intended)
  jitter              mean frame-to-frame acceleration of the face's rigid region (eyes, nose, forehead)
                      in the pixels, by phase correlation (inter-ocular distances)
  identity_distance   dlib face-embedding distance to the source portrait (needs --image and the
                      optional 'identity' extra: dlib-bin + face_recognition_models, CC0 models)
  sharpness_ratio     fine detail (Laplacian variance) of the face in the video over that of the source
                      portrait's face at the same scale
  background_change   mean absolute change outside the face region (grey levels, 0-255)
  mouth_readable      only where the landmark model cannot read the mouth ('warn'): the mouth's
                      pixels follow the speech (av_sync_corr of their change at least the pass bound)
                      while the landmark opening does not (under the fail bound). Then av_offset_ms and
                      av_sync_corr are measured on the pixels, and the checks that need the landmark
                      opening (mouth_speech_ratio, mouth_motion, closure_rate, vowel_opening) skip.
                      A still mouth, audio that is shifted or another speech's still fail: their
                      pixels do not follow the speech either (see MouthPixels).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from talker.types import FPS, SAMPLES_PER_FRAME, Audio

log = logging.getLogger(__name__)

# (pass if better than, warn if better than, direction): beyond the second bound it fails.
# 'min' measures must be at least the bound, 'max' measures at most, 'abs' compares |value|.
THRESHOLDS: dict[str, tuple[float, float, str]] = {
    "av_offset_ms": (80.0, 160.0, "abs"),
    "av_sync_corr": (0.3, 0.15, "min"),
    "mouth_speech_ratio": (1.8, 1.3, "min"),
    "mouth_motion": (0.05, 0.025, "min"),
    "closure_rate": (0.8, 0.6, "min"),
    "vowel_opening": (0.8, 0.6, "min"),
    "script_following": (0.45, 0.25, "min"),
    "head_turn": (0.02, -np.inf, "min"),
    "blink_rate": (40.0, 60.0, "max"),
    "blink_rate_low": (6.0, 2.0, "min"),
    "eye_motion": (0.3, 0.15, "min"),
    "jitter": (0.035, 0.06, "max"),
    "identity_distance": (0.45, 0.6, "max"),
    "sharpness_ratio": (0.5, 0.3, "min"),
    "background_change": (3.0, 8.0, "max"),
}

REASONS = {
    "av_offset_ms": "lips {sign} the sound by {absval:.0f} ms",
    "av_sync_corr": "mouth motion follows loudness weakly (r = {value:.2f})",
    "mouth_speech_ratio": "the mouth moves barely more in speech than in silence (x{value:.2f})",
    "mouth_motion": "the mouth hardly moves while speaking ({value:.3f} IOD)",
    "closure_rate": "lips close on only {value:.0%} of p/b/m sounds",
    "vowel_opening": "only {value:.0%} of open vowels open the mouth wider than usual speech",
    "script_following": "the mouth does not follow the words (r = {value:.2f} with the opening they call for)",
    "head_turn": "the head hardly turns or nods ({value:.3f} IOD; real speakers 0.04-0.11)",
    "blink_rate": "too many blinks ({value:.0f} per minute)",
    "blink_rate_low": "too few blinks ({value:.1f} per minute)",
    "eye_motion": "the eyes look frozen (opening varies by {value:.3f})",
    "jitter": "landmarks jitter from frame to frame ({value:.4f} IOD)",
    "identity_distance": "the face looks like another person (distance {value:.2f})",
    "sharpness_ratio": "the face is blurrier than the source (x{value:.2f} detail)",
    "background_change": "the background moves ({value:.1f} grey levels)",
}

LEVELS = ("pass", "warn", "fail")
OPEN_VOWELS = ("aa", "ae", "ah", "ao", "aw", "ay")


@dataclass
class Check:
    """One graded measure."""

    name: str
    value: float | None
    verdict: str  # pass | warn | fail | skip
    reason: str = ""


@dataclass
class ScoreReport:
    video: str
    duration_s: float
    checks: list[Check]
    series: dict = field(default_factory=dict, repr=False)  # per-frame curves for the plots

    @property
    def verdict(self) -> str:
        """The worst verdict of all checks (skipped checks do not count)."""
        worst = max((LEVELS.index(c.verdict) for c in self.checks if c.verdict in LEVELS), default=0)
        return LEVELS[worst]

    def to_json(self) -> dict:
        return {
            "video": self.video,
            "duration_s": round(self.duration_s, 3),
            "verdict": self.verdict,
            "checks": [asdict(c) for c in self.checks],
        }


def grade(name: str, value: float | None) -> Check:
    """Turn a measure into a Check with THRESHOLDS; None (not measurable) is 'skip'."""
    if value is None or not np.isfinite(value):
        return Check(name, None, "skip", "not measurable here")
    good, bad, direction = THRESHOLDS[name]
    v = abs(value) if direction == "abs" else value
    if direction == "min":
        verdict = "pass" if v >= good else "warn" if v >= bad else "fail"
    else:
        verdict = "pass" if v <= good else "warn" if v <= bad else "fail"
    reason = ""
    if verdict != "pass":
        reason = REASONS[name].format(value=value, absval=abs(value), sign="trail" if value > 0 else "lead")
    return Check(name, float(value), verdict, reason)


def score_video(
    video: str | Path,
    audio: Audio,
    image: np.ndarray | None = None,
    transcript: str | None = None,
) -> ScoreReport:
    """Measure and grade ``video`` spoken with ``audio``; ``image`` is the source portrait (RGB)."""
    from talker.face import detect_faces
    from talker.measure import count_blinks, measure_frames
    from talker.media import read_video_frames

    frames = read_video_frames(video)
    first = next(frames)
    faces = detect_faces(first)
    box = _pad_box(faces[0].box, first.shape, 0.35) if faces else None
    sample = {0: first}  # frames kept for identity/sharpness/background: one a second
    motion = RigidMotion(first, box)
    pixels = MouthPixels(first, box)

    def keep_some():
        yield first
        for i, f in enumerate(frames, start=1):
            if i % FPS == 0:
                sample[i] = f
            motion.add(f)
            pixels.add(f, motion.moved())
            yield f

    m = measure_frames(keep_some(), box)
    n = m.num_frames
    checks: list[Check] = []

    # Audio side on the video's frame grid.
    loud = _frame_loudness(audio, n)
    speech = _speech_frames(audio, n)
    mouth = _fill_nan(m.mouth_open)

    # 1. Audio-video offset and sync strength (from the mouth's pixels where the landmark model
    #    cannot read the mouth: unreadable is then the 'mouth_readable' Check).
    rest = rest_opening(mouth, speech)
    offset, corr = _av_offset(mouth, loud, speech, rest[0] if rest else None, _fill_nan(m.chin_drop))
    unreadable = _mouth_unreadable(corr, pixels.activity(speech), loud, speech)
    if unreadable:
        offset, corr = unreadable[1]
        checks.append(unreadable[0])
    checks.append(_from_pixels(grade("av_offset_ms", offset), unreadable))
    checks.append(_from_pixels(grade("av_sync_corr", corr), unreadable))

    # 2. Mouth in speech vs silence, and its motion while speaking.
    not_read = (lambda name: Check(name, None, "skip", UNREADABLE_SKIP)) if unreadable else (lambda name: None)
    checks.append(not_read("mouth_speech_ratio") or grade("mouth_speech_ratio", speech_ratio(mouth, speech)))
    q = np.percentile(mouth[speech], [10, 90]) if speech.any() else (0.0, 0.0)
    checks.append(not_read("mouth_motion") or grade("mouth_motion", float(q[1] - q[0])))

    # 3. Phonetic checks from forced alignment of the transcript.
    phones = _aligned_phones(audio, transcript) if transcript else []
    closure, vowel = _phonetic(phones, mouth, speech)
    checks.append(not_read("closure_rate") or grade("closure_rate", closure))
    checks.append(not_read("vowel_opening") or grade("vowel_opening", vowel))
    checks.append(not_read("script_following") or grade("script_following", script_following(phones, mouth, speech)))

    # 4. Eyes: blink rate and whether they move at all.
    eye = _fill_nan(m.eye_open)
    minutes = n / FPS / 60.0
    blinks = count_blinks(eye, BLINK_DROP, BLINK_MIN_DROP, BLINK_REOPEN)
    rate = blinks / minutes if minutes > 0 else None
    checks.append(blink_rate_check(rate, n))
    shut = _eyes_unreadable(eye)
    checks.append(shut("blink_rate_low") or _too_short("blink_rate_low", n) or grade("blink_rate_low", rate))
    # Judged against the clip's length: people blink every 2-10 s, so a clip shorter than
    # EYES_JUDGED_S without a blink proves nothing (one with a blink is judged).
    e = np.percentile(eye, [2, 98]) / max(np.median(eye), 1e-6)  # blinks fill a few % of the frames
    checks.append(shut("eye_motion") or (blinks == 0 and _too_short("eye_motion", n)) or grade("eye_motion", float(e[1] - e[0])))

    # 5. Head motion (reported, not graded: a still head can be intended) and jitter.
    iod = np.where(np.isfinite(m.iod) & (m.iod > 0), m.iod, np.nanmedian(m.iod))  # frames without a face: typical IOD
    nose = m.nose / iod[:, None]
    head = float(np.nanmean(np.nanstd(nose, axis=0)))
    checks.append(Check("head_motion", head, "pass", ""))
    checks.append(grade("head_turn", head_turn(m.landmarks, iod)))
    checks.append(grade("jitter", motion.jitter()))

    # 6. Identity, sharpness, background: against the source portrait when given.
    checks.append(_identity_check(image, list(sample.values())))
    checks.append(grade("sharpness_ratio", _sharpness(image, sample) if image is not None else None))
    checks.append(grade("background_change", _background(image, sample, box)))

    series = {"mouth": mouth.tolist(), "loudness": loud.tolist(), "speech": speech.astype(int).tolist(),
              "eye": eye.tolist(), "nose": np.nan_to_num(nose).tolist(), "blinks": blinks,
              "phones": [list(p) for p in phones]}
    return ScoreReport(str(video), n / FPS, checks, series)


UNREADABLE_SKIP = "the landmark model cannot read this mouth (see mouth_readable)"


def _mouth_unreadable(landmark_corr: float | None, activity: np.ndarray | None, loud: np.ndarray, speech: np.ndarray):
    """(Check 'mouth_readable' (warn), (offset_ms, corr) from the mouth's pixels) when the landmark
    opening fails to follow the speech (av_sync_corr under its fail bound) while the pixels of the
    mouth follow it well (their av_sync_corr at least the pass bound); else None.

    On a cel-shaded 512 px face whose mouth visibly opens, the landmark model read 2 % of the drawn
    opening: its opening correlated 0.08 with the speech, the mouth's pixels 0.39 (0.13 with the
    speech played backwards, and 200 ms late audio still read 240 ms off)."""
    good, bad, _ = THRESHOLDS["av_sync_corr"]
    if activity is None or landmark_corr is None or landmark_corr >= bad:
        return None
    offset, corr = _av_offset(activity, loud, speech)
    if corr is None or corr < good:
        return None
    reason = (f"the landmark model cannot read this mouth: its pixels follow the speech (r = {corr:.2f}), "
              f"its landmark opening does not (r = {landmark_corr:.2f}); sync measured on the pixels, "
              "opening checks skipped")
    return Check("mouth_readable", None, "warn", reason), (offset, corr)


def _from_pixels(check: Check, unreadable) -> Check:
    """``check`` with its reason marked as measured on the mouth's pixels when ``unreadable``."""
    if unreadable:
        check.reason = "measured on the mouth's pixels" + (f": {check.reason}" if check.reason else "")
    return check


MOUTH_BOX = (0.45, 0.3)
"""Half-width and half-height (IOD) of the mouth patch MouthPixels watches, around the lips' centre."""
MOUTH_PATCH = (32, 20)
"""Size (pixels, width x height) the mouth patch is resampled to."""


class MouthPixels:
    """How much the mouth region's pixels differ from the mouth at rest, frame by frame: image
    evidence of the mouth's motion that does not depend on the landmark model reading the lips.

    The patch is placed once, on the first frame's landmarks (the lips' centre, MOUTH_BOX), and
    follows the face by RigidMotion's shifts; each frame's patch is kept small (MOUTH_PATCH, grey).
    activity(): mean absolute difference (grey levels) from the median patch of the silent frames.

    first: (H, W, 3) uint8 RGB first frame; box: (x0, y0, x1, y1) face region, or None for the frame.
    """

    def __init__(self, first: np.ndarray, box: tuple[int, int, int, int] | None):
        from talker.errors import NoFaceError
        from talker.face import face_landmarks

        self._patches: list[np.ndarray] = []
        self._box = None
        try:
            lm = face_landmarks(first, box or (0, 0, first.shape[1], first.shape[0]))
        except NoFaceError:
            return
        iod = float(np.linalg.norm(lm[33, :2] - lm[263, :2]))
        centre = lm[[61, 291, 0, 17], :2].mean(axis=0)
        half = np.array(MOUTH_BOX) * iod
        x0, y0 = np.floor(centre - half).astype(int)
        x1, y1 = np.ceil(centre + half).astype(int)
        if x0 >= 0 and y0 >= 0 and x1 <= first.shape[1] and y1 <= first.shape[0] and min(x1 - x0, y1 - y0) >= 4:
            self._box = (int(x0), int(y0), int(x1), int(y1))
            self.add(first, (0.0, 0.0))

    def add(self, frame: np.ndarray, moved: tuple[float, float]) -> None:
        """Keep the mouth patch of ``frame``, whose face has moved by ``moved`` (dx, dy pixels) since the first."""
        import cv2

        if self._box is None:
            return
        x0, y0, x1, y1 = self._box
        shift = np.float64([[1, 0, x0 + moved[0]], [0, 1, y0 + moved[1]]])
        grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        patch = cv2.warpAffine(grey, shift, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)
        self._patches.append(cv2.resize(patch, MOUTH_PATCH, interpolation=cv2.INTER_AREA).astype(np.float32))

    def activity(self, speech: np.ndarray) -> np.ndarray | None:
        """(T,) mean absolute difference from the median silent patch (all frames' median with under
        5 silent frames); None without a patch or when the frame count differs from ``speech``."""
        if not self._patches or len(self._patches) != len(speech):
            return None
        patches = np.stack(self._patches)
        rest = np.median(patches[~speech] if (~speech).sum() >= 5 else patches, axis=0)
        return np.abs(patches - rest).mean(axis=(1, 2)).astype(np.float64)


BLINK_DROP = 0.8
"""A blink: the eye opening under this share of its median. The landmark model reads lids shut
by a renderer as 20-80 % of the open eye depending on the face (measured on 6 portraits: the
astronaut 0.19, five held-out faces 0.5-0.7; deep-set, shadowed eyes whose shut lid stays dark:
t1.jpg's middle face 0.76-0.78 in a clip), so half the median missed most rendered blinks."""
BLINK_MIN_DROP, BLINK_REOPEN = 0.04, 0.9
"""...and at least BLINK_MIN_DROP under the median (downcast or narrow eyes read noisy), ending
only once the eye is back over BLINK_REOPEN of its median."""
EYES_JUDGED_S = 10.0
"""Clips at least this long (s) must show blinks: a human at the lowest usual rate blinks in 10 s."""


EYES_SHUT_AT_REST = 0.1
"""Median eye opening (lid gap over eye width) under which the landmark model reads the eyes as
nearly shut all through the clip (downcast eyes, a squinting laugh, a drawing's eye lines: open
eyes read 0.2-0.4, shut ones 0.05-0.1): a blink cannot show there, so the eye checks skip."""


def blink_rate_check(rate: float | None, n: int) -> Check:
    """grade("blink_rate") of ``rate`` (blinks per minute) in a clip of ``n`` frames, where a clip
    shorter than EYES_JUDGED_S warns at most: a few seconds can hold a burst of a real speaker's
    blinks (a recorded speaker shuts her eyes 9 times in 8 s, 67 a minute, each blink plain to see
    frame by frame), so only a rate kept up for longer fails."""
    check = grade("blink_rate", rate)
    if check.verdict == "fail" and n < EYES_JUDGED_S * FPS:
        check.verdict = "warn"
        check.reason += f" in a {n / FPS:.1f} s clip (a burst this short warns; judged from {EYES_JUDGED_S:.0f} s)"
    return check


def _eyes_unreadable(eye: np.ndarray):
    """A function name -> 'skip' Check when the clip's eyes read nearly shut at rest, else name -> None."""
    median = float(np.median(eye))
    if median >= EYES_SHUT_AT_REST:
        return lambda name: None
    return lambda name: Check(name, None, "skip", f"the eyes read nearly shut throughout (opening {median:.2f}): blinks cannot show")


def _too_short(name: str, n: int) -> Check | None:
    """A 'skip' Check when ``n`` frames are too short a clip to judge the eyes by, else None."""
    if n >= EYES_JUDGED_S * FPS:
        return None
    return Check(name, None, "skip", f"a {n / FPS:.1f} s clip is too short to judge (needs {EYES_JUDGED_S:.0f} s)")


def _pad_box(box, shape, pad):
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return (max(0, int(x0 - pad * w)), max(0, int(y0 - pad * h)),
            min(shape[1], int(x1 + pad * w)), min(shape[0], int(y1 + pad * h)))


def _fill_nan(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames without a face (all-NaN gives zeros)."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    if not ok.any():
        return np.zeros_like(x)
    return np.interp(np.arange(len(x)), np.flatnonzero(ok), x[ok])


def _frame_loudness(audio: Audio, n: int) -> np.ndarray:
    """(n,) RMS loudness in dB of each video frame's 40 ms of audio."""
    s = np.zeros(n * SAMPLES_PER_FRAME, np.float32)
    k = min(len(s), len(audio.samples))
    s[:k] = audio.samples[:k]
    rms = np.sqrt(np.mean(s.reshape(n, SAMPLES_PER_FRAME).astype(np.float64) ** 2, axis=1))
    return 20 * np.log10(rms + 1e-5)


def _speech_frames(audio: Audio, n: int) -> np.ndarray:
    from audio2coeff.embedded import detect_speech

    act = np.asarray(detect_speech(audio), bool)
    out = np.zeros(n, bool)
    out[: min(n, len(act))] = act[:n]
    return out


SETTLE_FRAMES = 5
"""Silent frames this close (video frames, 40 ms each) to speech do not count as rest in speech_ratio:
the lips ease into a first p/b/m or out of a last word there."""


def rest_opening(mouth: np.ndarray, speech: np.ndarray) -> tuple[float, np.ndarray] | None:
    """(rest, settled): the mouth's rest opening, the median opening (inter-ocular distances) over the
    settled silent frames, and those frames ((T,) bool: SETTLE_FRAMES or more from any speech frame).
    mouth: (T,) inner-lip opening, speech: (T,) bool. None with under 5 settled silent frames."""
    near = np.convolve(speech.astype(float), np.ones(2 * SETTLE_FRAMES - 1), mode="same") > 0
    settled = ~near
    if settled.sum() < 5:
        return None
    return float(np.median(mouth[settled])), settled


def speech_ratio(mouth: np.ndarray, speech: np.ndarray) -> float | None:
    """How much more the mouth moves away from its rest in speech than in silence: the mean departure
    |opening - rest| over the speech frames over the mean departure over the settled silent frames
    (at least 0.01 IOD; rest_opening). mouth: (T,) inner-lip opening (inter-ocular distances),
    speech: (T,) bool. None with under half a second of speech or under 5 settled silent frames.

    Measured from the rest, not from shut lips: a portrait photographed with parted lips rests with
    them parted (0.12 IOD for the astronaut) and departs from that both ways in speech (wider on
    vowels, shut on p/b/m), while a mouth that stays still in speech, or moves as much in the pauses,
    departs as little in speech as in silence. The mean on both sides: speech dense in p/b/m and
    'teeth' consonants keeps a closed-mouth portrait's lips nearly shut most of the time and opens
    them on the vowels (measured: a 3.4 s clip of a 72 px face, median 0.003 IOD in speech, mean
    0.03), and the same motion moved into the pauses must read as large there."""
    found = rest_opening(mouth, speech)
    if speech.sum() < FPS // 2 or found is None:
        return None
    rest, settled = found
    departure = np.abs(mouth - rest)
    return float(np.mean(departure[speech])) / max(float(np.mean(departure[settled])), 0.01)


def _av_offset(mouth: np.ndarray, loud: np.ndarray, speech: np.ndarray, rest: float | None = None,
               chin: np.ndarray | None = None, max_lag: int = 9):
    """(offset_ms, corr): how well and how closely in time the mouth follows the loudness.

    corr: _syllable_corr of the whole opening or of its part beyond ``rest`` (IOD; None: not tried)
    over lags within the offset's fail bound, or of the chin's drop (``chin``, (T,) IOD; None: not
    tried) over lags within its pass bound, whichever is highest: how strongly the jaw opens with
    the sound near sync.
    Beyond the rest: a portrait photographed with parted lips rests with them parted, so its lips
    shut on a p/b/m below the rest while the sound goes on, and at a phrase start they may first
    close rather than open (the astronaut, 0.12 IOD at rest: 0.32 over the whole opening, 0.41 beyond
    the rest; a 3/4 view resting at 0.18 IOD reads 0.35 and 0.29). The chin: a real speaker parts
    the lips to smile, in pauses and on breaths as well as on syllables, while the jaw drops with the
    voiced syllables (two recorded speakers of 8 s each: lips 0.06 and 0.23, chin 0.25 and 0.27; with
    their speech 0.6 s late 0.13 and 0.23, backwards 0.03 and 0.04; four more recorded speakers, held
    out: 0.06, 0.12, 0.18, 0.31 before the chin, 0.39, 0.38, 0.18, 0.31 with it); talker's renders move the lips
    more than the jaw (chin 0.13-0.34 against lips 0.38-0.49). The chin is a point far from the eyes
    that the landmark model places less surely than the lips, so its chance correlations spread wider
    (a small face in a group photo with its speech backwards: 0.31 within 160 ms, 0.09 within 80 ms):
    it is tried within the pass bound only, where a real jaw moves with the voice. Within the fail bound: a
    mouth following other speech correlates with it by chance at some lag of a wide window (the
    astronaut's mouth with its speech played backwards: 0.14 at 320 ms, at most 0.04 within 160 ms,
    either opening), and a clip that far out of sync fails av_offset_ms anyway.

    offset_ms: _nearest_lag of the signal that gave corr (the opening for its part beyond the rest);
    positive when the video trails the audio. None (and corr None) with under a second of speech."""
    if speech.sum() < FPS:
        return None, None
    loud = np.clip(loud, np.percentile(loud, 5), None)
    in_sync, near = (int(bound * FPS / 1000.0) for bound in THRESHOLDS["av_offset_ms"][:2])
    candidates = [(mouth, mouth, near)]  # (signal timed, signal correlated, lags tried)
    if rest is not None:
        candidates.append((mouth, np.maximum(mouth - rest, 0.0), near))
    if chin is not None:
        candidates.append((chin, chin, in_sync))
    corr, timed = max((_syllable_corr(strength, loud, lags), i) for i, (_, strength, lags) in enumerate(candidates))
    lag = _nearest_lag(candidates[timed][0], loud, max_lag)
    return (None, 0.0) if lag is None else (lag * 1000.0 / FPS, corr)


def _nearest_lag(opening: np.ndarray, loud: np.ndarray, max_lag: int) -> int | None:
    """The lag (frames, within +-``max_lag``: 9 is 360 ms; beyond, a syllable-rate clip correlates with
    its neighbouring syllables) maximising _lag_corrs of the opening and the loudness; positive when
    the video trails. Lags whose correlation is within the sampling noise of r (1 / sqrt(frames)) of
    the best are as good as it, and the one nearest zero wins: in a short clip with few openings a
    far lag can peak by chance (a 3.4 s clip of a 72 px face: 0.29 at -320 ms against 0.19 at 0,
    noise 0.11), while a real shift beats zero by far more. Over changes of 120 ms, not frame to
    frame: on eight held-out clips of the embedded backend frame-to-frame changes timed one in sync
    clip 200 ms out (a turned black-and-white face the landmark model reads at a third of its
    opening) and found the speech delayed by 200 ms in only five (fail or warn); over 120 ms none
    read out of sync, and the delay was found in all eight. None where no lag has a second of frames
    that both change."""
    found = _lag_corrs(opening, loud, max_lag)
    if not found:
        return None
    best = max(found.values())
    return min((lag for lag, c in found.items() if c >= best - 1.0 / np.sqrt(len(opening))), key=lambda lag: (abs(lag), lag))


def _syllable_corr(mouth: np.ndarray, loud: np.ndarray, max_lag: int) -> float:
    """The best of _lag_corrs of the mouth opening and the loudness over lags within +-``max_lag``
    frames: how strongly the mouth follows the sound at all. Frame-to-frame changes are dominated by
    one-frame events that loudness does not mirror (lips shut on a loud 'm', a jaw that opens over a
    quiet onset): on 16 held-out clips of the embedded backend they correlated 0.07-0.34 (median
    0.23), and a 6 s clip read 0.16, no higher than its mouth against other stretches of its own audio
    (median 0.14). Over 3 frames: 0.07-0.48 (median 0.36; 0.34 for that clip; 0.07 only where the
    landmark model cannot read the mouth), while the astronaut test clip reads 0.43 with its speech
    and 0.11 with the same speech played backwards (the levels themselves, without differencing, read
    0.66 and still 0.30 backwards: pauses alone correlate)."""
    return max(_lag_corrs(mouth, loud, max_lag).values(), default=0.0)


def _lag_corrs(opening: np.ndarray, loud: np.ndarray, max_lag: int) -> dict[int, float]:
    """{lag: r} over lags within +-``max_lag`` frames (positive: the video trails) of the changes of
    ``opening`` (T,) and ``loud`` (T,) over SYNC_SMOOTH frames (each averaged over that many frames,
    then differenced); lags with under a second of frames, or a signal that does not change, left out."""
    k = np.ones(SYNC_SMOOTH) / SYNC_SMOOTH
    a = np.diff(np.convolve(opening, k, mode="valid"))
    b = np.diff(np.convolve(loud, k, mode="valid"))
    found = {}
    for lag in range(-max_lag, max_lag + 1):
        x = a[lag:] if lag >= 0 else a[:lag]
        y = b[: len(b) - lag] if lag >= 0 else b[-lag:]
        if len(x) >= FPS and x.std() > 1e-9 and y.std() > 1e-9:
            found[lag] = float(np.corrcoef(x, y)[0, 1])
    return found


SYNC_SMOOTH = 3
"""Frames (120 ms) over which av_sync_corr averages mouth opening and loudness before taking their changes."""


def _aligned_phones(audio: Audio, transcript: str) -> list:
    """Phones of ``transcript`` aligned to the audio, phrase by phrase where the whole clip finds no
    path, without the phrases that could not be aligned; [] (the phonetic checks skip) when none can."""
    from audio2coeff.embedded.activity import voice_activity
    from audio2coeff.embedded.phones import align_phrases

    try:
        phones, recognised = align_phrases(audio.samples, transcript, voice_activity(audio.samples))
    except ValueError as err:  # no words, words without a pronunciation, too short
        log.warning("cannot align the transcript (%s); closure and vowel checks skipped", err)
        return []
    if recognised:
        log.warning("%d phrase(s) of the transcript could not be aligned; the closure and vowel checks "
                    "leave them out", len(recognised))
    return [p for p in phones if not any(s <= p[0] < e for s, e in recognised)]


MIN_VOWEL_S = 0.06
"""Open vowels shorter than this (s) are not judged by vowel_opening: reduced vowels of function
words ('the', 'and': 40-50 ms, one or two video frames) hardly open a speaker's jaw either."""


def phone_frames(start: float, end: float, num_frames: int) -> range:
    """Indices of the video frames whose centre lies in [start, end] seconds, within 0..num_frames-1."""
    first, last = int(np.ceil(start * FPS - 0.5)), int(np.floor(end * FPS - 0.5))
    return range(max(first, 0), min(last, num_frames - 1) + 1)


def _phonetic(phones, mouth: np.ndarray, speech: np.ndarray):
    """(closure_rate, vowel_opening) from aligned phones; (None, None) without phones."""
    if not phones:
        return None, None
    n = len(mouth)

    def frames(p):
        return phone_frames(p[0], p[1], n)

    vowel_phones = [f for p in phones if p[2] in OPEN_VOWELS and p[1] - p[0] >= MIN_VOWEL_S and (f := frames(p))]
    if not vowel_phones or not speech.any():
        return None, None
    open_median = float(np.median([mouth[i] for f in vowel_phones for i in f]))
    closures = [p for p in phones if p[2] in ("p", "b", "m")]
    closed = [min([mouth[i] for i in frames(p)] or [np.inf]) <= 0.3 * open_median for p in closures]
    rate = float(np.mean(closed)) if closed else None
    speech_median = float(np.median(mouth[speech]))
    opened = float(np.mean([max(mouth[i] for i in f) > speech_median for f in vowel_phones]))
    return rate, opened


PHONE_OPENING = {**{v: 1.0 for v in OPEN_VOWELS}, **{c: 0.0 for c in ("p", "b", "m")}}
"""Mouth opening a phone calls for in script_following (0 shut .. 1 wide); other vowels
VOWEL_OPENING, other consonants CONSONANT_OPENING, silence 0."""
VOWEL_OPENING, CONSONANT_OPENING = 0.6, 0.3


def script_following(phones, mouth: np.ndarray, speech: np.ndarray) -> float | None:
    """Pearson correlation over the speech frames between the mouth opening (n,) and the opening
    the phones call for (PHONE_OPENING), both averaged over 3 frames; None without phones or speech."""
    from audio2coeff.embedded.visemes import VOWELS

    if not phones or speech.sum() < 10:
        return None
    n = len(mouth)
    wanted = np.zeros(n)
    for start, end, name in phones:
        name = name.lower().rstrip("012")
        value = PHONE_OPENING.get(name, VOWEL_OPENING if name in VOWELS else 0.0 if name in ("sil", "pau") else CONSONANT_OPENING)
        wanted[list(phone_frames(start, end, n))] = value
    smooth = np.ones(3) / 3
    a, b = np.convolve(mouth, smooth, "same")[speech], np.convolve(wanted, smooth, "same")[speech]
    if a.std() < 1e-6 or b.std() < 1e-6:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def head_turn(landmarks: np.ndarray, iod: np.ndarray) -> float | None:
    """The larger std of the nose tip's offset (point 4) from the eyes' midpoint (outer corners 33,
    263) along and across the eye line, in IOD, over frames with a face; landmarks (n, 478, 3) pixels,
    iod (n,) pixels. None under 10 frames."""
    xy = landmarks[..., :2]
    ok = np.isfinite(xy[:, 4, 0]) & np.isfinite(iod) & (iod > 0)
    if ok.sum() < 10:
        return None
    xy, iod = xy[ok], iod[ok]
    along = (xy[:, 263] - xy[:, 33]) / iod[:, None]
    offset = (xy[:, 4] - (xy[:, 33] + xy[:, 263]) / 2) / iod[:, None]
    turn = np.sum(offset * along, axis=1)
    nod = along[:, 0] * offset[:, 1] - along[:, 1] * offset[:, 0]
    return float(max(np.std(turn), np.std(nod)))


# Rigid points that move only with the head: eye corners, nose bridge and tip, forehead.
_RIGID = [33, 133, 362, 263, 168, 6, 4, 10]


JITTER_CAP = 0.1
"""Largest frame-to-frame acceleration (IOD) one frame contributes to the jitter: a frame where the
picture jumps counts as bad jitter, not as the whole clip's."""
RIGID_MARGIN = 0.2
"""Margin (IOD) around the rigid points of the patch whose motion is measured."""


class RigidMotion:
    """Frame-to-frame motion of the face's rigid region, measured on the pixels (phase correlation).

    The landmark model's own noise is large on small, turned or painted faces (the rigid points'
    centre jumps by 0.05-0.1 IOD from frame to frame on a still 3/4 profile or a 72 px face in a
    whole picture), so jitter is read from the picture itself: the patch around the rigid points
    (eye corners, nose bridge and tip, forehead; placed once, on the first frame's landmarks) of
    every frame, against the frame before, gives its shift (cv2.phaseCorrelate, refined by Lucas-Kanade steps) to within a tenth of a pixel.
    Streams: keeps one patch and the shifts.

    first: (H, W, 3) uint8 RGB first frame; box: (x0, y0, x1, y1) face region, or None for the frame.
    """

    def __init__(self, first: np.ndarray, box: tuple[int, int, int, int] | None):
        from talker.errors import NoFaceError
        from talker.face import face_landmarks

        self.shifts: list[tuple[float, float]] = []
        """(dx, dy) pixels of the patch from each frame to the next."""
        self.iod = float("nan")
        self._patch = None
        try:
            lm = face_landmarks(first, box or (0, 0, first.shape[1], first.shape[0]))
        except NoFaceError:
            return
        self.iod = float(np.linalg.norm(lm[33, :2] - lm[263, :2]))
        pts = lm[_RIGID, :2]
        lo = np.floor(pts.min(axis=0) - RIGID_MARGIN * self.iod).astype(int)
        hi = np.ceil(pts.max(axis=0) + RIGID_MARGIN * self.iod).astype(int)
        x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        x1, y1 = min(int(hi[0]), first.shape[1]), min(int(hi[1]), first.shape[0])
        if x1 - x0 >= 8 and y1 - y0 >= 8:
            import cv2

            self._patch = (x0, y0, x1, y1)
            self._window = cv2.createHanningWindow((x1 - x0, y1 - y0), cv2.CV_64F)
            self._last = self._grey(first)

    def moved(self) -> tuple[float, float]:
        """(dx, dy) pixels the rigid region has moved since the first frame (the shifts summed)."""
        if not self.shifts:
            return (0.0, 0.0)
        total = np.sum(self.shifts, axis=0)
        return float(total[0]), float(total[1])

    def _grey(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        x0, y0, x1, y1 = self._patch
        return cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float64)

    def add(self, frame: np.ndarray) -> None:
        """Measure the next frame's shift against the frame before."""
        import cv2

        if self._patch is None:
            return
        grey = self._grey(frame)
        self.shifts.append(self._refine(self._last, grey, cv2.phaseCorrelate(self._last, grey, self._window)[0]))
        self._last = grey

    def _refine(self, a: np.ndarray, b: np.ndarray, shift: tuple[float, float], steps: int = 3) -> tuple[float, float]:
        """The shift of ``b`` against ``a`` refined from phase correlation's estimate (biased to
        whole pixels, off by up to ~0.4 px) by Lucas-Kanade steps on the windowed patch."""
        import cv2

        gx = cv2.Sobel(a, cv2.CV_64F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(a, cv2.CV_64F, 0, 1, ksize=3) / 8.0
        w = self._window
        normal = np.array([[np.sum(w * gx * gx), np.sum(w * gx * gy)], [np.sum(w * gx * gy), np.sum(w * gy * gy)]])
        if np.linalg.cond(normal) > 1e6:
            return shift
        d = np.array(shift, np.float64)
        for _ in range(steps):
            back = cv2.warpAffine(b, np.float64([[1, 0, d[0]], [0, 1, d[1]]]), b.shape[::-1],
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
            r = back - a
            d -= np.linalg.solve(normal, [np.sum(w * gx * r), np.sum(w * gy * r)])
        return float(d[0]), float(d[1])

    def jitter(self) -> float | None:
        """Mean |change of the frame-to-frame shift| (IOD), each frame's capped at JITTER_CAP; None
        when the first frame had no face or the clip has under 4 frames."""
        if len(self.shifts) < 3:
            return None
        acc = np.linalg.norm(np.diff(np.array(self.shifts), axis=0), axis=-1) / self.iod
        return float(np.mean(np.minimum(acc, JITTER_CAP)))


def _identity_check(image: np.ndarray | None, frames: list[np.ndarray]) -> Check:
    """Median embedding distance between the source portrait and up to ~6 frames of the video."""
    from talker.identity import face_embedding, identity_available

    if image is None:
        return grade("identity_distance", None)
    if not identity_available():
        return Check("identity_distance", None, "skip", 'needs the identity extra: pip install "talker[identity]"')
    ref = face_embedding(image)
    embs = [e for e in (face_embedding(f) for f in frames[:: max(1, len(frames) // 6)]) if e is not None]
    if ref is None or not embs:
        return grade("identity_distance", None)
    return grade("identity_distance", float(np.median([np.linalg.norm(ref - e) for e in embs])))


def _sharpness(image: np.ndarray, sample: dict) -> float | None:
    """Fine detail of the face in the frames over that of the portrait's face at the same scale
    (``_face_detail``): the median over the sampled frames. Each frame's face box is found in the
    frame, and the portrait's face resized to that box's size (so a face rendered small and scaled up
    reads as blurred, as it looks). Not by the frame's shape: a crop of a picture of the same size
    as the video shows the face elsewhere and larger."""
    from talker.face import detect_faces

    src_faces = detect_faces(image)
    if not src_faces:
        return None
    box = src_faces[0].box
    vals = []
    for frame in sample.values():
        if not (faces := detect_faces(frame)):
            continue
        fb = faces[0].box
        ref = _face_detail(image, box, size=(fb[2] - fb[0], fb[3] - fb[1]))
        if ref > 0:
            vals.append(_face_detail(frame, fb) / ref)
    return float(np.median(vals)) if vals else None


SHARPNESS_CORE = 0.6
"""Share of the face box (each side, centred) whose detail is measured: the face, not its surroundings."""


def _face_detail(rgb: np.ndarray, box, size: tuple[int, int] | None = None) -> float:
    """Variance of the Laplacian (3 x 3) of the grey face: the centre SHARPNESS_CORE of ``box``
    (x0, y0, x1, y1), first resized to ``size`` (width, height) when given: INTER_AREA to shrink,
    bicubic to enlarge, as the renderer samples (INTER_AREA enlarges almost by repeating pixels,
    whose steps read as detail: 1.9x the bicubic figure on the astronaut's face enlarged 1.8x). A
    Gaussian blur of sigma 1 px divides it by about 5 on a photo; resampling at the same scale keeps
    most of it."""
    import cv2

    x0, y0, x1, y1 = box
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[max(y0, 0):y1, max(x0, 0):x1]), cv2.COLOR_RGB2GRAY)
    if size is not None and size != (grey.shape[1], grey.shape[0]):
        shrink = size[0] * size[1] < grey.shape[0] * grey.shape[1]
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    h, w = grey.shape
    my, mx = int(h * (1 - SHARPNESS_CORE) / 2), int(w * (1 - SHARPNESS_CORE) / 2)
    core = grey[my : h - my, mx : w - mx].astype(np.float64)
    return float(cv2.Laplacian(core, cv2.CV_64F, ksize=1).var())


def _background(image: np.ndarray | None, sample: dict, box) -> float | None:
    """Mean absolute change outside the (padded) face box: against the source portrait when the
    video shows the whole picture (same size and, outside the face, the same content as its first
    frame: a crop of the same size is not the picture), else against the first frame."""
    frames = list(sample.values())
    if box is None or len(frames) < 2:
        return None
    x0, y0, x1, y1 = box
    mask = np.ones(frames[0].shape[:2], bool)
    # the face box grown down to the bottom edge: the neck and shoulders may follow the head
    mask[y0:, x0:x1] = False
    if mask.sum() < 0.05 * mask.size:
        return None

    def change(a, b):
        return float(np.abs(a.astype(np.int16) - b)[mask].mean())

    ref = frames[0]
    if image is not None and image.shape == ref.shape and change(ref, image) < THRESHOLDS["background_change"][1]:
        ref = image
    return float(np.mean([change(f, ref) for f in frames[1:]]))


def write_report(report: ScoreReport, json_path: Path, png_path: Path | None = None) -> None:
    """Write the JSON report and, when asked, the one-page PNG summary."""
    json_path.write_text(json.dumps(report.to_json(), indent=2))
    if png_path is not None:
        _plot(report, png_path)


def score_and_write(video: str | Path, audio: Audio, json_path: Path, image: np.ndarray | None = None,
                    transcript: str | None = None) -> ScoreReport:
    """Grade ``video`` (``score_video``) and write the JSON report at ``json_path`` and its PNG summary
    beside it (the same name with ``.png``): what ``talker score``, ``make --report``, the web page, the
    ComfyUI node and the job service all do."""
    report = score_video(video, audio, image=image, transcript=transcript)
    write_report(report, json_path, json_path.with_suffix(".png"))
    return report


def report_lines(report: ScoreReport) -> list[str]:
    """One line per check, as ``talker score`` prints them: verdict, name, value (3 digits), reason."""
    return [f"{c.verdict:5s} {c.name:20s} {'-' if c.value is None else f'{c.value:.3g}':>8s}  {c.reason}"
            for c in report.checks]


def _plot(report: ScoreReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report.series
    t = np.arange(len(s["mouth"])) / FPS
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), gridspec_kw={"height_ratios": [3, 2, 2, 2.2]})
    ax = axes[0]
    ax.plot(t, s["mouth"], color="C3", label="mouth opening (IOD)")
    ax.fill_between(t, 0, np.max(s["mouth"]) * 1.05, where=np.array(s["speech"]) > 0, color="C0", alpha=0.08, label="speech")
    ax2 = ax.twinx()
    ax2.plot(t, s["loudness"], color="C0", alpha=0.6, lw=0.8, label="loudness (dB)")
    for p in s["phones"]:
        if p[2] in ("p", "b", "m"):
            ax.axvspan(p[0], p[1], color="C2", alpha=0.25)
        if p[2] not in ("sil", "pau"):
            ax.text((p[0] + p[1]) / 2, 0, p[2], fontsize=5, ha="center", va="bottom")
    ax.set_title("mouth opening against loudness (green: p/b/m)")
    ax.legend(loc="upper left", fontsize=7)
    axes[1].plot(t, s["eye"], color="C1")
    axes[1].set_title(f"eye opening ({s['blinks']} blinks)")
    nose = np.array(s["nose"])
    axes[2].plot(t, nose - nose.mean(axis=0))
    axes[2].set_title("head motion: nose x, y (IOD)")
    axes[2].set_xlabel("seconds")
    axes[3].axis("off")
    rows = [[c.name, "-" if c.value is None else f"{c.value:.3g}", c.verdict, c.reason] for c in report.checks]
    table = axes[3].table(cellText=rows, colLabels=["check", "value", "verdict", "reason"], loc="center",
                          colWidths=[0.18, 0.1, 0.08, 0.64], cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    colors = {"pass": "#d8f0d8", "warn": "#fbeec2", "fail": "#f6caca", "skip": "#eeeeee"}
    for i, c in enumerate(report.checks, start=1):
        table[i, 2].set_facecolor(colors[c.verdict])
    fig.suptitle(f"{Path(report.video).name}: {report.verdict.upper()}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
