"""The manifest, the models folder, reuse of SadTalker / WebUI folders, import and verify.

The import test uses the full synthetic SadTalker 256 set (tests/sadtalker_checkpoints.py: a
725 MB safetensors file and both MappingNet files, built once and cached) laid out like a
SadTalker checkout, and checks that what was imported is what the neural backend's loader
(talker.models.sadtalker_files) accepts.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sadtalker_checkpoints import sadtalker_checkpoints_256, write_synthetic_sadtalker  # noqa: F401
from test_models_download import (  # noqa: F401
    isolated, manifest_entry, run_models, synthetic_sadtalker_manifest, torch_file, write_manifest,
)
from talker.errors import CheckpointError, OptionError
from talker.models.importer import import_models
from talker.models.manifest import DEFAULT_MANIFEST, load_manifest
from talker.models.sadtalker_files import find_sadtalker_files, verify_sadtalker_files
from talker.models.schema import network, schema
from talker.models.store import (
    FAILED, MISSING, PARTIAL, PRESENT, VERIFIED, WRONG_SIZE, ModelStore, discover_locations, open_store,
    resolve_models_dir,
)
from talker.models.verify import load_torch_file, read_safetensors_header, verify_file

SAFETENSORS_NETS = {"kp_extractor", "generator", "audio2exp", "audio2pose", "face_3drecon"}


# --- the shipped manifest -----------------------------------------------------------------------

def test_shipped_manifest_names_every_file_with_sources_and_checks():
    m = load_manifest(DEFAULT_MANIFEST)
    files = {e.file for e in m.files}
    assert files == {
        "SadTalker_V0.0.2_256.safetensors", "SadTalker_V0.0.2_512.safetensors", "mapping_00109-model.pth.tar",
        "mapping_00229-model.pth.tar", "auido2exp_00300-model.pth", "auido2pose_00140-model.pth",
        "facevid2vid_00189-model.pth.tar", "epoch_20.pth", "GFPGANv1.3.pth", "GFPGANv1.4.pth",
        "detection_Resnet50_Final.pth", "alignment_WFLW_4HG.pth", "parsing_parsenet.pth", "RealESRGAN_x2plus.pth",
        "v1-5-pruned-emaonly.safetensors", "sd-controlnet-canny.safetensors"}
    # the portrait stage's Stable Diffusion files come from Hugging Face under CreativeML OpenRAIL-M
    portrait = [e for e in m.files if e.features == ("portrait",)]
    assert [e.id for e in portrait] == ["sd15", "controlnet-canny"]
    assert all(e.primary.startswith("https://huggingface.co/") and e.licence == "CreativeML-OpenRAIL-M" for e in portrait)
    for e in (e for e in m.files if e not in portrait):
        assert e.primary.startswith("https://github.com/") and e.primary.endswith("/" + e.file), e.id
        assert all(u.startswith("https://huggingface.co/") and u.endswith("/" + e.file) for u in e.mirrors), e.id
        assert e.licence in ("Apache-2.0", "MIT", "BSD-3-Clause")
        for net in e.networks:
            assert net == "gfpgan" or network(net)["entries"], (e.id, net)
    # every pickle network is stored under the container key the schema names for that file
    for e in m.files:
        if e.format == "torch":
            for net, key in e.networks.items():
                if net != "gfpgan":
                    sources = [s for s in network(net)["sources"] if s["file"].endswith(e.file)]
                    assert sources and sources[0]["container_key"] == key, (e.id, net)
    # the safetensors prefixes cover exactly the 1305 keys of the published file
    all_keys = schema()["files"]["safetensors"]["all_keys_in_order"]
    for e in (m.get("sadtalker-256"), m.get("sadtalker-512")):
        assert set(e.networks) == SAFETENSORS_NETS
        covered = [p + ent["key"] for n, p in e.networks.items() for ent in network(n)["entries"]]
        assert sorted(covered) == sorted(all_keys) and len(all_keys) == 1305
    # the pinned safetensors size leaves a plausible JSON header (1305 keys) beyond the tensor bytes
    tensor_bytes = sum(int(np.prod(ent["shape"])) * (8 if ent["dtype"] == "int64" else 4)
                       for n in SAFETENSORS_NETS for ent in network(n)["entries"])
    assert 50_000 < m.get("sadtalker-256").size - 8 - tensor_bytes < 300_000


def test_manifest_selection_by_id_file_and_feature():
    m = load_manifest(DEFAULT_MANIFEST)
    assert [e.id for e in m.select(features=["sadtalker"])] == ["sadtalker-256", "sadtalker-512", "mapping-crop", "mapping-full"]
    assert [e.id for e in m.select(["gfpgan"])] == ["gfpgan-1.4"]
    assert [e.id for e in m.select(["epoch_20.pth", "gfpgan-1.3"])] == ["legacy-recon", "gfpgan-1.3"]
    assert len(m.select(everything=True)) == len(m.files)
    with pytest.raises(OptionError, match="no model named 'gfpgan-2'"):
        m.select(["gfpgan-2"])


def test_malformed_manifest_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[files.x]\nfile = "x.pth"\nfolder = "elsewhere"\n')
    with pytest.raises(OptionError, match=r"\[files.x\] lacks 'size'"):
        load_manifest(bad)
    with pytest.raises(OptionError, match="does not exist"):
        load_manifest(tmp_path / "none.toml")


# --- the models folder and reuse ---------------------------------------------------------------

def test_models_dir_precedence(isolated, monkeypatch):
    default, origin = resolve_models_dir()
    assert origin == "default" and default.is_relative_to(isolated / "home") and default.name == "models"
    monkeypatch.setenv("TALKER_MODELS", str(isolated / "env"))
    assert resolve_models_dir() == (isolated / "env", "$TALKER_MODELS")
    assert resolve_models_dir(isolated / "cli") == (isolated / "cli", "--models-dir")


def _small_manifest(tmp_path: Path, blobs: dict[str, bytes]) -> Path:
    """A manifest of small torch files: ids a, b, ... with the given file names and contents."""
    entries = {}
    for i, (name, blob) in enumerate(blobs.items()):
        folder = "gfpgan/weights" if name.startswith("GFPGAN") else "checkpoints"
        entries[chr(ord("a") + i)] = manifest_entry(name, blob, [f"http://127.0.0.1:9/{name}"], folder=folder,
                                                    features=("sadtalker",))
    return write_manifest(tmp_path / "small.toml", entries)


def test_existing_sadtalker_and_webui_folders_are_used_in_place(isolated, monkeypatch):
    a, b, c = torch_file(20_000, 1), torch_file(20_000, 2), torch_file(20_000, 3)
    manifest = load_manifest(_small_manifest(isolated, {"mapping_00229-model.pth.tar": a,
                                                        "epoch_20.pth": b, "GFPGANv1.4.pth": c}))
    home = isolated / "home"
    checkout = home / "SadTalker"
    (checkout / "checkpoints").mkdir(parents=True)
    (checkout / "checkpoints" / "mapping_00229-model.pth.tar").write_bytes(a)
    webui = home / "stable-diffusion-webui"
    (webui / "extensions" / "SadTalker" / "checkpoints").mkdir(parents=True)
    (webui / "extensions" / "SadTalker" / "checkpoints" / "epoch_20.pth").write_bytes(b)
    (webui / "models" / "GFPGAN").mkdir(parents=True)
    (webui / "models" / "GFPGAN" / "GFPGANv1.4.pth").write_bytes(c)

    store = open_store(isolated / "models")

    kinds = {loc.kind for loc in store.locations}
    assert {"SadTalker checkout", "SadTalker WebUI extension", "WebUI models/GFPGAN"} <= kinds
    found = {e.file: store.find(e) for e in manifest.files}
    assert found == {"mapping_00229-model.pth.tar": checkout / "checkpoints" / "mapping_00229-model.pth.tar",
                     "epoch_20.pth": webui / "extensions" / "SadTalker" / "checkpoints" / "epoch_20.pth",
                     "GFPGANv1.4.pth": webui / "models" / "GFPGAN" / "GFPGANv1.4.pth"}
    assert not (isolated / "models").exists()  # nothing copied
    assert checkout / "checkpoints" in store.folders("checkpoints")
    # $SADTALKER_CHECKPOINTS (set by the SadTalker WebUI extension) points at a checkpoints folder
    elsewhere = isolated / "elsewhere" / "checkpoints"
    elsewhere.mkdir(parents=True)
    monkeypatch.setenv("SADTALKER_CHECKPOINTS", str(elsewhere))
    assert elsewhere in [loc.root for loc in discover_locations()]
    # --no-reuse: only the models folder
    bare = ModelStore(isolated / "models")
    assert all(bare.find(e) is None for e in manifest.files)


def test_part_files_and_wrong_sizes_are_never_present(isolated):
    blob = torch_file(50_000)
    manifest = load_manifest(_small_manifest(isolated, {"mapping_00229-model.pth.tar": blob}))
    entry, store = manifest.get("a"), ModelStore(isolated / "models")
    store.target(entry).parent.mkdir(parents=True)
    store.part_path(entry).write_bytes(blob)  # even a complete .part is not a model file
    assert store.state(entry).state == PARTIAL and store.find(entry) is None
    store.target(entry).write_bytes(blob[:-1])
    state = store.state(entry)
    assert state.state == WRONG_SIZE and not state.usable and "instead of" in state.detail
    store.target(entry).write_bytes(blob)
    assert store.state(entry).state == PRESENT
    store.remember(entry, store.target(entry), ok=True)
    assert ModelStore(isolated / "models").state(entry).state == VERIFIED  # remembered on disk
    os.utime(store.target(entry), ns=(1, 1))  # the file changed since: the record no longer applies
    assert ModelStore(isolated / "models").state(entry).state == PRESENT
    store.target(entry).unlink()
    store.part_path(entry).unlink()
    assert store.state(entry).state == MISSING


# --- import ------------------------------------------------------------------------------------

def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        dst.symlink_to(src)


def test_import_sadtalker_checkout_then_list_verified_and_backend_loader_accepts(isolated, sadtalker_checkpoints_256):
    synth = sadtalker_checkpoints_256
    manifest_path, entries = synthetic_sadtalker_manifest(synth, isolated / "m.toml")
    checkout = isolated / "SadTalker-main"
    for name in ("SadTalker_V0.0.2_256.safetensors", "mapping_00229-model.pth.tar", "mapping_00109-model.pth.tar"):
        _link(synth / name, checkout / "checkpoints" / name)
    (checkout / "checkpoints" / "wav2lip.pth").write_bytes(b"not used by talker")
    models = isolated / "models"

    status, out = run_models("models", "import", checkout, "--manifest", manifest_path, "--models-dir", models, "--no-reuse")

    assert status == 0, out
    assert "3 imported, 0 already present, 0 refused" in out and "ignored (not used by talker): wav2lip.pth" in out
    status, listing = run_models("models", "list", "--manifest", manifest_path, "--models-dir", models, "--no-reuse")
    rows = {line.split()[0]: line for line in listing.splitlines()[2:] if line.strip()}
    assert all("verified" in rows[eid] for eid in entries), listing
    assert "sadtalker: ready, all files verified" in listing
    imported = models / "checkpoints" / "SadTalker_V0.0.2_256.safetensors"
    if (checkout / "checkpoints" / imported.name).stat().st_ino == synth.joinpath(imported.name).stat().st_ino:
        assert imported.stat().st_ino == (synth / imported.name).stat().st_ino  # hard-linked, no second copy
    # what the neural backend loads from the models folder
    files = find_sadtalker_files(open_store(models, discover=False).folders("checkpoints")[0], 256)
    verify_sadtalker_files(files)
    # a second import finds everything in place
    status, out = run_models("models", "import", checkout, "--manifest", manifest_path, "--models-dir", models, "--no-reuse")
    assert status == 0 and "0 imported, 3 already present" in out, out


@pytest.fixture(scope="module")
def mappings(tmp_path_factory) -> Path:
    """A folder with the synthetic MappingNet files (about 41 MB each)."""
    return write_synthetic_sadtalker(tmp_path_factory.mktemp("mappings"), only=["mapping_crop", "mapping_full"])


def _mapping_manifest(tmp_path: Path, mappings: Path, crop_file: str = "mapping_00229-model.pth.tar") -> Path:
    crop, full = mappings / crop_file, mappings / "mapping_00109-model.pth.tar"
    return write_manifest(tmp_path / "m.toml", {
        "mapping-crop": manifest_entry("mapping_00229-model.pth.tar", crop, ["http://127.0.0.1:9/c"], pin=False,
                                       networks={"mapping_crop": "mapping"}),
        "mapping-full": manifest_entry("mapping_00109-model.pth.tar", full, ["http://127.0.0.1:9/f"], pin=False,
                                       networks={"mapping_full": "mapping"}),
    })


def test_import_zip_with_a_wrong_size_member(isolated, mappings):
    manifest = load_manifest(_mapping_manifest(isolated, mappings))
    archive = isolated / "weights.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as z:
        z.write(mappings / "mapping_00229-model.pth.tar", "SadTalker/checkpoints/mapping_00229-model.pth.tar")
        z.writestr("SadTalker/checkpoints/mapping_00109-model.pth.tar", b"truncated")
        z.writestr("SadTalker/checkpoints/shape_predictor_68_face_landmarks.dat", b"x")
    store = ModelStore(isolated / "models")

    report = import_models(archive, store, manifest, say=lambda s: None)

    assert [e.id for e, _ in report.imported] == ["mapping-crop"]
    assert len(report.refused) == 1 and "9 bytes instead of" in report.refused[0][1]
    assert report.ignored == ["shape_predictor_68_face_landmarks.dat"]
    assert store.state(manifest.get("mapping-crop")).state == VERIFIED
    assert store.state(manifest.get("mapping-full")).state == MISSING


def test_import_refuses_a_file_whose_structure_does_not_match(isolated, mappings):
    # the 73-channel file under the 70-channel name, with the manifest's size made to match
    odd = isolated / "odd" / "checkpoints"
    odd.mkdir(parents=True)
    _link(mappings / "mapping_00109-model.pth.tar", odd / "mapping_00229-model.pth.tar")
    manifest = load_manifest(_mapping_manifest(isolated, mappings, crop_file="mapping_00109-model.pth.tar"))
    store = ModelStore(isolated / "models")

    report = import_models(odd.parent, store, manifest, say=lambda s: None)

    assert not report.imported and len(report.refused) == 1
    origin, reason = report.refused[0]
    assert origin.endswith("odd/checkpoints/mapping_00229-model.pth.tar")
    assert "does not hold the SadTalker 'mapping_crop' network as published" in reason and "wrong shape" in reason
    assert not store.target(manifest.get("mapping-crop")).exists() and not store.part_path(manifest.get("mapping-crop")).exists()
    (isolated / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds none of the model files"):
        import_models(isolated / "empty", store, manifest)


# --- verify ------------------------------------------------------------------------------------

def test_verify_command_records_damage(isolated):
    blob = torch_file(100_000)
    manifest_path = _small_manifest(isolated, {"GFPGANv1.4.pth": blob})
    models = isolated / "models"
    target = models / "gfpgan" / "weights" / "GFPGANv1.4.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(blob)
    common = ("--manifest", manifest_path, "--models-dir", models, "--no-reuse")

    status, out = run_models("models", "verify", *common)
    assert status == 0 and "1 of 1 files passed" in out, out
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 0xFF
    target.write_bytes(bytes(damaged))
    status, out = run_models("models", "verify", *common)
    assert status == 1 and "sha256" in out, out
    entry = load_manifest(manifest_path).get("a")
    state = ModelStore(models).state(entry)
    assert state.state == FAILED and "sha256" in state.detail
    status, listing = run_models("models", "list", *common)
    assert "a failed its checks" in listing


def test_safetensors_header_check_catches_a_cut_file(isolated):
    from safetensors.torch import save_file

    path = isolated / "x.safetensors"
    save_file({"a": torch.zeros(100, 10), "b": torch.ones(3)}, str(path))
    assert read_safetensors_header(path) == {"a": ("F32", (100, 10)), "b": ("F32", (3,))}
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(CheckpointError, match="cut short"):
        read_safetensors_header(path)
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        read_safetensors_header(path)


def test_torch_files_load_without_running_code(isolated):
    plain = isolated / "plain.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": np.int64(300), "lr": np.float64(1e-4)}, plain)
    assert int(load_torch_file(plain)["epoch"]) == 300  # NumPy scalars are data, allowed

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    evil = isolated / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="cannot be read as a plain torch weight file"):
        load_torch_file(evil)
    entry = load_manifest(_small_manifest(isolated, {"epoch_20.pth": evil.read_bytes()})).get("a")
    with pytest.raises(CheckpointError):
        verify_file(entry, evil)
    assert hashlib.sha256(evil.read_bytes()).hexdigest() == entry.sha256  # refused for its content, not its digest
