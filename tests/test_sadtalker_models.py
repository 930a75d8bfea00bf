"""SadTalker checkpoint files: schema checks, finding, verifying and loading the official layouts.

Synthetic files in the published layouts (tests/sadtalker_checkpoints.py) must load to exactly
the fill_weights values (fill_digests.json); damaged or mismatching files must be refused with a
CheckpointError that names the file and the offending keys.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sadtalker_checkpoints import (  # noqa: F401
    DATA,
    expected_digest,
    fill_network,
    fill_weights,
    one_torch_thread,
    sadtalker_checkpoints_256,
    torch_test_device,
    write_safetensors_streaming,
    write_synthetic_sadtalker,
)

from audio2coeff.sadtalker.recon import ReconNet
from talker.errors import CheckpointError
from talker.models.schema import check_state_dict, network_entries, schema
from talker.models.sadtalker_files import (
    NEEDED_NETWORKS,
    SadTalkerFiles,
    find_sadtalker_files,
    load_network_state,
    safetensors_name,
    verify_sadtalker_files,
)

ALL_NETWORKS = NEEDED_NETWORKS + ("he_estimator",)


def digest_of(state: dict) -> str:
    return fill_weights.digest({k: v.numpy() for k, v in state.items()}, list(state))


# ----------------------------------------------------------------------------------- schema


def test_network_entries_follow_the_schema():
    for name in ALL_NETWORKS:
        entries = network_entries(name)
        summary = schema()["networks"][name]["summary"]
        assert len(entries) == summary["num_tensors"]
        assert sum(int(np.prod(s)) for s, _ in entries.values()) == summary["num_elements"]
    assert network_entries("audio2exp")["mapping1.weight"] == ((64, 577), "float32")
    with pytest.raises(KeyError):
        network_entries("face_detector_retinaface")  # listed without entries


def test_check_state_dict_reports_keys():
    shapes = {k: s for k, (s, _) in network_entries("audio2exp").items()}
    check_state_dict("audio2exp", shapes, "x.pth")
    check_state_dict("audio2exp", {k: s for k, s in shapes.items() if not k.endswith("num_batches_tracked")}, "x.pth")
    bad = dict(shapes)
    del bad["mapping1.bias"]
    bad["mapping1.weight"] = (64, 576)
    bad["extra.weight"] = (1,)
    with pytest.raises(CheckpointError) as err:
        check_state_dict("audio2exp", bad, "somewhere/x.pth")
    msg = str(err.value)
    assert "somewhere/x.pth" in msg and "audio2exp" in msg
    assert "1 missing: mapping1.bias" in msg and "1 unexpected: extra.weight" in msg
    assert "mapping1.weight [64, 576] (expected [64, 577])" in msg


def test_recon_net_has_the_checkpoint_keys():
    net = ReconNet()
    state = net.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: s for k, (s, _) in network_entries("face_3drecon").items()}


def test_recon_vector(torch_test_device):
    arrays = fill_network("face_3drecon")
    assert fill_weights.digest(arrays, list(arrays)) == expected_digest("face_3drecon")
    net = ReconNet()
    net.load_state_dict({k: torch.from_numpy(a) for k, a in arrays.items()})
    net.to(torch_test_device).eval()
    z = np.load(DATA / "deep3d_recon.npz")
    with torch.no_grad():
        out = net(torch.from_numpy(z["input_image"]).to(torch_test_device)).cpu().numpy()
    ref = z["output_coeffs"]
    assert out.shape == (1, 257)
    assert (np.abs(out - ref) <= 1e-4 + 1e-4 * np.abs(ref)).all(), np.abs(out - ref).max()


# ------------------------------------------------------------------- official layouts, loaded


def test_safetensors_layout_loads_to_the_fill(sadtalker_checkpoints_256):
    from safetensors import safe_open

    st = sadtalker_checkpoints_256 / safetensors_name(256)
    with safe_open(str(st), framework="pt") as f:
        keys = list(f.keys())
    assert sorted(keys) == sorted(schema()["files"]["safetensors"]["all_keys_in_order"])
    assert 700e6 < st.stat().st_size < 760e6  # real shapes: ~725 MB as published
    files = find_sadtalker_files(sadtalker_checkpoints_256, 256)
    assert files.safetensors == st and files.legacy == {}
    verify_sadtalker_files(files)
    for name in NEEDED_NETWORKS:
        state = load_network_state(files, name)
        assert list(state) == list(network_entries(name))
        assert all(v.dtype == (torch.int64 if k.endswith("num_batches_tracked") else torch.float32) for k, v in state.items())
        assert digest_of(state) == expected_digest(name), name
    with pytest.raises(CheckpointError, match="only in the legacy file facevid2vid_00189-model.pth.tar"):
        load_network_state(files, "he_estimator")
    with pytest.raises(CheckpointError, match=safetensors_name(512)):
        find_sadtalker_files(sadtalker_checkpoints_256, 512)  # a safetensors folder needs the size's file


@pytest.fixture(scope="module")
def legacy_dir(tmp_path_factory):
    """Legacy layout; facevid2vid holds kp_detector and he_estimator only (the generator is left out for time)."""
    return write_synthetic_sadtalker(
        tmp_path_factory.mktemp("legacy"),
        legacy=True,
        only=("face_3drecon", "audio2exp", "audio2pose", "kp_extractor", "he_estimator", "mapping_crop", "mapping_full"),
    )


def test_legacy_layout_loads_to_the_fill(legacy_dir):
    files = find_sadtalker_files(legacy_dir, 256)
    assert files.safetensors is None
    assert set(files.legacy) == {"face_3drecon", "audio2exp", "audio2pose", "kp_extractor", "generator", "he_estimator"}
    for name in ("face_3drecon", "audio2exp", "audio2pose", "kp_extractor", "he_estimator", "mapping_crop", "mapping_full"):
        assert digest_of(load_network_state(files, name)) == expected_digest(name), name
    with pytest.raises(CheckpointError, match=r"facevid2vid_00189-model.pth.tar has no 'generator'"):
        verify_sadtalker_files(files)


def test_missing_files_are_listed(tmp_path, legacy_dir):
    with pytest.raises(CheckpointError, match="does not exist"):
        find_sadtalker_files(tmp_path / "nowhere", 256)
    with pytest.raises(CheckpointError) as err:
        find_sadtalker_files(tmp_path, 256)
    msg = str(err.value)  # an empty folder: the current file set, as `talker models list` names it
    assert f"missing from {tmp_path}: SadTalker_V0.0.2_256.safetensors, mapping_00229-model.pth.tar, " \
        "mapping_00109-model.pth.tar; get them with 'talker models download --for sadtalker'" in msg
    assert "auido2exp" not in msg and "epoch_20" not in msg
    part = tmp_path / "part"
    part.mkdir()
    for f in legacy_dir.iterdir():
        if f.name != "epoch_20.pth":
            (part / f.name).symlink_to(f)
    with pytest.raises(CheckpointError, match=r": epoch_20\.pth;"):  # a legacy folder: its missing file
        find_sadtalker_files(part, 256)
    with pytest.raises(CheckpointError, match="256 and 512"):
        find_sadtalker_files(legacy_dir, 384)


# ------------------------------------------------------------------------------------ refusals


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """A safetensors file with only the audio2exp network, and the two MappingNet files."""
    return write_synthetic_sadtalker(tmp_path_factory.mktemp("small"), only=("audio2exp", "mapping_crop", "mapping_full"))


def _files(folder, safetensors=None, **over) -> SadTalkerFiles:
    return SadTalkerFiles(
        root=folder, size=256, safetensors=safetensors or folder / safetensors_name(256),
        mapping_crop=over.get("mapping_crop", folder / "mapping_00229-model.pth.tar"),
        mapping_full=over.get("mapping_full", folder / "mapping_00109-model.pth.tar"),
    )


def test_incomplete_safetensors_is_refused(small_set):
    files = _files(small_set)
    assert digest_of(load_network_state(files, "audio2exp")) == expected_digest("audio2exp")
    with pytest.raises(CheckpointError) as err:
        verify_sadtalker_files(files)
    msg = str(err.value)
    assert safetensors_name(256) in msg and "'face_3drecon'" in msg
    assert "279 missing: backbone.conv1.weight" in msg  # 332 keys less 53 optional num_batches_tracked


@pytest.mark.parametrize("damage", ["truncate", "garble_header"])
def test_corrupt_safetensors_is_refused(small_set, tmp_path, damage):
    data = (small_set / safetensors_name(256)).read_bytes()
    bad = tmp_path / safetensors_name(256)
    bad.write_bytes(data[: len(data) - 1000] if damage == "truncate" else data[:8] + b"\x00garbage" + data[16:])
    for call in (lambda f: load_network_state(f, "audio2exp"), verify_sadtalker_files):
        with pytest.raises(CheckpointError, match=r"cannot be read \(truncated or corrupt") as err:
            call(_files(tmp_path, bad))
        assert str(bad) in str(err.value)


def test_truncated_pickle_is_refused(small_set, tmp_path):
    data = (small_set / "mapping_00229-model.pth.tar").read_bytes()
    bad = tmp_path / "mapping_00229-model.pth.tar"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"mapping_00229-model.pth.tar cannot be read \(truncated or corrupt"):
        load_network_state(_files(small_set, mapping_crop=bad), "mapping_crop")


def test_wrong_shape_is_refused(tmp_path):
    entries = network_entries("audio2exp")
    specs = [("audio2exp." + k, (64, 576) if k == "mapping1.weight" else s, d) for k, (s, d) in entries.items()]
    st = tmp_path / safetensors_name(256)
    write_safetensors_streaming(st, specs, lambda key: np.zeros(next(s for k, s, _ in specs if k == key), np.float32
                                                                     if not key.endswith("tracked") else np.int64))
    with pytest.raises(CheckpointError, match=r"1 wrong shape: mapping1.weight \[64, 576\] \(expected \[64, 577\]\)") as err:
        load_network_state(_files(tmp_path, st), "audio2exp")
    assert str(st) in str(err.value)


def test_missing_and_unexpected_keys_are_refused(tmp_path):
    state = {k: torch.from_numpy(a) for k, a in fill_network("mapping_crop").items()}
    del state["first.0.bias"]
    torch.save({"mapping": state, "epoch": 1}, tmp_path / "mapping_00229-model.pth.tar")
    with pytest.raises(CheckpointError, match=r"mapping_00229-model.pth.tar does not hold .*1 missing: first.0.bias"):
        load_network_state(_files(tmp_path, tmp_path / "x.safetensors"), "mapping_crop")
    state["first.0.bias"] = torch.zeros(1024)
    state["module.extra"] = torch.zeros(1)
    torch.save({"mapping": state}, tmp_path / "mapping_00229-model.pth.tar")
    with pytest.raises(CheckpointError, match="1 unexpected: module.extra"):
        load_network_state(_files(tmp_path, tmp_path / "x.safetensors"), "mapping_crop")
    torch.save({"state_dict": state}, tmp_path / "mapping_00229-model.pth.tar")
    with pytest.raises(CheckpointError, match=r"has no 'mapping' state dict .*\(it holds: state_dict\)"):
        load_network_state(_files(tmp_path, tmp_path / "x.safetensors"), "mapping_crop")


def test_pickles_are_loaded_weights_only(tmp_path):
    """A pickle that would run code is refused, not executed."""
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"mapping": {"x": Evil()}}, tmp_path / "mapping_00229-model.pth.tar")
    with pytest.raises(CheckpointError, match="could run code when loaded, so it is refused") as err:
        load_network_state(_files(tmp_path, tmp_path / "x.safetensors"), "mapping_crop")
    assert "GLOBAL print was not an allowed global" in str(err.value)


def test_missing_num_batches_tracked_is_tolerated(torch_test_device):
    from audio2coeff.sadtalker import SadTalkerAudioNets

    states = [
        {k: torch.from_numpy(a) for k, a in fill_network(n).items() if not k.endswith("num_batches_tracked")}
        for n in ("face_3drecon", "audio2exp", "audio2pose")
    ]
    nets = SadTalkerAudioNets.from_state_dicts(*states, device=torch_test_device)
    z = np.load(DATA / "audio2exp.npz")
    with torch.no_grad():
        emb = nets.audio2exp.embed(torch.from_numpy(z["indiv_mels"][0, :, 0]).to(torch_test_device)).cpu().numpy()
    assert np.abs(emb - z["audio_embedding"]).max() <= 1e-4 + 1e-4 * np.abs(z["audio_embedding"]).max()
    states[1]["mapping1.weight"] = torch.zeros(64, 576)
    with pytest.raises(CheckpointError, match="the audio2exp state dict"):
        SadTalkerAudioNets.from_state_dicts(*states)


def test_digests_file_covers_every_network():
    digests = json.loads((DATA / "fill_digests.json").read_text())
    assert set(digests) == set(ALL_NETWORKS)
