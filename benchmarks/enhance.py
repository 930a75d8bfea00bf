"""GFPGAN restorer speed and precision (run by hand or on a GPU, never in CI).

    python benchmarks/enhance.py                          # device from TALKER_TEST_DEVICE, else cuda if present
    python benchmarks/enhance.py --baseline --out r.json  # also the per-sample-weight formulation, for a ratio
    python benchmarks/enhance.py --quick                  # CPU smoke run (batches 1, 2; fp32, bf16)

Generator rows: faces per second at 512 x 512 for each batch size and precision (inputs already on
the device, warm-up excluded, median of timed runs), peak GPU memory, and the PSNR (dB, on the
uint8 output) of each output against the float32 batch-1 output of the same input. Inputs: the
astronaut's face aligned to the FFHQ template by its face-mesh landmarks, in 4 variants (as is,
mirrored, shifted, darker) tiled over the batch. Weights: fill_weights' deterministic fill unless
--weights names a GFPGAN .pth. ``--compile`` runs the generator through torch.compile.
``--baseline`` also times the reference formulation (a grouped convolution with one modulated
weight per sample) in the same process and prints the ratio. End-to-end rows:
``FaceRestorer.restore`` on whole 512 x 512 frames (alignment, warps, blending, transfers
included) at the largest batch of at most 32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "data" / "sadtalker"))

from enhance.gfpgan_files import schema  # noqa: E402
from enhance.restore import PRECISIONS, FaceRestorer, landmarks5_from_mesh  # noqa: E402


def face_and_landmarks(saved: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut portrait (512, 512, 3) uint8 and its (5, 2) landmarks from talker's face mesh.

    saved: a folder holding astronaut.npy and astronaut_lm5.npy (a machine without scikit-image).
    """
    if saved is not None:
        return np.load(saved / "astronaut.npy"), np.load(saved / "astronaut_lm5.npy")
    import media_factory as mf

    from talker.face import detect_faces, face_landmarks

    img = mf.astronaut()
    return img, landmarks5_from_mesh(face_landmarks(img, detect_faces(img)[0])[:, :2])


def input_variants(restorer: FaceRestorer, img: np.ndarray, lm5: np.ndarray) -> torch.Tensor:
    """(4, 3, 512, 512) float [0, 255] aligned faces: as is, mirrored, shifted 7 px, 20 % darker."""
    face = restorer.align(img[None], lm5[None]).faces.cpu()
    shifted = torch.roll(face, shifts=(7, 7), dims=(2, 3))
    return torch.cat([face, face.flip(3), shifted, face * 0.8])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) between two [0, 255] images after rounding to uint8 levels."""
    mse = (a.round() - b.round()).double().square().mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, warmup: int, min_time: float, min_runs: int) -> list[float]:
    """Seconds per call of ``fn`` after ``warmup`` calls; at least ``min_runs`` and ``min_time`` seconds."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    while len(times) < min_runs or sum(times) < min_time:
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_device = os.environ.get("TALKER_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--device", default=default_device)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16, 32, 64])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"], choices=list(PRECISIONS))
    p.add_argument("--weights", type=Path, help="a GFPGANv1.3/1.4 .pth (default: deterministic filled weights)")
    p.add_argument("--baseline", action="store_true", help="also time the per-sample-weight formulation")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the generator (each batch size compiles once, untimed)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 for fp32 on CUDA (off by default)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-time", type=float, default=3.0, help="seconds of timed runs per row")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run: batches 1 2, fp32 bf16, 2 input variants, no warm-up, 1 run")
    p.add_argument("--inputs", type=Path, help="folder with astronaut.npy + astronaut_lm5.npy (where scikit-image is missing)")
    p.add_argument("--out", type=Path, help="write the results as JSON")
    args = p.parse_args()
    if args.quick:
        args.batches, args.precisions, args.warmup, args.min_time = [1, 2], ["fp32", "bf16"], 0, 0.0
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)

    # 1. Weights: a .pth in the official layout, so the restorer loads it as it would a download.
    tmp = tempfile.TemporaryDirectory()
    weights = args.weights
    if weights is None:
        import fill_weights

        weights = Path(tmp.name) / "GFPGANv1.4.pth"
        filled = fill_weights.fill_state_dict({k: v["shape"] for k, v in schema()["entries"].items()})
        torch.save({"params_ema": {k: torch.from_numpy(v) for k, v in filled.items()}}, weights)
        del filled

    # 2. Inputs and the float32 batch-1 reference outputs.
    img, lm5 = face_and_landmarks(args.inputs)
    restorers = {prec: FaceRestorer(weights, device=device, precision=prec, batch_size=max(args.batches))
                 for prec in args.precisions}
    ref_restorer = restorers.get("fp32") or FaceRestorer(weights, device=device, precision="fp32")
    variants = input_variants(ref_restorer, img, lm5)[: 2 if args.quick else None].to(device)
    reference = torch.cat([ref_restorer.restore_aligned(variants[i:i + 1]) for i in range(len(variants))])

    rows = []
    header = f"{'rows':<10}{'precision':<10}{'batch':>6}{'faces/s':>10}{'ms/batch':>10}{'PSNR dB':>9}{'GiB':>7}"
    header += f"{'ref f/s':>9}{'ratio':>7}" if args.baseline else ""
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    print(f"device {device} ({device_name}), "
          f"torch {torch.__version__}, weights {'filled' if args.weights is None else weights}")
    print(header)
    for prec in args.precisions:
        restorer = restorers[prec]
        if args.compile:
            restorer.model = torch.compile(restorer.model)
        for batch in args.batches:
            reps = -(-batch // len(variants))
            x = variants.repeat(reps, 1, 1, 1)[:batch].contiguous()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            try:
                out = restorer.restore_aligned(x)
                times = timed(lambda: restorer.restore_aligned(x), device, args.warmup, args.min_time,
                              1 if args.quick else 5)
            except torch.OutOfMemoryError:
                print(f"{'generator':<10}{prec:<10}{batch:>6}  out of memory")
                torch.cuda.empty_cache()
                continue
            sec = statistics.median(times)
            ref = reference.repeat(reps, 1, 1, 1)[:batch]
            row = dict(rows="generator", precision=prec, batch=batch, faces_per_s=batch / sec, ms_per_batch=sec * 1e3,
                       psnr_db=psnr(out, ref), finite=bool(torch.isfinite(out).all()),
                       peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None)
            line = (f"{'generator':<10}{prec:<10}{batch:>6}{row['faces_per_s']:>10.1f}{row['ms_per_batch']:>10.1f}"
                    f"{row['psnr_db']:>9.2f}{row['peak_gib'] or 0:>7.2f}")
            if args.baseline:
                restorer.model.set_per_sample_weights(True)
                ref_times = timed(lambda: restorer.restore_aligned(x), device, 1, args.min_time, 1 if args.quick else 3)
                restorer.model.set_per_sample_weights(False)
                row["reference_faces_per_s"] = batch / statistics.median(ref_times)
                row["ratio"] = row["faces_per_s"] / row["reference_faces_per_s"]
                line += f"{row['reference_faces_per_s']:>9.1f}{row['ratio']:>7.2f}"
            print(line, flush=True)
            rows.append(row)

    # 3. End to end: whole frames through FaceRestorer.restore.
    batch = max([b for b in args.batches if b <= 32] or [min(args.batches)])
    frames = np.repeat(img[None], batch, axis=0)
    landmarks = np.repeat(lm5[None], batch, axis=0)
    for prec in args.precisions:
        restorer = restorers[prec]
        restorer.batch_size = batch
        times = timed(lambda: restorer.restore(frames, landmarks), device, args.warmup and 1, args.min_time,
                      1 if args.quick else 3)
        sec = statistics.median(times)
        rows.append(dict(rows="restore", precision=prec, batch=batch, faces_per_s=batch / sec, ms_per_batch=sec * 1e3))
        print(f"{'restore':<10}{prec:<10}{batch:>6}{batch / sec:>10.1f}{sec * 1e3:>10.1f}", flush=True)

    if args.out:
        info = dict(device=str(device), device_name=device_name, torch=torch.__version__, tf32=args.tf32,
                    compile=args.compile, weights="filled" if args.weights is None else str(weights),
                    threads=torch.get_num_threads(), rows=rows)
        args.out.write_text(json.dumps(info, indent=2))
        print(f"wrote {args.out}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
