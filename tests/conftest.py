"""Session-wide test media (see media_factory.py): made once per run in a temporary folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import media_factory as mf  # noqa: E402

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
