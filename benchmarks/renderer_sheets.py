"""Before/after contact sheets and figures of the embedded renderer on held-out portraits (by hand, never in CI).

    python benchmarks/renderer_sheets.py --code /path/to/other/checkout --frames /tmp/before   # render with that code
    python benchmarks/renderer_sheets.py --before /tmp/before     # render with this code, write sheets and figures

Every case of SHEET_CASES (benchmarks/held_out_faces.py) speaks 3 s of Festival speech (exact phone
times) after LEAD_S of silence, in 'full' mode at 256 (the face pasted back into the whole picture).
Per case:

- sheet docs/renderer/<case>.png: 12 frames spread over the clip (the first is the rest pose), the
  whole frame (scaled to fit) and the mouth at 2x, rows 'before' (the frames of --before) and
  'after' (this code);
- sharpness: Laplacian variance of the face (inside the face oval, the mouth left out) in the output
  frame over the same region of the portrait, the median over the frames, and at frame 0;
- sharpness in the MP4 (the frames through the product's encoder, talker.media.VideoWriter, and
  decoded): at rest (the frames whose track row is all zeros: the portrait itself; the median), in
  the silence (the least over the silent frames, where the head still moves) and over all frames
  (median); mp4_kb: the file's size;
- closure: share of p/b/m phones whose least inner-lip opening (face mesh on the output frames,
  points 13-14) is at most CLOSED_IOD; open: median inner-lip opening in open vowels (IOD);
- rest_mouth: inner-lip opening at frame 0 minus the portrait's (IOD; 0: the portrait's own mouth);
- folded_px: most pixels of one frame drawn by a triangle the motion folded over (drawn behind
  the others, they show only where nothing else covers; code that has ``EmbeddedRenderer.folds``).

Figures go to benchmarks/out/renderer_held_out.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHEET_CASES = ("t1_mid", "lena", "painted_smiling_man", "bw_t1_right", "t1_top", "painted_t1_top", "cel_t1_left",
               "cg_roxanne", "coach_small_full")
"""Smiling with teeth, closed mouth, painted, black-and-white, 3/4 view (photo and painted), anime-style
(cel-shaded), CG, a small face in a whole picture."""
FRAMES = 12
LEAD_S = 0.6
"""Silence before the speech (s): the clip starts at rest, the portrait itself."""
CLOSED_IOD = 0.016
OPEN_VOWELS = ("aa", "ae", "ah", "ao", "aw", "ay")


def render_case(portrait, cache: Path) -> dict:
    """Output frames (T, H, W, 3) of one case with the code imported, the face and the speech's phones."""
    import numpy as np

    from enhance.paste import PasteBack
    from talker.options import MakeOptions
    from talker.pipeline import EmbeddedBackend, load_audio, load_face

    wav, phones, text = _lead_in_speech(cache)
    opts = MakeOptions(image=portrait.path, audio=wav, text=text, preprocess="full", size=256,
                       face_index=portrait.face_index, backend="embedded").validate()
    face, audio = load_face(opts), load_audio(opts)
    backend = EmbeddedBackend()
    track = backend.coeffs(face, audio, opts)
    paste = PasteBack(face)
    frames = np.concatenate([paste(b) for b in backend.frames(face, track, opts)])
    folds = None
    renderer = backend._renderer(face)
    if hasattr(renderer, "folds"):  # pixels drawn by a folded triangle, most in a frame
        folds = 0
        for row in track.values:
            index, _ = renderer.coverage(row)
            folded = np.append(renderer.folds(row), False)
            folds = max(folds, int(folded[index].sum()))
    return {"frames": frames, "face": face, "phones": phones, "folds": folds, "track": track, "audio": audio}


def _lead_in_speech(cache: Path):
    """(wav, phones, transcript): the 3 s speech of benchmarks/mouth.py after LEAD_S of silence."""
    import numpy as np
    import soundfile as sf

    from mouth import _speech

    wav, phones, text = _speech(cache, "3s")
    out = wav.with_name(f"{wav.stem}_lead{int(LEAD_S * 1000)}ms.wav")
    if not out.exists():
        samples, rate = sf.read(wav, dtype="float32")
        sf.write(out, np.concatenate([np.zeros(int(round(LEAD_S * rate)), np.float32), samples]), rate)
    return out, [(s + LEAD_S, e + LEAD_S, p) for s, e, p in phones], text


def mp4_sharpness(result: dict, mask, base: float) -> dict:
    """Sharpness ratios of the frames after the product's H.264 encode (see the module doc)."""
    import tempfile

    import numpy as np

    from talker.media import VideoWriter, read_video_frames
    from talker.score import _speech_frames

    frames, track = result["frames"], result["track"]
    h, w = frames.shape[1:3]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        with VideoWriter(path, (w, h), result["audio"]) as writer:
            writer.write(frames)
        ratios = np.array([sharpness(f, mask) / base for f in read_video_frames(path)])
        size = path.stat().st_size
    rest = np.all(track.values == 0, axis=1)
    silent = ~_speech_frames(result["audio"], len(ratios))
    return {
        "mp4_sharpness": round(float(np.median(ratios)), 3),
        "mp4_sharpness_rest": round(float(np.median(ratios[rest])), 3) if rest.any() else None,
        "mp4_sharpness_silent_min": round(float(ratios[silent].min()), 3) if silent.any() else None,
        "rest_frames": int(rest.sum()),
        "mp4_kb": round(size / 1024),
    }


def face_mask(face, shape) -> "np.ndarray":
    """(H, W) bool: inside the face oval of the portrait, the mouth (grown by half its width) left out."""
    import cv2
    import numpy as np

    from renderer.embedded.mesh import FACE_OVAL, LIP_OUTER_LOWER, LIP_OUTER_UPPER

    lm = face.source_landmarks[:, :2]
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lm[list(FACE_OVAL)]).astype(np.int32)], 1)
    mask = cv2.erode(mask, np.ones((5, 5), np.uint8))
    lips = lm[list(LIP_OUTER_UPPER + LIP_OUTER_LOWER)]
    (x0, y0), (x1, y1) = lips.min(0), lips.max(0)
    grow = 0.5 * (x1 - x0)
    mask[int(y0 - grow): int(y1 + grow) + 1, int(x0 - grow): int(x1 + grow) + 1] = 0
    return mask > 0


def sharpness(rgb, mask) -> float:
    """Variance of the Laplacian of the grey picture over ``mask``."""
    import cv2
    import numpy as np

    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=1)[mask].var())


def figures(result: dict) -> dict:
    import numpy as np

    from talker.measure import measure_frames
    from talker.score import phone_frames

    frames, face, phones = result["frames"], result["face"], result["phones"]
    mask = face_mask(face, frames.shape[1:])
    base = sharpness(face.source, mask)
    ratios = np.array([sharpness(f, mask) / base for f in frames])
    x0, y0, x1, y1 = face.box
    m = measure_frames(list(frames), (x0, y0, x1, y1))
    ref = measure_frames([face.source], (x0, y0, x1, y1))
    n = len(frames)

    def at(p):
        return list(phone_frames(p[0], p[1], n)) or [min(n - 1, int((p[0] + p[1]) / 2 * 25))]

    closures = [p for p in phones if p[2] in ("p", "b", "m")]
    least = [float(np.nanmin(m.mouth_open[at(p)])) for p in closures]
    opened = [i for p in phones if p[2] in OPEN_VOWELS for i in at(p)]
    return {
        "sharpness": round(float(np.median(ratios)), 3),
        "sharpness_min": round(float(ratios.min()), 3),
        "sharpness_rest": round(float(ratios[0]), 3),
        "closure": round(float(np.mean(np.array(least) <= CLOSED_IOD)), 3),
        "open_iod": round(float(np.nanmedian(m.mouth_open[opened])), 4),
        "rest_mouth_iod": round(float(m.mouth_open[0] - ref.mouth_open[0]), 4),
        "source_mouth_iod": round(float(ref.mouth_open[0]), 4),
        "folded_px": result["folds"],
        **mp4_sharpness(result, mask, base),
    }


def sheet(path: Path, name: str, rows: list[tuple[str, "np.ndarray"]], face) -> None:
    """Rows of 12 whole frames and 12 mouth close-ups (2x) for each (label, frames)."""
    import cv2
    import numpy as np

    from renderer.embedded.mesh import LIP_OUTER_LOWER, LIP_OUTER_UPPER

    n = len(rows[0][1])
    pick = np.linspace(0, n - 1, FRAMES).round().astype(int)
    h, w = rows[0][1].shape[1:3]
    cell_w = 160
    cell_h = int(round(cell_w * h / w))
    lips = face.source_landmarks[list(LIP_OUTER_UPPER + LIP_OUTER_LOWER), :2]
    (lx0, ly0), (lx1, ly1) = lips.min(0), lips.max(0)
    cx, cy = (lx0 + lx1) / 2, (ly0 + ly1) / 2
    half_w = 0.85 * (lx1 - lx0)
    half_h = half_w * 0.6
    mouth_w = int(round(4 * half_w))  # 2x
    mouth_h = int(round(4 * half_h))
    zoom = min(1.0, cell_w * 1.0 / mouth_w)
    mouth_w, mouth_h = int(mouth_w * zoom), int(mouth_h * zoom)
    label_w = 70
    band = cell_h + max(mouth_h, 1) + 6
    out = np.full((22 + band * len(rows), label_w + FRAMES * cell_w, 3), 255, np.uint8)
    cv2.putText(out, f"{name}: frames {', '.join(map(str, pick))} (0 = rest); mouth at 2x" +
                ("" if zoom == 1 else f" (shown at {2 * zoom:.1f}x)"), (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    pad = 400
    for r, (label, frames) in enumerate(rows):
        top = 22 + r * band
        cv2.putText(out, label, (4, top + cell_h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for j, k in enumerate(pick):
            x = label_w + j * cell_w
            out[top: top + cell_h, x: x + cell_w] = cv2.resize(frames[k], (cell_w, cell_h), interpolation=cv2.INTER_AREA)
            big = cv2.copyMakeBorder(frames[k], pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            x0, y0 = int(round(cx - half_w)) + pad, int(round(cy - half_h)) + pad
            close = big[y0: y0 + int(round(2 * half_h)), x0: x0 + int(round(2 * half_w))]
            out[top + cell_h + 3: top + cell_h + 3 + mouth_h, x: x + mouth_w] = cv2.resize(
                close, (mouth_w, mouth_h), interpolation=cv2.INTER_NEAREST if zoom >= 1 else cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def markdown_table(table: dict) -> str:
    """The figures of every case as a Markdown table: this code's, the earlier code's in brackets."""
    cols = [("sharpness", "sharpness"), ("sharpness_rest", "sharpness, frame 0"), ("mp4_sharpness", "MP4 sharpness"),
            ("mp4_sharpness_rest", "MP4 sharpness at rest"), ("mp4_sharpness_silent_min", "MP4 sharpness in silence, least"),
            ("closure", "closure"), ("open_iod", "open"), ("rest_mouth_iod", "rest mouth"), ("folded_px", "folded px")]
    lines = ["| case | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in table.items():
        cells = []
        for key, _ in cols:
            after, before = row["after"].get(key), row.get("before", {}).get(key)
            cells.append(f"{after}" + (f" ({before})" if before is not None else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, help="import the product from this folder")
    parser.add_argument("--frames", type=Path, help="only render: save each case's frames and figures here")
    parser.add_argument("--before", type=Path, help="frames saved by an earlier --frames run (the 'before' rows)")
    parser.add_argument("--cases", nargs="*", default=list(SHEET_CASES))
    parser.add_argument("--sheets", type=Path, default=ROOT / "docs" / "renderer")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "renderer_held_out.json")
    args = parser.parse_args()
    sys.path[0:1] = ([str(args.code)] if args.code else []) + [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

    import numpy as np

    import held_out_faces as hof

    by_name = {p.name: p for p in hof.build()}
    table = {}
    for name in args.cases:
        result = render_case(by_name[name], hof.CACHE)
        row = figures(result)
        print(name, json.dumps(row), flush=True)
        if args.frames:
            args.frames.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(args.frames / f"{name}.npz", frames=result["frames"], figures=json.dumps(row))
            continue
        rows = [("after", result["frames"])]
        table[name] = {"after": row}
        if args.before:
            with np.load(args.before / f"{name}.npz") as z:
                rows.insert(0, ("before", z["frames"]))
                table[name]["before"] = json.loads(str(z["figures"]))
        sheet(args.sheets / f"{name}.png", name, rows, result["face"])
    if table:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(table, indent=1))
        print(markdown_table(table))


if __name__ == "__main__":
    main()
