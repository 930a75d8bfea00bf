"""Make the README's picture: a contact sheet of a real render with the embedded backend.

    python tools/make_preview.py                      # -> docs/preview.png
    python tools/make_preview.py --size 512 --out /tmp/preview.png

Renders examples/astronaut.jpg speaking examples/hello.wav with ``talker.pipeline.make`` (embedded
backend, crop mode, the other options at ``talker make``'s defaults) into a temporary folder, decodes
the MP4 and lays out two rows: frames evenly spaced over the clip, and close-ups of the mouth in the
frames whose jaw opening (the motion track's ``jaw_open``) is at evenly spaced ranks, from the most
closed to the most open. Each tile is labelled with its time in the clip.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TILES = 6
"""Pictures per row."""
TILE = 200
"""Width of a tile in pixels; the frames are square, the close-ups TILE x TILE * 0.6."""


def render(size: int, folder: Path):
    """(MakeResult, FaceCrop) of examples/astronaut.jpg speaking examples/hello.wav into ``folder``."""
    from talker.options import MakeOptions
    from talker.pipeline import load_face, make

    options = MakeOptions(image=ROOT / "examples" / "astronaut.jpg", audio=ROOT / "examples" / "hello.wav",
                          out=folder / "preview.mp4", backend="embedded", size=size)
    result = make(options)
    return result, load_face(options.validate())


def contact_sheet(result, face):
    """(H, W, 3) uint8 RGB: frames over time on top, mouth close-ups from closed to open below."""
    import cv2
    import numpy as np

    from renderer.embedded.mesh import LIP_OUTER_LOWER, LIP_OUTER_UPPER
    from talker.media import read_video_frames
    from talker.types import EMBEDDED_CHANNELS, FPS

    frames = np.stack(list(read_video_frames(result.video)))
    jaw = result.track.values[:, EMBEDDED_CHANNELS.index("jaw_open")]
    over_time = np.linspace(0, len(frames) - 1, TILES + 2).round().astype(int)[1:-1]
    by_opening = np.argsort(jaw, kind="stable")[np.linspace(0, len(jaw) - 1, TILES).round().astype(int)]

    scale = frames.shape[2] / face.image.shape[1]  # crop mode: the video shows the face crop
    lips = face.landmarks[list(LIP_OUTER_UPPER + LIP_OUTER_LOWER), :2] * scale
    (cx, cy), half = lips.mean(axis=0), 1.1 * np.ptp(lips[:, 0]) / 2 + 4
    close_h = int(TILE * 0.6)
    x0, x1 = int(cx - half), int(cx + half)
    height = (x1 - x0) * close_h // TILE
    y0 = int(cy - 0.42 * height)  # a little more room below: the jaw opens downwards
    y1 = y0 + height

    label_h = 22
    sheet = np.full((2 * label_h + TILE + close_h + 8, TILES * TILE, 3), 255, np.uint8)

    def put(tile, index, x, y):
        h, w = tile.shape[:2]
        sheet[y:y + h, x:x + w] = tile
        cv2.putText(sheet, f"{index / FPS:.2f} s", (x + 6, y + h + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)

    for k, i in enumerate(over_time):
        put(cv2.resize(frames[i], (TILE, TILE), interpolation=cv2.INTER_AREA), i, k * TILE, 0)
    for k, i in enumerate(by_opening):
        mouth = frames[i, max(y0, 0):y1, max(x0, 0):x1]
        put(cv2.resize(mouth, (TILE, close_h), interpolation=cv2.INTER_CUBIC), i, k * TILE, TILE + label_h + 8)
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, choices=(256, 512), default=256, help="face resolution of the render")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "preview.png", help="PNG to write")
    args = parser.parse_args()
    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        result, face = render(args.size, Path(tmp))
        sheet = contact_sheet(result, face)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{args.out}: {sheet.shape[1]} x {sheet.shape[0]}")


if __name__ == "__main__":
    main()
