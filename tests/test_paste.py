"""Paste-back of rendered crops: exact surroundings, no seam at the box edge, output sizes per mode."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import media_factory as mf
from enhance.paste import feather_mask, resize_frames, to_output_frames
from renderer.embedded import EmbeddedRenderer
from talker.face import prepare_face
from talker.types import EMBEDDED_CHANNELS, PREPROCESS_MODES, CoeffTrack


def moving_track(frames: int) -> CoeffTrack:
    t = np.arange(frames) / 25.0
    values = np.zeros((frames, len(EMBEDDED_CHANNELS)), np.float32)
    values[:, EMBEDDED_CHANNELS.index("jaw_open")] = 0.5 + 0.5 * np.sin(9 * t)
    values[:, EMBEDDED_CHANNELS.index("yaw")] = 0.15 * np.sin(3 * t)
    values[:, EMBEDDED_CHANNELS.index("pitch")] = 0.08 * np.cos(2 * t)
    values[:, EMBEDDED_CHANNELS.index("blink")] = t > 0.1
    return CoeffTrack(values, "embedded")


@pytest.fixture(scope="module")
def portraits() -> dict[str, np.ndarray]:
    return {"astronaut": mf.astronaut(), "hopper": mf.grace_hopper()}


@pytest.fixture(scope="module")
def pasted(portraits):
    """(face, output frames) for full and extfull on both portraits, rendered with strong motion."""
    out = {}
    for name, rgb in portraits.items():
        for mode in ("full", "extfull"):
            face = prepare_face(rgb, mode, 256)
            frames = np.concatenate(list(EmbeddedRenderer(face).render(moving_track(6))))
            out[name, mode] = (face, to_output_frames(frames, face))
    return out


def test_outside_the_box_is_exactly_the_source(pasted):
    for face, frames in pasted.values():
        x0, y0, x1, y1 = face.box
        outside = np.ones(face.source.shape[:2], bool)
        outside[y0:y1, x0:x1] = False
        assert frames.shape == (6, *face.source.shape)
        assert np.array_equal(frames[:, outside], np.broadcast_to(face.source[outside], frames[:, outside].shape))
        assert np.abs(frames[:, y0:y1, x0:x1].astype(int) - face.source[y0:y1, x0:x1]).max() > 50  # the face moved


def _seam_energy(img: np.ndarray, box: tuple[int, int, int, int], band: int) -> float:
    """Mean squared step (per channel) between neighbouring pixels across the box edge, on the
    pixel pairs straddling the edge and on those up to ``band`` pixels either side of it (edges
    lying on the picture border are skipped)."""
    g = img.astype(np.float64)
    x0, y0, x1, y1 = box
    h, w = g.shape[:2]
    steps = []
    for k in range(-band, band + 1):
        if y0 > band:
            steps.append(g[y0 + k, x0:x1] - g[y0 + k - 1, x0:x1])
        if y1 < h - band:
            steps.append(g[y1 + k, x0:x1] - g[y1 + k - 1, x0:x1])
        if x0 > band:
            steps.append(g[y0:y1, x0 + k] - g[y0:y1, x0 + k - 1])
        if x1 < w - band:
            steps.append(g[y0:y1, x1 + k] - g[y0:y1, x1 + k - 1])
    return float(np.mean(np.concatenate([s.ravel() for s in steps]) ** 2))


def test_no_seam_at_the_box_edge(pasted):
    for (name, mode), (face, frames) in pasted.items():
        for band in (0, 2):
            source = _seam_energy(face.source, face.box, band)
            for frame in frames:
                assert _seam_energy(frame, face.box, band) <= 1.05 * source + 1.0, (name, mode, band)


def test_seam_measure_sees_a_hard_paste(pasted):
    """The measure above can fail: a crop pasted without feathering, 10% too dark, shows a seam."""
    face, frames = pasted["astronaut", "full"]
    x0, y0, x1, y1 = face.box
    hard = face.source.copy()
    hard[y0:y1, x0:x1] = (frames[0, y0:y1, x0:x1] * 0.9).astype(np.uint8)
    assert _seam_energy(hard, face.box, 0) > 1.5 * _seam_energy(face.source, face.box, 0)


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_output_size_for_every_mode(portraits, mode):
    """full / extfull: the picture's size; crop / extcrop / resize: exactly --size x --size, the
    render as it is (the hopper picture is 512 x 600 px and its extcrop box 425 x 412 px)."""
    face = prepare_face(portraits["hopper"], mode, 256)
    frames = np.concatenate(list(EmbeddedRenderer(face).render(moving_track(3))))
    out = to_output_frames(frames, face)
    width, height = face.output_size
    assert out.shape == (3, height, width, 3) and out.dtype == np.uint8
    if face.pastes_back:
        assert (height, width) == face.source.shape[:2]
    else:
        assert (width, height) == (256, 256) and np.array_equal(out, frames)


def assert_like_opencv(got: np.ndarray, want: np.ndarray, exact: bool) -> None:
    """The torch resize against OpenCV's. Enlarging (exact): bilinear up to rounding (cv2 uses 11-bit
    fixed point). Shrinking along any side: antialiased, close to cv2's INTER_AREA (both shrink) or
    INTER_LINEAR (one shrinks; cv2 then aliases, this does not)."""
    diff = np.abs(got.astype(int) - want)
    if exact:
        assert diff.max() <= 1
    else:
        assert diff.mean() < 2.5 and np.percentile(diff, 99) <= 12  # one pixel off: mean > 14


def test_batch_equals_frame_by_frame(pasted):
    face, _ = pasted["hopper", "full"]
    frames = np.concatenate(list(EmbeddedRenderer(face).render(moving_track(4))))
    batch = to_output_frames(frames, face)
    for k in range(len(frames)):
        assert np.array_equal(batch[k], to_output_frames(frames[k : k + 1], face)[0])


def test_resize_frames_matches_opencv_per_frame():
    noise = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    smooth = np.stack([cv2.resize(mf.astronaut()[100 * k: 100 * k + 200, 150:350], (64, 64), interpolation=cv2.INTER_AREA)
                       for k in range(3)])
    for frames, size, interpolation in ((noise, (80, 72), cv2.INTER_LINEAR), (smooth, (40, 50), cv2.INTER_AREA),
                                        (noise, (64, 64), None)):
        out = resize_frames(frames, *size)
        assert out.shape == (len(frames), size[1], size[0], 3) and out.dtype == np.uint8
        for frame, got in zip(frames, out):
            if interpolation is None:
                assert np.array_equal(got, frame)
            else:
                assert_like_opencv(got, cv2.resize(frame, size, interpolation=interpolation),
                                  exact=interpolation == cv2.INTER_LINEAR)


def test_feather_mask_shape():
    mask = feather_mask(100, 60)
    assert mask.shape == (60, 100) and mask.max() == 256 and mask[30, 50] == 256
    assert mask[0, 50] < 32 and mask[30, 0] < 32 and mask[0, 0] < 4
    assert np.all(np.diff(mask[30, :50].astype(int)) >= 0)


def test_a_redrawn_crop_is_matched_to_the_picture_at_the_seam(pasted):
    """A renderer that redraws the crop border (as the neural one does), here 10 % darker with a warm
    cast, still leaves no seam: the edge difference is corrected, frame after frame, while the face in
    the middle keeps the render's own pixels."""
    for (name, mode), (face, frames) in pasted.items():
        x0, y0, x1, y1 = face.box
        crops = frames[:, y0:y1, x0:x1].astype(np.float32) * [0.9, 0.88, 0.84]
        redrawn = np.stack([cv2.resize(c, (face.size, face.size)) for c in crops]).clip(0, 255).astype(np.uint8)
        out = to_output_frames(redrawn, face)
        source = _seam_energy(face.source, face.box, 0)
        for frame in out:
            assert _seam_energy(frame, face.box, 0) <= 1.05 * source + 1.0, (name, mode)
        cy, cx, r = (y0 + y1) // 2, (x0 + x1) // 2, (y1 - y0) // 8
        centre = out[:, cy - r : cy + r, cx - r : cx + r].astype(np.float32)
        back = np.stack([cv2.resize(c, (x1 - x0, y1 - y0)) for c in redrawn]).astype(np.float32)  # S x S to the box
        expected = back[:, cy - y0 - r : cy - y0 + r, cx - x0 - r : cx - x0 + r]
        assert np.abs(centre - expected).mean() < 3.0, (name, mode)  # the face itself is not recoloured
