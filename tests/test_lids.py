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
