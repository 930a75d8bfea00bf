"""A held-out set of portraits for the mouth benchmark (benchmarks/mouth.py), built from package files.

    python benchmarks/held_out_faces.py      # downloads, extracts and writes the PNGs, prints the list

None of these pictures was used to tune the embedded backend (its tests use the astronaut and Grace
Hopper). They come from files that public packages ship, fetched with the packages' own clients
(no web scraping), into a cache folder (``$TALKER_HELD_OUT``, default ``~/.cache/talker/held_out``):

- PyPI ``insightface==2.1`` wheel: ``t1.jpg`` (a group photo of six smiling people, most showing
  teeth), ``Tom_Hanks_54745.png`` (a 112 x 112 smiling face);
- PyPI ``ultralytics`` wheel: ``zidane.jpg`` (two football coaches, 1280 x 720);
- Debian ``opencv-doc`` (``apt-get download``): ``faceDetection.png`` (the classic 'Lena' crop with
  a drawn box), ``face_swapped.jpg`` (a smiling man), frames of ``Megamind.avi`` (a CG-animated
  film trailer: stylised, big-eyed cartoon faces).

No anime or Stable-Diffusion art ships in any package here, so the 'painted' entries are made from
real photos by this script and named for what they are: ``cv2.stylization`` (an edge-preserving
watercolour-like filter), and flat posterised colours with dark outlines (a cel-shaded 'anime-style'
look). They test lips with flat colours and no skin texture, not a real artist's drawing. The
black-and-white entry is a colour photo turned grey (its teeth must stay grey).

Each entry says which face to animate, with what crop mode and size, so the set covers crop, extcrop
and full modes at 256 and 512, smiling sources that show teeth, and a small face in a whole picture.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("TALKER_HELD_OUT", Path.home() / ".cache" / "talker" / "held_out"))


@dataclass(frozen=True)
class Portrait:
    """One held-out case: ``path`` a PNG in the cache, animated at ``face_index`` with ``mode`` and ``size``."""

    name: str
    path: Path
    kind: str  # photo | smiling-teeth | 3/4-view | cg-cartoon | painted, black-and-white (made here) | small-face-full
    mode: str
    size: int
    face_index: int = 0
    origin: str = ""


def _pip_download(spec: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    name = spec.split("==")[0]
    found = sorted(dest.glob(f"{name}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", spec, "-d", str(dest)],
                       check=True, capture_output=True, timeout=600)
        found = sorted(dest.glob(f"{name}-*.whl"))
    return found[-1]


def _debian_package(name: str, dest: Path) -> Path:
    """Extract Debian package ``name`` (fetched with ``apt-get download``) under ``dest / name``."""
    root = dest / name
    if not root.exists():
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", name], cwd=dest, check=True, capture_output=True, timeout=600)
        deb = sorted(dest.glob(f"{name}_*.deb"))[-1]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, capture_output=True)
        deb.unlink()
    return root


def _from_wheel(wheel: Path, member: str) -> np.ndarray:
    import cv2

    with zipfile.ZipFile(wheel) as z:
        data = np.frombuffer(z.read(member), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _read(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _video_frame(path: Path, index: int) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"cannot read frame {index} of {path}")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def stylised(rgb: np.ndarray) -> np.ndarray:
    """cv2.stylization: edge-preserving smoothing with a painted, watercolour-like look."""
    import cv2

    return cv2.stylization(np.ascontiguousarray(rgb), sigma_s=60, sigma_r=0.45)


def cel_shaded(rgb: np.ndarray, levels: int = 6) -> np.ndarray:
    """Flat posterised colours (k-means on a bilateral-smoothed picture) with dark outlines: an 'anime-style' look."""
    import cv2

    smooth = np.ascontiguousarray(rgb)
    for _ in range(4):
        smooth = cv2.bilateralFilter(smooth, 9, 40, 7)
    pixels = smooth.reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(pixels, levels * 2, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    flat = centres[labels.ravel()].reshape(rgb.shape).astype(np.uint8)
    grey = cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY)
    edges = cv2.adaptiveThreshold(cv2.medianBlur(grey, 5), 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4)
    return np.where(edges[..., None] > 0, flat, (flat * 0.35).astype(np.uint8))


def grey(rgb: np.ndarray) -> np.ndarray:
    """The picture in shades of grey (luma), as a black-and-white photo, still 3 channels."""
    import cv2

    return np.repeat(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def _crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def build(cache: Path = CACHE) -> list[Portrait]:
    """Download (once), extract and write the held-out portraits; returns the cases in a fixed order."""
    import cv2

    pics = cache / "portraits"
    pics.mkdir(parents=True, exist_ok=True)
    insight = _pip_download("insightface==2.1", cache / "pypi")
    ultra = _pip_download("ultralytics", cache / "pypi")
    ocv = _debian_package("opencv-doc", cache / "debian") / "usr/share/doc/opencv-doc"

    t1 = _from_wheel(insight, "insightface/data/images/t1.jpg")
    hanks = _from_wheel(insight, "insightface/data/images/Tom_Hanks_54745.png")
    zidane = _from_wheel(ultra, "ultralytics/assets/zidane.jpg")
    lena = _read(ocv / "opencv4/html/faceDetection.png")
    swapped = _read(ocv / "opencv4/html/face_swapped.jpg")
    megamind = ocv / "examples/data/Megamind.avi"

    coach = _crop(zidane, (780, 0, 1200, 420))  # the coach on the right, alone
    t1_left = _crop(t1, (0, 180, 330, 510))  # the woman on the left, smiling with teeth
    t1_mid = _crop(t1, (380, 200, 650, 470))
    t1_right = _crop(t1, (640, 290, 920, 560))
    t1_top = _crop(t1, (800, 0, 1080, 280))  # a face turned ~47 degrees: a 3/4 view
    images = {
        "t1_left": (t1_left, "photo", "crop", 256, "insightface 2.1 wheel, t1.jpg"),
        "t1_left_512": (t1_left, "photo", "extcrop", 512, "insightface 2.1 wheel, t1.jpg"),
        "t1_mid": (t1_mid, "smiling-teeth", "crop", 256, "insightface 2.1 wheel, t1.jpg"),
        "t1_right": (t1_right, "smiling-teeth", "extcrop", 256, "insightface 2.1 wheel, t1.jpg"),
        "t1_top": (t1_top, "3/4-view", "crop", 512, "insightface 2.1 wheel, t1.jpg"),
        "t1_group_full": (t1, "small-face-full", "full", 256, "insightface 2.1 wheel, t1.jpg (whole picture)"),
        "tom_hanks": (hanks, "photo", "crop", 256, "insightface 2.1 wheel, Tom_Hanks_54745.png (112 px picture, a 93 px face)"),
        "coach": (coach, "photo", "crop", 256, "ultralytics wheel, zidane.jpg"),
        "coach_small_full": (cv2.resize(zidane, (576, 324), interpolation=cv2.INTER_AREA), "small-face-full", "full", 256,
                             "ultralytics wheel, zidane.jpg (whole picture at 0.45x: a 72 px face)"),
        "lena": (lena, "photo", "crop", 512, "opencv-doc, faceDetection.png"),
        "smiling_man": (swapped, "smiling-teeth", "crop", 256, "opencv-doc, face_swapped.jpg"),
        "cg_roxanne": (_video_frame(megamind, 176), "cg-cartoon", "crop", 256, "opencv-doc, Megamind.avi frame 176"),
        "cg_hal": (_video_frame(megamind, 242), "cg-cartoon", "extcrop", 256, "opencv-doc, Megamind.avi frame 242"),
        "painted_smiling_man": (stylised(swapped), "painted", "crop", 256, "face_swapped.jpg through cv2.stylization (made here)"),
        "cel_t1_left": (cel_shaded(t1_left), "painted", "crop", 256, "t1.jpg crop, cel-shaded flat colours (made here)"),
        "cel_coach": (cel_shaded(coach), "painted", "crop", 512, "zidane.jpg crop, cel-shaded flat colours (made here)"),
        "painted_t1_top": (cel_shaded(cv2.resize(t1_top, (560, 560), interpolation=cv2.INTER_CUBIC)), "painted", "crop",
                           256, "t1.jpg crop, a face turned ~47 degrees (3/4 view), at 2x, cel-shaded (made here)"),
        "bw_t1_right": (grey(t1_right), "black-and-white", "full", 256,
                        "t1.jpg crop smiling with teeth, turned grey (made here)"),
    }
    out = []
    for name, (rgb, kind, mode, size, origin) in images.items():
        path = pics / f"{name.removesuffix('_512')}.png"
        if not path.exists():
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        out.append(Portrait(name, path, kind, mode, size, 0, origin))
    return out


if __name__ == "__main__":
    for p in build():
        print(f"{p.name:22s} {p.kind:16s} {p.mode:8s} {p.size}  {p.path}  ({p.origin})")
