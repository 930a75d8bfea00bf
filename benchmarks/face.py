"""Speed of the face stage: talker's torch networks against the mediapipe-based stage it replaced.

    python benchmarks/face.py                        # CPU; the baseline needs mediapipe 0.10.21 installed
    python benchmarks/face.py --device cuda          # the torch stage on a GPU (no baseline)

Both run in this process on the parity pictures (tests/data/face_parity): the portrait stage
(``detect_faces`` then ``face_landmarks`` on the largest face, what ``prepare_face`` does), warm
and in a fresh process (what one ``talker make`` pays: the networks' loading included), and the
measuring stage (``face_landmarks`` on every frame of a clip, what ``talker score`` does: the
baseline one frame at a time, talker in batches). The baseline is the face stage of the code before
the port (``--baseline-ref``, read from git), which ran mediapipe's own graphs. Results as JSON
(``--out``) and printed; ratios are baseline time over talker's time (above 1: talker is faster).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talker.face import detect_faces, face_landmarks, face_landmarks_batch  # noqa: E402

DATA = ROOT / "tests" / "data" / "face_parity"


def baseline_module(ref: str):
    """talker/face/detect.py as it was at git ``ref`` (mediapipe 0.10.21), loaded as a module."""
    source = subprocess.run(["git", "show", f"{ref}:talker/face/detect.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path("/tmp/talker_face_baseline.py")
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("talker_face_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


FRESH = """
import sys, time
import numpy as np, torch, cv2  # every talker process has these loaded before its face stage
from PIL import Image
sys.path.insert(0, {root!r}); sys.path.insert(0, "/tmp")
rgb = np.array(Image.open({picture!r}).convert("RGB"))
start = time.perf_counter()
import {module} as face
found = face.detect_faces(rgb)
face.face_landmarks(rgb, found[0])
print(time.perf_counter() - start)
"""


def fresh_process(module: str, picture: Path) -> float:
    """Seconds from importing the face stage to the first portrait's landmarks, in a new Python process."""
    code = FRESH.format(root=str(ROOT), picture=str(picture), module=module)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def _iou(a, b) -> float:
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih)


def parity(device: str, data: Path) -> dict:
    """Per picture of the parity set: faces found (talker, mediapipe), the lowest box IoU, and the mean
    landmark distance from mediapipe's in inter-ocular distances (on mediapipe's boxes)."""
    ref = np.load(data / "reference.npz")
    rows = {}
    for path in sorted(data.glob("*.jpg")):
        rgb = np.array(Image.open(path).convert("RGB"))
        want_boxes, want_points = ref[f"{path.stem}.boxes"], ref[f"{path.stem}.landmarks"]
        boxes = detect_faces(rgb, device)
        errors = []
        for box, want in zip(want_boxes, want_points):
            if np.isnan(want).any():
                continue
            got = face_landmarks(rgb, tuple(int(v) for v in box[:4]), device)
            iod = np.linalg.norm(want[33, :2] - want[263, :2])
            errors.append(float(np.linalg.norm(got[:, :2] - want[:, :2], axis=1).mean() / iod))
        rows[path.stem] = {"faces": len(boxes), "mediapipe_faces": len(want_boxes),
                           "min_iou": min((_iou(b.box, w[:4]) for b, w in zip(boxes, want_boxes)), default=1.0),
                           "landmarks_iod": max(errors, default=0.0)}
    every = [r["landmarks_iod"] for r in rows.values() if r["mediapipe_faces"]]
    return {"pictures": rows, "same_faces": all(r["faces"] == r["mediapipe_faces"] for r in rows.values()),
            "min_iou": min(r["min_iou"] for r in rows.values()),
            "landmarks_iod_mean": float(np.mean(every)), "landmarks_iod_max": float(np.max(every))}


def portrait_stage(detect, landmarks, pictures, repeats: int) -> dict:
    """Median seconds per picture of detect + landmarks on the largest face, after one warm-up call."""
    start = time.perf_counter()
    faces = detect(pictures[0])
    landmarks(pictures[0], faces[0])
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        for rgb in pictures:
            start = time.perf_counter()
            faces = detect(rgb)
            if faces:
                landmarks(rgb, faces[0])
            times.append(time.perf_counter() - start)
    return {"first_call_s": first, "median_s": statistics.median(times), "total_s": sum(times) / repeats}


def frames_stage(measure, frames) -> float:
    """Seconds per frame to place the landmarks on every frame (after one warm-up pass)."""
    measure(frames)
    start = time.perf_counter()
    measure(frames)
    return (time.perf_counter() - start) / len(frames)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-ref", default="100ead3", help="git commit whose face stage is the baseline")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--data", type=Path, default=DATA, help="a parity set (tools/mediapipe_face_reference.py)")
    args = ap.parse_args()

    names = sorted(p.stem for p in DATA.glob("*.jpg"))
    pictures = [np.array(Image.open(DATA / f"{n}.jpg").convert("RGB")) for n in names]
    pictures = [pictures[names.index("astronaut")]] + pictures  # the warm-up picture first
    clip = [pictures[0]] * 64  # a 64-frame clip of one face
    box = detect_faces(clip[0])[0].box
    result = {"device": args.device, "pictures": len(names)}

    def ours_batch(frames, size=16):
        for i in range(0, len(frames), size):
            face_landmarks_batch(frames[i:i + size], box, args.device)

    result["parity"] = parity(args.device, args.data)

    result["talker"] = portrait_stage(lambda r: detect_faces(r, args.device),
                                      lambda r, b: face_landmarks(r, b, args.device), pictures, args.repeats)
    result["talker"]["frame_s"] = frames_stage(ours_batch, clip)
    result["talker"]["frame_s_batch64"] = frames_stage(lambda fs: ours_batch(fs, 64), clip)
    astronaut = DATA / "astronaut.jpg"
    if args.device == "cpu":
        result["talker"]["fresh_process_s"] = statistics.median(
            fresh_process("talker.face.detect", astronaut) for _ in range(args.repeats))
        try:
            old = baseline_module(args.baseline_ref)
            result["baseline"] = portrait_stage(old.detect_faces, old.face_landmarks, pictures, args.repeats)
            result["baseline"]["frame_s"] = frames_stage(lambda fs: [old.face_landmarks(f, box) for f in fs], clip)
            result["baseline"]["fresh_process_s"] = statistics.median(
                fresh_process("talker_face_baseline", astronaut) for _ in range(args.repeats))
            result["baseline"]["ref"] = args.baseline_ref
            for key in ("median_s", "total_s", "frame_s", "fresh_process_s"):
                result[f"ratio_{key}"] = result["baseline"][key] / result["talker"][key]
        except ImportError as err:
            result["baseline"] = f"not run: {err}"
    print(json.dumps({k: v for k, v in result.items() if k != "parity"}, indent=2))
    print(json.dumps({k: v for k, v in result["parity"].items() if k != "pictures"}))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
