"""Mouth quality of the embedded backend on held-out portraits (run by hand, never in CI).

    python benchmarks/mouth.py                         # table -> benchmarks/out/mouth_held_out.json
    python benchmarks/mouth.py --sheet docs/visemes_after.png
    python benchmarks/mouth.py --code DIR --sheet docs/visemes_before.png   # another copy of the code

Every case of benchmarks/held_out_faces.py speaks Festival speech (exact phone times; 3 to 28 s,
the lengths cycling over the cases) through ``talker make`` with the transcript as ``--text``. On
the decoded MP4, with the pipeline's own landmark model (talker.measure):

- closure: share of p/b/m phones whose least inner-lip opening (points 13-14, over the frames whose
  centre lies in the phone, else the frame nearest its middle) is at most CLOSED_IOD (lips meeting
  within ~1.5 mm, IOD ~ 9 cm between the outer eye corners); closure_score_rule: the same with
  ``talker score``'s rule (at most 0.3 x the median opening in open vowels);
- blinks: blinks the score counts (talker.score.BLINK_DROP);
- round_width: median mouth width (corners 61-291) in rounded vowels (uw ow w uh oy) over the
  width in the source picture, both in inter-ocular distances;
- open / closed: median inner-lip opening in open vowels (aa ae ah ao aw ay) and in p/b/m frames
  (IOD); contrast = open - closed;
- score: the verdict of ``talker score`` with the portrait and the transcript, and the checks that
  did not pass;
- chin_drop: how far the chin (point 152) is lower in open vowels than in p/b/m frames, across the
  eye line (IOD): the jaw dropping, not only the lips parting;
- round_open: median inner-lip opening in rounded vowels (IOD): a round opening, not a pucker line;
- energy_ratio (``--energy``): the same clip rendered through the loudness/formant path (as speech in
  a language without phones is) over the phone path: median inner-lip opening over voice-active frames;
- yaw, pitch, roll: the spread (std) of the head's turn as the picture shows it: the nose tip's
  offset from the eyes' midpoint along and across the eye line (IOD) and the eye line's angle
  (degrees), computed here from the landmarks (so that older code can be measured too); jitter:
  ``talker score``'s;
- reads_open: whether the landmark model can read this face's mouth at all: the crop rendered with
  the jaw at 0.6 and 1 (no video, no head motion), the face mesh's inner-lip opening over the opening
  the renderer drew (1: read as drawn; near 0: a visibly open mouth read as shut).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLOSED_IOD = 0.016
"""Largest inner-lip opening (IOD) read as closed lips."""
ROUNDED = ("uw", "ow", "w", "uh", "oy")
CLOSURES = ("p", "b", "m")

HELLO_TEXT = "Hello! I can talk now, and my lips move with the words."
"""The 'readme' case: the astronaut speaks this, synthesised by talker itself (``--text`` alone), as
in the README's quick start."""

SPEECH = {
    "3s": ["Bob put two blue boots by the pool, and then moved the boat."],
    "8s": ["My mom bought a map of Boston.", "We went to the zoo, and saw a moose move by the boat."],
    "16s": [
        "Paul, please pass the purple paper.",
        "Would you move the blue boxes to the room by the window?",
        "Maybe we should book a boat for Monday morning.",
    ],
    "28s": [
        "Good morning, and welcome to the museum.",
        "The rooms on your left show old maps, boats, and bells from the port of Boston.",
        "Please do not touch the paintings, but feel free to take photos.",
        "Our tour moves to the blue room in about two minutes.",
        "We hope you enjoy your visit, and come back soon.",
        "Before you go, maybe stop by the book shop on the ground floor.",
        "It has maps, postcards, and a beautiful model of a boat.",
    ],
}


def _speech(cache: Path, key: str):
    """(wav, phones, transcript) for one of SPEECH, made once with Festival."""
    import media_factory as mf

    import hashlib

    digest = hashlib.sha1(" ".join(SPEECH[key]).encode()).hexdigest()[:8]  # the text changed: make it again
    wav = cache / f"speech_{key}_{digest}.wav"
    phones_file = wav.with_suffix(".json")
    if not phones_file.exists():
        phones = mf.festival_sentences(SPEECH[key], wav)
        phones_file.write_text(json.dumps([[p.start, p.end, p.phone] for p in phones]))
    return wav, [tuple(p) for p in json.loads(phones_file.read_text())], " ".join(SPEECH[key])


def _frames_of(phone, n: int) -> list[int]:
    from talker.score import phone_frames

    frames = list(phone_frames(phone[0], phone[1], n))
    return frames or [min(n - 1, int((phone[0] + phone[1]) / 2 * 25))]


def _box(frame, box=None):
    """The face box grown by 35 % each side (as the score does), or None (the whole frame) when
    no face box is known or found (a crop filled by the face)."""
    from talker.face import detect_faces

    if box is None:
        faces = detect_faces(frame)
        if not faces:
            return None
        box = faces[0].box
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return (max(0, int(x0 - 0.35 * w)), max(0, int(y0 - 0.35 * h)), min(frame.shape[1], int(x1 + 0.35 * w)),
            min(frame.shape[0], int(y1 + 0.35 * h)))


def _width(lm, iod):
    import numpy as np

    return np.linalg.norm(lm[:, 61, :2] - lm[:, 291, :2], axis=-1) / iod


def measure_case(portrait, cache: Path, speech_key: str, out_dir: Path, energy: bool = False) -> dict:
    """One row of the table: ``portrait`` speaks SPEECH[speech_key] (Festival) or, for "readme", the
    README's sentence synthesised by talker. ``energy``: also render through the loudness path."""
    import numpy as np

    from talker.face import prepare_face
    from talker.measure import measure_frames, measure_video
    from talker.media import read_audio, read_image
    from talker.options import MakeOptions
    from talker.pipeline import make
    from talker.measure import count_blinks
    from talker.score import BLINK_DROP, BLINK_MIN_DROP, BLINK_REOPEN, _fill_nan as _fill, score_video

    if speech_key == "readme":
        wav, phones, text = None, None, HELLO_TEXT
    else:
        wav, phones, text = _speech(cache, speech_key)
    reads_open = _reads_open(portrait)
    video = out_dir / f"{portrait.name}_{speech_key}.mp4"
    options = dict(image=portrait.path, audio=wav, text=text, force=True, preprocess=portrait.mode,
                   size=portrait.size, face_index=portrait.face_index, backend="embedded")
    t = time.perf_counter()
    result = make(MakeOptions(out=video, **options))
    make_s = time.perf_counter() - t
    if phones is None:
        phones = [tuple(p) for p in result.audio.phones]
    face = prepare_face(read_image(portrait.path), mode=portrait.mode, size=portrait.size, face_index=portrait.face_index)
    box = _box(face.source, face.faces[portrait.face_index]) if face.pastes_back else None
    m = measure_video(video, box)
    n = m.num_frames
    iod = np.where(np.isfinite(m.iod) & (m.iod > 0), m.iod, np.nanmedian(m.iod))
    mouth = m.mouth_open
    width = _width(m.landmarks, iod)

    ref = measure_frames([face.source if face.pastes_back else face.image], box)
    neutral_width = float(_width(ref.landmarks, ref.iod)[0])
    neutral_open = float(ref.mouth_open[0])

    closures = [p for p in phones if p[2] in CLOSURES]
    least = [float(np.nanmin(mouth[_frames_of(p, n)])) for p in closures]
    closed_frames = [i for p in closures for i in _frames_of(p, n)]
    open_frames = [i for p in phones if p[2] in ("aa", "ae", "ah", "ao", "aw", "ay") for i in _frames_of(p, n)]
    round_frames = [i for p in phones if p[2] in ROUNDED for i in _frames_of(p, n)]
    eyes_mid = (m.landmarks[:, 33, :2] + m.landmarks[:, 263, :2]) / 2
    eye_dir = m.landmarks[:, 263, :2] - m.landmarks[:, 33, :2]
    down = np.stack([-eye_dir[:, 1], eye_dir[:, 0]], 1) / np.linalg.norm(eye_dir, axis=1, keepdims=True)
    chin = np.sum((m.landmarks[:, 152, :2] - eyes_mid) * down, 1) / iod
    round_ch = result.track.values[:, 2]
    runs, run = [], 0
    for v in round_ch > 0.5:
        run = run + 1 if v else 0
        runs.append(run)

    xy = m.landmarks[..., :2]
    along = (xy[:, 263] - xy[:, 33]) / iod[:, None]
    offset = (m.nose - (xy[:, 33] + xy[:, 263]) / 2) / iod[:, None]
    pose = np.stack([np.sum(offset * along, 1), np.sum(offset * along[:, ::-1] * (-1, 1), 1),
                     np.degrees(np.arctan2(along[:, 1], along[:, 0]))], 1)
    open_med = float(np.nanmedian(mouth[open_frames]))
    closed_med = float(np.nanmedian(mouth[closed_frames]))
    np.savez_compressed(video.with_suffix(".npz"), mouth=mouth, eye=m.eye_open, track=result.track.values)
    audio = result.audio if wav is None else read_audio(wav, transcript=text)
    energy_ratio = None
    if energy:
        voiced = _voiced_frames(audio, n)
        flat = out_dir / f"{portrait.name}_{speech_key}_energy.mp4"
        make(MakeOptions(out=flat, language="xx", **{**options, "audio": wav or _wav_of(audio, out_dir)}))
        flat_open = measure_video(flat, box).mouth_open
        energy_ratio = round(float(np.nanmedian(flat_open[voiced]) / np.nanmedian(mouth[voiced])), 3)
    t = time.perf_counter()
    report = score_video(video, audio, image=read_image(portrait.path), transcript=text)
    score_s = time.perf_counter() - t
    return {
        "case": portrait.name,
        "kind": portrait.kind,
        "mode": portrait.mode,
        "size": portrait.size,
        "speech_s": round(audio.duration, 2),
        "source_opening_iod": round(neutral_open, 4),
        "closures": len(closures),
        "closure": round(float(np.mean(np.array(least) <= CLOSED_IOD)), 3),
        "closure_score_rule": round(float(np.mean(np.array(least) <= 0.3 * open_med)), 3),
        "blinks": count_blinks(_fill(m.eye_open), BLINK_DROP, BLINK_MIN_DROP, BLINK_REOPEN),
        "closure_least_iod": [round(v, 4) for v in least],
        "round_width": round(float(np.nanmedian(width[round_frames])) / neutral_width, 3),
        "round_hold_ms": int(max(runs, default=0) * 40),
        "round_open_iod": round(float(np.nanmedian(mouth[round_frames])), 4),
        "chin_drop_iod": round(float(np.nanmedian(chin[open_frames]) - np.nanmedian(chin[closed_frames])), 4),
        "energy_ratio": energy_ratio,
        "open_iod": round(open_med, 4),
        "closed_iod": round(closed_med, 4),
        "contrast_iod": round(open_med - closed_med, 4),
        "reads_open": reads_open,
        "yaw": round(float(np.nanstd(pose[:, 0])), 4),
        "pitch": round(float(np.nanstd(pose[:, 1])), 4),
        "roll_deg": round(float(np.nanstd(pose[:, 2])), 2),
        "jitter": round(next(c.value for c in report.checks if c.name == "jitter"), 4),
        "score": report.verdict,
        "not_passed": {c.name: [None if c.value is None else round(c.value, 3), c.verdict] for c in report.checks
                       if c.verdict in ("warn", "fail")},
        "make_s": round(make_s, 1),
        "score_s": round(score_s, 1),
    }


def _voiced_frames(audio, n: int):
    """(n,) bool: video frames inside voice activity."""
    from audio2coeff.embedded.activity import to_video_frames, voice_activity

    import numpy as np

    return to_video_frames(voice_activity(np.asarray(audio.samples, np.float32)).astype(float), n) > 0.5


def _wav_of(audio, out_dir: Path) -> Path:
    """The audio written as a WAV (for speech talker synthesised)."""
    import numpy as np
    from scipy.io import wavfile

    path = out_dir / "speech.wav"
    from talker.types import SAMPLE_RATE

    wavfile.write(path, SAMPLE_RATE, (np.clip(audio.samples, -1, 1) * 32767).astype(np.int16))
    return path


def _reads_open(portrait) -> float:
    """Median over jaw_open 0.6 and 1 of the face mesh's inner-lip opening over the renderer's own (IOD both)."""
    import numpy as np

    from renderer.embedded import EmbeddedRenderer
    from talker.face import prepare_face
    from talker.measure import measure_frames
    from talker.media import read_image
    from talker.types import EMBEDDED_CHANNELS, CoeffTrack

    face = prepare_face(read_image(portrait.path), mode="crop", size=portrait.size, face_index=portrait.face_index)
    renderer = EmbeddedRenderer(face)
    rows = np.zeros((2, len(EMBEDDED_CHANNELS)), np.float32)
    rows[:, EMBEDDED_CHANNELS.index("jaw_open")] = (0.6, 1.0)
    seen = measure_frames(list(np.concatenate(list(renderer.render(CoeffTrack(rows, "embedded")))))).mouth_open
    drawn = [float(renderer._model.lip_gap(renderer.landmarks(r))[5]) for r in rows]
    return round(float(np.median(np.asarray(seen) / np.asarray(drawn))), 2)


def contact_sheet(path: Path, portraits) -> None:
    """Mouth close-ups of every viseme's target (columns) for each portrait (rows), rendered with the code imported."""
    import cv2
    import numpy as np

    from audio2coeff.embedded.visemes import MOUTH_CHANNELS, VISEME_TARGETS
    from renderer.embedded import EmbeddedRenderer
    from renderer.embedded.mesh import LIP_OUTER_LOWER, LIP_OUTER_UPPER
    from talker.face import prepare_face
    from talker.media import read_image
    from talker.types import EMBEDDED_CHANNELS, CoeffTrack

    names = list(VISEME_TARGETS)
    cw, ch = 150, 105
    sheet = np.full((24 + ch * len(portraits), 110 + cw * len(names), 3), 255, np.uint8)
    for j, v in enumerate(names):
        cv2.putText(sheet, v, (110 + j * cw + 8, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (label, image, mode) in enumerate(portraits):
        face = prepare_face(read_image(image) if isinstance(image, Path) else image, mode=mode, size=512)
        renderer = EmbeddedRenderer(face)
        rows = np.zeros((len(names), len(EMBEDDED_CHANNELS)), np.float32)
        for j, v in enumerate(names):
            for k, c in enumerate(MOUTH_CHANNELS):
                rows[j, EMBEDDED_CHANNELS.index(c)] = VISEME_TARGETS[v][k]
        frames = np.concatenate(list(renderer.render(CoeffTrack(rows, "embedded"))))
        lips = face.landmarks[list(LIP_OUTER_UPPER + LIP_OUTER_LOWER), :2]
        cx, cy = lips.mean(axis=0)
        half = 0.9 * (lips[:, 0].max() - lips[:, 0].min())
        x0, y0 = int(cx - half), int(cy - half * 0.7 * ch / cw * 1.43)
        x1, y1 = int(cx + half), int(y0 + 2 * half * ch / cw)
        cv2.putText(sheet, label, (4, 24 + i * ch + ch // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for j, frame in enumerate(frames):
            pad = cv2.copyMakeBorder(frame, 200, 200, 200, 200, cv2.BORDER_REPLICATE)
            close = pad[y0 + 200 : y1 + 200, x0 + 200 : x1 + 200]
            sheet[24 + i * ch : 24 + (i + 1) * ch, 110 + j * cw : 110 + (j + 1) * cw] = cv2.resize(close, (cw, ch), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, help="import audio2coeff, renderer and talker from this folder")
    parser.add_argument("--sheet", type=Path, help="write the viseme contact sheet here and stop")
    parser.add_argument("--cases", nargs="*", help="only these case names ('readme': the astronaut, in talker's own voice)")
    parser.add_argument("--energy", nargs="*", default=[], help="also render these cases through the loudness path")
    parser.add_argument("--keep", type=Path, help="keep the MP4s (and beside each, an .npz of its per-frame mouth and eye "
                        "openings and the track) in this folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "mouth_held_out.json")
    args = parser.parse_args()
    sys.path[0:1] = ([str(args.code)] if args.code else []) + [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

    import held_out_faces as hof
    import media_factory as mf

    portraits = hof.build()
    if args.sheet:
        by_name = {p.name: p for p in portraits}
        contact_sheet(args.sheet, [("astronaut", mf.astronaut(), "crop"), ("t1_right", by_name["t1_right"].path, "crop"),
                                   ("cg_roxanne", by_name["cg_roxanne"].path, "crop")])
        return
    keys = list(SPEECH)
    readme = hof.Portrait("readme", ROOT / "talker" / "data" / "astronaut.jpg", "photo", "crop", 256, origin="NASA")
    cases = [(k, p, keys[k % len(keys)]) for k, p in enumerate(portraits)] + [(0, readme, "readme")]
    cases = [c for c in cases if not args.cases or c[1].name in args.cases]  # k: the speech of the full run
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        for _, portrait, key in cases:
            row = measure_case(portrait, hof.CACHE, key, out_dir, portrait.name in args.energy)
            print(json.dumps({key: v for key, v in row.items() if key != "closure_least_iod"}), flush=True)
            rows.append(row)
    summary = {
        "cases": len(rows),
        "closure_min": min(r["closure"] for r in rows),
        "round_width_min": min(r["round_width"] for r in rows),
        "contrast_median_iod": sorted(r["contrast_iod"] for r in rows)[len(rows) // 2],
        "score_pass": sum(r["score"] == "pass" for r in rows),
        "score_fail": sum(r["score"] == "fail" for r in rows),
        "closed_iod_threshold": CLOSED_IOD,
    }
    print(json.dumps(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
