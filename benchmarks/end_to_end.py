"""`talker make --backend sadtalker` end to end on a GPU: wall time by stage, fps, utilisation, memory.

    python benchmarks/end_to_end.py --out benchmarks/out/end_to_end_h200.json            # on a GPU
    python benchmarks/end_to_end.py --quick --device cpu --out /tmp/e2e.json             # smoke test

Checkpoints are synthetic files in the official layouts with filled weights
(tests/sadtalker_checkpoints.py, GFPGAN v1.4 from its schema): every network runs at its real size,
the frames are not a face. The portrait is skimage's astronaut in ``full`` mode (the crop pasted back
into the 512 x 512 picture); ``--faces DIR`` loads pickled FaceCrops (face_256.pkl, face_512.pkl) made
elsewhere (the same faces on every machine). The speech is ``--audio`` (30 s).

Runs (each a fresh ``talker.pipeline.make``, as the command runs it; the first of each kind also
compiles, so a second, warm run is timed too):

* ``fast-<size>-<enhancer>``: the default CUDA path (fp16 fast renderer graph, torch.compile and
  CUDA-graph replay, GFPGAN fp16 compiled, renderer a batch ahead of paste / restore / encode);
* ``baseline-<size>-gfpgan``: this project's fp32 reference path run the way SadTalker's own flow
  runs: the reference renderer (whole generator per batch of 2), GFPGAN fp32 one face at a time,
  paste, restore and encode one after the other (no overlap). SadTalker also writes every frame as
  a PNG and re-reads it, and detects the face in every frame for GFPGAN: both are left out, so the
  baseline is faster than SadTalker itself.

Per run: wall seconds from the call to the finished MP4 and by stage (face, audio, motion, and in
the render loop the main thread's time in paste, restore and encoder pipe writes, and its waits for
the renderer), frames per second (frames / wall, and frames / render loop), mean GPU utilisation
(NVML, sampled every 50 ms) and CPU utilisation (cores busy, system-wide), peak GPU memory (torch
allocator) and peak host RSS. A ``trace`` run (warm, largest size, GFPGAN) records the allocator's
history and lists the largest single allocations with the code that made them. Also: renderer
ms/frame of the default fast path and its PSNR against the fp32 reference frames; first-frame
latency (coefficients ready -> first frame in the encoder -> first fragment of the ``--stream`` file
on disk); and with ``--long`` the peak GPU and host memory of renders of 1, 3 and 10 minutes (the
speech tiled). Results are written after every run.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "data" / "sadtalker"))


# ------------------------------------------------------------------------------------- fixtures


def make_gfpgan(models: Path) -> Path:
    """A GFPGAN v1.4 file in the official layout with filled weights, in ``models``/gfpgan/weights."""
    import torch

    import fill_weights
    from enhance.gfpgan_files import schema

    path = models / "gfpgan" / "weights" / "GFPGANv1.4.pth"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        filled = fill_weights.fill_state_dict({k: v["shape"] for k, v in schema()["entries"].items()})
        torch.save({"params_ema": {k: torch.from_numpy(v) for k, v in filled.items()}}, path)
    return path


def load_faces(faces_dir: Path | None, image: Path, sizes) -> dict:
    """{size: FaceCrop} from pickles, or computed with talker's face stage."""
    out = {}
    for size in sizes:
        pkl = faces_dir / f"face_{size}.pkl" if faces_dir else None
        if pkl is not None and pkl.is_file():
            out[size] = pickle.loads(pkl.read_bytes())
        else:
            from talker.options import MakeOptions
            from talker.pipeline import load_face

            out[size] = load_face(MakeOptions(image=image, text="x", preprocess="full", size=size).validate())
    return out


# ------------------------------------------------------------------------------------ measuring


class Sampler:
    """Samples GPU utilisation (NVML), system CPU use, host RSS of this process and its children."""

    def __init__(self, period_s: float = 0.05):
        import psutil

        self.period, self.psutil = period_s, psutil
        self.gpu, self.cpu, self.rss = [], [], []
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # no NVML (CPU run)
            self._nvml = None

    def _run(self):
        me = self.psutil.Process()
        self.psutil.cpu_percent(None)
        while not self._stop.wait(self.period):
            if self._nvml is not None:
                self.gpu.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
            self.cpu.append(self.psutil.cpu_percent(None) / 100 * self.psutil.cpu_count())
            try:
                self.rss.append(me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True)))
            except self.psutil.Error:
                pass

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        return {
            "gpu_util_mean_pct": float(np.mean(self.gpu)) if self.gpu else None,
            "cpu_cores_busy_mean": float(np.mean(self.cpu)) if self.cpu else None,
            "host_rss_peak_gb": max(self.rss) / 2**30 if self.rss else None,
        }


class StageClock:
    """Adds the main thread's time in paste, restore and encoder writes to ``self.seconds``."""

    def __init__(self):
        self.seconds = {"paste": 0.0, "restore": 0.0, "encode_write": 0.0}
        self.first_write = None
        self.first_batch = None
        self.gpu_peak_before_render = None
        self.render_start = None

    def patch(self):
        import enhance.paste
        import enhance.restore
        import talker.media
        import talker.pipeline

        saved = [(enhance.paste.PasteBack, "__call__"), (enhance.restore.FaceRestorer, "restore"),
                 (talker.media.VideoWriter, "write"), (talker.pipeline, "render_video"),
                 (talker.pipeline.SadTalkerBackend, "frames")]
        self._saved = [(owner, name, getattr(owner, name)) for owner, name in saved]
        clock = self

        def timed(fn, key):
            def wrapper(*a, **k):
                t = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    clock.seconds[key] += time.perf_counter() - t
                    if key == "encode_write" and clock.first_write is None:
                        clock.first_write = time.perf_counter()
            return wrapper

        def render_video(*a, **k):
            import torch

            clock.render_start = time.perf_counter()
            if torch.cuda.is_available():
                clock.gpu_peak_before_render = torch.cuda.max_memory_allocated() / 2**30
            return self._saved[3][2](*a, **k)

        def frames(*a, **k):
            for batch in self._saved[4][2](*a, **k):
                if clock.first_batch is None:
                    clock.first_batch = time.perf_counter()
                yield batch

        talker.pipeline.SadTalkerBackend.frames = frames
        enhance.paste.PasteBack.__call__ = timed(self._saved[0][2], "paste")
        enhance.restore.FaceRestorer.restore = timed(self._saved[1][2], "restore")
        talker.media.VideoWriter.write = timed(self._saved[2][2], "encode_write")
        talker.pipeline.render_video = render_video
        return self

    def unpatch(self):
        for owner, name, fn in self._saved:
            setattr(owner, name, fn)


def largest_allocations(run, top: int = 5) -> tuple[object, list[dict]]:
    """Run ``run()`` with the CUDA allocator's history recorded; (its result, the ``top`` largest
    single allocations it made: MiB and the innermost Python frames of the code that asked)."""
    import torch

    torch.cuda.memory._record_memory_history(max_entries=500_000, stacks="python")
    try:
        result = run()
        snapshot = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    allocs = [e for trace in snapshot["device_traces"] for e in trace if e["action"] == "alloc"]
    allocs.sort(key=lambda e: e["size"], reverse=True)
    return result, [{"mib": e["size"] / 2**20,
                     "where": [f"{Path(f['filename']).name}:{f['line']} {f['name']}" for f in e["frames"][:6]]}
                    for e in allocs[:top]]


def first_fragment_time(path: Path, stop: threading.Event, found: list):
    """Poll ``path`` for the first 'moof' box (a fragment with frames) and record when it appeared."""
    while not stop.is_set():
        if path.is_file() and b"moof" in path.read_bytes()[:1 << 20]:
            found.append(time.perf_counter())
            return
        time.sleep(0.005)


def run_make(name, face, options, stream: Path | None = None) -> dict:
    """One ``make`` with the face stage replaced by ``face``; the measurements of DOC."""
    import torch

    import talker.pipeline as pipeline

    cuda = torch.cuda.is_available() and options.device != "cpu"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    clock = StageClock().patch()
    real_load_face = pipeline.load_face
    pipeline.load_face = lambda opts: face
    stop, fragment = threading.Event(), []
    watcher = None
    if stream is not None:
        stream.unlink(missing_ok=True)
        watcher = threading.Thread(target=first_fragment_time, args=(stream, stop, fragment), daemon=True)
        watcher.start()
    try:
        with Sampler() as sampler:
            t0 = time.perf_counter()
            result = pipeline.make(options, stream=stream)
            wall = time.perf_counter() - t0
    finally:
        pipeline.load_face = real_load_face
        clock.unpatch()
        stop.set()
    frames = result.track.num_frames
    loop = result.timings["render"]
    busy = sum(clock.seconds.values())
    row = {
        "name": name, "size": options.size, "enhancer": options.enhancer, "precision": options.precision,
        "batch_size": options.batch_size, "frames": frames, "wall_s": wall, "fps": frames / wall,
        "render_loop_fps": frames / loop,
        "stages_s": {**{k: v for k, v in result.timings.items() if k != "render"}, "render_loop": loop,
                     **clock.seconds, "waiting_for_renderer": max(0.0, loop - busy)},
        "gpu_peak_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "gpu_peak_before_render_gb": clock.gpu_peak_before_render,
        **sampler.summary(),
    }
    if clock.first_write is not None:
        row["first_frame_to_encoder_s"] = clock.first_write - clock.render_start
        row["first_batch_from_renderer_s"] = clock.first_batch - clock.render_start
    if fragment:
        row["first_fragment_on_disk_s"] = fragment[0] - clock.render_start
    print(f"{name:24s} {frames:6d} fr {wall:7.2f} s {frames / wall:7.1f} fps  loop {frames / loop:7.1f} fps  "
          f"gpu {row['gpu_peak_gb'] or 0:.2f} GB  {json.dumps({k: round(v, 2) for k, v in row['stages_s'].items()})}",
          flush=True)
    return row


def run_fresh(args, name: str, size: int, enhancer: str, compile: bool, cache_dir: Path) -> dict:
    """One ``make`` in a new Python process, as ``talker make`` runs it, with Inductor's disk cache in
    ``cache_dir`` (empty: a first run on a machine; filled: any later run). ``process_wall_s`` counts
    from starting the process (imports included) to its exit."""
    import os
    import subprocess

    out = args.work / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, str(size), enhancer, str(int(compile)),
           "--out", str(out), "--audio", str(args.audio), "--work", str(args.work), "--device", args.device]
    if args.faces:
        cmd += ["--faces", str(args.faces)]
    t = time.perf_counter()
    subprocess.run(cmd, env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache_dir)}, check=True)
    row = json.loads(out.read_text())
    row["process_wall_s"] = time.perf_counter() - t
    row["process_fps"] = row["frames"] / row["process_wall_s"]
    print(f"{name:24s} process {row['process_wall_s']:.1f} s, {row['process_fps']:.1f} fps", flush=True)
    return row


def run_baseline(name, face, audio_path: Path, files, gfpgan: Path, size: int, device: str, out: Path) -> dict:
    """SadTalker's flow on this project's fp32 reference path, one stage after the other."""
    import torch

    from audio2coeff.sadtalker import SadTalkerAudioNets, sadtalker_track
    from enhance.paste import to_output_frames, to_output_points
    from enhance.restore import FaceRestorer, landmarks5_from_mesh
    from renderer.sadtalker.nets import RendererNets
    from renderer.sadtalker.render import SadTalkerRenderer
    from talker.media import VideoWriter, read_audio

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds = {"audio": 0.0, "motion": 0.0, "setup": 0.0, "render": 0.0, "paste": 0.0, "restore": 0.0,
               "encode_write": 0.0}
    with Sampler() as sampler:
        t0 = time.perf_counter()
        t = time.perf_counter()
        audio = read_audio(audio_path)
        seconds["audio"] = time.perf_counter() - t
        t = time.perf_counter()
        track = sadtalker_track(face, audio, SadTalkerAudioNets.from_files(files, device))
        seconds["motion"] = time.perf_counter() - t
        t = time.perf_counter()
        renderer = SadTalkerRenderer(face, RendererNets.from_files(files, full=True, device=device), device=device,
                                     precision="fp32", batch_size=2, fast=False)
        restorer = FaceRestorer(gfpgan, device=device, precision="fp32", batch_size=1)
        points = to_output_points(np.repeat(landmarks5_from_mesh(face.landmarks)[None], track.num_frames, 0), face)
        seconds["setup"] = time.perf_counter() - t
        with VideoWriter(out, face.output_size, audio) as writer:
            batches = renderer.render(track)
            while True:
                t = time.perf_counter()
                batch = next(batches, None)
                seconds["render"] += time.perf_counter() - t
                if batch is None:
                    break
                t = time.perf_counter()
                frames = to_output_frames(batch, face)
                seconds["paste"] += time.perf_counter() - t
                t = time.perf_counter()
                done = writer.frames_written
                frames = restorer.restore(frames, points[done: done + len(frames)])
                seconds["restore"] += time.perf_counter() - t
                t = time.perf_counter()
                writer.write(frames)
                seconds["encode_write"] += time.perf_counter() - t
        wall = time.perf_counter() - t0
    frames = track.num_frames
    row = {"name": name, "size": size, "enhancer": "gfpgan", "precision": "fp32", "batch_size": 2, "frames": frames,
           "wall_s": wall, "fps": frames / wall, "stages_s": seconds,
           "gpu_peak_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None, **sampler.summary()}
    print(f"{name:24s} {frames:6d} fr {wall:7.2f} s {frames / wall:7.1f} fps  "
          f"{json.dumps({k: round(v, 2) for k, v in seconds.items()})}", flush=True)
    return row


def renderer_speed(face, files, device: str, frames: int = 200) -> dict:
    """ms/frame of the default fast path (fp16, compiled, CUDA graph, batch 8; uint8 frames on the host)
    after a warm-up render, and its PSNR against fp32 reference frames (first 48 frames, TF32 off)."""
    import torch

    from renderer.sadtalker.nets import RendererNets
    from renderer.sadtalker.render import SadTalkerRenderer
    from talker.types import CoeffTrack

    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(0, 0.02, (frames, 70)), axis=0).astype(np.float32)
    source = rng.normal(0, 0.1, 73).astype(np.float32)
    track = CoeffTrack(values=values, space="sadtalker", source=source)
    nets = RendererNets.from_files(files, full=True, device=device)
    cuda = device.startswith("cuda")
    fast = SadTalkerRenderer(face, nets, device=device, precision="fp16" if cuda else "fp32", batch_size=8, fast=True,
                             compile="default" if cuda else None, cuda_graph=cuda)
    for _ in fast.render(track):
        pass  # warm-up: compile, capture
    t = time.perf_counter()
    got = np.concatenate(list(fast.render(track)))
    ms = (time.perf_counter() - t) / frames * 1000
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    ref = SadTalkerRenderer(face, nets, device=device, precision="fp32", batch_size=2, fast=False)
    want = []  # the first 48 frames of the same track (each frame's 27-frame window must be the same)
    for batch in ref.render(track):
        want.append(batch)
        if sum(map(len, want)) >= 48:
            break
    want = np.concatenate(want)[:48]
    torch.backends.cudnn.allow_tf32 = True
    mse = np.mean((got[:len(want)].astype(np.float64) - want) ** 2)
    psnr = float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))
    print(f"renderer {face.size}: {ms:.2f} ms/frame fp16 fast, PSNR {psnr:.1f} dB vs fp32 reference", flush=True)
    return {"size": face.size, "ms_per_frame": ms, "psnr_db_vs_fp32": psnr, "frames": frames}


# ----------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/talker-e2e"), help="checkpoints and outputs go here")
    ap.add_argument("--faces", type=Path, help="folder with face_256.pkl / face_512.pkl")
    ap.add_argument("--image", type=Path, help="portrait (default: skimage's astronaut)")
    ap.add_argument("--audio", type=Path, required=True, help="speech, 30 s")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--enhancers", nargs="+", default=["none", "gfpgan"], help="of the in-process fast runs")
    ap.add_argument("--long", type=float, nargs="*", default=[], help="minutes of speech for the memory runs (1 3 10)")
    ap.add_argument("--skip", nargs="*", default=[], help="parts to skip: fast trace baseline renderer latency")
    ap.add_argument("--quick", action="store_true", help="CPU smoke test: fp32, no compile, no baseline")
    ap.add_argument("--fresh", nargs="*", default=[], metavar="SIZE-ENHANCER",
                    help="runs in new processes, SIZE-ENHANCER[-KIND] (512-gfpgan, 512-gfpgan-eager): KIND eager, "
                         "compile-empty-cache or compile-cached (default: the three, in that order)")
    ap.add_argument("--child", nargs=4, metavar=("NAME", "SIZE", "ENHANCER", "COMPILE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import os

    import soundfile as sf
    import torch

    from sadtalker_checkpoints import synthetic_sadtalker_dir
    from talker.models.sadtalker_files import find_sadtalker_files
    from talker.options import MakeOptions

    if args.child:
        args.sizes = [int(args.child[1])]
    args.work.mkdir(parents=True, exist_ok=True)
    models = args.work / "models"
    os.environ["TALKER_MODELS"] = str(models)
    os.environ["HOME"] = str(args.work)  # no other SadTalker / WebUI folders
    t = time.perf_counter()
    gfpgan = make_gfpgan(models)
    checkpoints = {s: synthetic_sadtalker_dir(args.work / "checkpoints", size=s) for s in args.sizes}
    setup_s = time.perf_counter() - t
    image = args.image
    if image is None and not args.faces:
        import media_factory as mf

        image = mf.save_png(mf.astronaut(), args.work / "astronaut.png")
    faces = load_faces(args.faces, image or Path("astronaut.png"), args.sizes)

    report = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor(),
              "torch": torch.__version__, "cpu_cores": os.cpu_count(), "weights": "filled (synthetic)",
              "audio_s": sf.info(str(args.audio)).duration, "fixture_setup_s": setup_s,
              "targets": {"fps_512_gfpgan": 50, "speedup_vs_baseline": 5, "renderer_ms": {"256": 3, "512": 10},
                          "psnr_db": 40, "first_frame_s": 1},
              "runs": [], "renderer": [], "long": [], "fresh": []}

    def save():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))

    def attempt(part, fn):
        """Run one measurement; a failure is recorded and the next part still runs."""
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 (a benchmark keeps going)
            import traceback

            traceback.print_exc()
            report.setdefault("errors", []).append({"part": part, "error": repr(err)})
            save()

    def options(size, enhancer, **kw):
        base = dict(image=Path("astronaut.png"), audio=args.audio, backend="sadtalker", checkpoints=checkpoints[size],
                    preprocess="full", size=size, enhancer=enhancer, device=args.device, force=True)
        if args.quick:
            base.update(precision="fp32", batch_size=4)
        base.update(kw)
        return MakeOptions(**base)

    if args.child:  # one run for run_fresh, in this new process
        name, size, enhancer, compile = args.child
        row = run_make(name, faces[int(size)], options(int(size), enhancer, compile=compile == "1",
                                                       out=args.work / f"{name}.mp4"))
        args.out.write_text(json.dumps(row))
        return 0
    if "fast" not in args.skip:
        for size in args.sizes:
            for enhancer in args.enhancers:
                for warm in (False, True):
                    name = f"fast-{size}-{enhancer}" + ("-warm" if warm else "-cold")
                    row = attempt(name, lambda: run_make(name, faces[size], options(size, enhancer,
                                                                                    out=args.work / f"{name}.mp4")))
                    if row is None:
                        continue
                    row["warm"] = warm
                    report["runs"].append(row)
                    save()
                    if args.quick:
                        break
    if "trace" not in args.skip and args.device.startswith("cuda"):
        size = max(args.sizes)  # warm by now: where does a render's allocator peak come from?
        name = f"trace-{size}-gfpgan"
        got = attempt(name, lambda: largest_allocations(lambda: run_make(
            name, faces[size], options(size, "gfpgan", out=args.work / f"{name}.mp4"))))
        if got is not None and got[0] is not None:
            row, largest = got
            row["largest_allocations"] = largest
            report["runs"].append(row)
            for a in largest:
                print(f"  {a['mib']:9.1f} MiB  {' < '.join(a['where'][:3])}", flush=True)
            save()
    kinds = {"eager": False, "compile-empty-cache": True, "compile-cached": True}
    for spec in args.fresh:
        size, enhancer, *only = spec.split("-", 2)
        size, spec = int(size), f"{size}-{enhancer}"
        cache = args.work / f"inductor-cache-{spec}"
        if not only or only[0] == "compile-empty-cache":
            import shutil

            shutil.rmtree(cache, ignore_errors=True)
        for kind, compile in kinds.items():
            if only and kind != only[0]:
                continue
            name = f"fresh-{spec}-{kind}"
            row = attempt(name, lambda: run_fresh(args, name, size, enhancer, compile, cache))
            if row is not None:
                report["fresh"].append(row)
            save()
    if "baseline" not in args.skip:
        for size in args.sizes:
            name = f"baseline-{size}-gfpgan"
            files = find_sadtalker_files(checkpoints[size], size)
            row = attempt(name, lambda: run_baseline(name, faces[size], args.audio, files, gfpgan, size, args.device,
                                                     args.work / f"{name}.mp4"))
            if row is not None:
                report["runs"].append(row)
            save()
    if "renderer" not in args.skip:
        for size in args.sizes:
            row = attempt(f"renderer-{size}", lambda: renderer_speed(
                faces[size], find_sadtalker_files(checkpoints[size], size), args.device, frames=16 if args.quick else 200))
            if row is not None:
                report["renderer"].append(row)
            save()
    if "latency" not in args.skip:
        size = args.sizes[0]
        for name, kw in (("stream-eager", {"compile": False}), ("stream-compiled", {})):
            live = args.work / f"{name}.live.mp4"
            row = attempt(name, lambda: run_make(name, faces[size], options(size, "none", out=args.work / f"{name}.mp4",
                                                                            **kw), stream=live))
            if row is not None:
                report["runs"].append(row)
            save()
    samples, sr = sf.read(str(args.audio), dtype="float32")
    for minutes in args.long:
        wav = args.work / f"speech_{minutes:g}min.wav"
        n = int(minutes * 60 * sr)
        sf.write(wav, np.resize(samples, n), sr)
        size = args.sizes[0]
        row = attempt(f"long-{minutes:g}", lambda: run_make(f"long-{minutes:g}min", faces[size], options(
            size, "none", audio=wav, out=args.work / f"long_{minutes:g}.mp4")))
        if row is None:
            continue
        row["minutes"] = minutes
        report["long"].append(row)
        save()
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
