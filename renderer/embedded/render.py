"""The embedded renderer: FaceCrop + CoeffTrack ('embedded' space) -> frames.

crop / extcrop / resize: S x S frames of the crop. full / extfull: frames of the face box at the
portrait's own resolution (at most MAX_SIDE pixels a side), warped once from the portrait's pixels,
so the face keeps the picture's detail (paste-back then has nothing to scale).

Per frame:
1. Articulate the landmarks (face_model), pose the head (pose); motion fades to nothing within a
   band along the crop border, so the border never moves.
2. Give the falloff rings their share of the face-oval motion (the outer ring: none).
3. Send every triangle the motion turned over to the back (its texture would show mirrored: a
   crack or a doubled eye on a turned face): as in 3-D rendering, a triangle turned away is hidden
   behind the nearer ones; it shows only where nothing else is drawn (so no hole opens).
4. Paint the driven triangles back to front (rings, then the eye and mouth fills, then the skin
   from far to near) into a triangle-index map of the box holding the rings, and read the source
   through it with one cv2.remap (warp).
5. Paint the mouth interior where the lips part, and the contact shadow where they are pressed shut (mouth).
6. In a blink, the lids show lid skin instead of the portrait's lashes and eye-white corners, with
   one lash line along each closing upper lid (eyes.LidSkin); then draw what lies over the lids in
   the portrait (a fringe, a glasses frame: eyes.LidCover) where the motion without the blink puts
   it: the lids close under it.
Pixels outside the outer ring are the source's, untouched.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from renderer.embedded.eyes import LidCover, LidSkin, lash_colour, shade_closing
from renderer.embedded.face_model import FaceModel
from renderer.embedded.geometry import smoothstep
from renderer.embedded.mesh import EYES, FACE_OVAL, NUM_LANDMARKS, build_rings, canonical, eye_triangles, mouth_triangles
from renderer.embedded.mouth import MouthPainter
from renderer.embedded.pose import HeadPose
from renderer.embedded.warp import TriangleWarp, WarpMap
from talker.errors import SpaceMismatchError
from talker.types import EMBEDDED_CHANNELS, CoeffTrack, FaceCrop

BORDER_BAND = 0.06
"""Width (share of the image's shorter side) of the band along its border over which motion fades to zero."""
MAX_SIDE = 1024
"""Longest side (pixels) of a full / extfull render; a larger face box is rendered at this size."""
_BLINK, _LIP_CLOSE = EMBEDDED_CHANNELS.index("blink"), EMBEDDED_CHANNELS.index("lip_close")
FOLD_AREA = 0.5
"""Twice the area (pixels^2), in the texture and in the frame, below which a triangle is too thin to
be judged folded (a closed mouth's or eye's fill, a triangle seen edge-on)."""


class EmbeddedRenderer:
    """Mesh-warp renderer for one face. Construction precomputes the topology, the motion fields,
    the fit of the source's own mouth opening and the mouth-interior colours.

    ``frame_size``: (width, height) of the frames it draws: (S, S), or the face box's size in the
    portrait (scaled down to MAX_SIDE) in full / extfull."""

    def __init__(self, face: FaceCrop):
        self.face = face
        image, landmarks, self._to_crop = _work_image(face)
        self.frame_size = (image.shape[1], image.shape[0])
        # a face moved by half a pixel keeps this share of its fine detail (Laplacian variance):
        # bilinear ~35 % (a visible blur), bicubic ~70 %, Lanczos ~85 %; Lanczos costs more, spent
        # where the face is shown at the picture's own resolution
        self._sampling = cv2.INTER_LANCZOS4 if face.pastes_back else cv2.INTER_CUBIC
        self._image = image
        self._model = FaceModel(landmarks)
        source = self._model.source
        self._source = source
        self._pose = HeadPose(self._model.frame)
        self._mouth = MouthPainter(self._image, self._model)

        rings = build_rings(source, self.frame_size)
        n_oval = len(FACE_OVAL)
        self._ring_count = len(rings.xy)
        self._ring_xy = rings.xy.reshape(-1, 2).astype(np.float64)
        self._ring_share = np.repeat(rings.weight, n_oval) * _mobility(self._ring_xy, self.frame_size)
        self._mobility = _mobility(source[:, :2], self.frame_size)[:, None]
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
        # the mouth fill is painted over (mouth.MouthPainter): its orientation does not show
        self._judged = np.ones(len(self._triangles), bool)
        self._judged[self._mouth_first : self._mouth_first + len(mouth)] = False
        self._n_back = len(self._triangles) - len(skin)
        self._eye_fill = (self._mouth_first + len(mouth), self._n_back)  # its triangles' index range
        self._lash = lash_colour(image, source)
        self._skin = skin
        self._warp = TriangleWarp(rings.box)
        self._cover, self._cover_warp = self._lid_cover()
        under = self._cover.under if self._cover is not None else image
        self._lid_skin = LidSkin(under, source, self._model.frame, self._lash)
        self._eye_rows = [(list(eye.contour), list(eye.upper)) for eye in EYES]

    def landmarks(self, row: np.ndarray) -> np.ndarray:
        """(478, 3) float32 driven landmarks in crop pixels (FaceCrop.image's) for one track row
        (EMBEDDED_CHANNELS). A zero row gives the face's landmarks (with any mesh fold opened, see
        mesh.unfold)."""
        return (self._driven(np.asarray(row, np.float64)) * self._to_crop).astype(np.float32)

    def folds(self, row: np.ndarray) -> np.ndarray:
        """(T,) bool over the warp's triangles: those one track row turns over (their texture would
        show mirrored); they are drawn behind all others. The mouth fill is not judged: the interior
        is painted over it."""
        driven, texture, _ = self._mesh(np.asarray(row, np.float64))
        return _folded(driven, texture, self._triangles) & self._judged

    def coverage(self, row: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """(index, box) for one track row: the (h, w) int32 map of the triangle drawn at each pixel
        of the frame's box (x0, y0, x1, y1) (T where none is: the source shows as it is)."""
        return self._warp_map(np.asarray(row, np.float64), self._warp).index, self._warp.box

    def render(self, track: CoeffTrack, batch_size: int = 8) -> Iterator[np.ndarray]:
        """(B, H, W, 3) uint8 RGB batches (W, H: ``frame_size``), B <= batch_size, covering the
        track's frames in order, drawn as they are asked for (memory does not grow with the track's length).

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
        width, height = self.frame_size
        for start in range(0, len(values), batch_size):
            rows = values[start : start + batch_size]
            batch = np.empty((len(rows), height, width, 3), np.uint8)
            for k, row in enumerate(rows):
                self._draw(row, batch[k])
            yield batch

    def _driven(self, row: np.ndarray) -> np.ndarray:
        posed = self._pose.apply(self._model.articulate(row), *row[8:13])
        return self._source + (posed - self._source) * self._mobility

    def _mesh(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(driven, texture, pts) for one row: (N, 2) warp-vertex positions in the frame and in the
        source (frame pixels); pts: (478, 3) the driven landmarks."""
        pts = self._driven(row)
        oval_move = pts[list(FACE_OVAL), :2] - self._source[list(FACE_OVAL), :2]
        rings = self._ring_xy + self._ring_share[:, None] * np.tile(oval_move, (self._ring_count, 1))
        driven = np.concatenate([pts[:, :2], rings, pts[self._eye_points, :2]])

        blink = float(np.clip(row[_BLINK], 0.0, 1.0))
        texture = self._model.lids.rim_texture(self._source_xy, blink)
        texture = self._model.lip_texture(texture, float(np.clip(row[_LIP_CLOSE], 0.0, 1.0)))
        # a closing lid covers the eye, it does not squash it: the eye fill shows the source eye
        # where the lids have moved to (the lid skin above stretches over it)
        lids = self._source.copy()
        self._model.lids.close(lids, blink)
        texture = np.concatenate([texture, lids[self._eye_points, :2]])
        return driven, texture, pts

    def _warp_map(self, row: np.ndarray, warp: TriangleWarp) -> WarpMap:
        """The backward map of ``warp``'s box for one row: its mesh drawn back to front (_order)."""
        driven, texture, pts = self._mesh(row)
        return warp.map(driven, texture, self._triangles, self._order(driven, texture, pts))

    def _lid_cover(self) -> tuple[LidCover | None, TriangleWarp | None]:
        """What lies over the lids (eyes.LidCover), found from the pixels a full blink moves, and a
        warp over its box; (None, None) where nothing does."""
        rest, shut = np.zeros(len(EMBEDDED_CHANNELS)), np.zeros(len(EMBEDDED_CHANNELS))
        shut[_BLINK] = 1.0
        maps = [self._warp_map(row, self._warp) for row in (rest, shut)]
        x0, y0, x1, y1 = self._warp.box
        moved = np.zeros(self._image.shape[:2], np.float32)
        moved[y0:y1, x0:x1] = np.hypot(maps[1].map_x - maps[0].map_x, maps[1].map_y - maps[0].map_y)
        cover = LidCover(self._image, self._source, self._model.frame.iod, moved)
        if not cover.found:
            return None, None
        cx0, cy0, cx1, cy1 = cover.box
        return cover, TriangleWarp((max(cx0, x0), max(cy0, y0), min(cx1, x1), min(cy1, y1)))

    def _paint_cover(self, row: np.ndarray, pixels: np.ndarray) -> None:
        """Draw the lid cover into ``pixels`` (the warp box's) where ``row`` without its blink puts it."""
        still = row.copy()
        still[_BLINK] = 0.0
        warp = self._warp_map(still, self._cover_warp)
        x0, y0 = self._warp.box[:2]
        cx0, cy0, cx1, cy1 = self._cover_warp.box
        self._cover.paint(pixels[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], self._image, warp.map_x, warp.map_y, self._sampling)

    def _paint_lids(self, pixels: np.ndarray, warp: WarpMap, driven: np.ndarray, blink: float) -> None:
        """Blend the lids of ``pixels`` (the warp box's) toward eyes.LidSkin's image as a blink of
        ``blink`` shuts them (LidSkin.weight), around the driven contour of each eye LidSkin redraws,
        and draw the lash line along its upper lid's edge; the eye fill between the lids stays as it is
        drawn until the lids all but meet (LidSkin.sealed)."""
        share = LidSkin.weight(blink)
        if share <= 0.0:
            return
        x0, y0, x1, y1 = self._warp.box
        reach = 0.3 * self._model.frame.iod
        for k in self._lid_skin.eyes:
            rows, rim = self._eye_rows[k]
            (ex0, ey0), (ex1, ey1) = driven[rows].min(axis=0) - reach, driven[rows].max(axis=0) + reach
            cols = slice(int(max(ex0, x0)) - x0, int(min(ex1, x1 - 1)) + 1 - x0)
            lines = slice(int(max(ey0, y0)) - y0, int(min(ey1, y1 - 1)) + 1 - y0)
            lid = cv2.remap(self._lid_skin.image, warp.map_x[lines, cols], warp.map_y[lines, cols], self._sampling,
                            borderMode=cv2.BORDER_REPLICATE)
            index = warp.index[lines, cols]
            fill = (index >= self._eye_fill[0]) & (index < self._eye_fill[1])
            on = np.where(fill, LidSkin.sealed(blink), share)[..., None]
            box = pixels[lines, cols]
            box[:] = (box + on * (lid.astype(np.float32) - box) + 0.5).astype(np.uint8)
            origin = (cols.start + x0, lines.start + y0)
            self._lid_skin.draw_lash(box, driven[rim] - origin, share)

    def _order(self, driven: np.ndarray, texture: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """Triangle indices to paint, back to front: folded triangles first (they show only where no
        other triangle covers, rather than leave a hole), then the rings, the fills and the skin
        from far to near."""
        depth = pts[self._skin, 2].mean(axis=1)
        order = np.concatenate([np.arange(self._n_back), self._n_back + np.argsort(-depth, kind="stable")])
        folded = (_folded(driven, texture, self._triangles) & self._judged)[order]
        return np.concatenate([order[folded], order[~folded]])

    def _draw(self, row: np.ndarray, out: np.ndarray) -> None:
        """Render one frame into ``out`` (H, W, 3) uint8."""
        driven, texture, pts = self._mesh(row)
        warp = self._warp.map(driven, texture, self._triangles, self._order(driven, texture, pts))
        covered = self._cover is not None and row[_BLINK] > 0.0
        image = self._cover.under if covered else self._image
        pixels = cv2.remap(image, warp.map_x, warp.map_y, self._sampling, borderMode=cv2.BORDER_REPLICATE)
        lips = driven[:NUM_LANDMARKS]
        self._mouth.paint(pixels, warp, self._mouth_first, lips, row)
        shade_closing(pixels, warp.index, self._eye_fill, self._lash, float(row[_BLINK]))
        self._paint_lids(pixels, warp, driven, float(row[_BLINK]))
        self._mouth.contact(pixels, self._warp.box[:2], lips, float(np.clip(row[_LIP_CLOSE], 0.0, 1.0)))
        if covered:
            self._paint_cover(row, pixels)

        x0, y0, x1, y1 = self._warp.box
        out[:] = self._image
        out[y0:y1, x0:x1] = pixels


def _work_image(face: FaceCrop) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, landmarks, to_crop): what the renderer warps, (H, W, 3) uint8, its (478, 3) landmarks in
    its pixels, and (3,) per-axis factors from its pixels to FaceCrop.image's.

    crop / extcrop / resize: the crop itself. full / extfull: the face box of the portrait at its own
    resolution (edge pixels repeated where the box leaves the picture), scaled down to MAX_SIDE."""
    if not face.pastes_back:
        return np.ascontiguousarray(face.image), np.asarray(face.landmarks, np.float64), np.ones(3)
    x0, y0, x1, y1 = face.box
    h, w = face.source.shape[:2]
    region = face.source[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    region = cv2.copyMakeBorder(region, max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0), cv2.BORDER_REPLICATE)
    scale = min(1.0, MAX_SIDE / max(x1 - x0, y1 - y0))
    size = (max(2, round((x1 - x0) * scale)), max(2, round((y1 - y0) * scale)))
    if size != (x1 - x0, y1 - y0):
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    factors = np.array([size[0] / (x1 - x0), size[1] / (y1 - y0), size[0] / (x1 - x0)])
    landmarks = (np.asarray(face.source_landmarks, np.float64) - (x0, y0, 0.0)) * factors
    s = face.size
    to_crop = np.array([s / size[0], s / size[1], s / size[0]])
    return np.ascontiguousarray(region), landmarks, to_crop


def _areas(xy: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T,) twice the signed area of each triangle of vertex positions ``xy`` (N, 2)."""
    p = xy[triangles]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    return e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]


def _folded(driven: np.ndarray, texture: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T,) bool: triangles whose driven orientation is the opposite of their texture's (both more
    than FOLD_AREA): warped, their texture would show mirrored."""
    a, b = _areas(driven, triangles), _areas(texture, triangles)
    return (a * b < 0) & (np.abs(a) > FOLD_AREA) & (np.abs(b) > FOLD_AREA)


def _mobility(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N,) share of its motion a point at ``xy`` (N, 2) keeps: 0 on the border of an image of ``size``
    (width, height), 1 beyond the band."""
    edge = np.minimum(xy, np.asarray(size, np.float64) - 1 - xy).min(axis=1)
    return smoothstep(edge / (BORDER_BAND * min(size)))
