"""The embedded renderer on real portraits: identity at rest, untouched surroundings, mouth and lid
motion measured by the face mesh on the rendered frames, pose directions, no holes, streaming memory."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

import media_factory as mf
from renderer.embedded import EmbeddedRenderer
from renderer.embedded.mesh import (
    EYES,
    FACE_OVAL,
    LIP_INNER_LOWER,
    LIP_INNER_UPPER,
    LIP_OUTER_LOWER,
    LIP_OUTER_UPPER,
    build_rings,
    canonical,
    eye_triangles,
    lip_rings,
    mouth_triangles,
)
from talker.errors import SpaceMismatchError
from talker.face import prepare_face
from talker.types import EMBEDDED_CHANNELS, PREPROCESS_MODES, CoeffTrack


def row(**values: float) -> np.ndarray:
    r = np.zeros(len(EMBEDDED_CHANNELS), np.float32)
    for name, v in values.items():
        r[EMBEDDED_CHANNELS.index(name)] = v
    return r


def render(renderer: EmbeddedRenderer, *rows: np.ndarray) -> np.ndarray:
    track = CoeffTrack(np.stack(rows), "embedded")
    return np.concatenate(list(renderer.render(track, batch_size=4)))


@pytest.fixture(scope="module")
def portraits() -> dict[str, np.ndarray]:
    return {"astronaut": mf.astronaut(), "hopper": mf.grace_hopper()}


@pytest.fixture(scope="module")
def faces(portraits):
    return {name: prepare_face(rgb, "crop", 256) for name, rgb in portraits.items()}


@pytest.fixture(scope="module")
def renderers(faces):
    return {name: EmbeddedRenderer(face) for name, face in faces.items()}


def measure(rgb: np.ndarray) -> dict[str, float | np.ndarray]:
    """The face mesh on a rendered frame: mouth (13-14) and eye (159-145, 386-374) openings in IODs
    (iris centre to iris centre), and the nose tip (x, y) in pixels."""
    from talker.face import face_landmarks

    h, w = rgb.shape[:2]
    p = face_landmarks(rgb, (0, 0, w, h))[:, :2].astype(np.float64)
    iod = np.linalg.norm(p[468] - p[473])
    return {
        "mouth": np.linalg.norm(p[13] - p[14]) / iod,
        "eyes": (np.linalg.norm(p[159] - p[145]) + np.linalg.norm(p[386] - p[374])) / (2 * iod),
        "nose": p[1],
    }


def outer_ring_mask(face) -> np.ndarray:
    """True inside the outer falloff ring (grown by 1 px for the rasteriser's edge pixels)."""
    rings = build_rings(np.asarray(face.landmarks, np.float64), face.size)
    mask = np.zeros((face.size, face.size), np.uint8)
    cv2.fillPoly(mask, [np.round(rings.xy[-1]).astype(np.int32)], 1)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0


# --- topology ---------------------------------------------------------------------------------


def test_mesh_openings_and_fills():
    _, skin = canonical()
    edges: dict[tuple[int, int], int] = {}
    for tri in skin.tolist():
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            key = (min(a, b), max(a, b))
            edges[key] = edges.get(key, 0) + 1
    boundary = {v for e, n in edges.items() if n == 1 for v in e}
    openings = set(FACE_OVAL) | set(LIP_INNER_UPPER + LIP_INNER_LOWER) | {v for e in EYES for v in e.contour}
    assert boundary == openings  # the skin mesh has exactly four holes: oval, mouth, two eyes
    assert len(mouth_triangles()) == 18 and set(mouth_triangles().ravel()) == set(LIP_INNER_UPPER + LIP_INNER_LOWER)
    upper, lower = lip_rings()
    assert upper.shape == lower.shape == (4, 9)
    assert list(upper[-1]) == list(LIP_OUTER_UPPER[1:-1]) and list(lower[-1]) == list(LIP_OUTER_LOWER[1:-1])


def test_unfold_opens_the_smile_fold(faces, renderers):
    """The astronaut's mediapipe mesh folds over at a smiling mouth corner; the renderer's rest
    pose opens it by moving a vertex or two by under 2 px."""
    _, skin = canonical()

    def folded(points):
        e1, e2 = points[skin[:, 1], :2] - points[skin[:, 0], :2], points[skin[:, 2], :2] - points[skin[:, 0], :2]
        area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        return {tuple(t) for t in skin[area > 0.5].tolist()}  # the face's triangles have negative area here

    raw = np.asarray(faces["astronaut"].landmarks, np.float64)
    rest = renderers["astronaut"].landmarks(row())
    assert (291, 287, 409) in folded(raw) and (291, 287, 409) not in folded(rest)
    moved = np.linalg.norm(rest - raw, axis=1)
    assert 1 <= (moved > 1e-3).sum() <= 4 and moved.max() < 2.0


def test_eye_fill_uses_iris_centre(faces):
    tris = eye_triangles(np.asarray(faces["astronaut"].landmarks, np.float64))
    assert len(tris) == 32 and {468, 473} <= set(tris.ravel())


# --- identity and untouched surroundings ------------------------------------------------------


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_every_mode_rest_is_source_and_border_is_untouched(portraits, mode):
    """crop modes draw the S x S crop; full / extfull the face box at the portrait's own resolution."""
    face = prepare_face(portraits["hopper"], mode, 256)
    renderer = EmbeddedRenderer(face)
    rest, moved = render(renderer, row(), row(jaw_open=1.0, yaw=0.15, blink=1.0))
    x0, y0, x1, y1 = face.box
    source = face.source[y0:y1, x0:x1] if face.pastes_back else face.image
    assert renderer.frame_size == (source.shape[1], source.shape[0]) and rest.shape == source.shape
    if face.pastes_back:
        assert source.shape[0] > 256  # warped at the picture's resolution, not at 256
    assert np.abs(renderer.landmarks(row()) - face.landmarks).max() < 2.0  # reported in crop pixels
    diff = np.abs(rest.astype(int) - source)
    assert diff.mean() < 1.0 and diff.max() <= 3
    border = np.ones(source.shape[:2], bool)
    border[3:-3, 3:-3] = False
    assert np.array_equal(moved[border], source[border])
    assert np.abs(moved.astype(int) - source).max() > 50  # it did move


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_outside_outer_ring_exactly_source(faces, renderers, name):
    face = faces[name]
    (frame,) = render(renderers[name], row(jaw_open=1.0, yaw=0.15))
    outside = ~outer_ring_mask(face)
    assert outside.sum() > 0.2 * outside.size
    assert np.array_equal(frame[outside], face.image[outside])


# --- mouth and lids, measured on the rendered frames ------------------------------------------


def test_jaw_opens_monotonically_and_closure_wins(renderers):
    frames = render(
        renderers["hopper"], row(), row(jaw_open=0.5), row(jaw_open=1.0), row(jaw_open=0.6, lip_close=1.0)
    )
    opening = [measure(f)["mouth"] for f in frames]
    assert opening[0] < opening[1] < opening[2]
    assert opening[2] > 0.25  # ~0.35 IOD by design
    assert opening[3] <= 0.3 * opening[2]


def test_open_mouthed_photo_closes(renderers):
    """The astronaut smiles with her teeth showing: jaw_open below that opening leaves it as it is,
    more opens it further, and lip_close=1 shuts it."""
    rest, wide, closed, closed_open = render(
        renderers["astronaut"], row(), row(jaw_open=1.0), row(lip_close=1.0), row(jaw_open=0.6, lip_close=1.0)
    )
    source = measure(rest)["mouth"]
    assert source > 0.1
    assert measure(wide)["mouth"] > source + 0.05
    assert measure(closed)["mouth"] < 0.2 * source
    assert measure(closed_open)["mouth"] < 0.3 * measure(wide)["mouth"]


def test_lip_close_meets_in_the_driven_mesh(renderers):
    for r in renderers.values():
        pts = r.landmarks(row(jaw_open=1.0, lip_close=1.0))
        gap = np.linalg.norm(pts[list(LIP_INNER_LOWER), :2] - pts[list(LIP_INNER_UPPER), :2], axis=1)
        assert gap.max() < 0.05


def test_tuck_brings_lower_lip_under_upper_teeth(renderers):
    r = renderers["hopper"]
    iod = r._model.frame.iod
    pts = r.landmarks(row(jaw_open=0.5, lip_tuck=1.0))
    gap = pts[14, 1] - pts[13, 1]
    assert 0.03 * iod < gap < 0.1 * iod
    (frame,) = render(r, row(jaw_open=0.5, lip_tuck=1.0))
    between = frame[int(pts[13, 1]) + 1 : int(pts[14, 1]), int(pts[13, 0]) - 3 : int(pts[13, 0]) + 4]
    assert between.mean() > frame[int(pts[14, 1]) + 2, int(pts[14, 0])].mean()  # teeth are brighter than the lip


def test_blink_closes_the_eyes(renderers):
    open_, shut = render(renderers["astronaut"], row(), row(blink=1.0))
    assert measure(shut)["eyes"] < 0.4 * measure(open_)["eyes"]
    for r in renderers.values():
        pts = r.landmarks(row(blink=1.0))
        for upper, lower in ((159, 145), (386, 374)):
            assert np.linalg.norm(pts[upper] - pts[lower]) < 0.02 * r._model.frame.iod


def test_blink_is_not_a_frozen_eye(renderers):
    """The closed lid replaces the eye: the pixels between the source lids change a lot."""
    r = renderers["astronaut"]
    (shut,) = render(r, row(blink=1.0))
    src = r.face.landmarks
    x, y = int(src[468, 0]), int(src[468, 1])
    around = np.s_[y - 1 : y + 2, x - 2 : x + 3]
    assert np.abs(shut[around].astype(int) - r.face.image[around]).mean() > 30


def test_a_grey_portrait_gets_a_grey_mouth_interior(portraits):
    """Teeth, cavity and tongue come from the portrait's own colours (the teeth from its eye whites):
    a black-and-white photo's open mouth stays grey (before: cream teeth, RGB ~ 240, 234, 218)."""
    grey = np.repeat(cv2.cvtColor(portraits["hopper"], cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    r = EmbeddedRenderer(prepare_face(grey, "crop", 256))
    rw = row(jaw_open=1.0)
    (frame,) = render(r, rw)
    index, (x0, y0, x1, y1) = r.coverage(rw)
    mouth = (index >= r._mouth_first) & (index < r._mouth_first + len(mouth_triangles()))
    inside = frame[y0:y1, x0:x1][cv2.erode(mouth.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0].astype(int)
    assert len(inside) > 200 and inside.max() > 100  # an open mouth, teeth showing
    assert np.abs(np.diff(inside, axis=1)).max() <= 2  # R = G = B


# --- pose -----------------------------------------------------------------------------------------


def test_pose_moves_the_nose_the_right_way(renderers):
    r = renderers["astronaut"]
    rest, yaw, pitch, roll = render(r, row(), row(yaw=0.15), row(pitch=0.15), row(roll=0.15))
    nose = [measure(f)["nose"] for f in (rest, yaw, pitch)]
    iod = r._model.frame.iod
    assert nose[1][0] < nose[0][0] - 0.1 * iod  # yaw + turns the face to the viewer's left
    assert nose[2][1] > nose[0][1] + 0.1 * iod  # pitch + nods down
    top_rest, top_roll = r.landmarks(row())[10], r.landmarks(row(roll=0.15))[10]
    assert top_roll[0] > top_rest[0] + 0.1 * iod  # roll + tilts clockwise: the forehead goes right
    shift = r.landmarks(row(tx=0.2, ty=-0.1))[1] - r.landmarks(row())[1]
    assert np.allclose(shift[:2], [0.2 * iod, -0.1 * iod], atol=0.02 * iod)


@pytest.mark.parametrize("yaw", [-0.8, -0.5, 0.3, 0.5, 0.8])
def test_turned_face_draws_no_folded_triangle_and_no_hole(renderers, yaw):
    """Turned up to 45 degrees (with the jaw open and the eyes shut), the mesh folds on the far side;
    the folded triangles (their texture would show mirrored: a crack, a doubled eye) are drawn
    behind the others: they show on at most 0.5 % of the drawn pixels (where nothing else covers), and
    every pixel inside the driven face oval is drawn by a triangle (no hole)."""
    for name, r in renderers.items():
        rw = row(yaw=yaw, jaw_open=0.6, blink=1.0, pitch=0.1)
        folds = r.folds(rw)
        if abs(yaw) >= 0.8:
            assert folds.sum() > 5, name  # the check has something to find
        index, (x0, y0, x1, y1) = r.coverage(rw)
        drawn = index[index < len(folds)]
        assert folds[drawn].sum() <= 0.005 * drawn.size, name
        oval = np.zeros(index.shape, np.uint8)
        pts = r.landmarks(rw)[list(FACE_OVAL), :2] - (x0, y0)
        cv2.fillPoly(oval, [np.round(pts).astype(np.int32)], 1)
        inside = cv2.erode(oval, np.ones((3, 3), np.uint8)) > 0
        assert (index[inside] < len(folds)).all(), name


def test_no_holes_or_stray_pixels(renderers):
    """Strong combined motions leave no holes: outside the (painted) mouth every pixel's colour lies
    within the range of the source's colours around it (a warp only moves and blends them), and
    there are no black pixels where the source has none nearby."""
    strong = [
        row(jaw_open=1.0, yaw=0.15),
        row(jaw_open=1.0, yaw=-0.15, pitch=0.12, blink=1.0),
        row(lip_round=1.0, jaw_open=0.3, roll=-0.15, tx=0.15),
        row(lip_width=1.0, upper_lip_raise=1.0, brow_raise=1.0, pitch=-0.12),
        row(lip_tuck=1.0, lip_close=1.0, jaw_open=0.8, brow_raise=-1.0, ty=0.15),
    ]
    for name, r in renderers.items():
        reach = int(0.6 * r._model.frame.iod)  # more than any motion above
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)
        low = cv2.erode(r.face.image, disk).astype(int) - 20  # bicubic sampling overshoots edges a little
        high = cv2.dilate(r.face.image, disk).astype(int) + 20
        darkest_near = cv2.erode(r.face.image.max(axis=2), disk)
        for rw, frame in zip(strong, render(r, *strong)):
            pts = r.landmarks(rw)
            mouth = np.zeros(frame.shape[:2], np.uint8)
            lips = LIP_OUTER_UPPER + LIP_OUTER_LOWER[-2:0:-1]
            cv2.fillPoly(mouth, [np.round(pts[list(lips), :2]).astype(np.int32)], 1)
            elsewhere = cv2.dilate(mouth, np.ones((9, 9), np.uint8)) == 0
            img = frame.astype(int)
            black = (img.max(axis=2) < 10) & (darkest_near >= 30) & elsewhere
            assert black.sum() == 0, name
            unexplained = ((img < low) | (img > high)).any(axis=2) & elsewhere
            assert unexplained.sum() == 0, (name, int(unexplained.sum()))


# --- streaming and errors -------------------------------------------------------------------------


def _peak_bytes(renderer: EmbeddedRenderer, frames: int) -> tuple[int, int]:
    t = np.arange(frames) / 25.0
    values = np.zeros((frames, len(EMBEDDED_CHANNELS)), np.float32)
    values[:, 0] = 0.5 + 0.5 * np.sin(7 * t)
    values[:, 8] = 0.1 * np.sin(t)
    track = CoeffTrack(values, "embedded")
    tracemalloc.start()
    tracemalloc.reset_peak()
    count = 0
    for batch in renderer.render(track, batch_size=8):
        count += len(batch)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return count, peak


def test_render_streams_with_flat_memory(renderers):
    r = renderers["hopper"]
    n30, peak30 = _peak_bytes(r, 30)
    n300, peak300 = _peak_bytes(r, 300)
    assert (n30, n300) == (30, 300)
    assert peak300 < peak30 + 512 * 1024


def test_batches_cover_the_track_in_order(renderers):
    r = renderers["hopper"]
    rows = [row(jaw_open=v) for v in np.linspace(0.0, 1.0, 11)]
    batches = list(r.render(CoeffTrack(np.stack(rows), "embedded"), batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 3]
    assert all(b.dtype == np.uint8 and b.shape[1:] == (256, 256, 3) for b in batches)
    assert np.array_equal(batches[2][2], render(r, rows[10])[0])


def test_bad_tracks_are_refused(renderers):
    with pytest.raises(ValueError, match="13 columns"):
        renderers["hopper"].render(CoeffTrack(np.zeros((5, 12), np.float32), "embedded"))
    values = np.zeros((5, len(EMBEDDED_CHANNELS)), np.float32)
    values[2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        renderers["hopper"].render(CoeffTrack(values, "embedded"))


def test_sadtalker_track_is_refused(renderers):
    track = CoeffTrack(np.zeros((5, 70), np.float32), "sadtalker")
    with pytest.raises(SpaceMismatchError, match="embedded renderer draws 'embedded'.*'sadtalker'"):
        renderers["hopper"].render(track)


def test_size_512(portraits):
    face = prepare_face(portraits["astronaut"], "crop", 512)
    rest, moved = render(EmbeddedRenderer(face), row(), row(jaw_open=1.0, blink=1.0))
    assert rest.shape == (512, 512, 3) and np.abs(rest.astype(int) - face.image).mean() < 1.0
    assert np.abs(moved.astype(int) - face.image).max() > 50
