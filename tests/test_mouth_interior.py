"""The painted mouth interior of the embedded renderer, read off rendered frames: gums, teeth, cavity
and tongue in the portrait's own colours and in a plausible order, lower teeth that the lower lip
hides until the mouth opens wide, a tongue on open vowels and on l / th, a tooth layout of each
portrait's own, and closed lips that meet without a line darker than the portrait's own."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import media_factory as mf
from audio2coeff.embedded.visemes import MOUTH_CHANNELS, VISEME_TARGETS
from renderer.embedded import EmbeddedRenderer
from renderer.embedded.mesh import LIP_INNER_LOWER, LIP_INNER_UPPER
from talker.face import prepare_face
from talker.types import EMBEDDED_CHANNELS, CoeffTrack


def _row(viseme: str | None = None, **values: float) -> np.ndarray:
    row = np.zeros(len(EMBEDDED_CHANNELS), np.float32)
    if viseme:
        for k, c in enumerate(MOUTH_CHANNELS):
            row[EMBEDDED_CHANNELS.index(c)] = VISEME_TARGETS[viseme][k]
    for name, v in values.items():
        row[EMBEDDED_CHANNELS.index(name)] = v
    return row


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, np.float64) @ np.array([0.299, 0.587, 0.114])


class Mouth:
    """One rendered frame and where things are in it: ``at(column, from_upper=d)`` or
    ``at(column, from_lower=d)``: the frame's colour at fractional inner-lip column ``column``
    (5 = the middle of the mouth), ``d`` IOD from the upper or lower inner lip along the column."""

    def __init__(self, renderer: EmbeddedRenderer, row: np.ndarray):
        (self.frame,) = np.concatenate(list(renderer.render(CoeffTrack(row[None], "embedded"))))
        pts = renderer.landmarks(row)[:, :2].astype(np.float64)
        self.up, self.lo = pts[list(LIP_INNER_UPPER)], pts[list(LIP_INNER_LOWER)]
        self.iod = renderer._model.frame.iod

    def _column(self, c: float) -> tuple[np.ndarray, np.ndarray]:
        k = min(int(c), len(self.up) - 2)
        f = c - k
        return self.up[k] + f * (self.up[k + 1] - self.up[k]), self.lo[k] + f * (self.lo[k + 1] - self.lo[k])

    def opening(self, c: float = 5.0) -> float:
        up, lo = self._column(c)
        return float(np.linalg.norm(lo - up)) / self.iod

    def at(self, c: float, from_upper: float | None = None, from_lower: float | None = None) -> np.ndarray:
        up, lo = self._column(c)
        down = (lo - up) / np.linalg.norm(lo - up)
        p = up + from_upper * self.iod * down if from_upper is not None else lo - from_lower * self.iod * down
        patch = cv2.getRectSubPix(self.frame, (1, 1), (float(p[0]), float(p[1])))
        return patch[0, 0].astype(np.float64)


@pytest.fixture(scope="module")
def hopper():
    return mf.grace_hopper()


@pytest.fixture(scope="module")
def grey_renderer(hopper):
    grey = np.repeat(cv2.cvtColor(hopper, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    renderer = EmbeddedRenderer(prepare_face(grey, "crop", 256))
    assert not renderer._mouth.uses_source  # a closed mouth: the interior is painted
    return renderer


@pytest.fixture(scope="module")
def colour_renderer(hopper):
    return EmbeddedRenderer(prepare_face(hopper, "crop", 256))


def test_a_grey_portrait_gets_grey_gums_teeth_and_cavity_in_that_brightness_order(grey_renderer):
    """With the upper lip lifted the gum shows between the lip and the teeth: darker than the teeth,
    lighter than the cavity, and all of it grey in a grey picture."""
    m = Mouth(grey_renderer, _row(jaw_open=1.0, upper_lip_raise=1.0))
    gum = m.at(5.5, from_upper=0.035)  # between the lip's soft edge and the gum line (~0.06 IOD)
    tooth = m.at(5.5, from_upper=0.13)  # the middle of a central incisor, below the gum
    cavity = m.at(3.0, from_lower=0.5 * m.opening(3.0))  # beside the tongue, under the teeth
    for colour in (gum, tooth, cavity):
        assert np.ptp(colour) <= 2.5, colour
    assert _luma(tooth) > _luma(gum) + 15 and _luma(gum) > _luma(cavity) + 10, (tooth, gum, cavity)


def test_lower_teeth_hide_behind_the_lower_lip_until_the_mouth_opens_wide(grey_renderer, monkeypatch):
    """Above the lower lip: the cavity at a small opening, the lower teeth (nearly as bright as the
    upper ones) at a wide one. The upper teeth are left out so that they cover neither."""
    import renderer.embedded.mouth as mouth

    upper = Mouth(grey_renderer, _row(jaw_open=1.0)).at(5.5, from_upper=0.08)
    monkeypatch.setattr(mouth, "TEETH_HEIGHT", 0.0)
    small, wide = Mouth(grey_renderer, _row("teeth")), Mouth(grey_renderer, _row("wide"))
    assert small.opening() < 0.12 < 0.3 < wide.opening()
    assert _luma(small.at(5.5, from_lower=0.5 * small.opening())) < 0.5 * _luma(upper)
    assert _luma(wide.at(5.5, from_lower=0.045)) > 0.6 * _luma(upper)


def test_the_tongue_shows_on_open_vowels_and_on_l_th_but_not_in_rounded_or_spread_consonants(colour_renderer):
    """The track has no tongue channel: the tongue shows where the jaw opens more than the lips spread
    or round; on l / th ('tongue' viseme) its tip rises into the opening."""
    tongue = colour_renderer._mouth.colours.tongue

    def tongue_like(colour: np.ndarray) -> bool:  # the tongue's hue, in its light or shade (not the dark cavity)
        hue = float(np.abs(colour / colour.sum() - tongue / tongue.sum()).max())
        return hue < 0.03 and _luma(colour) > 0.55 * _luma(tongue)

    for viseme, shows in (("open", True), ("wide", True), ("tongue", True), ("teeth", False), ("pucker", False)):
        m = Mouth(colour_renderer, _row(viseme))
        # low on the tongue (above the lower teeth), or, its tip raised, the middle of the opening
        where = {"tongue": 0.5 * m.opening()}.get(viseme, 0.085)
        seen = m.at(5.0, from_lower=min(where, 0.5 * m.opening()))
        assert tongue_like(seen) == shows, (viseme, seen, tongue)


def test_two_portraits_get_their_own_tooth_layouts_and_the_gaps_are_drawn_where_it_says(hopper):
    """Tooth widths follow the mouth's size and differ a little per portrait and per side; the
    rendered upper teeth are darker at the layout's gaps than in the middle of each tooth."""
    renderers = [EmbeddedRenderer(prepare_face(rgb, "crop", 256)) for rgb in (hopper, mf.astronaut())]
    edges = [r._mouth.upper_teeth.edges for r in renderers]
    assert np.abs(edges[0] - edges[1]).max() > 0.005  # IOD
    assert np.abs(edges[0][0] - edges[0][1]).max() > 0.002  # the two sides differ too

    r = renderers[0]
    row = _row(jaw_open=1.0)
    m = Mouth(r, row)
    half = 0.5 * float(np.linalg.norm(m.up[-1] - m.up[0])) / m.iod  # inner half-width (IOD)
    right = edges[0][1]
    gaps = right[1:3]  # the right side's first two gaps beside the middle one
    middles = (right[:2] + right[1:3]) / 2
    luma = lambda x: _luma(m.at(5.0 + 5.0 * x / half, from_upper=0.07))  # noqa: E731
    for gap, middle in zip(gaps, middles):
        assert luma(gap) < luma(middle) - 8, (gap, middle, luma(gap), luma(middle))


def test_closed_lips_show_no_line_darker_than_the_portraits_own_lip_contact(colour_renderer, monkeypatch):
    """Grace Hopper's lips meet in the portrait: where the render closes them the darkest pixel
    across the seam is no darker than the darkest across the portrait's own seam, and they are
    still shaded along their contact (a soft shadow, not nothing)."""
    face = colour_renderer.face
    src = np.asarray(face.landmarks)[:, :2].astype(np.float64)

    def darkest_across_seam(frame: np.ndarray, pts: np.ndarray) -> np.ndarray:
        up, lo = pts[list(LIP_INNER_UPPER)], pts[list(LIP_INNER_LOWER)]
        seam = (up + lo) / 2
        down = np.array([0.0, 1.0])
        out = []
        for p in seam[2:-2]:
            across = [cv2.getRectSubPix(frame, (1, 1), tuple(map(float, p + d * down)))[0, 0] for d in np.linspace(-3, 3, 13)]
            out.append(_luma(np.array(across, np.float64)).min())
        return np.array(out)

    own = darkest_across_seam(face.image, src)
    closed = Mouth(colour_renderer, _row("closed"))
    pts = colour_renderer.landmarks(_row("closed"))[:, :2].astype(np.float64)
    drawn = darkest_across_seam(closed.frame, pts)
    assert drawn.min() >= own.min() - 3.0, (drawn.round(), own.round())
    import renderer.embedded.mouth as mouth

    monkeypatch.setattr(mouth, "CONTACT_SHADE", 0.0)
    plain = darkest_across_seam(Mouth(colour_renderer, _row("closed")).frame, pts)
    assert np.mean(plain - drawn) > 3.0  # the contact is shaded
