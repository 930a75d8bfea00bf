"""Eyelids close over the eye region only: a fringe or a glasses frame drawn over the lids of a real
portrait stays where it is during a blink while the eye closes under it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import media_factory as mf
from renderer.embedded import EmbeddedRenderer
from talker.face import cut, prepare_face
from talker.types import EMBEDDED_CHANNELS, CoeffTrack

HAIR = (62, 40, 24)
FRAME = (20, 20, 24)


def fringe(rgb: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(picture, mask): dark-brown hair with strands from the forehead over the brows, its jagged
    lower edge 0.4 of the way from the brows to the upper lids; mask (H, W) uint8 1 on the hair."""
    rng = np.random.default_rng(0)
    out, mask = rgb.copy(), np.zeros(rgb.shape[:2], np.uint8)
    iod = float(np.linalg.norm(lm[468, :2] - lm[473, :2]))
    brow, lid = lm[[105, 334], 1].mean(), lm[[159, 386], 1].mean()
    bottom, top = brow + 0.4 * (lid - brow), max(0.0, lm[10, 1] - 0.3 * iod)
    x0, x1 = lm[[33, 263], 0].min() - 0.5 * iod, lm[[33, 263], 0].max() + 0.5 * iod
    xs = np.linspace(x0, x1, 40)
    edge = np.stack([xs, bottom + rng.uniform(-0.06, 0.03, len(xs)) * iod], axis=1)
    poly = np.concatenate([[[x0, top]], edge, [[x1, top]]]).astype(np.int32)
    for img, colour in ((out, HAIR), (mask, 1)):
        cv2.fillPoly(img, [poly], colour)
    for x in rng.uniform(x0, x1, 120):  # strands, lighter and darker
        end = (int(x + rng.uniform(-8, 8)), int(bottom - rng.uniform(0, 0.1) * iod))
        cv2.line(out, (int(x), int(top)), end, tuple(int(v) for v in rng.integers(70, 110, 3) * (1, 0.7, 0.45)), 1)
    return out, mask


def glasses(rgb: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(picture, mask): black rectangular frames whose top bars cross the lids between the brows
    and the upper lids, with a bridge and the temples; mask 1 on the frame."""
    out, mask = rgb.copy(), np.zeros(rgb.shape[:2], np.uint8)
    iod = float(np.linalg.norm(lm[468, :2] - lm[473, :2]))
    t = max(2, round(0.045 * iod))
    brow, lid = lm[[105, 334], 1].mean(), lm[[159, 386], 1].mean()
    top = int(brow + 0.45 * (lid - brow))
    left, right = sorted((lm[468, :2], lm[473, :2]), key=lambda p: p[0])
    y = int(top + 0.08 * iod)
    for img, colour in ((out, FRAME), (mask, 1)):
        for c in (left, right):
            cv2.rectangle(img, (int(c[0] - 0.4 * iod), top), (int(c[0] + 0.4 * iod), int(c[1] + 0.32 * iod)), colour, t)
        cv2.line(img, (int(left[0] + 0.4 * iod), y), (int(right[0] - 0.4 * iod), y), colour, t)
        cv2.line(img, (int(left[0] - 0.4 * iod), y), (int(left[0] - 0.75 * iod), y), colour, t)
        cv2.line(img, (int(right[0] + 0.4 * iod), y), (int(right[0] + 0.75 * iod), y), colour, t)
    return out, mask


def blink_frames(renderer: EmbeddedRenderer) -> np.ndarray:
    """(2, S, S, 3): the eyes open, then shut."""
    rows = np.zeros((2, len(EMBEDDED_CHANNELS)), np.float32)
    rows[1, EMBEDDED_CHANNELS.index("blink")] = 1.0
    return np.concatenate(list(renderer.render(CoeffTrack(rows, "embedded"))))


def lid_bands(lm: np.ndarray) -> np.ndarray:
    """(256, 256) bool: per eye, the box between its corners from its brow down to its upper lid."""
    band = np.zeros((256, 256), bool)
    for corners, brow, lid in (((33, 133), 105, 159), ((362, 263), 334, 386)):
        x0, x1 = sorted(lm[list(corners), 0])
        band[int(lm[brow, 1]) : int(lm[lid, 1]), int(x0) : int(x1) + 1] = True
    return band


@pytest.mark.parametrize("portrait", ["astronaut", "hopper"])
@pytest.mark.parametrize("cover", [fringe, glasses])
def test_a_blink_closes_under_a_fringe_or_glasses_frame(portrait, cover):
    """The drawn hair / frame pixels over the lids (between brow and upper lid) stay put (under one
    grey level on average) while the eye closes; with the cover taken out of the renderer (the lids
    as one region of the mesh, the earlier renderer) the same pixels change over 5x as much."""
    rgb = {"astronaut": mf.astronaut, "hopper": mf.grace_hopper}[portrait]()
    lm = prepare_face(rgb, "crop", 256).source_landmarks
    drawn, mask = cover(rgb, lm)
    face = prepare_face(drawn, "crop", 256)
    on_cover = cut(mask * 255, face.box, 256) > 0
    renderer = EmbeddedRenderer(face)
    open_, shut = blink_frames(renderer)
    on_lids = on_cover & lid_bands(face.landmarks)
    assert on_lids.sum() > 100
    held = np.abs(shut[on_lids].astype(int) - open_[on_lids]).mean()
    renderer._cover = None
    _, dragged = blink_frames(renderer)
    moved = np.abs(dragged[on_lids].astype(int) - open_[on_lids]).mean()
    assert held < 1.0 and moved > 3.0 and held < 0.2 * moved
    for iris in face.landmarks[[468, 473], :2].astype(int):  # the eye closed: the iris is lid skin now
        around = np.s_[iris[1] - 1 : iris[1] + 2, iris[0] - 2 : iris[0] + 3]
        assert np.abs(shut[around].astype(int) - open_[around]).mean() > 20


def test_a_plain_portrait_has_no_lid_cover():
    """No fringe or frame over the lids: a blink moves the lid skin alone, drawn as one warp."""
    assert EmbeddedRenderer(prepare_face(mf.astronaut(), "crop", 256))._cover is None


def test_a_nearly_shut_eye_shows_its_lash_line_not_its_white(monkeypatch):
    """At blink 0.8 (a 512 crop) the sliver of eye between the lids takes the lash line's colour: its brightest
    pixels (95th percentile of luma over the eye fill) are much darker than the same frame's with
    the shading switched off (the white of the eye and the catch-light showing)."""
    from renderer.embedded import eyes

    monkeypatch.setattr(eyes.LidSkin, "weight", staticmethod(lambda amount: 0.0))  # the shading alone, no drawn lash line
    face = prepare_face(mf.astronaut(), "crop", 512)
    renderer = EmbeddedRenderer(face)
    row = np.zeros(len(EMBEDDED_CHANNELS), np.float32)
    row[EMBEDDED_CHANNELS.index("blink")] = 0.8
    index, (x0, y0, x1, y1) = renderer.coverage(row)
    between = np.zeros((512, 512), bool)  # the pixels the eye fill draws
    between[y0:y1, x0:x1] = (index >= renderer._eye_fill[0]) & (index < renderer._eye_fill[1])
    assert between.sum() > 20

    def brightest() -> float:
        (frame,) = renderer.render(CoeffTrack(row[None], "embedded"))
        return float(np.percentile(frame[0][between] @ np.array([0.299, 0.587, 0.114]), 95))

    shaded = brightest()
    monkeypatch.setattr(eyes, "SHADE_FROM", 0.85)  # the shading starts beyond 0.8: none
    assert shaded < brightest() - 25


def long_lashes(rgb: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(picture, mask): long, dark upper lashes, 16 strokes per eye from the upper-lid contour up
    and outward by 0.12-0.16 IOD; mask 1 on them."""
    rng = np.random.default_rng(1)
    out, mask = rgb.copy(), np.zeros(rgb.shape[:2], np.uint8)
    iod = float(np.linalg.norm(lm[468, :2] - lm[473, :2]))
    for rim, outward in (((33, 246, 161, 160, 159, 158, 157, 173, 133), -1), ((362, 398, 384, 385, 386, 387, 388, 466, 263), 1)):
        pts = lm[list(rim), :2]
        for t in rng.uniform(0.05, 0.95, 16):
            k = min(int(t * 8), 7)
            base = pts[k] + (t * 8 - k) * (pts[k + 1] - pts[k])
            length = rng.uniform(0.12, 0.16) * iod
            tip = base + length * np.array([outward * rng.uniform(0.1, 0.4), -1.0])
            for img, colour in ((out, (30, 22, 20)), (mask, 1)):
                cv2.line(img, tuple(int(v) for v in base), tuple(int(v) for v in tip), colour, 1, cv2.LINE_AA)
    return out, mask


def shut_lids(renderer: EmbeddedRenderer, iod: float) -> np.ndarray:
    """(S, S) bool: per eye, the middle 60 % of the shut upper lid, from just above its lash line
    (LASH_WIDTH + 2 px) up to 0.15 IOD above the lids' meeting line."""
    from renderer.embedded.eyes import LASH_WIDTH

    row = np.zeros(len(EMBEDDED_CHANNELS), np.float32)
    row[EMBEDDED_CHANNELS.index("blink")] = 1.0
    lm = renderer.landmarks(row)
    area = np.zeros((256, 256), bool)
    for rim in ((33, 246, 161, 160, 159, 158, 157, 173, 133), (362, 398, 384, 385, 386, 387, 388, 466, 263)):
        pts = lm[list(rim), :2]
        for x in range(int(pts[0, 0] + 0.2 * (pts[-1, 0] - pts[0, 0])), int(pts[0, 0] + 0.8 * (pts[-1, 0] - pts[0, 0]))):
            y = np.interp(x, pts[:, 0], pts[:, 1])
            area[int(y - 0.15 * iod) : int(y - LASH_WIDTH * iod - 2), x] = True
    return area


def test_a_shut_lid_shows_lid_skin_not_stretched_lashes(monkeypatch):
    """A portrait with long dark upper lashes: its shut lids (above the one lash line) hold under 3 %
    dark pixels (luma under 0.6 of the skin's between the eyes), against over 3 times that with the
    lids the portrait's own stretched down (the earlier renderer: dark streaks)."""
    from renderer.embedded.eyes import LidSkin

    rgb = mf.astronaut()
    lm = prepare_face(rgb, "crop", 256).source_landmarks
    drawn, _ = long_lashes(rgb, lm)
    face = prepare_face(drawn, "crop", 256)
    iod = float(np.linalg.norm(face.landmarks[468, :2] - face.landmarks[473, :2]))
    renderer = EmbeddedRenderer(face)
    lids = shut_lids(renderer, iod)
    assert lids.sum() > 100

    bridge = face.landmarks[168, :2].astype(int)
    skin = np.median(face.image[bridge[1] - 3 : bridge[1] + 4, bridge[0] - 3 : bridge[0] + 4] @ np.array([0.299, 0.587, 0.114]))

    def dark_share() -> float:
        luma = blink_frames(renderer)[1][lids] @ np.array([0.299, 0.587, 0.114])
        return float((luma < 0.6 * skin).mean())

    lid = dark_share()
    monkeypatch.setattr(LidSkin, "weight", staticmethod(lambda amount: 0.0))
    stretched = dark_share()
    assert lid < 0.03 and stretched > 3 * lid and stretched > 0.05, (lid, stretched)


def corner_whites(rgb: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(picture, mask): the white of each eye carried 0.06 IOD past its outer corner, outside the
    landmark contour (a wedge tapering away from the corner); mask 1 on it."""
    out, mask = rgb.copy(), np.zeros(rgb.shape[:2], np.uint8)
    iod = float(np.linalg.norm(lm[468, :2] - lm[473, :2]))
    for corner, inner in ((33, 133), (263, 362)):
        c = lm[corner, :2]
        away = (c - lm[inner, :2]) / np.linalg.norm(c - lm[inner, :2])
        normal = np.array([-away[1], away[0]])
        wedge = np.array([c - 0.02 * iod * normal, c + 0.06 * iod * away, c + 0.02 * iod * normal])
        for img, colour in ((out, (236, 232, 228)), (mask, 1)):
            cv2.fillPoly(img, [np.round(wedge).astype(np.int32)], colour)
    return out, mask


def test_no_white_of_the_eye_is_left_at_the_corners_of_a_shut_eye(monkeypatch):
    """The eye white reaching past the landmark corners is covered by the shut lid: none of its
    pixels stays white (every channel over 190, within 20 of each other) in the shut frame, while with
    the lids the portrait's own over 30 % of them do."""
    from renderer.embedded.eyes import LidSkin

    rgb = mf.astronaut()
    lm = prepare_face(rgb, "crop", 256).source_landmarks
    drawn, mask = corner_whites(rgb, lm)
    face = prepare_face(drawn, "crop", 256)
    wedge = cut(mask * 255, face.box, 256) > 127
    renderer = EmbeddedRenderer(face)
    assert wedge.sum() > 6

    def white_share() -> float:
        shut = blink_frames(renderer)[1][wedge].astype(int)
        return float(((shut.min(axis=1) > 190) & (np.ptp(shut, axis=1) < 20)).mean())

    covered = white_share()
    monkeypatch.setattr(LidSkin, "weight", staticmethod(lambda amount: 0.0))
    left = white_share()
    assert covered == 0.0 and left > 0.3, (covered, left)


def test_the_far_eye_of_a_turned_face_keeps_its_own_lid():
    """Lid skin is filled in around both eyes of a frontal face, but not around an eye under
    FAR_EYE of the other's width (the far eye of a 3/4 view, whose contour the landmark model
    places least surely): there the lid closes as the portrait's own, stretched."""
    from renderer.embedded.eyes import FAR_EYE, LidSkin
    from renderer.embedded.mesh import EYES

    face = prepare_face(mf.astronaut(), "crop", 256)
    renderer = EmbeddedRenderer(face)
    assert renderer._lid_skin.eyes == [0, 1]
    source = face.source_landmarks.copy()
    far = list(EYES[1].contour)
    centre = source[far, :2].mean(axis=0)
    source[far, 0] = centre[0] + (FAR_EYE - 0.1) * (source[far, 0] - centre[0])  # the eye seen edge-on
    skin = LidSkin(face.source, source, renderer._model.frame, renderer._lash)
    assert skin.eyes == [0]
