"""`--enhancer gfpgan` through the pipeline's stages, with a synthetic GFPGAN file in the official
layout: faces are restored in the output frames, at the landmarks the renderer moved, and the
picture away from the face is left alone."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from talker.media import read_audio, read_video_frames
from talker.options import MakeOptions
from talker.pipeline import EmbeddedBackend, load_face, load_restorer, render_video
from talker.types import Audio

sys.path.insert(0, str(Path(__file__).parent / "data" / "sadtalker"))
import fill_weights  # noqa: E402


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    from enhance.gfpgan_files import schema

    root = tmp_path_factory.mktemp("models")
    path = root / "gfpgan" / "weights" / "GFPGANv1.4.pth"
    path.parent.mkdir(parents=True)
    filled = fill_weights.fill_state_dict({k: v["shape"] for k, v in schema()["entries"].items()})
    torch.save({"params_ema": {k: torch.from_numpy(v) for k, v in filled.items()}}, path)
    return root


def test_gfpgan_restores_the_face_in_full_mode(models_dir, tmp_path, monkeypatch, astronaut_png, speech_pbm):
    monkeypatch.setenv("TALKER_MODELS", str(models_dir))
    monkeypatch.setenv("HOME", str(tmp_path))  # no SadTalker / WebUI folders to reuse
    wav, _ = speech_pbm
    torch.set_num_threads(2)
    videos = {}
    for enhancer in ("none", "gfpgan"):
        opts = MakeOptions(image=astronaut_png, audio=wav, preprocess="full", enhancer=enhancer,
                           out=tmp_path / f"{enhancer}.mp4").validate()
        face = load_face(opts)
        audio = Audio(read_audio(wav).samples[16000:16000 + 8 * 640])  # 8 frames: GFPGAN is slow on a CPU
        backend = EmbeddedBackend()
        track = backend.coeffs(face, audio, opts)
        render_video(face, audio, track, backend, load_restorer(opts), opts, opts.out, lambda p: None)
        videos[enhancer] = np.stack(list(read_video_frames(opts.out))).astype(np.int16)
    assert videos["none"].shape == videos["gfpgan"].shape == (8, 512, 512, 3)

    diff = np.abs(videos["gfpgan"] - videos["none"]).mean(axis=(0, 3))
    x0, y0, x1, y1 = face.box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    assert diff[cy - 20 : cy + 20, cx - 20 : cx + 20].mean() > 10, "the face was not restored"
    far = np.ones_like(diff, bool)
    far[max(0, y0 - 40) :, max(0, x0 - 60) : x1 + 60] = False  # the face, the aligned square around it
    # the encoder spends its bits differently once the face changes: about one grey level of noise
    assert np.median(diff[far]) <= 1.0 and np.percentile(diff[far], 99) < 8, "restoration changed the picture away from the face"
