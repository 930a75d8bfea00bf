"""``SadTalkerRenderer``: FaceCrop + CoeffTrack -> streamed frame batches (SPEC §9, §11, §12).

Two paths, same frames:

* reference (``fast=False``, fp32): SadTalker's per-batch loop as specified - keypoints of the
  source repeated B times, every batch runs MappingNet, the keypoint transform and the whole
  generator (source encoding included). Batches hold B consecutive frames (SadTalker's layout
  interleaves them, B contiguous rows; frames are independent, so only the order of work
  differs), which lets frames stream out in order.
* fast (``fast=True`` or fp16/bf16): ``fast.FrameGraph`` (source work once, folded weights, fused
  SPADE, channels-last; half precision on CUDA), optionally ``torch.compile``d and/or captured
  as a CUDA graph; on CUDA, batch k + 1 is queued before batch k is copied to the host, so the GPU
  never waits for the consumer.

Memory is flat in the clip length: each batch is cut from the coefficients when it is rendered.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from renderer.sadtalker import semantics
from renderer.sadtalker.fast import DTYPES, FastStep
from renderer.sadtalker.keypoints import transform_keypoints
from talker.errors import OptionError, SpaceMismatchError
from talker.types import CoeffTrack, FaceCrop

Angles = float | Sequence[float] | None
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) float in [0, 1] -> (N, S, S, 3) uint8 = round-half-even(255 * clip(x, 0, 1))."""
    x = (frames.float().clamp(0.0, 1.0) * 255.0).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def source_tensor(image: np.ndarray, device) -> torch.Tensor:
    """(S, S, 3) RGB, uint8 (divided by 255) or float in [0, 1] (used as is) -> (1, 3, S, S) float32."""
    x = torch.from_numpy(np.ascontiguousarray(image))
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


class SadTalkerRenderer:
    """Renders a 'sadtalker'-space CoeffTrack on a FaceCrop with SadTalker's face renderer.

    face: the crop; ``face.image`` (S, S, 3) RGB uint8 (or float in [0, 1]), S a multiple of 128
        (256 or 512); ``face.mode`` picks the 70- or 73-channel MappingNet, which ``nets`` must hold.
    nets: ``RendererNets`` (moved to ``device`` if elsewhere).
    device: 'cpu', 'cuda', 'cuda:1', ...; precision: 'fp32', or 'fp16' / 'bf16' (CUDA only);
    batch_size: frames per generator call (B).
    fast: use the fast graph (implied by fp16/bf16). On CUDA it sets
        ``torch.backends.cudnn.benchmark = True`` (a process-wide flag).
    compile: None, or a ``torch.compile`` mode ('default', 'reduce-overhead', ...) for the fast graph.
    cuda_graph: capture the fast graph's batch step as a CUDA graph (CUDA only).
    channels_last: channels-last layout in the fast graph (default on; also faster on CPU).
    step: a ``FastStep`` built earlier for these nets, this size and ``batch_size`` (reused: the
        face is swapped in, nothing is compiled or captured again); then precision, compile,
        cuda_graph and channels_last are the step's own.
    """

    def __init__(self, face: FaceCrop, nets, *, device="cpu", precision: str = "fp32", batch_size: int = 2,
                 fast: bool = False, compile: str | None = None, cuda_graph: bool = False,
                 channels_last: bool = True, step: FastStep | None = None):
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if precision not in DTYPES:
            raise OptionError(f"precision must be one of {', '.join(DTYPES)}, not {precision!r}")
        if precision != "fp32" and not cuda:
            raise OptionError(f"{precision} rendering needs a CUDA device; use --precision fp32 on CPU")
        if cuda_graph and not cuda:
            raise OptionError("CUDA graphs need a CUDA device")
        if compile is not None and compile not in COMPILE_MODES:
            raise OptionError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, not {compile!r}")
        if batch_size < 1:
            raise OptionError(f"batch size must be at least 1, not {batch_size}")
        size = face.image.shape[0]
        if face.image.shape != (size, size, 3) or size % 128:
            raise ValueError(f"the face crop must be S x S x 3 with S a multiple of 128, not {face.image.shape}")
        self.full = face.pastes_back
        if nets.full != self.full:
            raise ValueError(f"mode {face.mode!r} needs the {semantics.channels(self.full)}-channel MappingNet, "
                             f"the nets hold the {semantics.channels(nets.full)}-channel one")
        if nets.device != self.device:
            for net in (nets.kp_detector, nets.generator, nets.mapping):
                net.to(self.device)
        self.nets = nets
        self.size = size
        self.batch_size = batch_size
        self.precision = precision
        self.fast = fast or precision != "fp32"
        self.source = source_tensor(face.image, self.device)
        self._step = step
        if self.fast:
            if cuda:
                torch.backends.cudnn.benchmark = True
            if step is None:
                self._step = FastStep(nets, size, batch_size, device=self.device, dtype=DTYPES[precision],
                                      channels_last=channels_last, compile=compile, cuda_graph=cuda_graph)
            elif (step.size, step.batch_size, step.device) != (size, batch_size, self.device):
                raise ValueError(f"the step renders {step.batch_size} x {step.size} px on {step.device}, not "
                                 f"{batch_size} x {size} px on {self.device}")

    # -- public API -------------------------------------------------------------------------------

    def render(self, track: CoeffTrack, *, still: bool = False, expression_scale: float = 1.0,
               input_yaw: Angles = None, input_pitch: Angles = None, input_roll: Angles = None,
               start: int = 0, to_host: bool = True) -> Iterator[np.ndarray]:
        """Yield (B, S, S, 3) uint8 RGB frame batches in time order; the B's sum to T - start.

        to_host: numpy arrays (True), or tensors on the renderer's device (False: the GPU pipeline
        pastes, restores and encodes them without a round trip through the host). A CUDA tensor is
        yielded once the GPU has finished it, so a consumer may use it on another stream.

        start: the first frame to render (to resume a render; each frame depends only on the
        track's coefficient window around it, so frames are the same as in a render from 0).

        still: keep the source's head pose (and crop params in full modes). expression_scale:
        multiplies the 64 expression coefficients. input_yaw/pitch/roll: free-view angles in degrees,
        one value (constant) or several (a path through them, SPEC §9); they replace the angles of
        the driving keypoints only. Raises SpaceMismatchError for a track not in 'sadtalker' space.
        """
        batches = self._batches(track, still, expression_scale, (input_yaw, input_pitch, input_roll), uint8=True,
                                first=start)
        if not to_host:
            yield from _finished(batches) if self.device.type == "cuda" else batches
        elif self.device.type == "cuda" and self.fast:
            yield from _pipelined_to_host(batches)
        else:
            for batch in batches:
                yield batch.cpu().numpy()

    def render_float(self, track: CoeffTrack, *, still: bool = False, expression_scale: float = 1.0,
                     input_yaw: Angles = None, input_pitch: Angles = None,
                     input_roll: Angles = None) -> Iterator[torch.Tensor]:
        """As ``render``, but yields the generator's (B, 3, S, S) float frames in (0, 1) on the device
        (float32 on the reference path, the compute dtype on the fast path)."""
        yield from self._batches(track, still, expression_scale, (input_yaw, input_pitch, input_roll), uint8=False)

    # -- internals --------------------------------------------------------------------------------

    def _inputs(self, track: CoeffTrack, still: bool, expression_scale: float, angles):
        """(source window (1, C, 27), target rows (T, C), override degrees (T, 3), use (3,) bool)."""
        if track.space != "sadtalker":
            raise SpaceMismatchError(
                f"the SadTalker renderer draws 'sadtalker' coefficient tracks, this one is {track.space!r}; "
                "use the embedded renderer (--backend embedded) or make the track with the SadTalker audio networks")
        if track.source is None or np.shape(track.source) != (73,) or track.values.ndim != 2 or track.values.shape[1] != 70:
            raise SpaceMismatchError("a 'sadtalker' track needs (T, 70) values and the (73,) source coefficients")
        t = track.num_frames
        source = np.asarray(track.source, np.float32)
        source_window = semantics.source_semantics(source, self.full)[None]
        rows = semantics.target_coefficients(track.values, source, full=self.full, still=still,
                                             expression_scale=expression_scale)
        paths = [semantics.free_view_degrees(a, t) for a in angles]
        use = np.array([p is not None for p in paths])
        degrees = np.stack([np.zeros(t, np.float32) if p is None else p for p in paths], axis=1)
        return source_window, rows, degrees, use

    @torch.no_grad()
    def _batches(self, track: CoeffTrack, still: bool, expression_scale: float, angles, *, uint8: bool,
                 first: int = 0):
        source_window, rows, degrees, use = self._inputs(track, still, expression_scale, angles)
        if self.fast:
            with self._step.lock:  # the step's buffers hold this face until the last batch
                yield from self._run(self._fast_step(source_window, use), rows, degrees, uint8, first,
                                     reuses_output=self._step.reuses_output)
        else:
            yield from self._run(self._reference_step(source_window, use), rows, degrees, uint8, first)

    def _run(self, step, rows: np.ndarray, degrees: np.ndarray, uint8: bool, first: int, reuses_output=False):
        t, b = len(rows), self.batch_size
        for start in range(first, t, b):
            frames = semantics.batch_frames(t, start, b)
            out = step(self._upload(semantics.windows(rows, frames)), self._upload(degrees[frames]))
            out = out[: min(b, t - start)]
            if uint8:
                yield to_uint8(out)
            else:
                yield out.clone() if reuses_output else out

    def _upload(self, array: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device)

    def _reference_step(self, source_window: np.ndarray, use: np.ndarray):
        """SPEC §11: keypoints and source semantics on B copies; the whole generator every batch."""
        nets, b = self.nets, self.batch_size
        source = self.source.expand(b, -1, -1, -1).contiguous()
        kp_canonical = nets.kp_detector(source)
        source_motion = nets.mapping(self._upload(source_window).expand(b, -1, -1).contiguous())
        kp_source = transform_keypoints(kp_canonical, source_motion)

        def step(windows: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
            overrides = {name: degrees[:, i] for i, name in enumerate(("yaw", "pitch", "roll")) if use[i]}
            kp_driving = transform_keypoints(kp_canonical, nets.mapping(windows), **overrides)
            return nets.generator(source, kp_source, kp_driving)["prediction"]

        return step

    def _fast_step(self, source_window: np.ndarray, use: np.ndarray):
        self._step.graph.set_source(self.source)
        self._step.graph.set_source_semantics(self._upload(source_window))
        use_t = torch.from_numpy(use).to(self.device)
        return lambda windows, degrees: self._step(windows, degrees, use_t)


def _finished(batches: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Yield each CUDA batch once the GPU has made it (the producer thread waits, not the consumer)."""
    for batch in batches:
        done = torch.cuda.Event()
        done.record()
        done.synchronize()
        yield batch


def _pipelined_to_host(batches: Iterator[torch.Tensor]) -> Iterator[np.ndarray]:
    """Copy CUDA uint8 batches to the host asynchronously, one batch behind the GPU.

    Two pinned staging buffers take turns; each batch is copied out of its buffer into an ordinary
    array before it is yielded, so pinned memory stays at two batches whatever the consumer keeps.
    """
    staging: list[torch.Tensor] = []
    pending = None
    for i, batch in enumerate(batches):
        if len(staging) < 2:
            staging.append(torch.empty(batch.shape, dtype=batch.dtype, pin_memory=True))
        host = staging[i % 2][: len(batch)]
        host.copy_(batch, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        if pending is not None:
            pending[1].synchronize()
            yield pending[0].numpy().copy()
        pending = (host, done)
    if pending is not None:
        pending[1].synchronize()
        yield pending[0].numpy().copy()
