"""The typed hand-offs between the stages of DESIGN.md's data flow.

    image  -> talker.face        -> FaceCrop
    audio  -> talker.media       -> Audio
    Audio  -> audio2coeff        -> CoeffTrack   (per-frame coefficients at FPS)
    FaceCrop + CoeffTrack -> renderer -> iterator of frame batches, uint8 (B, S, S, 3) RGB
                                         (full / extfull: (B, h, w, 3) of the face box's aspect)
    frames -> enhance (restore + paste back) -> uint8 (B, H, W, 3) RGB -> talker.media writer

A stage reads only the hand-off before it. Images are RGB everywhere inside the product; the
conversion from/to BGR happens once, at the edges (OpenCV reads/writes, ffmpeg pipes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FPS = 25
"""Video frame rate of every output (frames per second)."""

SAMPLE_RATE = 16000
"""Sample rate of ``Audio.samples`` (Hz)."""

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640


@dataclass
class Audio:
    """Speech to animate.

    samples: (N,) float32 mono waveform at ``SAMPLE_RATE`` Hz, values in [-1, 1].
    transcript: the words spoken, when known (from ``--text``); used for forced alignment.
    source: where it came from (file path, or None for synthesised speech).
    phones: for speech talker synthesised itself, the synthesiser's phones [(start_s, end_s, CMU
        phone or 'sil')] covering the samples; None for recordings (phones are then found).
    """

    samples: np.ndarray
    transcript: str | None = None
    source: Path | None = None
    phones: list[tuple[float, float, str]] | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / SAMPLE_RATE

    @property
    def num_frames(self) -> int:
        """Number of video frames at ``FPS`` covering the audio: round(duration * FPS), at least 1.

        The video then lasts within half a frame of the audio.
        """
        return max(1, int(round(len(self.samples) / SAMPLES_PER_FRAME)))


PREPROCESS_MODES = ("crop", "extcrop", "resize", "full", "extfull")


@dataclass
class FaceCrop:
    """The face to animate, cut out of the portrait.

    image: (S, S, 3) uint8 RGB, the face region resized to S x S (aspect not preserved, as SadTalker).
    landmarks: (478, 3) float32 mediapipe face-mesh points in ``image`` pixels: x right, y down,
        z towards the camera-away direction in the same pixel scale (mediapipe's z * S).
    source: (H, W, 3) uint8 RGB, the whole portrait after EXIF orientation and alpha flattening.
    box: (x0, y0, x1, y1) int, the region of ``source`` that ``image`` shows (x1, y1 exclusive).
        In 'resize' mode it is the whole picture.
    mode: one of PREPROCESS_MODES.
    source_landmarks: (478, 3) float32, the same points in ``source`` pixels.
    faces: every face box found in the portrait, (x0, y0, x1, y1) in source pixels, largest first.
    """

    image: np.ndarray
    landmarks: np.ndarray
    source: np.ndarray
    box: tuple[int, int, int, int]
    mode: str
    source_landmarks: np.ndarray
    faces: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """S, the side of the square crop in pixels (256 or 512)."""
        return int(self.image.shape[0])

    @property
    def pastes_back(self) -> bool:
        """True when the output is the whole picture (full / extfull), not the crop."""
        return self.mode in ("full", "extfull")

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the output video frames in pixels, before rounding to even sides.

        full/extfull: the source picture's size. crop/extcrop/resize: S x S, the rendered crop as it
        is (SadTalker's own script resizes it to the box's aspect afterwards; that is a display step
        after every network, so both backends skip it and write the square that ``--size`` names).
        """
        if self.pastes_back:
            return int(self.source.shape[1]), int(self.source.shape[0])
        return self.size, self.size


# Column names of an embedded-space CoeffTrack, in order. Units:
#   jaw_open        0..1   jaw opening (1 = wide open vowel 'aa', about 0.35 inter-ocular distances)
#   lip_width      -1..1   mouth corners apart (+) or together (-), beyond jaw-driven motion
#   lip_round       0..1   rounding/protrusion ('uw', 'ow', 'w')
#   lip_close       0..1   lips pressed together (p, b, m); 1 = inner lip contours meet
#   lip_tuck        0..1   lower lip under the upper teeth (f, v)
#   upper_lip_raise 0..1   upper lip lifted (shows upper teeth)
#   blink           0..1   eyelid closure of both eyes (1 = closed)
#   brow_raise     -1..1   brow lift (+) or frown (-)
#   yaw, pitch, roll       head rotation in radians relative to the source pose (right-handed:
#                          yaw + turns the face to the viewer's left, pitch + nods down, roll + tilts clockwise in the image)
#   tx, ty                 head translation in inter-ocular distances (x right, y down)
EMBEDDED_CHANNELS = (
    "jaw_open",
    "lip_width",
    "lip_round",
    "lip_close",
    "lip_tuck",
    "upper_lip_raise",
    "blink",
    "brow_raise",
    "yaw",
    "pitch",
    "roll",
    "tx",
    "ty",
)

# Columns of a sadtalker-space CoeffTrack: 64 expression coefficients, then yaw, pitch, roll
# (radians), tx, ty, tz, as SadTalker's Audio2Exp + Audio2Pose produce them.
SADTALKER_CHANNELS = tuple(f"exp{i}" for i in range(64)) + ("yaw", "pitch", "roll", "tx", "ty", "tz")


@dataclass
class CoeffTrack:
    """Per-frame motion coefficients at ``FPS`` frames per second.

    values: (T, C) float32, one row per video frame.
    space: 'embedded' (columns EMBEDDED_CHANNELS) or 'sadtalker' (columns SADTALKER_CHANNELS).
    source: for 'sadtalker', the source picture's (73,) coefficients (exp 64, angle 3, trans 3,
        crop 3); None for 'embedded'.
    meta: free-form provenance (seed, pose style, phones used, ...), JSON-serialisable.
    """

    values: np.ndarray
    space: str
    source: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def channels(self) -> tuple[str, ...]:
        return EMBEDDED_CHANNELS if self.space == "embedded" else SADTALKER_CHANNELS

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    def column(self, name: str) -> np.ndarray:
        """(T,) values of one named channel."""
        return self.values[:, self.channels.index(name)]

    def save(self, path: str | Path) -> None:
        """Write the track as .npz (values, space, channels, source, meta as JSON)."""
        import json

        extra = {} if self.source is None else {"source": self.source}
        np.savez(
            path,
            values=self.values,
            space=self.space,
            channels=np.array(self.channels),
            meta=json.dumps(self.meta),
            fps=FPS,
            **extra,
        )

    @classmethod
    def load(cls, path: str | Path) -> "CoeffTrack":
        import json

        with np.load(path, allow_pickle=False) as z:
            return cls(
                values=z["values"].astype(np.float32),
                space=str(z["space"]),
                source=z["source"] if "source" in z else None,
                meta=json.loads(str(z["meta"])),
            )
