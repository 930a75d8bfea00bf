"""The mouth interior's colours and light, read from the portrait itself.

Nothing here is a fixed colour: teeth come from the portrait's eye whites, gums and tongue from
its lips, the cavity from the lips' darkest pixels, and the shading's strength and direction from
the light on the face. A black-and-white photo therefore gets a grey interior, a painting its own
painted whites and flat shading, a photo lit from one side teeth lit from that side.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from renderer.embedded.geometry import FaceFrame
from renderer.embedded.mesh import EYES, FACE_OVAL, LIP_INNER_LOWER, LIP_INNER_UPPER, LIP_OUTER_LOWER, LIP_OUTER_UPPER

TEETH_SHADE = 0.92
"""Teeth's colour: the portrait's eye whites times this (teeth sit in the mouth's shade)."""
GUM_SHADE = 0.82
"""Gums' colour: the lips' median colour times this."""
TONGUE_SHADE = 0.7
"""Tongue's colour: the lips' median colour a quarter of the way to the skin's, times this (it lies
in the mouth's shade; a tongue as light as the lips reads to the landmark model as lip, and the
mouth as less open)."""
CONTACT_FLOOR = 0.5
"""The lip contact colour is at least this share of the lips' median brightness (the lips' own
colour in shadow): the darkest 'lip' pixels of a drawing are its ink outline, and a closed mouth
shaded towards ink reads as a dark gap to the landmark model."""
CLOSED_SOURCE_GAP = 0.02
"""Largest median inner-lip opening (IOD) of a portrait whose own lips are read as meeting: its lip
contact colour is sampled along its seam."""


@dataclass(frozen=True)
class MouthColours:
    """(3,) float64 RGB colours (0-255) and light figures of one portrait.

    skin: the face's median colour; teeth, gum, tongue: the interior's materials, lit; darkest: the lips' darkest colour (the
    cavity is shaded from it); contact: the colour where the portrait's lips meet (its own seam
    if its lips meet, else the lips' darkest colour): closed lips are never drawn darker;
    grain: standard deviation (grey levels) of the face's fine grain; light: relative change of
    the face's brightness from its middle to one IOD to its right (negative: lit from its left);
    contrast: the skin's brightness spread over its mean (flat colour ~0.05, a lit photo ~0.2).
    """

    skin: np.ndarray
    teeth: np.ndarray
    gum: np.ndarray
    tongue: np.ndarray
    darkest: np.ndarray
    contact: np.ndarray
    grain: float
    light: float
    contrast: float


def mouth_colours(image: np.ndarray, points: np.ndarray, frame: FaceFrame) -> MouthColours:
    """The colours of ``image`` (H, W, 3) uint8 whose (478, 2+) landmarks are ``points`` (pixels)."""
    src = points[:, :2]
    skin = _polygon_pixels(image, src, [FACE_OVAL])
    lips = _polygon_pixels(
        image, src, [LIP_OUTER_UPPER + LIP_OUTER_LOWER[-2:0:-1], LIP_INNER_UPPER + LIP_INNER_LOWER[-2:0:-1]]
    )
    skin_colour = np.median(skin, axis=0)
    order = np.argsort(luma(lips))
    darkest = lips[order[: max(1, len(order) // 20)]].mean(axis=0)
    lip_colour = np.median(lips, axis=0)
    teeth = _whites(image, src, skin_colour) * TEETH_SHADE
    gum = lip_colour * GUM_SHADE
    cavity = darkest * 0.8
    # keep the materials' brightness order whatever the portrait: teeth > gum > cavity
    gum = gum * np.clip(0.9 * luma(teeth) / max(luma(gum), 1.0), 0.0, 1.0)
    gum = gum * max(1.0, 1.15 * luma(cavity) / max(luma(gum), 1.0))
    light, contrast = _light(image, src, frame)
    return MouthColours(
        skin=skin_colour,
        teeth=teeth,
        gum=gum,
        tongue=(0.75 * lip_colour + 0.25 * skin_colour) * TONGUE_SHADE,
        darkest=darkest,
        contact=np.maximum(_contact(image, src, frame.iod, darkest), CONTACT_FLOOR * lip_colour),
        grain=_grain(image, src),
        light=light,
        contrast=contrast,
    )


def _contact(image: np.ndarray, src: np.ndarray, iod: float, darkest: np.ndarray) -> np.ndarray:
    """(3,) colour where the portrait's lips meet: where its inner lip contours (nearly) touch, the
    darker half of the pixels along its seam; otherwise the lips' darkest colour."""
    up, lo = src[list(LIP_INNER_UPPER)], src[list(LIP_INNER_LOWER)]
    if float(np.median(np.linalg.norm(lo - up, axis=1)[2:-2])) / iod > CLOSED_SOURCE_GAP:
        return darkest
    t = np.linspace(0.0, 1.0, 7)[:, None, None]
    seam = up[None, 2:-2] + t * (lo - up)[None, 2:-2]  # a few pixels across the seam of the middle columns
    seam = seam.reshape(-1, 2).astype(np.float32)
    seen = cv2.remap(image, seam[None, :, 0], seam[None, :, 1], cv2.INTER_LINEAR)[0].astype(np.float64)
    seen = seen.reshape(len(t), -1, 3).min(axis=0)  # per column, its darkest sample (channel-wise)
    bright = luma(seen)
    return seen[bright <= np.median(bright)].mean(axis=0)


def _light(image: np.ndarray, src: np.ndarray, frame: FaceFrame) -> tuple[float, float]:
    """(light, contrast) of the skin inside the face oval: the slope of its brightness across the
    face (per IOD, over the mean) and its spread (robust sigma over the mean)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(src[list(FACE_OVAL)]).astype(np.int32)], 1)
    ys, xs = np.nonzero(mask)
    if len(ys) < 20:
        return 0.0, 0.15
    bright = luma(image[ys, xs].astype(np.float64))
    across = (np.stack([xs, ys], 1) - frame.origin[:2]) @ frame.axes[:2, 0] / frame.iod
    mean = max(float(bright.mean()), 1.0)
    slope = float(np.cov(across, bright)[0, 1] / max(float(across.var()), 1e-6))
    spread = 1.4826 * float(np.median(np.abs(bright - np.median(bright))))
    return float(np.clip(slope / mean, -0.6, 0.6)), float(np.clip(spread / mean, 0.02, 0.4))


def _whites(image: np.ndarray, points: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """(3,) colour of the portrait's eye whites (the bright part of both eye openings, catch-lights
    left out) in its own light and colour (a grey picture gives grey, a painting its painted whites),
    half their own tint, warmed or cooled a little by the skin's colour cast (teeth are ivory, not blue-white).
    Eyes too small to sample, or no brighter than the skin: the skin's colour lightened."""
    whites = _polygon_pixels(image, points, [EYES[0].contour])
    whites = np.concatenate([whites, _polygon_pixels(image, points, [EYES[1].contour])])
    if len(whites) >= 12:
        bright = luma(whites)
        lo, hi = np.percentile(bright, [70, 95])
        band = whites[(bright >= lo) & (bright <= hi)]
        colour = band.mean(axis=0) if len(band) else whites.mean(axis=0)
        if luma(colour) > 0.9 * luma(skin):
            grey = luma(colour)
            cast = (np.maximum(skin, 1.0) / max(float(luma(skin)), 1.0)) ** 0.25  # the picture's colour cast
            return (grey + 0.5 * (colour - grey)) * cast  # less of the lids' and veins' tint
    return skin + 0.6 * (255.0 - skin)


def _grain(image: np.ndarray, points: np.ndarray) -> float:
    """Standard deviation (grey levels) of the portrait's fine grain on the face: the face's pixels
    less their 3 x 3 median (the median absolute residual, as a robust sigma)."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    residual = grey.astype(np.float64) - cv2.medianBlur(grey, 3)
    mask = np.zeros(grey.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(FACE_OVAL)]).astype(np.int32)], 1)
    values = residual[mask > 0]
    return float(1.4826 * np.median(np.abs(values))) if len(values) else 0.0


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 brightness of colours (..., 3)."""
    return rgb @ np.array([0.299, 0.587, 0.114])


def _polygon_pixels(image: np.ndarray, points: np.ndarray, loops: list[tuple[int, ...]]) -> np.ndarray:
    """(n, 3) float64 colours of the pixels inside the first loop of landmarks and outside the others."""
    mask = np.zeros(image.shape[:2], np.uint8)
    for k, loop in enumerate(loops):
        cv2.fillPoly(mask, [np.round(points[list(loop)]).astype(np.int32)], 0 if k else 1)
    return image[mask > 0].astype(np.float64)
