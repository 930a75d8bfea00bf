"""The talker pipeline: a portrait and a voice in, an MP4 out.

``make(options)`` runs the stages of DESIGN.md's data flow in order; each stage is also a function
you can call on its own:

    1. check inputs, apply the preset, check the output paths (options.validate, make_presets.apply_preset)
    2. pick the backend and the enhancer      -> Backend, FaceRestorer (choose_backend, load_restorer)
   2b. with options.portrait, draw the portrait -> <out>.portrait.png (talker.portrait.make_portrait)
    3. read the portrait, find and crop the face -> FaceCrop      (load_face)
    4. read or synthesise the speech             -> Audio         (load_audio)
    5. speech to motion coefficients             -> CoeffTrack    (Backend.coeffs)
    6. render frames, paste back, restore, stream into the encoder (render_video)

Frames are rendered in batches and streamed to ffmpeg: memory does not grow with the audio's length.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from talker.errors import InputAudioError
from talker.model_cache import cached, file_key
from talker.options import MakeOptions
from talker.types import Audio, CoeffTrack, FaceCrop

log = logging.getLogger(__name__)

ProgressCallback = Callable[["Progress"], None]


@dataclass
class Progress:
    """A progress report: ``stage`` name, frames done of ``total``, frames per second, seconds left."""

    stage: str
    done: int = 0
    total: int = 0
    fps: float = 0.0
    eta_s: float = 0.0
    note: str = ""  # what happened, in words (e.g. the switch to a lower preset after out-of-memory)


@dataclass
class MakeResult:
    """What ``make`` produced: the MP4, the speech and motion track it was driven by, stage timings (s)."""

    video: Path | None  # None when the video went to standard output (-o -)
    audio: Audio
    track: CoeffTrack
    backend: str
    timings: dict
    portrait: Path | None = None  # the drawn portrait (with options.portrait), beside the video


def make(options: MakeOptions, progress: ProgressCallback | None = None, *, stream: str | Path | None = None,
         keep: tuple[str, ...] = ()) -> MakeResult:
    """Run the whole pipeline and return where the video was written.

    stream: also write the video while it renders: an HLS playlist (``.m3u8``) or a fragmented MP4
    (``.mp4``) path (see ``talker.media.VideoWriter``); ``options.out`` ``-`` sends a fragmented MP4
    to standard output instead of saving one. keep: option names the preset must not change (the
    flags given on the command line; see ``talker.make_presets``).
    """
    report = progress or (lambda p: None)
    timings: dict[str, float] = {}

    # 1. Check inputs, apply the preset and check the output paths before any heavy work.
    from talker.folders import made_folders
    from talker.make_presets import apply_preset
    from talker.media import check_output_path

    options, presets = apply_preset(options.validate(), keep)
    options.validate()
    if options.out is not None and str(options.out) == "-":
        out, stream = None, "-"
    else:
        out = check_output_path(options.out or options.default_out, options.force)
    if stream is not None and stream != "-":
        suffix = Path(stream).suffix.lower()
        stream = check_output_path(stream, options.force, suffix=suffix if suffix == ".m3u8" else ".mp4")
    if presets:
        log.info("preset %s (%s), then %s", presets[0].name, presets[0].path,
                 " > ".join(p.name for p in presets[1:]) or "no fallback")

    # Missing folders above the outputs are made now and taken back if anything below fails.
    with made_folders(out, stream if isinstance(stream, Path) else None):
        # 2. Pick the backend and the enhancer: missing model files are reported before any work.
        backend = choose_backend(options)
        restorer = load_restorer(options)
        log.info("backend: %s, enhancer: %s", backend.name, options.enhancer)

        # 2b. Draw the portrait first when asked; it is saved beside the video and animated.
        portrait = None
        if options.portrait is not None:
            from dataclasses import replace

            from talker.portrait import make_portrait

            t = time.perf_counter()
            report(Progress("portrait"))
            beside = out if out is not None else Path(options.default_out)  # -o -: where the video would be
            portrait = make_portrait(options.portrait, beside.with_suffix(".portrait.png"), options.force).path
            options = replace(options, image=portrait)
            timings["portrait"] = time.perf_counter() - t

        # 3. Read the portrait and find the face.
        t = time.perf_counter()
        report(Progress("face"))
        face = load_face(options)
        timings["face"] = time.perf_counter() - t

        # 4. Read or synthesise the speech.
        t = time.perf_counter()
        report(Progress("audio"))
        audio = load_audio(options)
        timings["audio"] = time.perf_counter() - t

        # 5. Speech to motion coefficients; meanwhile the renderer loads and warms up in a thread.
        t = time.perf_counter()
        report(Progress("motion"))
        backend.prepare(face, options)
        track = backend.coeffs(face, audio, options)
        timings["motion"] = time.perf_counter() - t

        # 6. Render, paste back, restore and encode, streaming.
        t = time.perf_counter()
        render_video(face, audio, track, backend, restorer, options, out, report, stream=stream, fallbacks=presets[1:])
        timings["render"] = time.perf_counter() - t
        return MakeResult(video=out, audio=audio, track=track, backend=backend.name, timings=timings, portrait=portrait)


def load_face(options: MakeOptions) -> FaceCrop:
    """Stage 3: the portrait file -> FaceCrop in the requested preprocess mode and size."""
    from talker.face import prepare_face
    from talker.media import read_image

    rgb = read_image(options.image)
    return prepare_face(
        rgb, mode=options.preprocess, size=options.size, face_index=options.face_index, name=Path(options.image).name
    )


def load_audio(options: MakeOptions) -> Audio:
    """Stage 4: the audio file (or the text, spoken by espeak-ng) -> 16 kHz mono Audio.

    With both audio and text, the text is the transcript used for forced alignment. Audio in which
    no speech is found (music, noise) is refused: there is nothing to lip-sync.
    """
    from audio2coeff.embedded import is_speech
    from talker.media import read_audio, synthesize_speech

    if options.audio is not None:
        audio = read_audio(options.audio, transcript=options.text)
    else:
        audio = synthesize_speech(options.text)
    if not is_speech(audio):
        where = options.audio if options.audio is not None else "the synthesised speech"
        raise InputAudioError(
            f"no speech found in {where}: it sounds like music, noise or silence; "
            "give a recording of a voice speaking"
        )
    return audio


class Backend:
    """A pair of stages sharing one coefficient space: audio -> CoeffTrack, and a renderer for it."""

    name = "?"

    def coeffs(self, face: FaceCrop, audio: Audio, options: MakeOptions) -> CoeffTrack:
        raise NotImplementedError

    frame_device = "cpu"
    """Where ``frames`` yields its batches: numpy arrays on 'cpu', else tensors on that device."""

    def prepare(self, face: FaceCrop, options: MakeOptions) -> None:
        """Start getting the renderer for ``face`` ready (load, compile) while the coefficients are computed."""

    def frames(self, face: FaceCrop, track: CoeffTrack, options: MakeOptions, start: int = 0) -> Iterator[np.ndarray]:
        """Rendered frames ``start``.. of the track, (B, h, w, 3) uint8 RGB batches (numpy arrays, or
        tensors on ``frame_device``): S x S, or in full / extfull any size of the face box's aspect
        (paste-back scales them to the box)."""
        raise NotImplementedError

    def switch(self, options: MakeOptions) -> "Backend":
        """This backend for ``options``'s device and precision (after a fallback to a lower preset)."""
        return self

    def face_points(self, face: FaceCrop, track: CoeffTrack) -> np.ndarray:
        """(T, 5, 2) float32 eye centres, nose tip and mouth corners of each rendered frame, in crop
        pixels: where the enhancer aligns each face (no per-frame detection)."""
        from enhance.restore import landmarks5_from_mesh

        return np.repeat(landmarks5_from_mesh(face.landmarks)[None], track.num_frames, axis=0)


class EmbeddedBackend(Backend):
    """Phones and loudness drive a mesh warp of the portrait; needs no model files."""

    name = "embedded"

    def __init__(self):
        self._face = self._built = None

    def coeffs(self, face, audio, options):
        from audio2coeff.embedded import embedded_track

        return embedded_track(
            audio,
            seed=options.seed,
            language=options.language,
            blink_rate=options.blink_rate,
            blink=not options.no_blink,
            pose_style=options.pose_style,
            head_motion=0.0 if options.still else options.head_motion,
            expression_scale=options.expression_scale,
        )

    def frames(self, face, track, options, start=0):
        from dataclasses import replace

        rest = replace(track, values=track.values[start:]) if start else track  # frames are drawn independently
        return self._renderer(face).render(rest, batch_size=options.batch_size)

    def face_points(self, face, track):
        """The renderer's driven landmarks, so restoration follows the moving mouth and head."""
        from enhance.restore import landmarks5_from_mesh

        renderer = self._renderer(face)
        return landmarks5_from_mesh(np.stack([renderer.landmarks(row) for row in track.values]))

    def _renderer(self, face):
        """One EmbeddedRenderer per face (its set-up is shared by frames and face_points)."""
        from renderer.embedded import EmbeddedRenderer

        if self._face is not face:
            self._face, self._built = face, EmbeddedRenderer(face)
        return self._built


class SadTalkerBackend(Backend):
    """SadTalker's networks loaded from the official checkpoints (verified before use)."""

    name = "sadtalker"

    def __init__(self, files, device: str, precision: str):
        self.files, self.device, self.precision = files, device, precision
        self._ready = None  # (face, batch size, Future of _renderer_parts) once prepare ran
        self.frame_device = device if device.startswith("cuda") else "cpu"  # GPU frames stay on the GPU

    def coeffs(self, face, audio, options):
        from audio2coeff.sadtalker import SadTalkerAudioNets, sadtalker_track

        nets = cached(("sadtalker-audio", self._files_key(), self.device),
                      lambda: SadTalkerAudioNets.from_files(self.files, self.device))
        return sadtalker_track(
            face, audio, nets,
            pose_style=options.pose_style, still=options.still, expression_scale=options.expression_scale,
            seed=options.seed, blink=not options.no_blink,
        )

    def _files_key(self) -> tuple:
        """The checkpoint files' identity for the per-process model cache."""
        f = self.files
        return file_key(f.safetensors, f.mapping_crop, f.mapping_full, *sorted(set(f.legacy.values())))

    # face_points: the source's landmarks for every frame (SadTalker's renderer moves the head only
    # a little; its keypoints are not landmarks).

    def switch(self, options):
        from talker.device import check_precision, resolve_device

        device = resolve_device(options.device)
        return SadTalkerBackend(self.files, device, check_precision(options.precision, device))

    def prepare(self, face, options):
        """Load the renderer networks and build, compile and capture its batch step in a thread."""
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix="talker-renderer-load")
        self._ready = (face, options.batch_size, pool.submit(self._renderer_parts, face, options))
        pool.shutdown(wait=False)

    def _renderer_parts(self, face, options):
        """(RendererNets, FastStep or None) for ``face``'s mode and size, from the per-process cache.

        On CUDA the fast step (fp16/bf16 by default, compiled, CUDA-graph replay) is compiled here;
        its CUDA graph is captured by the first batch of the first render (later renders replay it).
        Renders in other threads of this process that use the same step wait for each other
        (``FastStep.lock``).
        """
        from renderer.sadtalker.fast import DTYPES, FastStep
        from renderer.sadtalker.nets import RendererNets

        nets = cached(("sadtalker-renderer", self._files_key(), face.pastes_back, self.device),
                      lambda: RendererNets.from_files(self.files, full=face.pastes_back, device=self.device))
        if not self.device.startswith("cuda"):
            return nets, None  # the reference path on the CPU (fp32)
        import torch

        from talker.device import use_compile_cache

        torch.backends.cudnn.benchmark = True
        half = self.precision != "fp32"
        compile = half if options.compile is None else options.compile
        if compile:
            use_compile_cache()
        settings = dict(device=self.device, dtype=DTYPES[self.precision], compile="default" if compile else None,
                        cuda_graph=half)

        def build():
            step = FastStep(nets, face.size, options.batch_size, **settings)
            step.warm_up()
            return step

        step = cached(("sadtalker-step", self._files_key(), face.pastes_back, face.size, options.batch_size,
                       tuple(settings.values())), build)
        return nets, step

    def frames(self, face, track, options, start=0):
        from renderer.sadtalker.render import SadTalkerRenderer

        if self._ready is None or self._ready[0] is not face or self._ready[1] != options.batch_size:
            self.prepare(face, options)
        nets, step = self._ready[2].result()
        renderer = SadTalkerRenderer(face, nets, device=self.device, precision=self.precision,
                                     batch_size=options.batch_size, fast=step is not None, step=step)
        return renderer.render(track, still=options.still, start=start, to_host=self.frame_device == "cpu")


def choose_backend(options: MakeOptions) -> Backend:
    """Stage 2: 'embedded', 'sadtalker', or 'auto' (sadtalker when its checkpoints are found and verify).

    Checkpoints are looked for in ``--checkpoints``, else in the models folder and the SadTalker /
    WebUI folders it reuses (see ``talker models list``).
    """
    from talker.device import check_precision, resolve_device

    if options.backend == "embedded":
        return EmbeddedBackend()
    files, problem = _find_checkpoints(options)
    if files is None:
        if options.backend == "sadtalker":
            raise problem
        log.info("backend auto: using embedded (%s)", problem)
        return EmbeddedBackend()
    device = resolve_device(options.device)
    return SadTalkerBackend(files, device, check_precision(options.precision, device))


def _find_checkpoints(options: MakeOptions):
    """(SadTalkerFiles, None) for the first folder whose files verify, else (None, the CheckpointError)."""
    from talker.errors import CheckpointError
    from talker.models.sadtalker_files import current_files, find_sadtalker_files, missing_message, verify_sadtalker_files

    if options.checkpoints is not None:
        if not options.checkpoints.is_dir():
            return None, CheckpointError(
                f"--checkpoints {options.checkpoints}: that folder does not exist; check the path, or leave "
                "--checkpoints out to use the models folder ('talker models download --for sadtalker' fills it)"
            )
        folders = [options.checkpoints]
    else:
        from talker.models.store import open_store

        store = open_store()
        folders = store.folders("checkpoints")
    first = None
    for folder in folders:
        try:
            files = find_sadtalker_files(folder, options.size)
            verify_sadtalker_files(files)
            return files, None
        except CheckpointError as err:
            first = first or err  # the models folder comes first: where downloads go
    if first is None:  # no folder exists yet
        first = CheckpointError(missing_message(store.root / "checkpoints", current_files(options.size)))
    return None, first


def load_restorer(options: MakeOptions):
    """The GFPGAN face restorer for ``--enhancer gfpgan`` (None for 'none').

    The weights are looked for in the models folder and the SadTalker / WebUI folders it reuses;
    a missing file is a CheckpointError that names it and the command that fetches it.
    """
    if options.enhancer == "none":
        return None
    from enhance.gfpgan_files import find_gfpgan, missing_gfpgan_message
    from enhance.restore import FaceRestorer
    from talker.device import check_precision, resolve_device, use_compile_cache
    from talker.errors import CheckpointError
    from talker.models.store import open_store

    store = open_store()
    folders = [store.root, *store.folders("gfpgan/weights"), *store.folders("checkpoints")]
    path = next((p for p in map(find_gfpgan, folders) if p is not None), None)
    if path is None:
        raise CheckpointError(missing_gfpgan_message(store.root))
    device = resolve_device(options.device)
    precision = check_precision(options.precision, device)
    compile = precision != "fp32" if options.compile is None else options.compile and device.startswith("cuda")
    if compile:
        use_compile_cache()
    return cached(  # compile: by default on the fp16/bf16 GPU path
        ("gfpgan", file_key(path), device, precision, options.enhance_strength, options.batch_size, compile),
        lambda: FaceRestorer(path, device=device, precision=precision, strength=options.enhance_strength,
                             batch_size=options.batch_size, compile=compile),
    )


def render_video(
    face: FaceCrop,
    audio: Audio,
    track: CoeffTrack,
    backend: Backend,
    restorer,
    options: MakeOptions,
    out: Path | None,
    report: ProgressCallback,
    *,
    stream: str | Path | None = None,
    fallbacks=(),
) -> Path | None:
    """Stage 6: render the track's frames, paste them into the output picture, restore the faces
    (``restorer``: a FaceRestorer or None) and encode the MP4 (and the ``stream``, if any).

    The MP4 appears at ``out`` only when complete (written under a temporary name, then renamed).
    The renderer runs a batch or two ahead of paste, restoration and encoding (``talker.prefetch``);
    with a GPU renderer, paste-back and restoration run on the GPU too, on a CUDA stream of their
    own beside the renderer's (``ConsumerStream``), and each finished batch is copied to the host
    once, for the encoder.
    On CUDA out-of-memory, the render goes on from the first frame not yet encoded with the next of
    ``fallbacks`` (make presets, best first; see ``make_presets.fallback_options``), reported as a
    'fallback' Progress and a warning; the frames already encoded are kept. With none left it is a
    GpuMemoryError.
    """
    from enhance.paste import PasteBack, to_output_points
    from talker.device import ConsumerStream, cuda_out_of_memory_error, free_gpu_memory
    from talker.errors import GpuMemoryError
    from talker.make_presets import fallback_options
    from talker.media import VideoWriter
    from talker.prefetch import prefetch

    total = track.num_frames
    # faces are restored in the output frames, at their final resolution
    points = to_output_points(backend.face_points(face, track), face) if restorer is not None else None
    fallbacks = list(fallbacks)
    start = time.perf_counter()
    with VideoWriter(out, size=face.output_size, audio=audio, stream=stream) as writer:
        while True:
            try:
                paste, consumer = PasteBack(face, backend.frame_device), ConsumerStream(backend.frame_device)
                with prefetch(backend.frames(face, track, options, start=writer.frames_written)) as batches:
                    for batch in batches:
                        with consumer.using(batch):
                            frames = paste(batch)
                            if restorer is not None:
                                done = writer.frames_written
                                frames = restorer.restore(frames, points[done : done + len(frames)])
                            if not isinstance(frames, np.ndarray):
                                frames = frames.cpu().numpy()
                        writer.write(frames)
                        done = writer.frames_written
                        elapsed = time.perf_counter() - start
                        fps = done / elapsed if elapsed > 0 else 0.0
                        report(Progress("render", done, total, fps, (total - done) / fps if fps > 0 else 0.0))
                break
            except cuda_out_of_memory_error():
                pass  # handled below, once the error and the tensors its traceback holds are released
            done = writer.frames_written
            if not fallbacks:
                raise GpuMemoryError(
                    f"the GPU ran out of memory at frame {done} of {total}; use --preset low-vram, a smaller "
                    "--batch-size or --size 256, or --device cpu"
                )
            preset = fallbacks.pop(0)
            note = (f"GPU out of memory at frame {done} of {total}: going on with preset {preset.name!r} "
                    f"(batch size {preset.settings.batch_size}, {preset.settings.precision}); "
                    f"the {done} frames encoded are kept")
            log.warning(note)
            report(Progress("fallback", done, total, note=note))
            options = fallback_options(options, preset)
            backend = backend.switch(options)
            if restorer is not None:
                restorer = None
                free_gpu_memory()
                restorer = load_restorer(options)
            free_gpu_memory()
    return out
