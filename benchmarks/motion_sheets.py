"""Contact sheets of the embedded backend's speech motion (run by hand, never in CI).

    python benchmarks/motion_sheets.py --out docs/motion                 # this checkout's code
    python benchmarks/motion_sheets.py --code DIR --out docs/motion --tag before   # another copy

Writes two PNGs into ``--out`` (names end in ``--tag``, default 'after'):

- ``mouth_<tag>.png``: 2x mouth close-ups from the MP4 at the middle of every rounded vowel
  (uw ow w uh oy) and every p/b/m of SCRIPT, spoken by talker's own voice (``--text`` alone) on
  PORTRAITS, one row per portrait, each tile labelled with its phone and time;
- ``head_<tag>.png``: one frame every 0.6 s of 7 s of the same speech for pose styles 0-3 (rows),
  and beside each row its yaw, pitch and roll over time (degrees, as the track asks for them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = "Welcome to Zorblax 3000, Mr. Nakamura. Remember: bamboo bikes, by Monday, for 49 dollars."
ROUNDED = ("uw", "ow", "w", "uh", "oy")
CLOSURES = ("p", "b", "m")
TILE = 96
"""Height of a close-up tile (px)."""


def _portraits():
    """(label, RGB image) pairs: the astronaut (smiles with teeth) and Grace Hopper (lips closed)."""
    import media_factory as mf

    return [("astronaut", mf.astronaut()), ("hopper", mf.grace_hopper())]


def _render(image, out: Path, pose_style: int = 0):
    """``talker make`` of SCRIPT on ``image`` (crop, 256): (frames (T, 256, 256, 3), phones, track values)."""
    import numpy as np

    from talker.media import read_video_frames
    from talker.options import MakeOptions
    from talker.pipeline import make

    png = out.with_suffix(".png")
    import cv2

    cv2.imwrite(str(png), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    result = make(MakeOptions(image=png, text=SCRIPT, out=out, force=True, pose_style=pose_style, backend="embedded"))
    return np.stack(list(read_video_frames(out))), [tuple(p) for p in result.audio.phones], result.track.values


def _label(tile, text: str):
    import cv2

    cv2.putText(tile, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 0), 1, cv2.LINE_AA)
    return tile


def mouth_sheet(path: Path, tmp: Path) -> None:
    """Close-ups of the mouth at each rounded vowel and p/b/m, one row per portrait."""
    import cv2
    import numpy as np

    from talker.face import face_landmarks

    rows = []
    for label, image in _portraits():
        frames, phones, _ = _render(image, tmp / f"{label}.mp4")
        lm = face_landmarks(frames[0], (0, 0, frames.shape[2], frames.shape[1]))
        lips = lm[[61, 291, 0, 17], :2]
        cx, cy = lips.mean(axis=0)
        half = 0.75 * np.linalg.norm(lips[0] - lips[1])
        x0, y0 = int(cx - half), int(cy - 0.6 * half)
        x1, y1 = int(cx + half), int(cy + 0.6 * half)
        tiles = [_label(cv2.resize(image.copy(), (int(TILE * 1.25), TILE)), label)]
        for start, end, name in phones:
            if name in ROUNDED + CLOSURES:
                i = min(len(frames) - 1, int((start + end) / 2 * 25))
                crop = np.ascontiguousarray(frames[i][max(y0, 0) : y1, max(x0, 0) : x1])
                tiles.append(_label(cv2.resize(crop, (int(TILE * 1.25), TILE), interpolation=cv2.INTER_CUBIC),
                                    f"{name} {start:.2f}s"))
        rows.append(tiles)
    width = max(len(r) for r in rows)
    blank = np.full((TILE, int(TILE * 1.25), 3), 255, np.uint8)
    sheet = np.concatenate([np.concatenate(r + [blank] * (width - len(r)), axis=1) for r in rows], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def head_sheet(path: Path, tmp: Path) -> None:
    """Frames every 0.6 s for pose styles 0-3, each row with its head angles over time."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from audio2coeff.embedded import motion
    from talker.types import EMBEDDED_CHANNELS

    names = [m.name for m in getattr(motion, "MANNERS", ())] or [""] * 4  # --code of a version without manners

    image = _portraits()[0][1]
    rows = []
    for style in range(4):
        frames, _, values = _render(image, tmp / f"style{style}.mp4", pose_style=style)
        picks = np.arange(0, min(len(frames), 7 * 25), 15)
        tiles = [_label(cv2.resize(frames[i], (128, 128), interpolation=cv2.INTER_AREA), f"{i / 25:.1f}s") for i in picks]
        fig, ax = plt.subplots(figsize=(3.2, 1.28), dpi=100)
        t = np.arange(len(values)) / 25
        for name, colour in (("yaw", "tab:blue"), ("pitch", "tab:orange"), ("roll", "tab:green")):
            ax.plot(t, np.degrees(values[:, EMBEDDED_CHANNELS.index(name)]), colour, lw=1, label=name)
        ax.set_title(f"style {style}: {names[style]}", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5, loc="upper right")
        fig.tight_layout(pad=0.2)
        fig.canvas.draw()
        plot = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        plt.close(fig)
        rows.append(np.concatenate(tiles + [cv2.resize(plot, (320, 128))], axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, help="import audio2coeff, renderer and talker from this folder")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "motion")
    parser.add_argument("--tag", default="after", help="suffix of the file names")
    parser.add_argument("--only", choices=("mouth", "head"), help="write only this sheet")
    args = parser.parse_args()
    sys.path[0:1] = ([str(args.code)] if args.code else []) + [str(ROOT), str(ROOT / "tests")]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "head":
            mouth_sheet(args.out / f"mouth_{args.tag}.png", Path(tmp))
        if args.only != "mouth":
            head_sheet(args.out / f"head_{args.tag}.png", Path(tmp))


if __name__ == "__main__":
    main()
