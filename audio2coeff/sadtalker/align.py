"""Five-point alignment of a face crop to the 224 x 224 input of Deep3DFaceRecon (SPEC §3.5).

The 68 iBUG landmarks (x right, y down, pixels of the S x S crop) are flipped to y up, reduced
to five points (eye centres, nose tip, mouth corners) and fitted to five standard 3-D points by
a weak-perspective ("POS") least-squares fit. The fit gives a scale and a translation; the image
is resized by the scale (PIL bicubic) and a 224 x 224 window is cut around the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGET = 224
"""Side of the aligned image in pixels."""

TARGET_SCALE = 102.0
"""The fitted face scale is mapped to this many pixels (Deep3DFaceRecon's rescale factor)."""

# The five points of the standard 3-D landmarks (BFM similarity_Lm3D_all.mat, float32):
# left-eye centre, right-eye centre, nose tip, left and right mouth corner; X right, Y up, Z out.
LM3D_STD5 = np.array(
    [
        [-0.31148657, 0.29036078, 0.13377953],
        [0.30979887, 0.28972036, 0.13179526],
        [0.00325350, -0.04617932, 0.55244243],
        [-0.25216928, -0.38133916, 0.22405732],
        [0.24846620, -0.38128236, 0.22235769],
    ],
    dtype=np.float32,
)


@dataclass
class AlignedFace:
    """The recon network's input and how it was cut.

    image: (224, 224, 3) uint8 RGB.
    trans_params: (5,) float32 (W, H, s, t_x, t_y): source size in pixels, the scale applied and
        the fitted translation (pixels, y up). ``trans_params[2:]`` are SadTalker's crop params.
    landmarks: (68, 2) float32 the landmarks in ``image`` pixels (x right, y up as Deep3DFaceRecon
        keeps them).
    lm5: (5, 2) float32 the five points used for the fit (source pixels, y up).
    """

    image: np.ndarray
    trans_params: np.ndarray
    landmarks: np.ndarray
    lm5: np.ndarray


def five_points(lm68: np.ndarray) -> np.ndarray:
    """(5, 2) float32 from (68, 2): mean(36, 39), mean(42, 45), 30, 48, 54."""
    lm = np.asarray(lm68, dtype=np.float32)
    return np.stack(
        [(lm[36] + lm[39]) / 2, (lm[42] + lm[45]) / 2, lm[30], lm[48], lm[54]]
    ).astype(np.float32)


def pos_fit(points2d: np.ndarray, points3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Weak-perspective fit x = A [X Y Z]^T + t by least squares over the points.

    Returns (t (2,), s_pos): translation in pixels and the mean norm of A's two rows.
    """
    p2 = np.asarray(points2d, dtype=np.float64)
    p3 = np.asarray(points3d, dtype=np.float64)
    n = len(p2)
    design = np.zeros((2 * n, 8))
    design[0::2, 0:3] = p3
    design[0::2, 3] = 1.0
    design[1::2, 4:7] = p3
    design[1::2, 7] = 1.0
    k, *_ = np.linalg.lstsq(design, p2.reshape(-1), rcond=None)
    s_pos = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2.0
    return np.array([k[3], k[7]]), float(s_pos)


def align_face(image: np.ndarray, lm68: np.ndarray) -> AlignedFace:
    """Cut the 224 x 224 recon input out of ``image`` (H, W, 3) uint8 RGB.

    ``lm68``: (68, 2) landmarks in ``image`` pixels, x right, y down.
    """
    from PIL import Image

    h0, w0 = image.shape[:2]
    lm = np.asarray(lm68, dtype=np.float32).copy()
    lm[:, 1] = h0 - 1 - lm[:, 1]
    lm5 = five_points(lm)
    t, s_pos = pos_fit(lm5, LM3D_STD5)
    s = TARGET_SCALE / s_pos
    w, h = int(w0 * s), int(h0 * s)
    left = int(w / 2 - TARGET / 2 + (t[0] - w0 / 2) * s)
    up = int(h / 2 - TARGET / 2 + (h0 / 2 - t[1]) * s)
    resized = Image.fromarray(image).resize((w, h), resample=Image.BICUBIC)
    aligned = np.asarray(resized.crop((left, up, left + TARGET, up + TARGET)))
    lm_aligned = (lm - t[None, :] + np.array([w0 / 2, h0 / 2])) * s - np.array([w / 2 - TARGET / 2, h / 2 - TARGET / 2])
    trans_params = np.array([w0, h0, s, t[0], t[1]], dtype=np.float32)
    return AlignedFace(aligned, trans_params, lm_aligned.astype(np.float32), lm5)
