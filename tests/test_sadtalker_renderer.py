"""SadTalker face renderer: parity with the reference vectors (tests/data/sadtalker/README.md) and the
behaviour of ``SadTalkerRenderer`` (streaming, batching, fast path, refusals).

Networks are loaded from the synthetic checkpoints in the official layout (filled with
``fill_weights``; built once and cached, see tests/sadtalker_checkpoints.py), so the loader, the
strict key sets and the fills are checked on the way. Device from TALKER_TEST_DEVICE (TF32 off).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sadtalker_checkpoints import (  # noqa: F401  (pytest fixtures)
    expected_digest,
    fill_network,
    fill_weights,
    sadtalker_checkpoints_256,
    torch_test_device,
)
from talker.errors import OptionError, SpaceMismatchError
from talker.models.sadtalker_files import find_sadtalker_files, load_network_state
from talker.models.schema import network, network_entries
from talker.types import CoeffTrack, FaceCrop

from renderer.sadtalker import semantics
from renderer.sadtalker.fast import DepthSlicedConv3d, TapSumConv2d, UpsampledConv
from renderer.sadtalker.he_estimator import HEEstimator
from renderer.sadtalker.keypoints import rotation_matrix, bins_to_degrees, transform_keypoints
from renderer.sadtalker.mapping import MappingNet
from renderer.sadtalker.nets import RendererNets
from renderer.sadtalker.render import SadTalkerRenderer, to_uint8

DATA = Path(__file__).parent / "data" / "sadtalker"


def vector(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def assert_close(ours, ref, *, atol=1e-4, rtol=1e-4, what=""):
    """README acceptance test: |ours - ref| <= atol + rtol |ref|."""
    ours = ours.detach().float().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    assert ours.shape == ref.shape, (what, ours.shape, ref.shape)
    excess = np.abs(ours - ref) - (atol + rtol * np.abs(ref))
    assert excess.max() <= 0, f"{what}: max error {np.abs(ours - ref).max():.3g} over tolerance"


def digest_of(state: dict) -> str:
    arrays = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
    return fill_weights.digest(arrays, list(arrays))


def face_crop(image: np.ndarray, mode: str = "crop") -> FaceCrop:
    s = image.shape[0]
    return FaceCrop(image=image, landmarks=np.zeros((478, 3), np.float32), source=np.zeros((s, s, 3), np.uint8),
                    box=(0, 0, s, s), mode=mode, source_landmarks=np.zeros((478, 3), np.float32))


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(sadtalker_checkpoints_256):
    return find_sadtalker_files(sadtalker_checkpoints_256, 256)


@pytest.fixture(scope="module")
def nets(files, torch_test_device):
    """RendererNets (70-channel MappingNet) loaded from the synthetic checkpoint files."""
    return RendererNets.from_files(files, full=False, device=torch_test_device)


@pytest.fixture(scope="module")
def generator_vector(nets, torch_test_device):
    """generator_256.npz and our outputs on its inputs (one generator pass, shared)."""
    ref = vector("generator_256")
    args = [torch.from_numpy(ref[k]).to(torch_test_device) for k in ("source_image", "kp_source", "kp_driving")]
    with torch.no_grad():
        return ref, nets.generator(*args)


@pytest.fixture(scope="module")
def e2e():
    """renderer_e2e_256.npz as a FaceCrop (float image) and a 2-frame CoeffTrack."""
    ref = vector("renderer_e2e_256")
    windows = ref["target_semantics"][0]  # (2, 70, 27): windows of a 2-frame track
    values = np.stack([windows[0][:, 0], windows[0][:, -1]])
    assert np.array_equal(semantics.windows(values), windows)  # the vector's windows are a 2-frame track's
    source = np.concatenate([ref["source_semantics"][0][:, 0], [1.0, 128.0, 128.0]]).astype(np.float32)
    track = CoeffTrack(values=values, space="sadtalker", source=source)
    return ref, face_crop(ref["source_image"][0].transpose(1, 2, 0)), track


@pytest.fixture(scope="module")
def small_case():
    """A 128 x 128 face (uint8) and a 3-frame track: cheap end-to-end runs of the renderer API."""
    rng = np.random.default_rng(7)
    ref = vector("kp_detector_256")["input_image"][0].transpose(1, 2, 0)
    image = np.round(255 * ref[::2, ::2]).astype(np.uint8)
    values = (rng.standard_normal((3, 70)) * 0.3).astype(np.float32)
    values[:, 64:67] = rng.uniform(-0.3, 0.3, (3, 3))
    source = (rng.standard_normal(73) * 0.3).astype(np.float32)
    return face_crop(image), CoeffTrack(values=values, space="sadtalker", source=source)


# -- weights and key sets ---------------------------------------------------------------------------


def test_loaded_weights_are_the_fills_in_schema_order(files, nets):
    for name, module in (("kp_extractor", nets.kp_detector), ("generator", nets.generator), ("mapping_crop", nets.mapping)):
        keys = list(network_entries(name))
        assert list(module.state_dict()) == keys, name
        state = {k: v.cpu() for k, v in module.state_dict().items()}
        assert digest_of(state) == expected_digest(name), name
    full = load_network_state(files, "mapping_full")
    assert digest_of(full) == expected_digest("mapping_full")
    MappingNet(73).load_state_dict(full, strict=True)


def test_configs_match_schema():
    assert network("mapping_crop")["config"]["coeff_nc"] == MappingNet(70).coeff_nc
    gen_cfg = network("generator")["config"]
    assert gen_cfg["dense_motion_params"]["compress"] == 4 and gen_cfg["num_resblocks"] == 6


# -- network parity ---------------------------------------------------------------------------------


def test_mapping_net_70_and_73(files, torch_test_device):
    ref = vector("mapping")
    for prefix, name, channels, atol in (("crop", "mapping_crop", 70, 1e-4), ("full", "mapping_full", 73, 1e-3)):
        net = MappingNet(channels).eval().to(torch_test_device)
        net.load_state_dict(load_network_state(files, name), strict=True)
        with torch.no_grad():
            out = net(torch.from_numpy(ref[f"{prefix}_input"]).to(torch_test_device))
        for key in ("yaw", "pitch", "roll", "t", "exp"):
            assert_close(out[key], ref[f"{prefix}_{key}"], atol=atol, what=f"mapping.{prefix}_{key}")


@pytest.mark.parametrize("size", [256, 512])
def test_kp_detector(nets, torch_test_device, size):
    ref = vector(f"kp_detector_{size}")
    with torch.no_grad():
        kp = nets.kp_detector(torch.from_numpy(ref["input_image"]).to(torch_test_device))
    assert_close(kp, ref["kp_value"], what=f"kp_detector_{size}")


def test_generator_prediction(generator_vector):
    ref, out = generator_vector
    assert_close(out["prediction"], ref["prediction"], atol=1e-3, rtol=0, what="generator.prediction")


def test_generator_intermediates(generator_vector):
    ref, out = generator_vector
    assert_close(out["occlusion_map"], ref["occlusion_map"], what="generator.occlusion_map")
    assert_close(out["deformation"], ref["deformation"], what="generator.deformation")


def test_he_estimator(torch_test_device):
    state = fill_network("he_estimator")
    assert digest_of(state) == expected_digest("he_estimator")
    net = HEEstimator().eval().to(torch_test_device)
    assert list(net.state_dict()) == list(state)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    ref = vector("he_estimator_256")
    with torch.no_grad():
        out = net(torch.from_numpy(ref["input_image"]).to(torch_test_device))
    for key in ("yaw", "pitch", "roll", "t", "exp"):
        assert_close(out[key], ref[key], what=f"he_estimator.{key}")


def test_keypoint_transformation():
    ref = {k: torch.from_numpy(v) for k, v in vector("keypoint_transformation").items()}
    motion = {k: ref[f"he_{k}"] for k in ("yaw", "pitch", "roll", "t", "exp")}
    degrees = [bins_to_degrees(motion[k]) for k in ("yaw", "pitch", "roll")]
    for k, d in zip(("yaw", "pitch", "roll"), degrees):
        assert_close(d, ref[f"{k}_deg"].numpy(), what=f"{k}_deg")
    assert_close(rotation_matrix(*degrees), ref["rot_mat"].numpy(), what="rot_mat")
    assert_close(transform_keypoints(ref["kp_canonical"], motion), ref["kp_transformed"].numpy(), what="kp_transformed")
    over = {k: ref[f"override_{k}_in"] for k in ("yaw", "pitch", "roll")}
    assert_close(rotation_matrix(over["yaw"], over["pitch"], over["roll"]), ref["override_rot_mat"].numpy(),
                 what="override_rot_mat")
    assert_close(transform_keypoints(ref["kp_canonical"], motion, **over), ref["override_kp_transformed"].numpy(),
                 what="override_kp_transformed")


# -- renderer inputs (SPEC §9) ----------------------------------------------------------------------


@pytest.mark.parametrize("prefix,full,still", [("crop", False, False), ("fullstill", True, True)])
def test_facerender_semantics(prefix, full, still):
    ref = vector("facerender_data")
    source, coeffs, b = ref["first_coeff_3dmm"][0], ref["generated_coeff_3dmm"], int(ref["batch_size"])
    t = len(coeffs)
    assert np.array_equal(semantics.source_semantics(source, full), ref[f"{prefix}_source_semantics"])
    rows = semantics.target_coefficients(coeffs, source, full=full, still=still,
                                         expression_scale=float(ref["expression_scale"]))
    target = ref[f"{prefix}_target_semantics"]
    assert np.array_equal(semantics.batch_rows(semantics.windows(rows), b), target)
    yaw = semantics.free_view_degrees(ref["input_yaw"].tolist(), t)
    pitch = semantics.free_view_degrees(ref["input_pitch"].tolist(), t)
    assert np.array_equal(semantics.batch_rows(yaw, b), ref[f"{prefix}_yaw_c_seq"])
    assert np.array_equal(semantics.batch_rows(pitch, b), ref[f"{prefix}_pitch_c_seq"])
    # the renderer's time-ordered batches hold the same windows as SadTalker's rows
    flat = target.reshape(-1, *target.shape[2:])
    for start in range(0, t, b):
        frames = semantics.batch_frames(t, start, b)
        assert np.array_equal(semantics.windows(rows, frames), flat[frames])


def test_ref_pose_transfer():
    ref = vector("facerender_data")
    out = semantics.transfer_ref_pose(ref["generated_coeff_3dmm"], ref["refpose_coeff_3dmm"])
    assert_close(out, ref["refpose_result"], what="refpose_result")


def test_free_view_edge_cases():
    assert semantics.free_view_degrees(None, 4) is None
    assert np.array_equal(semantics.free_view_degrees(12, 3), [12, 12, 12])
    assert np.array_equal(semantics.free_view_degrees([5, 5], 3), [5, 5, 5])  # SadTalker divides by zero here
    path = semantics.free_view_degrees([0, 20, 0], 5)  # step 10: 0 10 | 20 10 | pad
    assert np.array_equal(path, [0, 10, 20, 10, 10])


@pytest.mark.parametrize("scale", [2, 4])
def test_upsampled_conv_equals_conv_of_nearest_upsampling(scale):
    """The fast decoder's low-resolution form of conv3x3(nearest_upsample(x)) is exact."""
    torch.manual_seed(scale)
    conv = torch.nn.Conv2d(6, 5, 3, padding=1).double()
    x = torch.randn(2, 6, 7, 5, dtype=torch.float64)
    expected = conv(torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest"))
    with torch.no_grad():
        up = UpsampledConv(conv, scale).double()
        assert torch.allclose(up(x), expected, atol=1e-12)
        out = up(x.contiguous(memory_format=torch.channels_last))
        assert torch.allclose(out, expected, atol=1e-12) and out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("depth", [16, 4])  # 4: fewer slices than the kernel's 7 depth taps
def test_depth_sliced_conv3d_equals_conv3d(depth):
    """The fast dense motion mask: a 7x7x7 Conv3d as a Conv2d over depth slices (sums in float32)."""
    torch.manual_seed(depth)
    conv = torch.nn.Conv3d(6, 5, 7, padding=3).double()
    x = torch.randn(2, 6, depth, 9, 8, dtype=torch.float64)
    with torch.no_grad():
        sliced = DepthSlicedConv3d(conv).double()
        for layout in (torch.contiguous_format, torch.channels_last_3d):
            out = sliced(x.contiguous(memory_format=layout))
            assert out.shape == (2, 5, depth, 9, 8) and out.dtype == torch.float32
            assert torch.allclose(out.double(), conv(x), atol=1e-5)


def test_tap_sum_conv2d_equals_conv2d():
    """The fast occlusion map: a one-channel 7x7 Conv2d as a 1x1 conv to 49 taps summed shifted."""
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(10, 1, 7, padding=3).double()
    x = torch.randn(3, 10, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        out = TapSumConv2d(conv).double()(x.contiguous(memory_format=torch.channels_last))
        assert out.shape == (3, 1, 9, 11) and torch.allclose(out.double(), conv(x), atol=1e-5)
        with pytest.raises(ValueError, match="one output channel"):
            TapSumConv2d(torch.nn.Conv2d(10, 2, 7, padding=3))


def test_to_uint8_rounds_half_to_even():
    x = torch.tensor([0.5 / 255, 1.5 / 255, 2.5 / 255, -0.2, 1.3, 0.5]).reshape(1, 3, 1, 2)
    expected = np.round(255 * np.clip(x.numpy(), 0, 1)).astype(np.uint8).transpose(0, 2, 3, 1)
    assert np.array_equal(to_uint8(x).numpy(), expected)
    assert to_uint8(x).dtype == torch.uint8


# -- the renderer -----------------------------------------------------------------------------------


def test_renderer_e2e_reference_path_streams(nets, e2e, torch_test_device):
    """renderer_e2e_256 through SadTalkerRenderer's reference path, one frame a batch; the first
    batch comes out before the second frame has been rendered."""
    ref, face, track = e2e
    calls = []
    hook = nets.generator.register_forward_hook(lambda *_: calls.append(1))
    try:
        renderer = SadTalkerRenderer(face, nets, device=torch_test_device, batch_size=1)
        stream = renderer.render_float(track)
        first = next(stream)
        assert len(calls) == 1 and first.shape == (1, 3, 256, 256)
        frames = torch.cat([first, *stream])
    finally:
        hook.remove()
    assert len(calls) == 2
    assert_close(frames, ref["predictions"][0], atol=1e-3, rtol=0, what="renderer_e2e_256.predictions")


def test_renderer_e2e_fast_path(nets, e2e, torch_test_device):
    """The fast graph (fp32) gives the reference frames."""
    ref, face, track = e2e
    renderer = SadTalkerRenderer(face, nets, device=torch_test_device, batch_size=2, fast=True)
    frames = torch.cat(list(renderer.render_float(track)))
    assert frames.shape == (2, 3, 256, 256)
    assert_close(frames, ref["predictions"][0], atol=1e-3, rtol=0, what="fast renderer_e2e_256.predictions")


def test_fast_path_larger_batch_matches_reference_with_options(nets, small_case, torch_test_device):
    """At 128 px, 3 frames, still + free view + expression scale: fast path (batch 3) == reference
    path (batch 2, last batch padded) to 1e-4. uint8 batches add up to T; the options change the frames."""
    face, track = small_case
    options = dict(still=True, expression_scale=1.4, input_yaw=[-20, 30], input_roll=5)
    reference = SadTalkerRenderer(face, nets, device=torch_test_device, batch_size=2)
    ref_batches = list(reference.render_float(track, **options))
    assert [len(b) for b in ref_batches] == [2, 1]
    fast = SadTalkerRenderer(face, nets, device=torch_test_device, batch_size=3, fast=True)
    ref_frames = torch.cat(ref_batches)
    fast_frames = torch.cat(list(fast.render_float(track, **options)))
    assert_close(fast_frames, ref_frames.cpu().numpy(), atol=1e-4, rtol=0, what="fast vs reference")
    plain = list(fast.render(track))  # no options: driven by the track's own pose
    assert [(b.shape, b.dtype) for b in plain] == [((3, 128, 128, 3), np.uint8)]
    assert np.abs(plain[0].astype(int) - to_uint8(ref_frames).cpu().numpy().astype(int)).max() > 20


def test_full_mode_uses_the_73_channel_mapping(files, nets, small_case, torch_test_device):
    """'full' crops drive the 73-channel MappingNet (crop params appended); fast == reference."""
    face, track = small_case
    mapping = MappingNet(73).eval().requires_grad_(False).to(torch_test_device)
    mapping.load_state_dict(load_network_state(files, "mapping_full"), strict=True)
    full_nets = RendererNets(kp_detector=nets.kp_detector, generator=nets.generator, mapping=mapping)
    assert full_nets.full
    one = CoeffTrack(values=track.values[:1], space="sadtalker", source=track.source)
    full_face = face_crop(face.image, mode="full")
    ref = next(SadTalkerRenderer(full_face, full_nets, device=torch_test_device, batch_size=1).render_float(one))
    fast = next(SadTalkerRenderer(full_face, full_nets, device=torch_test_device, batch_size=1, fast=True).render_float(one))
    assert_close(fast, ref.cpu().numpy(), atol=1e-4, rtol=0, what="full mode fast vs reference")


def test_a_step_reused_for_another_face_renders_that_face(nets, small_case, torch_test_device):
    """The pipeline keeps one FastStep per process (compiled and captured once): a renderer given the
    step of an earlier clip draws its own face exactly as a renderer with a fresh step does."""
    face, track = small_case
    other = face_crop(np.ascontiguousarray(face.image[::-1, ::-1]))  # another picture, same size
    first = SadTalkerRenderer(face, nets, device=torch_test_device, batch_size=3, fast=True)
    a = np.concatenate(list(first.render(track)))
    reused = np.concatenate(list(SadTalkerRenderer(other, nets, device=torch_test_device, batch_size=3, fast=True,
                                                   step=first._step).render(track)))
    fresh = np.concatenate(list(SadTalkerRenderer(other, nets, device=torch_test_device, batch_size=3,
                                                  fast=True).render(track)))
    assert np.array_equal(reused, fresh)
    assert np.abs(reused.astype(int) - a).mean() > 5  # the step did not keep drawing the first face
    again = np.concatenate(list(SadTalkerRenderer(face, nets, device=torch_test_device, batch_size=3, fast=True,
                                                  step=first._step).render(track)))
    assert np.array_equal(again, a)
    with pytest.raises(ValueError, match="renders 3 x 128"):
        SadTalkerRenderer(face, nets, device=torch_test_device, batch_size=2, fast=True, step=first._step)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_fast_graph_builds_on_the_nets_device_in_half_precision(precision):
    """The fast graph as CUDA uses it (half precision, channels last), built on the 'meta' device: every
    weight and buffer it makes lives on the networks' device, and a batch has the right shape/dtype."""
    from renderer.sadtalker.fast import DTYPES, FrameGraph
    from renderer.sadtalker.generator import OcclusionAwareSPADEGenerator
    from renderer.sadtalker.kp_detector import KPDetector

    with torch.device("meta"):
        meta_nets = RendererNets(KPDetector().eval(), OcclusionAwareSPADEGenerator().eval(), MappingNet(70).eval())
        graph = FrameGraph(meta_nets, torch.zeros(1, 3, 256, 256), dtype=DTYPES[precision], channels_last=True)
        graph.set_source_semantics(torch.zeros(1, 70, 27))
        frames = graph(torch.zeros(4, 70, 27), torch.zeros(4, 3), torch.zeros(3, dtype=torch.bool))
    tensors = dict(graph.named_parameters()) | dict(graph.named_buffers())
    assert [name for name, t in tensors.items() if t.device.type != "meta"] == []
    assert {t.dtype for name, t in graph.generator.named_parameters()} == {DTYPES[precision]}
    assert frames.shape == (4, 3, 256, 256) and frames.dtype == DTYPES[precision]


def test_track_of_another_space_is_refused(nets, small_case, torch_test_device):
    face, track = small_case
    renderer = SadTalkerRenderer(face, nets, device=torch_test_device)
    embedded = CoeffTrack(values=np.zeros((3, 13), np.float32), space="embedded")
    with pytest.raises(SpaceMismatchError, match="embedded"):
        next(renderer.render(embedded))
    with pytest.raises(SpaceMismatchError):
        next(renderer.render(CoeffTrack(values=track.values, space="sadtalker", source=None)))


def test_mode_needs_matching_mapping_net_and_valid_options(nets, small_case, torch_test_device):
    face, _ = small_case
    full_face = face_crop(face.image, mode="full")
    with pytest.raises(ValueError, match="73-channel"):
        SadTalkerRenderer(full_face, nets, device=torch_test_device)
    with pytest.raises(OptionError):
        SadTalkerRenderer(face, nets, device="cpu", precision="fp16")  # refused before anything moves
    with pytest.raises(OptionError):
        SadTalkerRenderer(face, nets, device=torch_test_device, batch_size=0)
