"""GFPGAN v1.3/1.4-compatible restorer: parity with the reference vector, the file format, and
FaceRestorer end to end (alignment from face-mesh landmarks, batched restore, soft paste-back).

Device: TALKER_TEST_DEVICE (default cpu); CUDA runs with TF32 off and skips when CUDA is absent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA / "sadtalker"))

import fill_weights  # noqa: E402

from enhance.gfpgan import GFPGANv1Clean, ModulatedConv2d  # noqa: E402
from enhance.gfpgan_files import check_state_dict, find_gfpgan, load_state_dict, schema  # noqa: E402
from enhance.restore import (  # noqa: E402
    FFHQ_TEMPLATE_512,
    FaceRestorer,
    alignment_matrices,
    landmarks5_from_mesh,
    missing_gfpgan_message,
    warp_affine,
)
from talker.errors import CheckpointError  # noqa: E402

FILL_DIGEST = "7cc53e1f9624ffdee1844fc99295d574c0012c483a0c90e501c56d5a5672d598"


@pytest.fixture(scope="module")
def device() -> str:
    name = os.environ.get("TALKER_TEST_DEVICE", "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            pytest.skip("TALKER_TEST_DEVICE asks for CUDA, which is not available")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return name


@pytest.fixture(scope="module")
def filled() -> dict[str, np.ndarray]:
    """The schema's state dict filled by fill_weights (numpy, float32), schema order."""
    shapes = {k: v["shape"] for k, v in schema()["entries"].items()}
    return fill_weights.fill_state_dict(shapes)


@pytest.fixture(scope="module")
def gfpgan_pth(filled, tmp_path_factory) -> Path:
    """A synthetic GFPGANv1.4.pth in the official layout: {'params_ema': state_dict} via torch.save."""
    path = tmp_path_factory.mktemp("models") / "gfpgan" / "weights" / "GFPGANv1.4.pth"
    path.parent.mkdir(parents=True)
    torch.save({"params_ema": {k: torch.from_numpy(v) for k, v in filled.items()}}, path)
    return path


def _mesh(rgb: np.ndarray) -> np.ndarray:
    """(478, 2) face-mesh points of the one face in ``rgb``, pixels."""
    from talker.face import detect_faces, face_landmarks

    (face,) = detect_faces(rgb)
    return face_landmarks(rgb, face)[:, :2]


@pytest.fixture(scope="module")
def two_frames() -> tuple[np.ndarray, np.ndarray]:
    """(2, 512, 512, 3) uint8: the astronaut, and the astronaut turned 12 degrees and shifted;
    (2, 5, 2) landmarks5 from the face mesh on each frame."""
    import cv2
    import media_factory as mf

    img = mf.astronaut()
    turn = cv2.getRotationMatrix2D((240.0, 110.0), 12.0, 1.0)
    turn[:, 2] += (30.0, 40.0)
    turned = cv2.warpAffine(img, turn, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    frames = np.stack([img, turned])
    return frames, np.stack([landmarks5_from_mesh(_mesh(f)) for f in frames])


# --- the generator -------------------------------------------------------------------------------


def test_fill_digest_and_parity_with_reference(filled, device):
    assert fill_weights.digest(filled, list(schema()["entries"])) == FILL_DIGEST
    model = GFPGANv1Clean(**schema()["config"]).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in filled.items()}, strict=True)
    model.to(device)
    ref = np.load(DATA / "gfpgan" / "gfpgan_v1clean_512.npz")
    with torch.no_grad():
        image, rgbs = model(torch.from_numpy(ref["input"]).to(device), return_rgb=True)
    for name, ours in (("output", image), ("out_rgb_64", rgbs[3])):
        ours, want = ours.cpu().numpy(), ref[name]
        assert ours.shape == want.shape
        excess = np.abs(ours - want) - (1e-4 + 1e-4 * np.abs(want))
        assert excess.max() <= 0, f"{name}: max abs error {np.abs(ours - want).max():.3g}"


@pytest.mark.parametrize("upsample,demodulate,k", [(False, True, 3), (True, True, 3), (False, False, 1)])
def test_modulated_activations_equal_per_sample_weights(upsample, demodulate, k):
    torch.manual_seed(0)
    conv = ModulatedConv2d(24, 16, k, num_style_feat=32, demodulate=demodulate, upsample=upsample)
    x, style = torch.randn(3, 24, 9, 9), torch.randn(3, 32)
    with torch.no_grad():
        fast = conv(x, style)
        conv.per_sample_weights = True
        ref = conv(x, style)
    assert fast.shape == ref.shape == (3, 16, 18 if upsample else 9, 18 if upsample else 9)
    assert torch.allclose(fast, ref, rtol=1e-5, atol=1e-5), (fast - ref).abs().max()


def test_small_generator_formulations_agree_and_batch_is_independent():
    """A 64-pixel GFPGAN with random weights: both conv formulations, batched and one by one."""
    torch.manual_seed(1)
    model = GFPGANv1Clean(out_size=64, num_style_feat=64, channel_multiplier=1, num_mlp=2,
                          input_is_latent=True, different_w=True, narrow=0.125, sft_half=True).eval()
    fill_weights.fill_torch_module(model)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        fast, _ = model(x)
        single = torch.cat([model(x[i:i + 1])[0] for i in range(3)])
        model.set_per_sample_weights(True)
        ref, _ = model(x)
    assert fast.shape == (3, 3, 64, 64)
    assert fast.std() > 1e-3  # not a constant image
    assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-4), (fast - ref).abs().max()
    assert torch.allclose(fast, single, rtol=1e-4, atol=1e-4), (fast - single).abs().max()


def test_random_noise_mode_varies_and_stored_noise_is_deterministic():
    torch.manual_seed(2)
    model = GFPGANv1Clean(out_size=32, num_style_feat=32, channel_multiplier=1, num_mlp=1,
                          input_is_latent=True, different_w=True, narrow=0.0625, sft_half=True).eval()
    fill_weights.fill_torch_module(model)  # noise strengths about 1 (they start at 0)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x)[0], model(x)[0]
        r1 = model(x, randomize_noise=True, generator=torch.Generator().manual_seed(1))[0]
        r2 = model(x, randomize_noise=True, generator=torch.Generator().manual_seed(2))[0]
    assert torch.equal(a, b)
    assert (r1 - r2).abs().max() > 1e-3 and (r1 - a).abs().max() > 1e-3


# --- the .pth files ------------------------------------------------------------------------------


def _tiny_pth(path: Path, state: dict, top: str = "params_ema") -> Path:
    """A small file in the official layout: each tensor is one stored value expanded to its shape."""
    torch.save({top: state}, path)
    return path


def _expanded(overrides: dict | None = None, drop: str | None = None) -> dict:
    state = {k: torch.zeros(1).expand(v["shape"]) for k, v in schema()["entries"].items() if k != drop}
    state.update(overrides or {})
    return state


def test_files_are_found_and_params_fallback(tmp_path):
    assert find_gfpgan(tmp_path) is None
    assert "GFPGANv1.4.pth" in missing_gfpgan_message(tmp_path)
    assert "talker models download gfpgan" in missing_gfpgan_message(tmp_path)
    (tmp_path / "gfpgan" / "weights").mkdir(parents=True)
    v13 = _tiny_pth(tmp_path / "GFPGANv1.3.pth", _expanded(), top="params")
    assert find_gfpgan(tmp_path) == v13.resolve()
    v14 = _tiny_pth(tmp_path / "gfpgan" / "weights" / "GFPGANv1.4.pth", _expanded())
    assert find_gfpgan(tmp_path) == v14.resolve()  # v1.4 preferred
    state = load_state_dict(v13)  # 'params' when there is no 'params_ema'
    assert len(state) == 285 and state["final_linear.weight"].shape == (8192, 4096)


@pytest.mark.parametrize("fault,needle", [
    ("missing", "1 missing keys: stylegan_decoder.noises.noise3"),
    ("unexpected", "1 unexpected keys: extra.weight"),
    ("shape", "1 wrong shapes: toRGB.2.weight (3, 128, 1, 1) instead of (3, 256, 1, 1)"),
    ("truncated", "cannot be read as a torch checkpoint"),
    ("no_params", "neither 'params_ema' nor 'params'"),
    ("absent", "does not exist"),
])
def test_wrong_files_are_refused_clearly(tmp_path, fault, needle):
    path = tmp_path / "GFPGANv1.4.pth"
    if fault == "missing":
        _tiny_pth(path, _expanded(drop="stylegan_decoder.noises.noise3"))
    elif fault == "unexpected":
        _tiny_pth(path, _expanded({"extra.weight": torch.zeros(2)}))
    elif fault == "shape":
        _tiny_pth(path, _expanded({"toRGB.2.weight": torch.zeros(3, 128, 1, 1)}))
    elif fault == "truncated":
        _tiny_pth(path, _expanded())
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif fault == "no_params":
        _tiny_pth(path, _expanded(), top="generator")
    with pytest.raises(CheckpointError) as err:
        FaceRestorer(path)
    message = str(err.value)
    assert needle in message and str(path) in message and "talker models download gfpgan" in message


def test_check_state_dict_names_only_the_first_keys():
    state = _expanded()
    for key in list(state)[:10]:
        del state[key]
    with pytest.raises(CheckpointError, match=r"10 missing keys: conv_body_first.weight, .*\(\+7 more\)"):
        check_state_dict(state, "x.pth")


# --- FaceRestorer --------------------------------------------------------------------------------


def test_landmarks5_from_mesh_fit_the_template(two_frames):
    frames, lm5 = two_frames
    assert lm5.shape == (2, 5, 2) and lm5.dtype == np.float32
    mats, valid = alignment_matrices(lm5)
    assert valid.all()
    for m, points in zip(mats, lm5):
        mapped = points @ m[:, :2].T + m[:, 2]
        assert np.linalg.norm(mapped - FFHQ_TEMPLATE_512, axis=1).max() < 25  # pixels of the 512 template
    # the second frame is the first turned by 12 degrees: the alignments differ by that turn
    angles = np.degrees(np.arctan2(mats[:, 1, 0], mats[:, 0, 0]))
    assert abs((angles[1] - angles[0]) - 12.0) < 2.0
    batched = landmarks5_from_mesh(np.stack([_mesh(frames[0])] * 3))
    assert batched.shape == (3, 5, 2)


def test_warp_affine_matches_cv2_and_shrinks_without_aliasing():
    import cv2
    from skimage import data

    img = data.astronaut().astype(np.float32)
    tensor = torch.from_numpy(img).permute(2, 0, 1)[None]
    m = cv2.getRotationMatrix2D((200.0, 150.0), 17.0, 1.3)  # output pixel -> source pixel
    m[:, 2] += (5.3, -7.1)
    want = cv2.warpAffine(img, m, (300, 260), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)
    ours = warp_affine(tensor, m[None], (300, 260), "reflection")[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - want).mean() < 0.2 and np.abs(ours - want).max() < 4  # cv2 rounds positions to 1/32 px
    # shrinking 3x at a quarter-pixel phase stays close to an area filter (a bare bilinear warp gives 32 dB)
    f = 512 / 170  # output pixel x -> source (x + 0.5) f - 0.5, then shifted by 0.75 source px
    shrink = np.array([[f, 0, 0.5 * f - 0.5 + 0.75], [0, f, 0.5 * f - 0.5 + 0.75]])
    shifted = cv2.warpAffine(img, np.float32([[1, 0, -0.75], [0, 1, -0.75]]), (512, 512), flags=cv2.INTER_LANCZOS4,
                             borderMode=cv2.BORDER_REFLECT)
    area = cv2.resize(shifted, (170, 170), interpolation=cv2.INTER_AREA)
    small = warp_affine(tensor, shrink[None], (170, 170), "reflection")
    small = small[0].permute(1, 2, 0).numpy()
    mse = np.mean((small - area)[8:-8, 8:-8] ** 2)
    assert 10 * np.log10(255.0**2 / mse) > 38


def test_restorer_end_to_end(gfpgan_pth, two_frames, device):
    import cv2

    frames, lm5 = two_frames
    restorer = FaceRestorer(find_gfpgan(gfpgan_pth.parents[2]), device=device, batch_size=2)

    # batched restoration equals one face at a time (float32)
    aligned = restorer.align(frames, lm5)
    assert aligned.faces.shape == (2, 3, 512, 512)
    batched = restorer.restore_aligned(aligned.faces)
    single = torch.cat([restorer.restore_aligned(aligned.faces[i:i + 1]) for i in range(2)])
    err = (batched - single).abs().max().item()
    assert err <= 1e-4 * 255, err  # 1e-4 of the [-1, 1] range, in 0..255 levels: 0.0128

    out = restorer.restore(frames, lm5)
    assert out.shape == frames.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, restorer.paste(frames, aligned, batched))
    for frame, result, m in zip(frames, out, alignment_matrices(lm5)[0]):
        # pixels the aligned square does not reach are untouched; the face itself changed
        reach = cv2.warpAffine(np.ones((512, 512), np.uint8), cv2.invertAffineTransform(m), (512, 512),
                               flags=cv2.INTER_NEAREST)
        reach = cv2.dilate(reach, np.ones((5, 5), np.uint8)).astype(bool)
        assert (~reach).mean() > 0.5
        np.testing.assert_array_equal(result[~reach], frame[~reach])
        centre = cv2.erode(reach.astype(np.uint8), np.ones((61, 61), np.uint8)).astype(bool)
        assert np.abs(result[centre].astype(int) - frame[centre]).mean() > 10

    # strength: 0 gives the input back exactly, 0.5 lies half way
    restorer.strength = 0.5
    half = restorer.paste(frames, aligned, batched).astype(float)
    assert np.abs(half - (frames + out.astype(float)) / 2).max() <= 1.0
    zero = FaceRestorer(gfpgan_pth, device=device, strength=0.0)
    np.testing.assert_array_equal(zero.restore(frames, lm5), frames)


def test_blend_mask_is_soft(gfpgan_pth, two_frames, device):
    """Paste a white face into a black frame: the output is the blend weight, and it ramps over several pixels."""
    _, lm5 = two_frames
    restorer = FaceRestorer(gfpgan_pth, device=device)
    black = np.zeros((1, 512, 512, 3), np.uint8)
    aligned = restorer.align(black, lm5[:1])
    white = torch.full((1, 3, 512, 512), 255.0, device=device)
    alpha = restorer.paste(black, aligned, white)[0, :, :, 0] / 255.0
    full, ramp, none = (alpha > 0.98).sum(), ((alpha > 0.1) & (alpha < 0.9)).sum(), (alpha == 0).sum()
    assert full > 100 * 100 and none > 0.5 * alpha.size
    assert ramp > 4 * 4 * np.sqrt(full)  # a band several pixels wide all around the face
    # along the row through the nose, the weight rises smoothly: no step larger than 0.2 per pixel
    profile = alpha[int(lm5[0, 2, 1])]
    assert profile.max() > 0.98 and np.abs(np.diff(profile)).max() < 0.2


def test_restorer_rejects_bad_inputs(gfpgan_pth, two_frames):
    frames, lm5 = two_frames
    restorer = FaceRestorer(gfpgan_pth, strength=0.0)
    with pytest.raises(ValueError):
        restorer.restore(frames.astype(np.float32), lm5)
    with pytest.raises(ValueError):
        restorer.restore(frames, lm5[:1])
    with pytest.raises(ValueError):
        FaceRestorer(gfpgan_pth, strength=1.5)
