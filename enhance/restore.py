"""Face restoration of rendered frames with a GFPGAN v1.3 / v1.4 generator.

For each frame: a similarity transform maps the face's 5 landmarks onto the FFHQ 512 template,
the face is warped to 512 x 512, restored (in batches), warped back with the same transform and
blended into the frame through a soft mask (an eroded, blurred square in template space), scaled by
``strength``. The landmarks come from the pipeline (moved with each rendered frame): nothing is
re-detected. The warps are ``torch.nn.functional.grid_sample`` on the restorer's device, so CPU and
CUDA run the same code; frames on the host send only the pixels of the region the faces cover to
the device, frames already there (the GPU renderer's) stay there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enhance.gfpgan_files import find_gfpgan, missing_gfpgan_message  # noqa: F401  (re-exported)

FACE_SIZE = 512
"""Side of the aligned face the generator restores (pixels)."""

FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043],
     [313.08905, 371.15118]], dtype=np.float32)
"""(5, 2) x, y in the 512 x 512 aligned face: left eye, right eye, nose tip, left and right mouth corner
(left = image left, i.e. the subject's right)."""

# mediapipe face-mesh indices: the eye contours (subject's right eye = image left first), nose tip, mouth corners.
_EYE_IMAGE_LEFT = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
_EYE_IMAGE_RIGHT = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
_NOSE_TIP = 4  # fits the template better than 1 on real faces
_MOUTH_CORNERS = (61, 291)

MASK_MARGIN = 32
"""Erosion of the blend mask from each side of the aligned square (template pixels); the blur's sigma is a
third of it."""

_PREFILTER = 1.5  # warps shrinking more than this are antialiased down to this factor first

PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def landmarks5_from_mesh(lm478: np.ndarray) -> np.ndarray:
    """(..., 468 or 478, >=2) mediapipe face-mesh points (pixels) -> (..., 5, 2) float32 in the same pixels.

    Eye centres are the means of the 16 eye-contour points (steady under gaze changes; the iris
    points are not used), then nose tip (point 4) and mouth corners (61, 291).
    """
    lm = np.asarray(lm478, dtype=np.float64)[..., :2]
    if lm.shape[-2] < 468:
        raise ValueError(f"expected mediapipe face-mesh points (..., 468 or 478, 2), got shape {lm.shape}")
    points = [lm[..., _EYE_IMAGE_LEFT, :].mean(axis=-2), lm[..., _EYE_IMAGE_RIGHT, :].mean(axis=-2),
              lm[..., _NOSE_TIP, :], lm[..., _MOUTH_CORNERS[0], :], lm[..., _MOUTH_CORNERS[1], :]]
    return np.stack(points, axis=-2).astype(np.float32)


def alignment_matrices(landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, 5, 2) landmarks (pixels) -> ((B, 2, 3) float64 similarity transforms frame -> template
    pixels, (B,) bool valid). A transform is invalid when landmarks are not finite or the fit fails
    (cv2.estimateAffinePartial2D with LMEDS); its matrix is then zero."""
    import cv2

    lm = np.asarray(landmarks5, dtype=np.float32).reshape(-1, 5, 2)
    mats = np.zeros((len(lm), 2, 3))
    valid = np.zeros(len(lm), dtype=bool)
    for i, points in enumerate(lm):
        if not np.isfinite(points).all():
            continue
        m, _ = cv2.estimateAffinePartial2D(points, FFHQ_TEMPLATE_512, method=cv2.LMEDS)
        if m is not None and abs(np.linalg.det(m[:, :2])) > 1e-8:
            mats[i], valid[i] = m, True
    return mats, valid


def _invert(mats: np.ndarray) -> np.ndarray:
    """Inverse of (..., 2, 3) affine matrices."""
    a_inv = np.linalg.inv(mats[..., :2])
    return np.concatenate([a_inv, -(a_inv @ mats[..., 2:])], axis=-1)


def template_mask(size: int = FACE_SIZE, margin: int = MASK_MARGIN) -> np.ndarray:
    """(size, size) float32 blend weight in template space: 1 inside, falling smoothly to 0 at the edges
    (the square eroded by ``margin`` and blurred with sigma margin/3)."""
    import cv2

    profile = np.zeros((1, size), np.float64)
    profile[0, margin:size - margin] = 1.0
    profile = cv2.GaussianBlur(profile, (2 * margin + 1, 1), margin / 3.0, borderType=cv2.BORDER_CONSTANT)[0]
    profile[profile < 1e-4] = 0.0
    profile[profile > 1 - 1e-6] = 1.0
    return np.outer(profile, profile).astype(np.float32)


def warp_affine(images, mats: np.ndarray, size: tuple[int, int], padding: str):
    """Bilinear warp of (N, C, h, w) float tensors into (N, C, size[1], size[0]).

    ``mats`` (N, 2, 3): for each output pixel (x, y) the source pixel ``mats @ (x, y, 1)`` (pixel
    centres at integer coordinates, as cv2.warpAffine with WARP_INVERSE_MAP). ``padding``: 'zeros'
    or 'reflection' (mirror about the image edge, cv2's BORDER_REFLECT). Where every image of the
    batch shrinks by more than 1.5, the sources are first resized with an antialiasing filter to 1.5x
    the output's scale (measured: within 0.6 dB of the best PSNR against an area filter at any sub-pixel
    phase, where a bare bilinear warp loses 6-10 dB and varies with phase, i.e. shimmers in video).
    """
    import torch
    import torch.nn.functional as F

    mats = np.asarray(mats, dtype=np.float64)
    shrink = np.sqrt(np.abs(np.linalg.det(mats[:, :, :2]))).min()  # source pixels per output pixel
    if shrink > _PREFILTER:
        h, w = images.shape[-2:]
        new_h, new_w = (max(1, int(np.ceil(side * _PREFILTER / shrink))) for side in (h, w))
        images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        k = np.array([new_w / w, new_h / h])[:, None]  # source x' = (x + 0.5) k - 0.5
        mats = mats * k
        mats[:, :, 2] += 0.5 * k[:, 0] - 0.5
    n, c, h, w = images.shape
    out_w, out_h = size
    # pixel -> normalised coordinates (align_corners=False): xn = (2x + 1) / w - 1
    to_src = np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]])
    from_out = np.array([[out_w / 2, 0, (out_w - 1) / 2], [0, out_h / 2, (out_h - 1) / 2], [0, 0, 1]])
    theta = to_src[:2] @ np.concatenate([mats, np.broadcast_to([[[0, 0, 1]]], (n, 1, 3))], axis=1) @ from_out
    theta = torch.from_numpy(theta).to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, [n, c, out_h, out_w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)


@dataclass
class AlignedFaces:
    """Faces cut out of a batch of frames, and what is needed to paste them back.

    faces: (N, 3, 512, 512) float32 RGB tensor in [0, 255] on the restorer's device, N = valid.sum().
    frames_box: (N, 3, bh, bw) float32, the frames' region ``box`` covering every face, same device.
    to_template: (N, 2, 3) float64 similarity transforms from ``box`` pixels to template pixels.
    box: (x0, y0, x1, y1) in frame pixels (x1, y1 exclusive).
    valid: (B,) bool, the frames with a usable face (others are returned unchanged).
    """

    faces: object
    frames_box: object
    to_template: np.ndarray
    box: tuple[int, int, int, int]
    valid: np.ndarray


def _cover_box(to_template: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """The frame region (x0, y0, x1, y1) that the aligned squares of all faces cover, plus one pixel."""
    lo, hi = -0.5, FACE_SIZE - 0.5
    corners = np.array([[lo, lo], [hi, lo], [lo, hi], [hi, hi]])
    inv = _invert(to_template)
    pts = corners @ inv[:, :, :2].transpose(0, 2, 1) + inv[:, None, :, 2]  # (N, 4, 2)
    x0, y0 = np.floor(pts.reshape(-1, 2).min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(pts.reshape(-1, 2).max(axis=0)).astype(int) + 2
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


class FaceRestorer:
    """Restores the faces of frame batches with a GFPGAN v1.3 / v1.4 file.

    model_path: the .pth (see enhance.gfpgan_files); device: 'cpu', 'cuda', 'cuda:1', ...;
    precision: 'fp32' | 'bf16' | 'fp16' (the generator's dtype; warps and blending stay float32);
    strength: 0 (frames unchanged) .. 1 (fully restored face); batch_size: faces per generator call;
    randomize_noise: draw the decoder noise afresh (as the official helper does) instead of using
    the stored noise maps (deterministic, default). compile: run the generator through
    torch.compile (each batch shape compiles once, some seconds; measured on an H100 in fp16 at
    batch 32: 744 faces/s compiled against 286 eager).
    """

    def __init__(self, model_path: Path, device="cpu", precision="fp32", strength=1.0, batch_size=8,
                 randomize_noise: bool = False, compile: bool = False):
        import torch

        from enhance.gfpgan_files import load_generator

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], not {strength}")
        self.device = torch.device(device)
        self.dtype = getattr(torch, PRECISIONS[precision])
        self.strength = float(strength)
        self.batch_size = max(1, int(batch_size))
        self.randomize_noise = randomize_noise
        self.model = load_generator(model_path, self.device, self.dtype)
        if self.device.type == "cuda":  # channels-last convolution weights (the 4-D ones) for cuDNN
            for tensor in (*self.model.parameters(), *self.model.buffers()):
                if tensor.dim() == 4:
                    tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
        if compile:
            self.model = torch.compile(self.model)
        self.mask = torch.from_numpy(template_mask()).to(self.device)

    def restore(self, frames, landmarks5: np.ndarray):
        """frames (B, H, W, 3) uint8 RGB, a numpy array or a tensor on any device, landmarks5 (B, 5, 2)
        float pixels (left eye, right eye, nose tip, left and right mouth corner, image left/right) ->
        (B, H, W, 3) uint8 RGB with restored faces, of the same kind and device as ``frames``
        (frames already on the restorer's GPU never travel to the host).

        Frames whose landmarks are not finite are returned unchanged.
        """
        import torch

        as_numpy = isinstance(frames, np.ndarray)
        x = torch.from_numpy(np.ascontiguousarray(frames)) if as_numpy else frames
        landmarks5 = np.asarray(landmarks5, dtype=np.float32)
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"frames must be (B, H, W, 3) uint8, got {tuple(x.shape)} {x.dtype}")
        if landmarks5.shape != (len(x), 5, 2):
            raise ValueError(f"landmarks5 must be ({len(x)}, 5, 2), got {landmarks5.shape}")
        out = x.clone()
        if self.strength > 0.0:
            for i in range(0, len(x), self.batch_size):
                aligned = self.align(x[i: i + self.batch_size], landmarks5[i: i + self.batch_size])
                if aligned is not None:
                    self._blend_into(out[i: i + self.batch_size], aligned, self.restore_aligned(aligned.faces))
        return out.numpy() if as_numpy else out

    def align(self, frames, landmarks5: np.ndarray) -> AlignedFaces | None:
        """Cut the faces of (B, H, W, 3) uint8 frames (numpy or tensor) to the 512 template; None when
        no frame has a usable face."""
        import torch

        frames = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
        to_frame_template, valid = alignment_matrices(landmarks5)
        if not valid.any():
            return None
        x0, y0, x1, y1 = _cover_box(to_frame_template[valid], frames.shape[1], frames.shape[2])
        if x1 <= x0 or y1 <= y0:
            return None
        to_template = to_frame_template[valid].copy()
        to_template[:, :, 2] += to_template[:, :, :2] @ np.array([x0, y0], dtype=np.float64)
        rows = torch.from_numpy(np.flatnonzero(valid)).to(frames.device)
        region = frames.index_select(0, rows)[:, y0:y1, x0:x1]
        frames_box = region.to(self.device).permute(0, 3, 1, 2).float()
        faces = warp_affine(frames_box, _invert(to_template), (FACE_SIZE, FACE_SIZE), "reflection")
        return AlignedFaces(faces, frames_box, to_template, (x0, y0, x1, y1), valid)

    def restore_aligned(self, faces):
        """(N, 3, 512, 512) float RGB in [0, 255] -> restored, same shape, float32 in [0, 255], same device."""
        import torch

        with torch.inference_mode():
            x = (faces.to(self.device, torch.float32) / 127.5 - 1.0).to(self.dtype)
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            image, _ = self.model(x, randomize_noise=self.randomize_noise)
            return (image.float().clamp(-1.0, 1.0) + 1.0) * 127.5

    def paste(self, frames, aligned: AlignedFaces, restored):
        """Blend restored faces (N, 3, 512, 512) float [0, 255] back into a copy of ``frames`` (B, H, W, 3)
        uint8, numpy or tensor (returned as the same kind).

        Per pixel: frame + strength * mask * (restored warped back - frame), rounded to uint8.
        """
        import torch

        as_numpy = isinstance(frames, np.ndarray)
        out = torch.from_numpy(frames.copy()) if as_numpy else frames.clone()
        self._blend_into(out, aligned, restored)
        return out.numpy() if as_numpy else out

    def _blend_into(self, out, aligned: AlignedFaces, restored) -> None:
        """``paste`` into the (B, H, W, 3) uint8 tensor ``out`` in place."""
        import torch

        x0, y0, x1, y1 = aligned.box
        rgba = torch.cat([restored.float(), self.mask.expand(len(restored), 1, -1, -1)], dim=1)
        back = warp_affine(rgba, aligned.to_template, (x1 - x0, y1 - y0), "zeros")
        alpha = back[:, 3:] * self.strength
        base = aligned.frames_box
        blended = (base + alpha * (back[:, :3] - base)).round_().clamp_(0, 255).to(torch.uint8)
        rows = torch.from_numpy(np.flatnonzero(aligned.valid)).to(out.device)
        region = out[:, y0:y1, x0:x1]
        region.index_copy_(0, rows, blended.permute(0, 2, 3, 1).to(out.device))
