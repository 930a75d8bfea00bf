"""Write a face-stage parity set: pictures and mediapipe 0.10.21's boxes and landmarks on them.

    python tools/mediapipe_face_reference.py public tests/data/face_parity      # the stored set
    python tools/mediapipe_face_reference.py held-out DIR                       # the held-out portraits

Run by hand where mediapipe 0.10.21 (numpy < 2), torch, scikit-image and matplotlib are installed.
``public``: 22 pictures made from two public-domain portraits, stored in the repository for
tests/test_face_parity.py. ``held-out``: the portraits of benchmarks/held_out_faces.py (files of
public packages, fetched by that script, not stored here), for ``benchmarks/face.py --data DIR``.

talker's own face stage runs with its two network steps swapped for mediapipe's ``solutions`` (the
full-range ``FaceDetection`` and ``FaceMesh(refine_landmarks=True)``), so the picture shrinking,
tiling and mesh crops are the same code and only the networks differ. It writes:

* ``<name>.jpg``: the picture (JPEG, quality 92; the reference is taken on the decoded pixels);
* ``reference.npz``: per picture ``<name>.boxes`` (F, 5: x0, y0, x1, y1, score; largest first) and
  ``<name>.landmarks`` (F, 478, 3: ``face_landmarks`` on each of those boxes, picture pixels; NaN
  where the mesh found no face).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _turned(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h),
                          borderMode=cv2.BORDER_REFLECT)


def _foreshortened(rgb: np.ndarray, side: str) -> np.ndarray:
    """The picture's far side squeezed, as a face seen at an angle is foreshortened."""
    h, w = rgb.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    if side == "right":
        dst = np.float32([[0, 0], [w * 0.8, h * 0.08], [w * 0.8, h * 0.92], [0, h]])
    else:
        dst = np.float32([[0, h * 0.08], [w * 0.8, 0], [w * 0.8, h], [0, h * 0.92]])
    return cv2.warpPerspective(rgb, cv2.getPerspectiveTransform(src, dst), (int(w * 0.8), h),
                               borderMode=cv2.BORDER_REPLICATE)


def public_pictures() -> dict[str, np.ndarray]:
    """The stored parity set: 22 pictures made from two public-domain portraits (skimage's astronaut,
    NASA; matplotlib's Grace Hopper, US Navy): photos, turned, foreshortened, small in a large
    picture, grey, dark, painted and cel-shaded by filters, blurred, noisy, two faces in one picture."""
    import matplotlib.cbook
    from held_out_faces import cel_shaded, stylised
    from skimage import data

    astronaut = data.astronaut()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.array(Image.open(f).convert("RGB"))
    face = astronaut[20:276, 110:366]
    small = np.full((1200, 1600, 3), (90, 110, 100), np.uint8)
    small[700:764, 1100:1164] = cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)
    pair = np.zeros((600, 1024, 3), np.uint8)
    pair[44:556, :512] = astronaut
    pair[:, 512:] = hopper
    noise = np.random.default_rng(0).normal(0, 18, astronaut.shape)
    return {
        "astronaut": astronaut,
        "grace_hopper": hopper,
        "astronaut_turned_30": _turned(astronaut, 30),
        "astronaut_turned_minus_15": _turned(astronaut, -15),
        "grace_hopper_turned_20": _turned(hopper, 20),
        "astronaut_grey": np.repeat(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2),
        "astronaut_small_in_large": small,
        "astronaut_face_96px": cv2.resize(face, (96, 96), interpolation=cv2.INTER_AREA),
        "astronaut_face_cropped_tight": astronaut[60:250, 150:330],
        "grace_hopper_foreshortened": _foreshortened(hopper, "right"),
        "astronaut_foreshortened": _foreshortened(astronaut, "left"),
        "grace_hopper_dark_mirrored": (hopper[:, ::-1] * 0.45).astype(np.uint8),
        "astronaut_bright": np.clip(astronaut * 1.5 + 30, 0, 255).astype(np.uint8),
        "astronaut_painted": stylised(astronaut),
        "grace_hopper_painted": stylised(hopper),
        "astronaut_cel_shaded": cel_shaded(astronaut),
        "grace_hopper_cel_shaded": cel_shaded(hopper),
        "astronaut_blurred": cv2.GaussianBlur(astronaut, (0, 0), 3),
        "astronaut_noisy": np.clip(astronaut + noise, 0, 255).astype(np.uint8),
        "grace_hopper_low_contrast": (hopper * 0.35 + 120).astype(np.uint8),
        "two_faces": pair,
        "grace_hopper_face_at_edge": hopper[:, 150:],
    }


def held_out_pictures() -> dict[str, np.ndarray]:
    """The held-out portraits of benchmarks/held_out_faces.py (files from public packages, not stored)."""
    from held_out_faces import build

    return {p.name: cv2.cvtColor(cv2.imread(str(p.path)), cv2.COLOR_BGR2RGB)
            for p in build() if not p.name.endswith("_512")}


def _mediapipe_detect(net, spec, rgbs):
    """``talker.face.blazeface.detect`` done by mediapipe's full-range FaceDetection."""
    import mediapipe as mp

    from talker.face.blazeface import Detection

    found = []
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as fd:
        for rgb in rgbs:
            dets = []
            for d in fd.process(np.ascontiguousarray(rgb)).detections or []:
                rb = d.location_data.relative_bounding_box
                kp = np.array([(k.x, k.y) for k in d.location_data.relative_keypoints], np.float32)
                dets.append(Detection((rb.xmin, rb.ymin, rb.xmin + rb.width, rb.ymin + rb.height), kp, d.score[0]))
            found.append(dets)
    return found


def _mediapipe_mesh(mesh_net, detector, squares):
    """``talker.face.facemesh.face_mesh`` done by mediapipe's FaceMesh (static, refined, one face)."""
    import mediapipe as mp

    out = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                                         min_detection_confidence=0.5) as fm:
        for sq in squares:
            res = fm.process(np.ascontiguousarray(sq)).multi_face_landmarks
            out.append(None if not res else np.array([(p.x, p.y, p.z) for p in res[0].landmark], np.float64))
    return out


def _landmarks(detect, rgb, box):
    """face_landmarks, or NaN where the mesh finds no face in the box."""
    try:
        return detect.face_landmarks(rgb, box)
    except detect.NoFaceError:
        return np.full((478, 3), np.nan, np.float32)


def main(which: str, out_dir: str) -> None:
    import talker.face.detect as detect

    detect.detect = _mediapipe_detect
    detect.face_mesh = _mediapipe_mesh
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, rgb in (public_pictures() if which == "public" else held_out_pictures()).items():
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=92)
        (out / f"{name}.jpg").write_bytes(buf.getvalue())
        rgb = np.array(Image.open(out / f"{name}.jpg").convert("RGB"))
        boxes = detect.detect_faces(rgb)
        arrays[f"{name}.boxes"] = np.array([[*b.box, b.score] for b in boxes], np.float64).reshape(-1, 5)
        arrays[f"{name}.landmarks"] = np.array([_landmarks(detect, rgb, b) for b in boxes],
                                               np.float32).reshape(-1, 478, 3)
        print(f"{name:28s} {rgb.shape[1]}x{rgb.shape[0]}  faces {len(boxes)}")
    np.savez_compressed(out / "reference.npz", **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:3])
