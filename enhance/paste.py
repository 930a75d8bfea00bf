"""Paste-back: renderer frames (B, S, S, 3) -> output frames (B, H, W, 3), uint8 RGB.

full / extfull: each frame is resized to the face box, its colour and light matched to the source
along the box edge (the difference at the edge, spread smoothly inwards and fading to nothing at
the box's middle), and blended into a copy of the source picture under a feathered rectangle, so
the picture outside the box is the source's exactly and the box edge shows no seam, whether the
renderer left the crop border unmoved (embedded) or redrew it (sadtalker). crop / extcrop /
resize: the frames are the output as they are (``face.output_size`` is S x S).

One implementation in torch runs where the frames are: numpy arrays on the CPU, CUDA tensors on
the GPU (the frames of the GPU renderer never leave it before the encoder). ``PasteBack`` keeps
a face's masks and source picture on the device for a whole render.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from talker.types import FaceCrop

FEATHER = 0.04
"""Width of the blend ramp at the box edge, as a share of the box's shorter side (at least 2 px)."""
BORDER = 0.06
"""Width of the edge band whose colour difference is measured (share of the box's shorter side)."""
REACH = 0.5
"""How far inwards the edge correction fades to zero (share of the half-size of the box)."""


class PasteBack:
    """Renderer frames of ``face`` -> output frames, on ``device`` (where the frames will be).

    Call with (B, S, S, 3) uint8 frames, a numpy array or a tensor; returns (B, H, W, 3) uint8 of
    the same kind and device, H, W: ``face.output_size`` (the source picture's size for full /
    extfull).
    """

    def __init__(self, face: FaceCrop, device: str | torch.device = "cpu"):
        self.face, self.device = face, torch.device(device)
        self.width, self.height = face.output_size
        if not face.pastes_back:
            return
        height, width = face.source.shape[:2]
        x0, y0, x1, y1 = face.box
        bx0, by0, bx1, by1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        self.box_size = (y1 - y0, x1 - x0)
        self.inside = np.s_[by0 - y0: by1 - y0, bx0 - x0: bx1 - x0]  # the box's part inside the picture
        self.region = np.s_[by0:by1, bx0:bx1]
        self.picture = torch.from_numpy(np.array(face.source, np.uint8)).to(self.device)
        source = self.picture[self.region].permute(2, 0, 1).float()[None]  # (1, 3, h, w)
        h, w = source.shape[-2:]
        self.source_box = source
        distance = _edge_distance(h, w, self.device)
        band_px = max(2, int(BORDER * min(h, w)))
        fade = (1.0 - distance / max(1.0, REACH * min(h, w) / 2.0)).clamp(0.0, 1.0)
        fade = fade * fade * (3.0 - 2.0 * fade)  # the edge correction's weight: 1 at the edge, 0 inside
        self.band = (distance < band_px).float()
        small = (max(1, h // 8), max(1, w // 8))
        sigma = max(1.0, min(small) / 6.0)
        self.blur_rows, self.blur_cols = (_blur_matrix(n, sigma).to(self.device) for n in small)
        self.small = small
        self.norm = self._blur(F.interpolate(self.band[None, None], size=small, mode="area"))
        self.weight = torch.from_numpy(feather_mask(x1 - x0, y1 - y0)[self.inside]).to(self.device).float() / 256.0
        self.weight_fade = self.weight * fade

    def __call__(self, frames):
        as_numpy = isinstance(frames, np.ndarray)
        x = torch.from_numpy(np.ascontiguousarray(frames, np.uint8)) if as_numpy else frames
        out = self._paste(x.to(self.device))
        return out.cpu().numpy() if as_numpy else out

    @torch.no_grad()
    def _paste(self, frames: torch.Tensor) -> torch.Tensor:
        if not self.face.pastes_back:
            return frames  # the output is the S x S render
        x = frames.permute(0, 3, 1, 2)  # (B, 3, S, S) uint8, channels-last memory
        pasted = _resize(x, self.box_size)[(slice(None), slice(None), *self.inside)].float()
        change = pasted - self.source_box
        # source + weight * (pasted - fade * edge_error - source): the edge correction folded in
        blended = torch.addcmul(torch.addcmul(self.source_box, self.weight, change), self.weight_fade,
                                self._edge_error(change), value=-1.0)
        out = self.picture[None].repeat(len(frames), 1, 1, 1)
        out[(slice(None), *self.region)] = _to_uint8(blended)
        return out

    def _edge_error(self, change: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) float: the pasted frames' difference from the source at the box edge, spread
        over the box; ``change`` is pasted - source.

        The difference in the edge band is spread by normalised convolution (a smooth membrane,
        computed at 1/8 size). Taken away with a weight of 1 at the edge falling smoothly to 0 at
        REACH of the way to the middle (``fade``), it makes colour shifts and exposure differences of
        the render vanish at the seam while the face keeps its own pixels.
        """
        spread = self._blur(F.interpolate(change * self.band, size=self.small, mode="area"))
        return F.interpolate(spread / self.norm.clamp_min(1e-3), size=change.shape[-2:], mode="bilinear",
                             align_corners=False)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        """Gaussian blur of (B, C, h, w) float at the 1/8 size: rows, then columns, as matrix products."""
        return (self.blur_rows @ x @ self.blur_cols.T).contiguous()


def to_output_frames(frames, face: FaceCrop):
    """(B, S, S, 3) uint8 renderer frames of ``face`` (numpy or tensor) -> (B, H, W, 3) uint8 output
    frames of the same kind (see ``PasteBack``; build one of those to paste a whole render)."""
    device = frames.device if isinstance(frames, torch.Tensor) else "cpu"
    return PasteBack(face, device)(frames)


def to_output_points(points: np.ndarray, face: FaceCrop) -> np.ndarray:
    """(..., 2) x, y in crop pixels -> the same points in output-frame pixels, through the resize
    (pixel centres kept) and box offset that ``PasteBack`` applies."""
    if not face.pastes_back:
        return np.asarray(points, np.float32)  # the output is the crop
    s = face.size
    x0, y0, x1, y1 = face.box
    scale, offset = np.array([(x1 - x0) / s, (y1 - y0) / s]), np.array([x0, y0], float)
    return ((np.asarray(points, np.float64) + 0.5) * scale - 0.5 + offset).astype(np.float32)


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """(B, h, w, 3) uint8 -> (B, height, width, 3) uint8 (see ``_resize``)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return _channels_last(_resize(x, (height, width))).numpy()


def feather_mask(width: int, height: int) -> np.ndarray:
    """(height, width) uint16 blend weight out of 256: 256 inside, falling smoothly to near 0 at the edge."""
    ramp = max(2.0, FEATHER * min(width, height))

    def edge(n: int) -> np.ndarray:
        t = np.clip((np.minimum(np.arange(n), np.arange(n)[::-1]) + 0.5) / ramp, 0.0, 1.0)
        return t * t * (3.0 - 2.0 * t)

    return np.round(256.0 * np.outer(edge(height), edge(width))).astype(np.uint16)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) uint8 -> (B, C, size) uint8: bilinear with pixel centres kept (as cv2.INTER_LINEAR);
    when shrinking, the filter widens with the scale (antialiased, close to cv2.INTER_AREA). On the
    CPU torch resizes uint8 itself (8x faster than in float); CUDA resizes in float."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    if x.device.type == "cpu":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    y = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float -> (B, H, W, 3) uint8, rounded and clipped."""
    return _channels_last(x.round().clamp(0, 255).to(torch.uint8))


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, H, W, 3) contiguous, same dtype."""
    return x.permute(0, 2, 3, 1).contiguous()


def _blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """(n, n) float32 matrix M with M @ v = v blurred by a Gaussian of ``sigma`` pixels (kernel as cv2
    picks it for float images: 8 sigma + 1 wide; edges mirrored without repeating the edge pixel, as
    cv2's default border). Built by blurring the identity; the blur is then a matrix product, with no
    convolution algorithm for cuDNN's benchmark mode to search for (an H100 check found that search
    cheap for this kernel anyway, 0.04 GB peak)."""
    radius = int(round(4.0 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    mode = "reflect" if radius < n else "replicate"
    identity = F.pad(torch.eye(n, dtype=torch.float64)[None], (radius, radius), mode=mode)[0]  # (n, n + 2r)
    return F.conv1d(identity[:, None], kernel.view(1, 1, -1))[:, 0].T.float().contiguous()


def _edge_distance(h: int, w: int, device) -> torch.Tensor:
    """(h, w) float32 distance in pixels of each pixel to the nearest box edge."""
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    ys = torch.minimum(ys, ys.flip(0)).float()
    xs = torch.minimum(xs, xs.flip(0)).float()
    return torch.minimum(ys[:, None], xs[None, :])
