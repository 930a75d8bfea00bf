"""SadTalker's face-crop geometry (SPEC.md §3.3), in pure NumPy.

From 68 iBUG landmarks of the portrait this finds the FFHQ-style oriented square ("quad") around
the face, the larger crop box around it, and the sub-box of the quad that SadTalker cuts for the
'crop' and 'full' modes. It keeps SadTalker's quirks so the result is the same to the pixel:
integer truncations, the y-limit of the quad clamped with the crop box's *width*, and the
"shrink" of very large faces (qsize >= 2048 px) to a smaller copy of the picture.

All coordinates are pixels, x right, y down. Boxes are (x0, y0, x1, y1), x1/y1 exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

XSIZE = 512
"""SadTalker's ``output_size`` for the crop step; a face quad at least 4x this side triggers the shrink."""


@dataclass(frozen=True)
class CropGeometry:
    """Where SadTalker cuts the face, in pixels of the picture resized to ``rsize``.

    rsize: (width, height) of the picture the boxes refer to: the source size, or the source
        divided by ``shrink`` (rounded) when the face is very large.
    shrink: the integer downscale factor (1 when the picture is used as is).
    crop_box: (clx, cly, crx, cry), the crop box ('extcrop' / 'extfull' region), clamped to the picture.
    quad: (lx, ly, rx, ry) floats, the quad's bounding box relative to ``crop_box`` after SadTalker's
        +0.5 and clamps (before the int truncation).
    """

    rsize: tuple[int, int]
    shrink: int
    crop_box: tuple[int, int, int, int]
    quad: tuple[float, float, float, float]

    @property
    def quad_int(self) -> tuple[int, int, int, int]:
        """``quad`` truncated to int, as SadTalker slices with it."""
        return tuple(int(v) for v in self.quad)

    @property
    def info_box(self) -> tuple[int, int, int, int]:
        """(ox1, oy1, ox2, oy2): the quad box in ``rsize`` pixels, SadTalker's crop_info (not clipped)."""
        clx, cly, _, _ = self.crop_box
        lx, ly, rx, ry = self.quad_int
        return clx + lx, cly + ly, clx + rx, cly + ry

    @property
    def info_size(self) -> tuple[int, int]:
        """(ox2 - ox1, oy2 - oy1): SadTalker's ``crop_info[0]``, used for the output aspect ratio."""
        ox1, oy1, ox2, oy2 = self.info_box
        return ox2 - ox1, oy2 - oy1

    @property
    def face_box(self) -> tuple[int, int, int, int]:
        """The region that 'crop' / 'full' actually show, in ``rsize`` pixels.

        SadTalker slices ``[ly:ry, lx:rx]`` of the crop box, so the quad box is clipped to the crop
        box (it can stick out below it because of the width-for-height clamp).
        """
        clx, cly, crx, cry = self.crop_box
        ox1, oy1, ox2, oy2 = self.info_box
        return ox1, oy1, min(ox2, crx), min(oy2, cry)

    def region(self, mode: str) -> tuple[int, int, int, int]:
        """The box cut for ``mode`` ('crop'/'full': ``face_box``; 'extcrop'/'extfull': ``crop_box``)."""
        if mode in ("crop", "full"):
            return self.face_box
        if mode in ("extcrop", "extfull"):
            return self.crop_box
        raise ValueError(f"mode {mode!r} has no SadTalker crop geometry")


def crop_geometry(lm68: np.ndarray, width: int, height: int) -> CropGeometry:
    """SadTalker's crop box and quad for a picture of ``width`` x ``height`` pixels.

    lm68: (68, 2) iBUG landmarks in picture pixels. The arithmetic follows SadTalker's dtype
    flow (float32 landmark means, float64 quad axes), so the results match it bit for bit.
    """
    lm = np.asarray(lm68, dtype=np.float32)
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    # Quad axes: the eye vector minus the eye-to-mouth vector turned by 90 degrees (float64 from
    # here, as NumPy promotes float32 * int list in SadTalker's expression).
    x = eye_to_eye - np.flipud(eye_to_mouth) * np.array([-1, 1])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * np.array([-1, 1])
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    qsize = np.hypot(*x) * 2

    shrink = int(np.floor(qsize / XSIZE * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(float(width) / shrink)), int(np.rint(float(height) / shrink)))
        quad /= shrink
        qsize /= shrink
    else:
        shrink = 1
        rsize = (int(width), int(height))

    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (
        int(np.floor(min(quad[:, 0]))),
        int(np.floor(min(quad[:, 1]))),
        int(np.ceil(max(quad[:, 0]))),
        int(np.ceil(max(quad[:, 1]))),
    )
    crop = (
        max(crop[0] - border, 0),
        max(crop[1] - border, 0),
        min(crop[2] + border, rsize[0]),
        min(crop[3] + border, rsize[1]),
    )
    box_w = rsize[0]
    if crop[2] - crop[0] < rsize[0] or crop[3] - crop[1] < rsize[1]:
        quad -= crop[0:2]
        box_w = crop[2] - crop[0]

    q = (quad + 0.5).flatten()
    lx = max(min(q[0], q[2]), 0)
    ly = max(min(q[1], q[7]), 0)
    rx = min(max(q[4], q[6]), box_w)
    ry = min(max(q[3], q[5]), box_w)  # SadTalker's quirk: the y-limit is the width
    return CropGeometry(
        rsize=rsize,
        shrink=shrink,
        crop_box=crop,
        quad=(float(lx), float(ly), float(rx), float(ry)),
    )
