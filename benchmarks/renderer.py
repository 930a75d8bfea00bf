"""Speed, memory and fidelity of the SadTalker renderer: reference path vs fast modes, one run.

    python benchmarks/renderer.py --device cuda --out benchmarks/out/renderer.json
    python benchmarks/renderer.py --device cpu --quick --out /tmp/renderer.json     # smoke test

For each size (256, 512) and mode it measures, after a warm-up render (cuDNN autotuning,
compilation, graph capture) that is not timed:

* ms per frame: wall time of a full ``SadTalkerRenderer.render`` of T frames (uint8 frames on the
  host, as the pipeline consumes them) divided by T;
* peak GPU memory during that render (``torch.cuda.max_memory_allocated``; weights included);
* PSNR (dB, uint8 frames, peak 255) against fp32 reference frames with TF32 off on the same inputs.

Modes: ``ref`` is SadTalker's loop as specified (fp32, batch 2, whole generator per batch, cuDNN
TF32 on as SadTalker runs by default); ``fast-<precision>-b<B>[-compile][-cudagraph]`` are the fast
graph's variants. Networks hold ``fill_weights`` values (no checkpoints needed). Results go to a
table on stdout and to JSON (rewritten after every mode, so a cut-off run keeps what it measured).
Also reported: GFLOP per frame (FlopCounterMode) and achieved TFLOP/s; ``--profile`` adds the top
CUDA kernels of a fast fp16 render (compiled, batch 8) and the GPU time by kind of kernel.

A full run (2 sizes x 10 modes, 3 of them compiled) takes several minutes; under a time limit,
split it: ``--sizes 256 --modes ref fast-fp16-b8 fast-fp16-b8-cudagraph``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "data" / "sadtalker"))

TARGETS_H100 = {"ms_per_frame": {"256": 3.0, "512": 10.0}, "peak_gb": {"512": 8.0}}


@dataclass
class Mode:
    """One renderer configuration."""

    name: str
    fast: bool
    precision: str = "fp32"
    batch: int = 2
    compile: str | None = None
    cuda_graph: bool = False


def modes_for(size: int, device: str, quick: bool, compile_mode: str) -> list[Mode]:
    """The default mode list of a size: reference + fast variants suited to the device."""
    ref = Mode("ref", fast=False)
    if device == "cpu":
        return [ref, Mode("fast-fp32-b2", True), Mode("fast-fp32-b4", True, batch=4)]
    batches = (4, 8) if quick else ((4, 8, 16) if size <= 256 else (2, 4, 8))
    b = 8
    out = [ref, Mode(f"fast-fp32-b{b}", True, "fp32", b)]
    out += [Mode(f"fast-fp16-b{n}", True, "fp16", n) for n in batches]
    out += [Mode(f"fast-bf16-b{b}", True, "bf16", b)]
    out += [Mode(f"fast-fp16-b{b}-cudagraph", True, "fp16", b, cuda_graph=True)]
    if not quick:
        out += [Mode(f"fast-fp16-b{b}-compile", True, "fp16", b, compile=compile_mode),
                *(Mode(f"fast-fp16-b{n}-compile-cudagraph", True, "fp16", n, compile=compile_mode, cuda_graph=True)
                  for n in (b, 2 * b)),
                Mode(f"fast-bf16-b{b}-compile-cudagraph", True, "bf16", b, compile=compile_mode, cuda_graph=True)]
    return out


def filled_nets(device):
    """RendererNets with fill_weights values (70-channel MappingNet)."""
    import fill_weights

    from renderer.sadtalker.nets import RendererNets
    from talker.models.schema import network_entries

    def fill(name):
        entries = network_entries(name)
        return fill_weights.fill_state_dict({k: s for k, (s, _) in entries.items()}, {k: d for k, (_, d) in entries.items()})

    return RendererNets.from_state_dicts(fill("kp_extractor"), fill("generator"), fill("mapping_crop"), device)


def test_inputs(size: int, frames: int):
    """A smooth synthetic face image (S, S, 3) uint8 and a T-frame 'sadtalker' track with smooth motion."""
    import cv2

    from talker.types import CoeffTrack, FaceCrop

    with np.load(ROOT / "tests" / "data" / "sadtalker" / "kp_detector_512.npz") as z:
        image = z["input_image"][0].transpose(1, 2, 0)
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    image = np.round(255 * np.clip(image, 0, 1)).astype(np.uint8)
    rng = np.random.default_rng(0)
    t = np.arange(frames)[:, None] / 25.0
    values = 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 3.0, 70) * t + rng.uniform(0, 6.3, 70))
    values[:, 64:67] *= 0.5  # head angles, radians
    source = rng.standard_normal(73) * 0.3
    face = FaceCrop(image=image, landmarks=np.zeros((478, 3), np.float32), source=image, box=(0, 0, size, size),
                    mode="crop", source_landmarks=np.zeros((478, 3), np.float32))
    track = CoeffTrack(values=values.astype(np.float32), space="sadtalker", source=source.astype(np.float32))
    return face, track


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 frames (peak 255); 100 when identical."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def set_flags(tf32: bool) -> None:
    """cuDNN TF32 as asked; matmul TF32 off and cuDNN autotuning off (PyTorch's defaults, SadTalker's
    settings); the fast path turns autotuning on itself."""
    import torch

    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = False


def render_all(renderer, track) -> np.ndarray:
    return np.concatenate(list(renderer.render(track)))


def measure(mode: Mode, nets, face, track, warm_track, device, reference: np.ndarray) -> dict:
    import torch

    from renderer.sadtalker.render import SadTalkerRenderer

    cuda = device.type == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
    base = torch.cuda.memory_allocated() if cuda else 0
    set_flags(tf32=True)  # SadTalker's (PyTorch's) default: TF32 convolutions
    t0 = time.perf_counter()
    renderer = SadTalkerRenderer(face, nets, device=device, precision=mode.precision, batch_size=mode.batch,
                                 fast=mode.fast, compile=mode.compile, cuda_graph=mode.cuda_graph)
    render_all(renderer, warm_track)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    frames = render_all(renderer, track)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() if cuda else 0
    del renderer
    return {
        **asdict(mode),
        "frames": len(frames),
        "ms_per_frame": 1000 * elapsed / len(frames),
        "fps": len(frames) / elapsed,
        "peak_gb": peak / 2**30,
        "nets_gb": base / 2**30,
        "setup_and_warmup_s": setup_s,
        "psnr_db": psnr(frames, reference),
    }


def gflop_per_frame(nets, face, device) -> dict:
    """Convolution/matmul GFLOP per frame (torch's FlopCounterMode): whole generator (the reference
    path's per-frame work) and the fast graph's per-frame step."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from renderer.sadtalker.fast import FrameGraph
    from renderer.sadtalker.render import source_tensor

    source = source_tensor(face.image, device)
    graph = FrameGraph(nets, source)
    graph.set_source_semantics(torch.zeros(1, 70, 27, device=device))
    kp = torch.zeros(1, 15, 3, device=device)
    out = {}
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            nets.generator(source, kp, kp)
        out["generator"] = counter.get_total_flops() / 1e9
        with FlopCounterMode(display=False) as counter:
            graph(torch.zeros(1, 70, 27, device=device), torch.zeros(1, 3, device=device),
                  torch.zeros(3, dtype=torch.bool, device=device))
        out["fast_step"] = counter.get_total_flops() / 1e9
    return out


def profile(nets, face, track, warm_track, device, batch: int, compile: str | None) -> str:
    """Top CUDA kernels of a fast fp16 render, compiled with ``compile`` (None: eager), as a
    torch.profiler table, after the share of GPU time by kind of kernel (convolution: cuDNN/CUTLASS
    kernels; Triton: Inductor's fused kernels; other)."""
    import torch

    from renderer.sadtalker.render import SadTalkerRenderer

    renderer = SadTalkerRenderer(face, nets, device=device, precision="fp16", batch_size=batch, fast=True,
                                 compile=compile)
    render_all(renderer, warm_track)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        render_all(renderer, track)
    averages = prof.key_averages()
    kinds: dict[str, float] = {}
    for e in (e for e in averages if e.device_time_total > 0):
        name = e.key.lower()
        kind = ("convolution" if any(k in name for k in ("conv", "xmma", "cutlass", "implicit", "cudnn", "sm90"))
                else "triton" if name.startswith("triton") else "other")
        kinds[kind] = kinds.get(kind, 0.0) + e.device_time_total
    total = sum(kinds.values())
    frames = track.values.shape[0]
    shares = "  ".join(f"{k} {v / 1e3 / frames:.2f} ms/frame ({100 * v / total:.0f} %)" for k, v in
                       sorted(kinds.items(), key=lambda kv: -kv[1]))
    return f"compile={compile}: {shares}\n" + averages.table(sort_by="cuda_time_total", row_limit=30)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, required=True, help="JSON results file")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="default 256 512 (--quick: 128)")
    ap.add_argument("--frames", type=int, default=None, help="frames per timed render (default 96; --quick 3)")
    ap.add_argument("--modes", nargs="+", default=None, help="only the modes with these names")
    ap.add_argument("--compile-mode", default="default",
                    help="torch.compile mode of the '-compile' modes (max-autotune-no-cudagraphs: slower to build)")
    ap.add_argument("--profile", action="store_true",
                    help="print the top CUDA kernels of one fast-fp16 compiled render per size (torch.profiler)")
    ap.add_argument("--quick", action="store_true", help="tiny run: few frames, small size, no compile modes")
    args = ap.parse_args(argv)

    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA asked for but not available", file=sys.stderr)
        return 2
    sizes = args.sizes or ([128] if args.quick else [256, 512])
    frames = args.frames or (3 if args.quick else 96)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    nets = filled_nets(device)
    print(f"weights filled and loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "frames": frames,
        "targets_h100": TARGETS_H100,
        "psnr_reference": "fp32 reference path, TF32 off, same inputs",
        "results": [],
        "gflop_per_frame": {},
        "profiles": {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from renderer.sadtalker.render import SadTalkerRenderer

    for size in sizes:
        face, track = test_inputs(size, frames)
        _, warm_track = test_inputs(size, 2 * 16 if not args.quick else 2)
        set_flags(tf32=False)
        with torch.no_grad():
            exact = render_all(SadTalkerRenderer(face, nets, device=device, batch_size=2), track)
        report["gflop_per_frame"][size] = flops = gflop_per_frame(nets, face, device)
        print(f"{size}: GFLOP per frame: generator {flops['generator']:.0f}, fast step {flops['fast_step']:.0f}", flush=True)
        for mode in modes_for(size, device.type, args.quick, args.compile_mode):
            if args.modes and mode.name not in args.modes:
                continue
            try:
                row = {"size": size, **measure(mode, nets, face, track, warm_track, device, exact)}
            except Exception as err:  # one failing mode (e.g. compile unavailable) must not lose the others
                row = {"size": size, **asdict(mode), "error": f"{type(err).__name__}: {err}"}
            report["results"].append(row)
            args.out.write_text(json.dumps(report, indent=1))
            print_row(row, flush=True)
        if args.profile and device.type == "cuda":
            report["profiles"][size] = table = profile(nets, face, track, warm_track, device, 8,
                                                       None if args.quick else args.compile_mode)
            args.out.write_text(json.dumps(report, indent=1))
            print(table, flush=True)
    print()
    print_table(report["results"], report["gflop_per_frame"])
    return 0


def print_row(row: dict, flush: bool = False) -> None:
    if "error" in row:
        print(f"{row['size']:>4} {row['name']:<34} ERROR {row['error'][:200]}", flush=flush)
        return
    print(f"{row['size']:>4} {row['name']:<34} {row['ms_per_frame']:9.2f} ms/frame {row['fps']:8.1f} fps "
          f"{row['peak_gb']:6.2f} GB peak  PSNR {row['psnr_db']:6.2f} dB  (setup {row['setup_and_warmup_s']:.0f} s)",
          flush=flush)


def print_table(rows: list[dict], flops: dict) -> None:
    """Summary; TFLOP/s counts the per-frame work the mode does (whole generator for ref)."""
    print(f"{'size':>4} {'mode':<34} {'ms/frame':>9} {'fps':>8} {'peak GB':>8} {'PSNR dB':>8} {'vs ref':>7} {'TFLOP/s':>8}")
    ref = {r["size"]: r["ms_per_frame"] for r in rows if r["name"] == "ref" and "error" not in r}
    for r in rows:
        if "error" in r:
            print(f"{r['size']:>4} {r['name']:<34} {'error':>9}")
            continue
        speedup = ref.get(r["size"], float("nan")) / r["ms_per_frame"]
        gflop = flops.get(r["size"], {}).get("fast_step" if r["fast"] else "generator", float("nan"))
        print(f"{r['size']:>4} {r['name']:<34} {r['ms_per_frame']:9.2f} {r['fps']:8.1f} {r['peak_gb']:8.2f} "
              f"{r['psnr_db']:8.2f} {speedup:6.1f}x {gflop / r['ms_per_frame']:8.1f}")


if __name__ == "__main__":
    sys.exit(main())
