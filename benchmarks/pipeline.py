"""Embedded pipeline speed and memory on this machine (run by hand, never in CI).

    python benchmarks/pipeline.py                 # fps by stage at 256 and 512, 20 s of speech
    python benchmarks/pipeline.py --memory 1 3 10 # peak memory for 1, 3 and 10 minutes of audio

Speed: every stage of talker.pipeline is timed separately in one process on the same inputs
(astronaut portrait, Festival speech); frames per second are reported with their ratio to real time
(25 fps), the baseline of the same run. Memory: each audio length runs `talker make` in a child
process and reads its peak resident set size; ratios are against the shortest length, so a flat
line (ratio ~1) shows frames are streamed, never held whole.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

# The repository root replaces this folder on the path: benchmarks/enhance.py and renderer.py must
# not shadow the packages of the same names.
ROOT = Path(__file__).resolve().parents[1]
sys.path[0:1] = [str(ROOT), str(ROOT / "tests")]

import media_factory as mf  # noqa: E402

SPEECH = (
    "Welcome to our spring product update. Today we will talk about maps, prices, and big plans. "
    "Our team built a better mobile app for busy people. Please, bring your problems to us. "
    "We promise to listen, and we promise to help you move faster. Thank you for watching."
)


def speech_file(folder: Path, minutes: float | None = None) -> Path:
    """Festival speech; repeated (with 0.5 s gaps) up to ``minutes`` when given."""
    wav = folder / "speech.wav"
    mf.festival_speech(SPEECH, wav)
    if minutes is None:
        return wav
    data, sr = sf.read(wav, dtype="float32")
    gap = np.zeros(sr // 2, np.float32)
    reps = int(np.ceil(minutes * 60 * sr / (len(data) + len(gap))))
    long = np.concatenate([np.concatenate([data, gap])] * reps)[: int(minutes * 60 * sr)]
    out = folder / f"speech_{minutes:g}min.wav"
    sf.write(out, long, sr)
    return out


def time_stages(image: Path, wav: Path, size: int, mode: str) -> dict:
    """Seconds spent in each stage for one render, and frames per second overall and per stage."""
    from enhance.paste import to_output_frames
    from talker.media import VideoWriter
    from talker.options import MakeOptions
    from talker.pipeline import EmbeddedBackend, load_audio, load_face

    opts = MakeOptions(image=image, audio=wav, size=size, preprocess=mode).validate()
    t = {}
    s = time.perf_counter()
    face = load_face(opts)
    t["face"] = time.perf_counter() - s
    s = time.perf_counter()
    audio = load_audio(opts)
    t["audio"] = time.perf_counter() - s
    backend = EmbeddedBackend()
    s = time.perf_counter()
    track = backend.coeffs(face, audio, opts)
    t["motion"] = time.perf_counter() - s
    t["render"] = t["paste"] = t["encode"] = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        s0 = time.perf_counter()
        with VideoWriter(Path(tmp) / "out.mp4", size=face.output_size, audio=audio) as writer:
            frames = iter(backend.frames(face, track, opts))
            while True:
                s = time.perf_counter()
                batch = next(frames, None)
                t["render"] += time.perf_counter() - s
                if batch is None:
                    break
                s = time.perf_counter()
                out = to_output_frames(batch, face)
                t["paste"] += time.perf_counter() - s
                s = time.perf_counter()
                writer.write(out)
                t["encode"] += time.perf_counter() - s
        t["encode"] += time.perf_counter() - s0 - t["render"] - t["paste"] - t["encode"]  # final flush + mux
    n = track.num_frames
    total = sum(t.values())
    return {
        "size": size, "mode": mode, "frames": n, "seconds": t, "total_s": total,
        "fps": n / total, "realtime_ratio": n / total / 25.0,
        "fps_by_stage": {k: n / v for k, v in t.items() if v > 0},
    }


def peak_memory(image: Path, wav: Path, size: int) -> dict:
    """Peak RSS (MiB) of a `talker make` child process on this audio.

    A fresh wrapper process runs it, so the reading is this render's peak alone.
    """
    wrapper = (
        "import resource, subprocess, sys; "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stderr.write(r.stderr); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        s = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", wrapper, sys.executable, "-m", "talker.cli", "make", "--image", str(image),
             "--audio", str(wav), "--size", str(size), "-o", str(Path(tmp) / "out.mp4")],
            capture_output=True, text=True,
        )
        took = time.perf_counter() - s
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return {"peak_rss_mib": int(proc.stdout.split()[-1]) / 1024, "seconds": took}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memory", nargs="*", type=float, metavar="MINUTES", help="measure peak memory for these audio lengths")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image = mf.save_png(mf.astronaut(), tmp / "astronaut.png")
        if args.memory:
            rows = []
            for minutes in sorted(args.memory):
                wav = speech_file(tmp, minutes)
                r = peak_memory(image, wav, 256)
                rows.append({"minutes": minutes, **r})
                base = rows[0]["peak_rss_mib"]
                print(f"{minutes:5g} min audio: peak RSS {r['peak_rss_mib']:7.1f} MiB "
                      f"(x{r['peak_rss_mib'] / base:.2f} of {rows[0]['minutes']:g} min), {r['seconds']:.0f} s", flush=True)
            results["memory"] = rows
        else:
            wav = speech_file(tmp)
            rows = []
            for size, mode in ((256, "crop"), (512, "crop"), (256, "full")):
                r = time_stages(image, wav, size, mode)
                rows.append(r)
                stages = ", ".join(f"{k} {v:.2f}s" for k, v in r["seconds"].items())
                print(f"{size} {mode:5s}: {r['frames']} frames in {r['total_s']:.1f} s = {r['fps']:.1f} fps "
                      f"(x{r['realtime_ratio']:.2f} real time) | {stages}", flush=True)
            results["speed"] = rows
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
