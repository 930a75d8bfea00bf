"""talker.face: detection, landmarks, face choice and errors, SadTalker crop geometry, prepare_face modes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import media_factory as mf
from talker.errors import AmbiguousFaceError, NoFaceError
from talker.face import (
    IBUG68_FROM_MESH,
    MIN_FACE_SIDE,
    crop_geometry,
    cut,
    detect_faces,
    face_landmarks,
    face_region,
    landmarks68,
    prepare_face,
    to_crop_pixels,
)
from talker.types import PREPROCESS_MODES

REPO = Path(__file__).resolve().parents[1]
PREPROCESS = REPO / "tests" / "data" / "sadtalker" / "preprocess.npz"


@pytest.fixture(scope="module")
def portraits() -> dict[str, np.ndarray]:
    return {"astronaut": mf.astronaut(), "hopper": mf.grace_hopper()}


@pytest.fixture(scope="module")
def ref():
    with np.load(PREPROCESS) as z:
        return {k: z[k] for k in z.files}


def _scaled_face(rgb: np.ndarray, face_side: float, pad: float = 1.5) -> np.ndarray:
    """A square cut around the (single) face of ``rgb``, scaled so its face is about ``face_side`` px.

    The detector's box grows a little relative to the face at low resolution, so the scale is
    corrected once by measuring the box in the scaled cut (when it is still detectable).
    """
    (face,) = detect_faces(rgb)
    half = pad * max(face.width, face.height)
    cx, cy = (face.x0 + face.x1) / 2, (face.y0 + face.y1) / 2
    padded = cv2.copyMakeBorder(rgb, 400, 400, 400, 400, cv2.BORDER_REPLICATE)
    x0, y0 = int(cx - half) + 400, int(cy - half) + 400
    square = padded[y0 : y0 + int(2 * half), x0 : x0 + int(2 * half)]
    s = face_side / face.width
    out = cv2.resize(square, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    found = detect_faces(out)
    if len(found) == 1:
        s *= face_side / found[0].width
        out = cv2.resize(square, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return out


def _on_canvas(patch: np.ndarray, side: int, at: tuple[int, int]) -> np.ndarray:
    canvas = np.full((side, side, 3), 210, np.uint8)
    x, y = at
    canvas[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
    return canvas


# ----------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_one_face_and_landmarks_on_it(portraits, name):
    rgb = portraits[name]
    faces = detect_faces(rgb)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.7
    assert 90 <= face.width <= 260 and 0.8 <= face.height / face.width <= 1.25

    fc = prepare_face(rgb, mode="crop")
    assert fc.faces == [face.box]
    lm = fc.source_landmarks
    assert lm.shape == (478, 3) and lm.dtype == np.float32
    p68 = landmarks68(lm)
    eye_l, eye_r = p68[36:42].mean(0), p68[42:48].mean(0)
    for eye in (eye_l, eye_r):
        assert face.x0 < eye[0] < face.x1 and face.y0 < eye[1] < face.y1
    assert eye_l[0] < p68[30, 0] < eye_r[0]  # nose tip between the eyes
    mouth = p68[[48, 54]].mean(0)
    assert mouth[1] > p68[30, 1] > max(eye_l[1], eye_r[1])  # eyes, then nose, then mouth, downwards
    assert p68[8, 1] > mouth[1]  # chin below the mouth
    iod = np.linalg.norm(eye_r - eye_l)
    assert 0.3 * face.width < iod < 0.6 * face.width
    # the irises (refined mesh points 468 and 473) sit inside the eye corners
    assert p68[36, 0] < lm[468, 0] < p68[39, 0] and p68[42, 0] < lm[473, 0] < p68[45, 0]


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_landmarks_from_any_region_around_the_face(portraits, name):
    """A crop region or the whole picture as the box gives the same points as the detector box."""
    rgb = portraits[name]
    fc = prepare_face(rgb, mode="full")
    iod = np.linalg.norm(fc.source_landmarks[33, :2] - fc.source_landmarks[263, :2])
    for region in (fc.box, (0, 0, rgb.shape[1], rgb.shape[0])):
        lm = face_landmarks(rgb, region)
        assert np.median(np.linalg.norm(lm[:, :2] - fc.source_landmarks[:, :2], axis=1)) < 0.03 * iod
    with pytest.raises(NoFaceError, match="could not place its landmarks"):
        face_landmarks(np.full((300, 300, 3), 128, np.uint8), (100, 100, 200, 200))


@pytest.mark.parametrize("face_px", [80, 45])
def test_small_face_in_big_picture_is_found(face_px):
    """Small faces in a 2000 px picture: 80 px (at the whole-picture pass's limit) and 45 px (tiles only)."""
    rgb = _on_canvas(_scaled_face(mf.astronaut(), face_px), 2000, (1400, 300))
    faces = detect_faces(rgb)
    assert len(faces) == 1
    face = faces[0]
    assert 0.75 * face_px <= face.width <= 1.25 * face_px  # small boxes vary with their surroundings
    assert 1400 < face.x0 and face.x1 < 1400 + 3 * face_px and 300 < face.y0 and face.y1 < 300 + 3 * face_px
    if face_px >= MIN_FACE_SIDE:
        fc = prepare_face(rgb, mode="full")
        assert fc.box[0] <= face.x0 and fc.box[2] >= face.x1


# --------------------------------------------------------------------------------- choice and errors


@pytest.fixture(scope="module")
def two_faces(portraits) -> np.ndarray:
    """Astronaut (left, box ~125 px) and Hopper (right, box ~115 px) side by side."""
    left = _scaled_face(portraits["astronaut"], 125, pad=1.4)
    right = _scaled_face(portraits["hopper"], 115, pad=1.4)
    h = max(left.shape[0], right.shape[0])
    panels = [cv2.copyMakeBorder(p, 0, h - p.shape[0], 0, 0, cv2.BORDER_REPLICATE) for p in (left, right)]
    return np.ascontiguousarray(np.hstack(panels))


def test_two_similar_faces_are_ambiguous(two_faces):
    with pytest.raises(AmbiguousFaceError) as err:
        prepare_face(two_faces)
    msg = str(err.value)
    assert msg.startswith("found 2 faces: #0 at x=") and ", #1 at x=" in msg
    assert "--face-index N" in msg
    sizes = [tuple(map(int, m)) for m in re.findall(r"\((\d+)x(\d+) px\)", msg)]
    assert len(sizes) == 2 and sizes[0][0] * sizes[0][1] >= sizes[1][0] * sizes[1][1]

    with pytest.raises(AmbiguousFaceError, match=r"--face-index 2 is out of range: found 2 faces.*N from 0 to 1"):
        prepare_face(two_faces, face_index=2)


def test_face_index_picks_left_and_right(two_faces):
    mid = two_faces.shape[1] / 2
    first = prepare_face(two_faces, face_index=0)
    second = prepare_face(two_faces, face_index=1)
    assert len(first.faces) == 2 and first.faces == second.faces
    # #0 is the larger face, the astronaut on the left; #1 the one on the right
    assert first.source_landmarks[:, 0].max() < mid < second.source_landmarks[:, 0].min()
    for fc, face in ((first, first.faces[0]), (second, first.faces[1])):
        x0, y0, x1, y1 = face
        centre = landmarks68(fc.source_landmarks)[[36, 45, 30]].mean(0)
        assert x0 < centre[0] < x1 and y0 < centre[1] < y1


@pytest.mark.parametrize("picture", ["coffee", "flat"])
def test_no_face(picture):
    from skimage import data

    rgb = data.coffee() if picture == "coffee" else np.full((480, 640, 3), (90, 140, 200), np.uint8)
    assert detect_faces(rgb) == []
    with pytest.raises(NoFaceError, match=r"^no face found in my.png; use a photo with a clearly visible"):
        prepare_face(rgb, name="my.png")


def test_tiny_face_is_refused_with_its_size():
    rgb = _on_canvas(_scaled_face(mf.astronaut(), 50), 1600, (300, 900))
    with pytest.raises(NoFaceError) as err:
        prepare_face(rgb)
    msg = str(err.value)
    w, h = map(int, re.search(r"only (\d+)x(\d+) px", msg).groups())
    assert 40 <= min(w, h) < MIN_FACE_SIDE
    assert f"at least {MIN_FACE_SIDE}x{MIN_FACE_SIDE} px" in msg


# ----------------------------------------------------------------------------------------- modes


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_modes(portraits, name, mode):
    rgb = portraits[name]
    size = 512 if mode == "full" else 256
    fc = prepare_face(rgb, mode=mode, size=size)
    H, W = rgb.shape[:2]
    assert fc.mode == mode and fc.size == size and fc.source is rgb
    assert fc.image.shape == (size, size, 3) and fc.image.dtype == np.uint8
    assert fc.landmarks.shape == (478, 3) and fc.landmarks.dtype == np.float32

    geom = crop_geometry(landmarks68(fc.source_landmarks), W, H)
    expected_box = {
        "crop": geom.face_box,
        "full": geom.face_box,
        "extcrop": geom.crop_box,
        "extfull": geom.crop_box,
        "resize": (0, 0, W, H),
    }[mode]
    assert fc.box == expected_box
    x0, y0, x1, y1 = fc.box
    assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    assert fc.pastes_back == (mode in ("full", "extfull"))

    # the image is the box, resized; the crop landmarks are the source landmarks through the box
    ref_img = cv2.resize(rgb[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(fc.image, ref_img)
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    src = fc.source_landmarks.astype(np.float64)
    np.testing.assert_allclose(fc.landmarks[:, 0], (src[:, 0] - x0) * sx, atol=1e-3)
    np.testing.assert_allclose(fc.landmarks[:, 1], (src[:, 1] - y0) * sy, atol=1e-3)
    np.testing.assert_allclose(fc.landmarks[:, 2], src[:, 2] * sx, atol=1e-3)

    # the whole face is in the crop, and the crop is mostly face in the crop modes
    p68 = landmarks68(fc.landmarks)
    assert p68.min() > 0 and p68.max() < size
    if mode in ("crop", "full"):
        iod = np.linalg.norm(p68[[42, 43, 44, 45, 46, 47]].mean(0) - p68[[36, 37, 38, 39, 40, 41]].mean(0))
        assert 0.2 * size < iod < 0.45 * size


def test_crop_aligns_the_face_alike_in_both_portraits(portraits):
    """SadTalker's quad puts the eyes and mouth at nearly the same place in every 'crop' image."""
    spots = []
    for rgb in portraits.values():
        p68 = landmarks68(prepare_face(rgb, mode="crop").landmarks)
        spots.append(np.stack([p68[36:42].mean(0), p68[42:48].mean(0), p68[[48, 54]].mean(0)]))
    assert np.abs(spots[0] - spots[1]).max() < 0.06 * 256


def test_huge_face_shrink_path_boxes_in_original_pixels(portraits):
    """A face quad over 2048 px: SadTalker shrinks the picture; our box is in the original's pixels."""
    rgb = portraits["hopper"]
    big = cv2.resize(rgb, None, fx=6.2, fy=6.2, interpolation=cv2.INTER_LINEAR)
    fc_big = prepare_face(big, mode="full")
    geom = crop_geometry(landmarks68(fc_big.source_landmarks), big.shape[1], big.shape[0])
    assert geom.shrink >= 2 and geom.rsize[0] < big.shape[1]
    # the same face region relative to the face as in the small picture: crop landmarks agree
    fc_small = prepare_face(rgb, mode="full")
    d = landmarks68(fc_big.landmarks) - landmarks68(fc_small.landmarks)
    assert np.abs(d).max() < 3.0, np.abs(d).max()
    assert np.allclose(np.array(fc_big.box) / 6.2, fc_small.box, atol=4)


# ---------------------------------------------------------------------------- 68 points and geometry


def test_landmarks68_table_is_mirror_symmetric_on_the_canonical_mesh():
    with np.load(REPO / "talker" / "data" / "canonical_face_mesh.npz") as z:
        v = z["V"][:, :3].astype(np.float64)
    mesh = np.zeros((478, 3))
    mesh[:468] = v * (1, -1, 1)  # y down, as in pictures
    p = landmarks68(mesh)
    assert p.shape == (68, 2) and len(IBUG68_FROM_MESH) == 68
    pairs = (
        [(i, 16 - i) for i in range(8)]
        + [(17 + i, 26 - i) for i in range(5)]
        + [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
        + [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)]
    )
    for a, b in pairs:
        assert p[a, 0] == pytest.approx(-p[b, 0], abs=1e-4) and p[a, 1] == pytest.approx(p[b, 1], abs=1e-4)
        assert p[a, 0] < 0  # iBUG's first of a pair is on the image left
    assert np.all(np.diff(p[0:9, 1]) > 0)  # jaw goes down to the chin
    assert p[8, 1] == p[:, 1].max()
    assert np.all(np.diff(p[27:31, 1]) > 0)  # nose ridge top to tip
    tip = IBUG68_FROM_MESH[30][0]
    assert tip == int(np.argmax(v[:, 2]))  # iBUG 30 is the most forward vertex
    assert p[37, 1] < p[36, 1] and p[41, 1] > p[36, 1]  # upper lid above, lower lid below the corner


def test_crop_geometry_matches_sadtalker(ref):
    src = ref["source_rgb"]
    H, W = src.shape[:2]
    geom = crop_geometry(ref["lm68_source"], W, H)
    assert geom.rsize == tuple(ref["rsize"]) and geom.shrink == 1
    assert geom.crop_box == tuple(ref["crop_box"])
    assert np.array_equal(np.array(geom.quad), ref["quad"])  # bit for bit
    assert geom.info_size == tuple(ref["crop_info_size"])
    x0, y0, x1, y1 = geom.region("crop")
    assert np.array_equal(src[y0:y1, x0:x1], ref["crop_image"])
    x0, y0, x1, y1 = geom.region("extcrop")
    assert src[y0:y1, x0:x1].shape == tuple(ref["ext_crop_shape"])
    assert geom.crop_box == tuple(ref["ext_crop_box"]) and np.array_equal(np.array(geom.quad), ref["ext_quad"])
    assert np.array_equal(cut(src, geom.region("crop"), 256), ref["frame256"])
    assert face_region(_as_478(ref["lm68_source"]), "crop", W, H) == geom.face_box


def _as_478(lm68: np.ndarray) -> np.ndarray:
    """478 mesh points that landmarks68 turns back into ``lm68`` (each table vertex set to its point)."""
    out = np.zeros((478, 3), np.float32)
    for (a, b), p in zip(IBUG68_FROM_MESH, lm68):
        out[a, :2] = p
        out[b, :2] = p
    return out


def _abs_quad(geom) -> np.ndarray:
    """The quad's bounding box (lx, ly, rx, ry) in picture pixels, without SadTalker's +0.5."""
    clx, cly = geom.crop_box[:2]
    return np.array(geom.quad) + (clx, cly, clx, cly) - 0.5


def test_crop_geometry_clamped_face_too_large(ref):
    """A face larger than the photo: crop box = whole photo, quad not shifted, y clamped with the width."""
    lm = ref["lm68_source"].astype(np.float64)
    big = (lm - lm.mean(0)) * 2.2
    # where the quad of this face lies, measured on a canvas large enough for nothing to clamp
    free = _abs_quad(crop_geometry((big + 5000).astype(np.float32), 10000, 10000)) - 5000
    assert free[2] - free[0] > 440  # wider than the 400 px photo
    W, H = 400, 480
    # centre it at x = 200 and put its top at y = -10, so its bottom is below 400 but above 480
    shift = (200 - (free[0] + free[2]) / 2, -10 - free[1])
    assert W + 20 < free[3] + shift[1] < H
    geom = crop_geometry((big + shift).astype(np.float32), W, H)
    assert geom.crop_box == (0, 0, W, H) and geom.shrink == 1
    assert geom.quad == (0.0, 0.0, float(W), float(W))  # the bottom clamped to the width, not the height
    assert geom.face_box == (0, 0, W, W) and geom.info_size == (W, W)


def test_crop_geometry_shrink(ref):
    """A quad of 2048 px or more: the picture is treated at 1/shrink of its size (rounded)."""
    lm = ref["lm68_source"].astype(np.float64)
    small = crop_geometry(lm, 400, 480)
    geom = crop_geometry((lm * 11).astype(np.float32), 4400, 5280)
    qsize = (small.quad[2] - small.quad[0]) * 11  # the quad's side at 11x
    assert geom.shrink == int(qsize // 1024) >= 2
    assert geom.rsize == (round(4400 / geom.shrink), round(5280 / geom.shrink))
    # the quad is the same at 11/shrink the scale; the border and crop box up to integer rounding
    k = 11 / geom.shrink
    np.testing.assert_allclose(_abs_quad(geom), _abs_quad(small) * k, atol=0.01)
    np.testing.assert_allclose(geom.crop_box, np.array(small.crop_box) * k, atol=k + 1)
    # face_region reports that box in the original picture's pixels
    box = face_region(_as_478((lm * 11).astype(np.float32)), "extfull", 4400, 5280)
    np.testing.assert_allclose(box, np.array(geom.crop_box) * geom.shrink, atol=geom.shrink)


def test_to_crop_pixels_inverts_by_the_box():
    pts = np.array([[10.0, 20.0, 5.0], [110.0, 420.0, -5.0]], np.float32)
    out = to_crop_pixels(pts, (10, 20, 110, 420), 256)
    np.testing.assert_allclose(out, [[0, 0, 12.8], [256, 256, -12.8]], atol=1e-5)


def test_import_does_no_work():
    code = ("import sys, talker.face.detect as d; assert not d._networks, 'a network loaded on import'; "
            "assert 'mediapipe' not in sys.modules, 'mediapipe imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
