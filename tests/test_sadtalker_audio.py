"""SadTalker audio stage against the parity vectors (tests/data/sadtalker/README.md).

Mel front end, 5-point alignment, Audio2Exp, Audio2Pose (both chunking cases, raw and smoothed),
blink schedule, and sadtalker_track end to end (synthetic checkpoints, reference videos).
Acceptance: |ours - ref| <= 1e-4 + 1e-4 |ref| (README's recommended test).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import media_factory as mf
from sadtalker_checkpoints import DATA, fill_network, one_torch_thread, torch_test_device, write_synthetic_sadtalker  # noqa: F401

from audio2coeff.sadtalker import align, mel
from audio2coeff.sadtalker.audio2exp import Audio2Exp, predict_expression
from audio2coeff.sadtalker.audio2pose import (
    Audio2Pose,
    draw_noise,
    num_chunks,
    predict_motion,
    savgol_window,
    smooth_pose,
)
from audio2coeff.sadtalker.blink import BLINK_SHAPE, blink_ratio
from audio2coeff.sadtalker.recon import recon_coeffs
from talker.errors import OptionError
from talker.types import Audio, FaceCrop


def assert_parity(ours, ref, what: str) -> float:
    """README tolerance; returns the max abs error."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    err = np.abs(ours - ref)
    excess = err - (1e-4 + 1e-4 * np.abs(ref))
    assert excess.max() <= 0, f"{what}: max abs error {err.max():.3g} beyond tolerance"
    return float(err.max())


def vectors(name: str):
    with np.load(DATA / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def filled(module: torch.nn.Module, name: str, device) -> torch.nn.Module:
    state = {k: torch.from_numpy(a) for k, a in fill_network(name).items()}
    if name == "audio2pose":
        module.load_checkpoint_state(state)
    else:
        module.load_state_dict(state)
    return module.to(device).eval()


@pytest.fixture(scope="module")
def mel_ref():
    return vectors("mel")


# ------------------------------------------------------------------------------------------ mel


def test_mel_steps_match_reference(mel_ref):
    T = int(mel_ref["num_frames"])
    wav = mel.crop_waveform(mel_ref["wav_raw"], T)
    np.testing.assert_array_equal(wav, mel_ref["wav_cropped"])
    pre = mel.preemphasize(wav)
    assert_parity(pre, mel_ref["preemphasized"], "preemphasized")
    assert_parity(mel.stft_magnitude(pre, "zero"), mel_ref["stft_magnitude"], "stft_magnitude")
    assert_parity(mel.mel_basis(), mel_ref["mel_basis"], "mel_basis")
    np.testing.assert_array_equal(mel.window_indices(T, 161), mel_ref["window_indices"])


@pytest.mark.parametrize("padding, mel_key, win_key", [
    ("zero", "mel", "indiv_mels"),
    ("reflect", "mel_reflect_pad", "indiv_mels_reflect_pad"),
])
def test_mel_and_windows_both_paddings(mel_ref, padding, mel_key, win_key):
    T = int(mel_ref["num_frames"])
    m = mel.log_mel(mel.crop_waveform(mel_ref["wav_raw"], T), padding)
    assert m.dtype == np.float32
    assert_parity(m, mel_ref[mel_key], mel_key)
    assert_parity(mel.audio_windows(mel_ref["wav_raw"], T, padding), mel_ref[win_key], win_key)


def test_paddings_differ_only_at_the_edges(mel_ref):
    wav = mel.crop_waveform(mel_ref["wav_raw"], 50)
    diff = np.abs(mel.log_mel(wav, "zero") - mel.log_mel(wav, "reflect")).max(axis=0)
    assert set(np.flatnonzero(diff > 1e-6)) <= {0, 1, 159, 160} and diff[0] > 0.01
    with pytest.raises(ValueError):
        mel.stft_magnitude(wav, "edge")


def test_short_audio_is_zero_padded_to_whole_frames():
    w = mel.audio_windows(np.ones(100, np.float32) * 0.1, 3)
    assert w.shape == (3, 80, 16) and np.isfinite(w).all()


# ------------------------------------------------------------------------------------ alignment


def test_alignment_matches_preprocess_vector():
    z = vectors("preprocess")
    a = align.align_face(z["frame256"], z["lm68_256"])
    assert_parity(align.LM3D_STD5, z["lm3d_std5"], "lm3d_std5")
    assert_parity(a.lm5, z["lm5p"], "lm5p")
    assert_parity(a.trans_params, z["trans_params"], "trans_params")
    assert_parity(a.trans_params[2:], z["crop_params"], "crop_params")
    assert_parity(a.landmarks, z["lm68_aligned"], "lm68_aligned")
    np.testing.assert_array_equal(a.image, z["aligned224"])
    assert_parity(a.image.transpose(2, 0, 1)[None] / 255.0, z["recon_input"], "recon_input")


# ------------------------------------------------------------------------------------ networks


@pytest.fixture(scope="module")
def exp_net(torch_test_device):
    return filled(Audio2Exp(), "audio2exp", torch_test_device)


@pytest.fixture(scope="module")
def pose_net(torch_test_device):
    return filled(Audio2Pose(), "audio2pose", torch_test_device)


@pytest.fixture(params=[None, 7], ids=["one-pass", "chunks-of-7"])
def chunk(request, monkeypatch):
    """The audio towers run CHUNK frames a pass (GPU memory flat in the clip length): with chunks of 7
    the vectors (12 and 50 frames) cross several chunk boundaries and must still match."""
    import audio2coeff.sadtalker.audio2exp as audio2exp
    import audio2coeff.sadtalker.audio2pose as audio2pose

    if request.param is not None:
        monkeypatch.setattr(audio2exp, "CHUNK", request.param)
        monkeypatch.setattr(audio2pose, "CHUNK", request.param)
    return request.param


def test_audio2exp_matches_vector(exp_net, torch_test_device, chunk):
    z = vectors("audio2exp")
    windows = torch.from_numpy(z["indiv_mels"][0, :, 0])
    with torch.no_grad():
        emb = exp_net.embed(windows.to(torch_test_device)).cpu().numpy()
    assert_parity(emb, z["audio_embedding"], "audio_embedding")
    out = predict_expression(exp_net, windows, torch.from_numpy(z["ref"][0, :, :64]), torch.from_numpy(z["ratio"][0]))
    assert out.shape == (12, 64)
    assert_parity(out.cpu().numpy(), z["exp_coeff_pred"][0], "exp_coeff_pred")


@pytest.mark.parametrize("case", ["a", "b"])  # a: T=50 (chunk + overlapping tail), b: T=20 (left-padded)
def test_audio2pose_matches_vector(pose_net, case, chunk):
    z = {k[2:]: v for k, v in vectors("audio2pose").items() if k.startswith(case + "_")}
    T = int(z["num_frames"])
    pose0 = z["ref"][0, 0, 64:70]
    assert num_chunks(T) == len(z["z"])
    motion = predict_motion(
        pose_net, torch.from_numpy(z["indiv_mels"][0, :, 0]), torch.from_numpy(pose0), int(z["pose_style"]),
        torch.from_numpy(z["z"]),
    ).cpu().numpy()
    assert_parity(motion, z["pose_motion_pred"][0], f"{case}_pose_motion_pred")
    pose = pose0[None] + motion
    assert_parity(pose, z["pose_pred"][0], f"{case}_pose_pred")
    assert savgol_window(T) == int(z["savgol_window"])
    assert_parity(smooth_pose(pose), z["pose_pred_smoothed"][0], f"{case}_pose_pred_smoothed")


def test_pose_noise_rows_are_checked(pose_net):
    w = torch.zeros(40, 80, 16)
    with pytest.raises(ValueError, match="noise rows"):
        predict_motion(pose_net, w, torch.zeros(6), 0, torch.zeros(1, 64))
    assert predict_motion(pose_net, w[:1], torch.zeros(6), 0, draw_noise(1, 0)).shape == (1, 6)


def test_noise_is_seeded():
    assert draw_noise(50, 7).shape == (2, 64)
    assert torch.equal(draw_noise(50, 7), draw_noise(50, 7))
    assert not torch.equal(draw_noise(50, 7), draw_noise(50, 8))


def test_smoothing_short_clips():
    assert [savgol_window(t) for t in (3, 4, 12, 13, 100)] == [3, 3, 11, 13, 13]
    two = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    np.testing.assert_array_equal(smooth_pose(two), two)  # SadTalker crashes here
    line = np.linspace(0, 1, 7)[:, None].repeat(6, 1).astype(np.float32)
    np.testing.assert_allclose(smooth_pose(line), line, atol=1e-6)  # order 2 keeps a line


# ---------------------------------------------------------------------------------------- blinks


def test_blink_schedule():
    r = blink_ratio(500, np.random.default_rng(1))
    assert r.shape == (500, 1) and r.dtype == np.float32
    np.testing.assert_array_equal(r, blink_ratio(500, np.random.default_rng(1)))
    assert not np.array_equal(r, blink_ratio(500, np.random.default_rng(2)))
    starts = [i for i in range(1, 500) if r[i, 0] == 0.5 and r[i - 1, 0] == 0]
    assert len(starts) >= 5
    for s in starts:
        np.testing.assert_array_equal(r[s : s + 5, 0], np.float32(BLINK_SHAPE))
    gaps = np.diff([-5] + starts) - 5  # frames between the end of one blink and the next
    assert gaps.min() >= 10 and gaps.max() < 70
    assert r[-1, 0] == 0  # a blink ends before the last frame
    for t in (1, 20, 21):  # no blinks; T = 21 crashes SadTalker
        assert not blink_ratio(t, np.random.default_rng(0)).any()
    assert blink_ratio(22, np.random.default_rng(0)).shape == (22, 1)


# ------------------------------------------------------------------------------ sadtalker_track


@pytest.fixture(scope="module")
def audio_nets(tmp_path_factory, torch_test_device):
    """SadTalkerAudioNets loaded through the product loader from a synthetic safetensors file."""
    from audio2coeff.sadtalker import SadTalkerAudioNets
    from talker.models.sadtalker_files import find_sadtalker_files

    folder = write_synthetic_sadtalker(
        tmp_path_factory.mktemp("st-audio"), only=("face_3drecon", "audio2exp", "audio2pose", "mapping_crop", "mapping_full")
    )
    return SadTalkerAudioNets.from_files(find_sadtalker_files(folder, 256), torch_test_device)


@pytest.fixture(scope="module")
def crop_face():
    z = vectors("preprocess")
    blank = np.zeros((478, 3), np.float32)
    face = FaceCrop(z["frame256"], blank, z["source_rgb"], (0, 0, 256, 256), "crop", blank)
    return face, z["lm68_256"]


def test_source_coeffs_chain(audio_nets, crop_face):
    """landmarks -> alignment -> recon -> 73 values, against the vector's aligned image and crop params."""
    from audio2coeff.sadtalker import source_coeffs

    face, lm68 = crop_face
    ours = source_coeffs(face, audio_nets, lm68=lm68)
    p = vectors("preprocess")
    c = recon_coeffs(audio_nets.recon, p["aligned224"][None])[0]  # recon itself: test_recon_vector_through_loader
    assert ours.shape == (73,)
    assert_parity(ours, np.concatenate([c[80:144], c[224:227], c[254:257], p["crop_params"]]), "source 73")


def test_recon_vector_through_loader(audio_nets, torch_test_device):
    z = vectors("deep3d_recon")
    with torch.no_grad():
        out = audio_nets.recon(torch.from_numpy(z["input_image"]).to(torch_test_device)).cpu().numpy()
    assert_parity(out, z["output_coeffs"], "deep3d output_coeffs")


def test_track_matches_vectors(audio_nets, crop_face, mel_ref):
    """Pose columns reproduce audio2pose.npz case a from the raw waveform; expression is Audio2Exp's."""
    from audio2coeff.sadtalker import sadtalker_track

    face, _ = crop_face
    z = vectors("audio2pose")
    source = np.concatenate([z["a_ref"][0, 0], [1.0, 128.0, 128.0]]).astype(np.float32)
    audio = Audio(mel_ref["wav_raw"])
    track = sadtalker_track(face, audio, audio_nets, pose_style=5, pose_noise=z["a_z"], source=source, blink=False)
    assert track.space == "sadtalker" and track.values.shape == (50, 70) and track.values.dtype == np.float32
    np.testing.assert_array_equal(track.source, source)
    assert_parity(track.values[:, 64:], z["a_pose_pred_smoothed"][0], "track pose")
    exp = predict_expression(
        audio_nets.audio2exp, torch.from_numpy(mel_ref["indiv_mels"]), torch.from_numpy(np.repeat(source[None, :64], 50, 0)),
        torch.zeros(50, 1),
    ).cpu().numpy()
    assert_parity(track.values[:, :64], exp, "track exp")

    # still mode keeps the source pose; expression_scale scales the expression only
    still = sadtalker_track(face, audio, audio_nets, pose_style=5, pose_noise=z["a_z"], source=source, blink=False,
                            still=True, expression_scale=1.5)
    np.testing.assert_array_equal(still.values[:, 64:], np.repeat(source[None, 64:70], 50, 0))
    np.testing.assert_allclose(still.values[:, :64], 1.5 * track.values[:, :64], rtol=1e-6, atol=1e-6)
    assert still.meta["still"] and still.meta["expression_scale"] == 1.5


def test_track_seed_blinks_and_padding(audio_nets, crop_face, mel_ref):
    from audio2coeff.sadtalker import sadtalker_track, source_coeffs

    face, lm68 = crop_face
    audio = Audio(mel_ref["wav_raw"][: 30 * 640])  # 30 frames: blinks start at T = 22
    source = source_coeffs(face, audio_nets, lm68=lm68)
    a = sadtalker_track(face, audio, audio_nets, seed=3, source=source)
    b = sadtalker_track(face, audio, audio_nets, seed=3, source=source)
    c = sadtalker_track(face, audio, audio_nets, seed=4, source=source)
    np.testing.assert_array_equal(a.values, b.values)
    assert np.abs(a.values[:, 64:] - c.values[:, 64:]).max() > 1e-3  # other noise, other head motion
    no_blink = sadtalker_track(face, audio, audio_nets, seed=3, source=source, blink=False)
    blinked = np.flatnonzero(blink_ratio(30, np.random.default_rng(3))[:, 0])
    assert len(blinked) > 0
    changed = np.flatnonzero(np.abs(a.values[:, :64] - no_blink.values[:, :64]).max(axis=1) > 0)
    np.testing.assert_array_equal(changed, blinked)  # the blink ratio reaches exactly its frames
    reflect = sadtalker_track(face, audio, audio_nets, seed=3, source=source, padding="reflect")
    differs = np.flatnonzero(np.abs(reflect.values[:, :64] - a.values[:, :64]).max(axis=1) > 0)
    touching = np.flatnonzero(np.isin(mel.window_indices(30, 97), [0, 1, 95, 96]).any(axis=1))
    np.testing.assert_array_equal(differs, touching)  # only frames whose windows hold the edge columns
    for n in (1, 2, 3):  # SadTalker crashes for T <= 2 (smoothing window <= order)
        short = sadtalker_track(face, Audio(audio.samples[: n * 640]), audio_nets, source=source)
        assert short.values.shape == (n, 70) and np.isfinite(short.values).all()
        np.testing.assert_allclose(short.values[0, 64:], source[64:70], atol=1e-5)  # frame 0 is the source pose
    with pytest.raises(OptionError):
        sadtalker_track(face, audio, audio_nets, pose_style=46, source=source)
    with pytest.raises(OptionError):
        sadtalker_track(face, audio, audio_nets, padding="edge", source=source)


# ------------------------------------------------------------------------------ reference videos


def _write_video(path, frames) -> None:
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=25, codec="libx264", output_params=["-qp", "0"])
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()


@pytest.fixture(scope="module")
def moving_video(tmp_path_factory):
    """4 frames of the astronaut portrait turning by a few degrees in the image plane."""
    import cv2

    rgb = mf.astronaut()
    h, w = rgb.shape[:2]
    frames = [
        cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 3), angle, 1.0), (w, h), borderMode=cv2.BORDER_REFLECT)
        for angle in (0, 4, 8, 4)
    ]
    path = tmp_path_factory.mktemp("ref") / "turning.mp4"
    _write_video(path, frames)
    return path


def test_reference_video_options(audio_nets, crop_face, mel_ref, moving_video):
    from audio2coeff.sadtalker import sadtalker_track, source_coeffs
    from audio2coeff.sadtalker.reference import looped, reference_coeffs

    face, lm68 = crop_face
    source = source_coeffs(face, audio_nets, lm68=lm68)
    T = 10
    audio = Audio(mel_ref["wav_raw"][: T * 640])  # the video has 4 frames: looped
    ref = reference_coeffs(moving_video, audio_nets)
    assert ref.shape == (4, 73) and np.isfinite(ref).all()
    assert np.abs(ref[1:, 64:70] - ref[0, 64:70]).max() > 1e-4

    plain = sadtalker_track(face, audio, audio_nets, seed=1, source=source)
    posed = sadtalker_track(face, audio, audio_nets, seed=1, source=source, ref_pose=moving_video)
    added = posed.values[:, 64:] - plain.values[:, 64:]
    assert np.abs(added[0]).max() < 1e-5  # relative to the reference's first frame
    np.testing.assert_allclose(added, looped(ref[:, 64:70], T) - ref[0, 64:70], atol=1e-5)
    np.testing.assert_array_equal(posed.values[:, :64], plain.values[:, :64])

    blinked = sadtalker_track(face, audio, audio_nets, seed=1, source=source, ref_eyeblink=moving_video)
    assert not blinked.meta["blink"]
    windows = torch.from_numpy(mel.audio_windows(audio.samples, T))
    expected = predict_expression(
        audio_nets.audio2exp, windows, torch.from_numpy(looped(ref[:, :64], T)), torch.zeros(T, 1)
    ).cpu().numpy()
    assert_parity(blinked.values[:, :64], expected, "ref_eyeblink exp")
    np.testing.assert_array_equal(blinked.values[:, 64:], plain.values[:, 64:])


def test_reference_video_errors(audio_nets, tmp_path):
    from audio2coeff.sadtalker.reference import reference_coeffs
    from talker.errors import InputImageError, NoFaceError

    with pytest.raises(InputImageError, match="does not exist"):
        reference_coeffs(tmp_path / "none.mp4", audio_nets)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputImageError, match="cannot read"):
        reference_coeffs(junk, audio_nets)
    blank = tmp_path / "blank.mp4"
    _write_video(blank, [np.full((128, 128, 3), 90, np.uint8)] * 2)
    with pytest.raises(NoFaceError):
        reference_coeffs(blank, audio_nets)


def test_track_from_a_detected_face(audio_nets, mel_ref):
    """Real FaceCrop from the face stage: landmarks68 of its mesh feed the alignment."""
    from audio2coeff.sadtalker import sadtalker_track
    from talker.face import prepare_face

    face = prepare_face(mf.astronaut(), "crop", 256)
    track = sadtalker_track(face, Audio(mel_ref["wav_raw"][:8000]), audio_nets, seed=0)
    assert track.values.shape == (12, 70) and np.isfinite(track.values).all()
    assert 0.5 < track.source[70] < 2.0  # scale s of a face filling a 256 crop (1.14 in preprocess.npz)


def test_log_mel_in_passes_equals_one_transform_of_the_whole_clip(monkeypatch):
    """log_mel runs the STFT COLUMNS_PER_PASS columns at a time (flat memory for long clips); the
    result is the same as one transform of the whole signal."""
    x = np.random.default_rng(3).normal(0, 0.1, 16000 * 60).astype(np.float32)  # 4801 columns: two passes
    for padding in ("zero", "reflect"):
        got = mel.log_mel(x, padding)
        with monkeypatch.context() as m:
            m.setattr(mel, "COLUMNS_PER_PASS", 10**9)
            want = mel.log_mel(x, padding)
        assert got.shape == want.shape == (80, 1 + len(x) // mel.HOP) and got.shape[1] > mel.COLUMNS_PER_PASS
        assert np.array_equal(got, want)
