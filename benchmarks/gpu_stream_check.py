"""GPU check (run by hand on a CUDA machine): the pipeline's frames are the same with paste-back and
GFPGAN on their own CUDA stream (``talker.device.ConsumerStream``, the default) as on the renderer's
stream. A missing wait between the streams would change pixels.

    python benchmarks/gpu_stream_check.py --audio speech.wav [--faces DIR] [--seconds 6]

Renders ``--seconds`` of the speech at 512 in full mode with GFPGAN three times in one process (a
warm-up that compiles, then each way) with the synthetic checkpoints of ``end_to_end.py``, decodes
both MP4s and compares them frame by frame; exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from end_to_end import load_faces, make_gfpgan  # importing it puts the repository and tests/ on sys.path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audio", type=Path, required=True)
    ap.add_argument("--faces", type=Path, help="folder with face_512.pkl (else the astronaut)")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/talker-stream-check"))
    args = ap.parse_args(argv)

    import soundfile as sf

    import talker.device
    import talker.pipeline as pipeline
    from sadtalker_checkpoints import synthetic_sadtalker_dir
    from talker.media import read_video_frames
    from talker.options import MakeOptions

    args.work.mkdir(parents=True, exist_ok=True)
    os.environ["TALKER_MODELS"] = str(args.work / "models")
    os.environ["HOME"] = str(args.work)
    make_gfpgan(args.work / "models")
    checkpoints = synthetic_sadtalker_dir(args.work / "checkpoints", size=512)
    image = args.work / "astronaut.png"
    if args.faces is None:
        import media_factory as mf

        mf.save_png(mf.astronaut(), image)
    face = load_faces(args.faces, image, [512])[512]
    pipeline.load_face = lambda options: face
    samples, rate = sf.read(str(args.audio), dtype="float32")
    sf.write(args.work / "speech.wav", samples[: int(args.seconds * rate)], rate)

    def render(name: str) -> np.ndarray:
        options = MakeOptions(image=image, audio=args.work / "speech.wav", backend="sadtalker",
                              checkpoints=checkpoints, preprocess="full", size=512, enhancer="gfpgan",
                              device="cuda", force=True, out=args.work / f"{name}.mp4")
        t = time.perf_counter()
        pipeline.make(options)
        print(f"{name}: {time.perf_counter() - t:.1f} s", flush=True)
        return np.stack(list(read_video_frames(args.work / f"{name}.mp4")))

    class SharedStream(talker.device.ConsumerStream):
        def __init__(self, device: str):
            self.stream = None  # paste-back and GFPGAN on the current (renderer's) stream

    render("warm-up")
    own = render("own-stream")
    real, talker.device.ConsumerStream = talker.device.ConsumerStream, SharedStream
    try:
        shared = render("shared-stream")
    finally:
        talker.device.ConsumerStream = real
    same = own.shape == shared.shape and np.array_equal(own, shared)
    diff = np.abs(own.astype(int) - shared).max() if own.shape == shared.shape else "shapes differ"
    print(f"{len(own)} frames, identical: {same} (max difference {diff})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
