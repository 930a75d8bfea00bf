"""The networks' input, cut from the picture in torch exactly as mediapipe cuts it.

mediapipe's ImageToTensorCalculator turns a rectangle of the picture into the network's square
input with OpenCV 4's ``cv::warpPerspective`` (bilinear, coordinates in 1/32 pixel, 15-bit integer
weights, uint8 result). OpenCV 5 warps differently, and the face detector's decision at its score
threshold can follow such a difference, so ``warp_rect`` does OpenCV 4's arithmetic itself: the
networks see what they saw in mediapipe whichever OpenCV the host has (``cv2.resize``, which talker
uses to prepare the pictures, gives the same pixels in OpenCV 4 and 5).

Pictures are batches (N, H, W, 3) of uint8 torch tensors on any device; results stay on that device.
"""

from __future__ import annotations

import numpy as np
import torch

TAB_BITS = 5
"""OpenCV's INTER_BITS: source coordinates are rounded to 1/32 pixel."""

COEF_BITS = 15
"""OpenCV's INTER_REMAP_COEF_BITS: the four bilinear weights are integers summing to 2**15."""

BLOCK = 64
"""Width (pixels) of OpenCV's warp blocks at these output sizes: each row's coordinate is summed
from its block's first column, which decides how ties round."""


def rect_corners(centre: tuple[float, float], size: tuple[float, float], angle: float) -> np.ndarray:
    """(4, 2) float32 corners of the rectangle, as cv::RotatedRect::points gives them (bottom-left,
    top-left, top-right, bottom-right for angle 0), in float32 arithmetic.

    centre, size: pixels; angle: radians, clockwise on screen (mediapipe's rotation)."""
    f = np.float32
    degrees = f(f(angle) * f(180.0) / np.pi)
    radians = float(degrees) * np.pi / 180.0
    b = f(np.cos(radians)) * f(0.5)
    a = f(np.sin(radians)) * f(0.5)
    cx, cy, w, h = f(centre[0]), f(centre[1]), f(size[0]), f(size[1])
    p0 = (cx - a * h - b * w, cy + b * h - a * w)
    p1 = (cx + a * h - b * w, cy - b * h - a * w)
    return np.array([p0, p1, (f(2) * cx - p0[0], f(2) * cy - p0[1]), (f(2) * cx - p1[0], f(2) * cy - p1[1])], f)


Rect = tuple[tuple[float, float], tuple[float, float], float]
"""(centre (x, y), size (w, h), angle): a rotated rectangle in pixels, angle in radians (see rect_corners)."""


def _matrices(rects: list[Rect], side: int, device) -> torch.Tensor:
    """(R, 2, 3) float64: for each rectangle, the map from output pixel (u, v, 1) of a ``side`` square
    to its source pixel: the top-left corner + u/side along the top edge + v/side down the left edge."""
    rows = []
    for centre, size, angle in rects:
        p = rect_corners(centre, size, angle).astype(np.float64)
        rows.append([[(p[2, 0] - p[1, 0]) / side, (p[0, 0] - p[1, 0]) / side, p[1, 0]],
                     [(p[2, 1] - p[1, 1]) / side, (p[0, 1] - p[1, 1]) / side, p[1, 1]]])
    return torch.tensor(rows, dtype=torch.float64, device=device)


def warp_rect(pictures: torch.Tensor, rects: list[Rect], side: int, replicate: bool) -> torch.Tensor:
    """(N, side, side, 3) uint8: rectangle ``rects[i]`` of ``pictures[i]`` ((N, H, W, 3) uint8)
    resampled to a square. Outside the picture: zeros, or the nearest edge pixel when ``replicate``."""
    distinct = list(dict.fromkeys(rects))  # pictures cut the same way share their coordinates
    dev = pictures.device
    m = _matrices(distinct, side, dev)[:, :, :, None, None]  # (R, 2, 3, 1, 1)
    u = torch.arange(side, dtype=torch.float64, device=dev)
    block, within = torch.div(u, BLOCK, rounding_mode="floor") * BLOCK, torch.remainder(u, BLOCK)
    v = u[:, None]
    # OpenCV: X0 = M0*x_block + M1*y + M2; X = round((X0 + M0*x_in_block) * 32), per row of the matrix
    start = m[:, :, 0] * block + m[:, :, 1] * v + m[:, :, 2]
    fixed = torch.round((start + m[:, :, 0] * within) * (1 << TAB_BITS)).to(torch.int64)  # (R, 2, side, side)
    which = torch.tensor([distinct.index(r) for r in rects], device=dev)
    x, y = fixed[which, 0], fixed[which, 1]  # (N, side, side)
    x0, y0 = x >> TAB_BITS, y >> TAB_BITS
    ax, ay = (x & ((1 << TAB_BITS) - 1)).float(), (y & ((1 << TAB_BITS) - 1)).float()
    n, h, w = pictures.shape[:3]
    flat = pictures.reshape(-1, 3)
    first = (torch.arange(n, device=dev) * (h * w))[:, None, None]
    one = float(1 << TAB_BITS)
    # float32 is exact here: every weight, product and partial sum is an integer below 2**24
    total = torch.zeros(n, side, side, 3, device=dev)
    for dy, wy in ((0, one - ay), (1, ay)):
        for dx, wx in ((0, one - ax), (1, ax)):
            yy, xx = y0 + dy, x0 + dx
            weight = wy * wx * float(1 << (COEF_BITS - 2 * TAB_BITS))  # the four sum to 2**15
            if not replicate:
                weight = weight * ((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w))
            tap = flat[(first + yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(-1)].reshape(n, side, side, 3)
            total += weight[..., None] * tap
    return torch.floor((total + (1 << (COEF_BITS - 1))) / (1 << COEF_BITS)).clamp(0, 255).to(torch.uint8)
