"""Session-wide test media (see media_factory.py): made once per run in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parents[1]
"""This checkout: what run_talker's subprocesses import, wherever they run."""

import media_factory as mf  # noqa: E402

# About 20 s of speech with many p/b/m closures and open vowels, in sentences read with 0.6 s of
# silence between them.
LONG_SENTENCES = [
    "Welcome to our spring product update.",
    "Today we will talk about maps, prices, and big plans.",
    "Our team built a better mobile app for busy people.",
    "Please, bring your problems to us.",
    "We promise to listen, and we promise to help you move faster.",
    "Thank you for watching, and have a wonderful week.",
    "Visit our website to book a demo.",
]
LONG_TEXT = " ".join(LONG_SENTENCES)

# A sentence rich in p/b/m closures and open vowels, with a pause in the middle.
PBM_TEXT = "Peter bought a big map of Boston. My mom paid for the pop music, maybe."


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech_pbm(media_dir):
    """(wav_path, phones): Festival speech of PBM_TEXT with exact phone times."""
    wav = media_dir / "pbm.wav"
    phones = mf.festival_speech(PBM_TEXT, wav)
    return wav, phones


@pytest.fixture(scope="session")
def astronaut_png(media_dir) -> Path:
    return mf.save_png(mf.astronaut(), media_dir / "astronaut.png")


@pytest.fixture(scope="session")
def hopper_png(media_dir) -> Path:
    return mf.save_png(mf.grace_hopper(), media_dir / "hopper.png")


def run_talker(*args, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real command line (`python -m talker.cli ...`) of this checkout and capture its output.

    env: variables to set on top of this process's environment. cwd: the folder to run it in.
    """
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "talker.cli", *map(str, args)], capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": path, **(env or {})}, cwd=cwd,
    )


@pytest.fixture(scope="session")
def long_speech(media_dir):
    """(wav_path, phones): about 20 s of Festival speech of LONG_SENTENCES with pauses between them."""
    wav = media_dir / "long.wav"
    phones = mf.festival_sentences(LONG_SENTENCES, wav)
    return wav, phones


@pytest.fixture(scope="session")
def full_mode_video(tmp_path_factory, long_speech, astronaut_png):
    """A 20 s, 512 x 512 full-mode render of the astronaut speaking LONG_TEXT (given as transcript)."""
    wav, _ = long_speech
    out = tmp_path_factory.mktemp("e2e") / "astronaut_full.mp4"
    proc = run_talker("make", "--image", astronaut_png, "--audio", wav, "--text", LONG_TEXT, "--preprocess", "full", "-o", out)
    assert proc.returncode == 0, proc.stderr
    return out
