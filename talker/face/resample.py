"""Resampling for the face networks, in torch, so a picture gives the same input on every host.

OpenCV's resampling changed between releases (4.x and 5.x give different pixels for the same warp),
and the face detector's decision at its score threshold can follow such differences. The face
stage therefore does its own resampling:

* ``warp_rect``: a rotated rectangle of the picture to a square, exactly as mediapipe's
  ImageToTensorCalculator does it with OpenCV 4 (``cv::warpPerspective``, bilinear, coordinates in
  1/32 pixel, 15-bit integer weights, uint8 result), so the networks see what they saw in mediapipe;
* ``resize``: the picture scaled to a new size (area-weighted when shrinking), for the views and
  crops talker itself prepares.

Pictures are (H, W, 3) uint8 torch tensors on any device; results stay on that device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

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


def warp_rect(rgb: torch.Tensor, centre: tuple[float, float], size: tuple[float, float], angle: float,
              side: int, replicate: bool) -> torch.Tensor:
    """(side, side, 3) uint8: the rectangle of ``rgb`` at ``centre`` of ``size`` turned by ``angle``
    (see ``rect_corners``), resampled to a square. Outside the picture: zeros, or the nearest edge
    pixel when ``replicate``."""
    p = rect_corners(centre, size, angle).astype(np.float64)
    # output (u, v) -> source: top-left + u/side along the top edge + v/side down the left edge
    m = np.array([[(p[2, 0] - p[1, 0]) / side, (p[0, 0] - p[1, 0]) / side, p[1, 0]],
                  [(p[2, 1] - p[1, 1]) / side, (p[0, 1] - p[1, 1]) / side, p[1, 1]]])
    dev = rgb.device
    u = torch.arange(side, dtype=torch.float64, device=dev)
    block, within = torch.div(u, BLOCK, rounding_mode="floor") * BLOCK, torch.remainder(u, BLOCK)
    v = u[:, None]

    def fixed(row):  # OpenCV: X0 = M0*x_block + M1*y + M2; X = round((X0 + M0*x_in_block) * 32)
        start = row[0] * block[None, :] + row[1] * v + row[2]
        return torch.round((start + row[0] * within[None, :]) * (1 << TAB_BITS)).to(torch.int64)

    x, y = fixed(m[0]), fixed(m[1])
    x0, y0 = x >> TAB_BITS, y >> TAB_BITS
    ax, ay = x & ((1 << TAB_BITS) - 1), y & ((1 << TAB_BITS) - 1)
    h, w = rgb.shape[:2]
    src = rgb.reshape(-1, 3).to(torch.int64)
    total = torch.zeros(side, side, 3, dtype=torch.int64, device=dev)
    one = 1 << TAB_BITS
    for dy, wy in ((0, one - ay), (1, ay)):
        for dx, wx in ((0, one - ax), (1, ax)):
            yy, xx = y0 + dy, x0 + dx
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            pixel = src[(yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(-1)].reshape(side, side, 3)
            if not replicate:
                pixel = pixel * inside[..., None]
            total += (wy * wx * (1 << (COEF_BITS - 2 * TAB_BITS)))[..., None] * pixel
    return ((total + (1 << (COEF_BITS - 1))) >> COEF_BITS).clamp(0, 255).to(torch.uint8)


def resize(rgb: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(height, width, 3) uint8: ``rgb`` scaled; shrinking averages over each output pixel's area
    (anti-aliased bilinear), enlarging interpolates bilinearly (pixel centres aligned)."""
    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return rgb
    x = rgb.permute(2, 0, 1)[None].float()
    shrink = height < h or width < w
    out = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
