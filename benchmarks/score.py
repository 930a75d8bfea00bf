"""`talker score` speed on this machine (run by hand, never in CI).

    python benchmarks/score.py

Makes a ~24 s, 512 x 512 full-mode clip of the astronaut with `talker make`, then times
``score_video`` on it (with the portrait and the transcript, every check on); the baseline of the
same run is the clip's own duration: a ratio below 1 means the score takes less time than watching.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0:1] = [str(ROOT), str(ROOT / "tests")]

import media_factory as mf  # noqa: E402
from conftest import LONG_SENTENCES, LONG_TEXT  # noqa: E402


def main() -> None:
    from talker.media import read_audio
    from talker.score import score_video

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image = mf.save_png(mf.astronaut(), tmp / "astronaut.png")
        wav = tmp / "speech.wav"
        mf.festival_sentences(LONG_SENTENCES, wav)
        video = tmp / "clip.mp4"
        subprocess.run([sys.executable, "-m", "talker.cli", "make", "--image", str(image), "--audio", str(wav),
                        "--text", LONG_TEXT, "--preprocess", "full", "-o", str(video)], check=True)
        audio = read_audio(wav, transcript=LONG_TEXT)
        start = time.perf_counter()
        report = score_video(video, audio, image=mf.astronaut(), transcript=LONG_TEXT)
        took = time.perf_counter() - start
    print(f"score of a {report.duration_s:.1f} s 512x512 clip: {took:.1f} s "
          f"(x{took / report.duration_s:.2f} of the clip's duration), verdict {report.verdict}")


if __name__ == "__main__":
    main()
