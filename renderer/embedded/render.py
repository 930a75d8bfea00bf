"""The embedded renderer: FaceCrop + CoeffTrack ('embedded' space) -> S x S frames.

Per frame:
1. Articulate the landmarks (face_model), pose the head (pose); motion fades to nothing within a
   band along the crop border, so the border never moves.
2. Give the falloff rings their share of the face-oval motion (the outer ring: none).
3. Paint the driven triangles back to front (rings, then the eye and mouth fills, then the skin
   from far to near) into a triangle-index map of the box holding the rings, and read the source
   through it with one cv2.remap (warp).
4. Paint the mouth interior where the lips part, and the dark seam where they are pressed shut (mouth).
Pixels outside the outer ring are the source's, untouched.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from renderer.embedded.face_model import FaceModel
from renderer.embedded.geometry import smoothstep
from renderer.embedded.mesh import FACE_OVAL, build_rings, canonical, eye_triangles, mouth_triangles
from renderer.embedded.mouth import MouthPainter
from renderer.embedded.pose import HeadPose
from renderer.embedded.warp import TriangleWarp
from talker.errors import SpaceMismatchError
from talker.types import EMBEDDED_CHANNELS, CoeffTrack, FaceCrop

BORDER_BAND = 0.06
"""Width (share of S) of the band along the crop border over which motion fades to zero."""


class EmbeddedRenderer:
    """Mesh-warp renderer for one face. Construction precomputes the topology, the motion fields,
    the fit of the source's own mouth opening and the mouth-interior colours."""

    def __init__(self, face: FaceCrop):
        self.face = face
        size = face.size
        self._image = np.ascontiguousarray(face.image)
        self._model = FaceModel(face.landmarks)
        source = self._model.source
        self._source = source
        self._pose = HeadPose(self._model.frame)
        self._mouth = MouthPainter(self._image, self._model)

        rings = build_rings(source, size)
        n_oval = len(FACE_OVAL)
        self._ring_count = len(rings.xy)
        self._ring_xy = rings.xy.reshape(-1, 2).astype(np.float64)
        self._ring_share = np.repeat(rings.weight, n_oval) * _mobility(self._ring_xy, size)
        self._mobility = _mobility(source[:, :2], size)[:, None]
        self._source_xy = np.concatenate([source[:, :2], self._ring_xy])

        _, skin = canonical()
        mouth = mouth_triangles()
        self._mouth_first = len(rings.triangles)
        # the eye fills get vertices of their own (copies of the lid contours and irises, after the
        # rings), so their texture can differ from the lid skin's at the same points (_draw)
        eyes = eye_triangles(source)
        self._eye_points, eyes = np.unique(eyes, return_inverse=True)
        eyes = eyes.reshape(-1, 3) + len(self._source_xy)
        self._triangles = np.concatenate([rings.triangles, mouth, eyes, skin]).astype(np.int32)
        self._n_back = len(self._triangles) - len(skin)
        self._skin = skin
        self._warp = TriangleWarp(rings.box)

    def landmarks(self, row: np.ndarray) -> np.ndarray:
        """(478, 3) float32 driven landmarks in crop pixels for one track row (EMBEDDED_CHANNELS).

        A zero row gives the face's landmarks (with any mesh fold opened, see mesh.unfold)."""
        return self._driven(np.asarray(row, np.float64)).astype(np.float32)

    def render(self, track: CoeffTrack, batch_size: int = 8) -> Iterator[np.ndarray]:
        """(B, S, S, 3) uint8 RGB batches, B <= batch_size, covering the track's frames in order,
        drawn as they are asked for (memory does not grow with the track's length).

        Raises SpaceMismatchError for a track that is not 'embedded', ValueError for a track with
        the wrong number of columns or non-finite values (at the call, before any frame)."""
        if track.space != "embedded":
            raise SpaceMismatchError(
                f"the embedded renderer draws 'embedded' coefficients; this track is '{track.space}': "
                "render it with the sadtalker backend (--backend sadtalker), or make an embedded track"
            )
        values = np.asarray(track.values, np.float64)
        if values.ndim != 2 or values.shape[1] != len(EMBEDDED_CHANNELS):
            raise ValueError(f"an embedded track has {len(EMBEDDED_CHANNELS)} columns, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("the track holds NaN or infinite values")
        return self._batches(values, max(1, int(batch_size)))

    def _batches(self, values: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
        size = self.face.size
        for start in range(0, len(values), batch_size):
            rows = values[start : start + batch_size]
            batch = np.empty((len(rows), size, size, 3), np.uint8)
            for k, row in enumerate(rows):
                self._draw(row, batch[k])
            yield batch

    def _driven(self, row: np.ndarray) -> np.ndarray:
        posed = self._pose.apply(self._model.articulate(row), *row[8:13])
        return self._source + (posed - self._source) * self._mobility

    def _draw(self, row: np.ndarray, out: np.ndarray) -> None:
        """Render one frame into ``out`` (S, S, 3) uint8."""
        pts = self._driven(row)
        oval_move = pts[list(FACE_OVAL), :2] - self._source[list(FACE_OVAL), :2]
        rings = self._ring_xy + self._ring_share[:, None] * np.tile(oval_move, (self._ring_count, 1))
        driven = np.concatenate([pts[:, :2], rings, pts[self._eye_points, :2]])

        depth = pts[self._skin, 2].mean(axis=1)
        order = np.concatenate([np.arange(self._n_back), self._n_back + np.argsort(-depth, kind="stable")])
        blink = float(np.clip(row[6], 0.0, 1.0))
        texture = self._model.lids.rim_texture(self._source_xy, blink)
        texture = self._model.lip_texture(texture, float(np.clip(row[3], 0.0, 1.0)))
        # a closing lid covers the eye, it does not squash it: the eye fill shows the source eye
        # where the lids have moved to (the lid skin above stretches over it)
        lids = self._source.copy()
        self._model.lids.close(lids, blink)
        texture = np.concatenate([texture, lids[self._eye_points, :2]])
        warp = self._warp.map(driven, texture, self._triangles, order)
        pixels = cv2.remap(self._image, warp.map_x, warp.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._mouth.paint(pixels, warp, self._mouth_first, pts[:, :2])
        self._mouth.seam(pixels, self._warp.box[:2], pts[:, :2], float(np.clip(row[3], 0.0, 1.0)))

        x0, y0, x1, y1 = self._warp.box
        out[:] = self._image
        out[y0:y1, x0:x1] = pixels


def _mobility(xy: np.ndarray, size: int) -> np.ndarray:
    """(N,) share of its motion a point at ``xy`` (N, 2) keeps: 0 on the crop border, 1 beyond the band."""
    edge = np.minimum(xy, size - 1 - xy).min(axis=1)
    return smoothstep(edge / (BORDER_BAND * size))
