"""`talker make --backend sadtalker` end to end with synthetic checkpoints in the official layout
(filled weights: the frames are not a face, but every stage runs as with the real files), and
`--backend auto` picking the neural backend once the files are imported into the models folder."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import run_talker
from sadtalker_checkpoints import sadtalker_checkpoints_256  # noqa: F401  (session fixture)
from talker.media import probe_media, read_video_frames
from test_models_download import synthetic_sadtalker_manifest

FRAMES = 6  # the neural renderer takes about a second a frame on this CPU


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory, speech_pbm):
    wav, _ = speech_pbm
    data, sr = sf.read(wav, dtype="float32")
    path = tmp_path_factory.mktemp("speech") / "short.wav"
    sf.write(path, data[int(0.25 * sr): int(0.25 * sr) + FRAMES * sr // 25], sr)
    return path


@pytest.mark.parametrize("mode", ["crop", "extcrop", "resize", "full", "extfull"])
def test_every_preprocess_mode_writes_a_video_of_the_right_length(
    mode, sadtalker_checkpoints_256, short_speech, astronaut_png, tmp_path  # noqa: F811
):
    out = tmp_path / f"{mode}.mp4"
    proc = run_talker(
        "make", "--backend", "sadtalker", "--checkpoints", sadtalker_checkpoints_256, "--image", astronaut_png,
        "--audio", short_speech, "--preprocess", mode, "--batch-size", "3", "-o", out,
        env={"OMP_NUM_THREADS": "2"},
    )
    assert proc.returncode == 0, proc.stderr
    info = probe_media(out)
    assert info["video"]["codec"] == "h264" and info["audio"]["codec"] == "aac"
    frames = list(read_video_frames(out))
    assert len(frames) == FRAMES
    if mode in ("full", "extfull"):
        assert frames[0].shape == (512, 512, 3)
    else:
        assert frames[0].shape[1] == 256
    assert np.std(frames[0]) > 1.0  # something was drawn


def test_missing_checkpoints_are_named_with_the_fix(short_speech, astronaut_png, tmp_path):
    empty = tmp_path / "ckpt"
    empty.mkdir()
    proc = run_talker("make", "--backend", "sadtalker", "--checkpoints", empty, "--image", astronaut_png,
                      "--audio", short_speech, "-o", tmp_path / "x.mp4")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "SadTalker_V0.0.2_256.safetensors" in proc.stderr or "mapping_00229" in proc.stderr, proc.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_auto_picks_sadtalker_after_import(sadtalker_checkpoints_256, short_speech, astronaut_png, tmp_path):  # noqa: F811
    # The shipped manifest pins the published files' sizes and hashes; these synthetic files have
    # other ones, so the test's manifest pins theirs (same names, networks and layout).
    manifest, _ = synthetic_sadtalker_manifest(sadtalker_checkpoints_256, tmp_path / "manifest.toml")
    models = tmp_path / "models"
    # HOME: no other SadTalker folders to reuse
    env = {"TALKER_MODELS": str(models), "TALKER_MANIFEST": str(manifest), "HOME": str(tmp_path)}
    auto = tmp_path / "auto.mp4"

    before = run_talker("-v", "make", "--image", astronaut_png, "--audio", short_speech, "-o", tmp_path / "before.mp4", env=env)
    assert before.returncode == 0, before.stderr
    assert "backend: embedded" in before.stderr

    imported = run_talker("models", "import", sadtalker_checkpoints_256, env=env)
    assert imported.returncode == 0, imported.stdout + imported.stderr

    after = run_talker("-v", "make", "--image", astronaut_png, "--audio", short_speech, "-o", auto, env=env)
    assert after.returncode == 0, after.stderr
    assert "backend: sadtalker" in after.stderr
    assert len(list(read_video_frames(auto))) == FRAMES


@pytest.mark.parametrize("backend", ["embedded", "sadtalker"])
def test_coeffs_command_writes_the_track(backend, sadtalker_checkpoints_256, short_speech, astronaut_png, tmp_path):  # noqa: F811
    from talker.types import EMBEDDED_CHANNELS, SADTALKER_CHANNELS, CoeffTrack

    out = tmp_path / "coeffs.npz"
    proc = run_talker("coeffs", "--backend", backend, "--checkpoints", sadtalker_checkpoints_256,
                      "--image", astronaut_png, "--audio", short_speech, "-o", out)
    assert proc.returncode == 0, proc.stderr
    track = CoeffTrack.load(out)
    assert track.space == backend and track.num_frames == FRAMES
    channels = SADTALKER_CHANNELS if backend == "sadtalker" else EMBEDDED_CHANNELS
    assert track.values.shape == (FRAMES, len(channels)) and np.isfinite(track.values).all()
    assert (track.source is not None and track.source.shape == (73,)) == (backend == "sadtalker")
