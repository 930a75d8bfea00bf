"""Write the face-stage parity set: pictures and mediapipe 0.10.21's boxes and landmarks on them.

    python tools/mediapipe_face_reference.py tests/data/face_parity

Run once, by hand, where mediapipe 0.10.21 (numpy < 2), torch, scikit-image and matplotlib are
installed, after ``python benchmarks/held_out_faces.py`` has built the held-out portraits. talker's
own face stage runs with its two network steps swapped for mediapipe's ``solutions`` (the full-range
``FaceDetection`` and ``FaceMesh(refine_landmarks=True)``), so the picture shrinking, tiling and mesh
crops are the same code and only the networks differ. ``tests/test_face_parity.py`` compares
talker's torch networks against what this writes:

* ``<name>.jpg``: the picture (JPEG, quality 92; the reference is taken on the decoded pixels);
* ``reference.npz``: per picture ``<name>.boxes`` (F, 5: x0, y0, x1, y1, score; largest first) and
  ``<name>.landmarks`` (F, 478, 3: ``face_landmarks`` on each of those boxes, picture pixels; NaN where the mesh
  found no face).
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


def pictures() -> dict[str, np.ndarray]:
    """The parity set: 22 pictures (photos, paintings made by filters, CG, small and turned faces)."""
    import matplotlib.cbook
    from held_out_faces import build
    from skimage import data

    astronaut = data.astronaut()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.array(Image.open(f).convert("RGB"))
    h, w = astronaut.shape[:2]
    turned = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0), (w, h),
                            borderMode=cv2.BORDER_REFLECT)
    canvas = np.full((1200, 1600, 3), (90, 110, 100), np.uint8)
    canvas[700:764, 1100:1164] = cv2.resize(astronaut[20:276, 110:366], (64, 64), interpolation=cv2.INTER_AREA)
    hh, hw = hopper.shape[:2]
    # a face turned away: the picture's right half squeezed, as a face seen at an angle is foreshortened
    src = np.float32([[0, 0], [hw, 0], [hw, hh], [0, hh]])
    dst = np.float32([[0, 0], [hw * 0.8, hh * 0.08], [hw * 0.8, hh * 0.92], [0, hh]])
    squeezed = cv2.warpPerspective(hopper, cv2.getPerspectiveTransform(src, dst), (int(hw * 0.8), hh),
                                   borderMode=cv2.BORDER_REPLICATE)
    out = {
        "astronaut": astronaut,
        "grace_hopper": hopper,
        "astronaut_turned_30": turned,
        "astronaut_grey": np.repeat(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2),
        "astronaut_small_in_large": canvas,
        "grace_hopper_foreshortened": squeezed,
        "grace_hopper_dark_mirrored": (hopper[:, ::-1] * 0.45).astype(np.uint8),
    }
    for p in build():
        if p.name.endswith("_512"):
            continue
        out[p.name] = cv2.cvtColor(cv2.imread(str(p.path)), cv2.COLOR_BGR2RGB)
    return out


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


def main(out_dir: str) -> None:
    import talker.face.detect as detect

    detect.detect = _mediapipe_detect
    detect.face_mesh = _mediapipe_mesh
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, rgb in pictures().items():
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
    main(sys.argv[1])
