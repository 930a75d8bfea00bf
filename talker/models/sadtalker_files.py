"""Locate, verify and load the official SadTalker checkpoint files as published (SPEC §1).

Two layouts are understood, chosen as SadTalker does:

* current: ``SadTalker_V0.0.2_<size>.safetensors`` (one flat dict; networks under the prefixes
  ``kp_extractor.``, ``generator.``, ``audio2exp.``, ``audio2pose.``, ``face_3drecon.``), used
  whenever the folder holds any ``*.safetensors`` file;
* legacy (no safetensors in the folder): ``auido2exp_00300-model.pth`` (``model``),
  ``auido2pose_00140-model.pth`` (``model``), ``facevid2vid_00189-model.pth.tar`` (``generator``,
  ``kp_detector``, ``he_estimator``) and ``epoch_20.pth`` (``net_recon``).

Both need the MappingNet files ``mapping_00229-model.pth.tar`` (70 channels, crop/extcrop/resize)
and ``mapping_00109-model.pth.tar`` (73 channels, full/extfull), key ``mapping``, for every size.
Pickles are read with ``torch.load(weights_only=True)`` (memory-mapped where the format allows);
safetensors with ``safe_open``, so checks read only headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from talker.errors import CheckpointError
from talker.models.schema import check_state_dict, network_entries, schema

SIZES = (256, 512)
SAFETENSORS_NETWORKS = ("kp_extractor", "generator", "audio2exp", "audio2pose", "face_3drecon")
MAPPING_NETWORKS = ("mapping_crop", "mapping_full")
NEEDED_NETWORKS = ("face_3drecon", "audio2exp", "audio2pose", "kp_extractor", "generator") + MAPPING_NETWORKS
"""Every network a SadTalker run loads (the HEEstimator is not used at inference)."""

FETCH_HINT = (
    "get them with 'talker models download --for sadtalker' (into the models folder that 'talker models list' "
    "names), or use --backend embedded, which needs no model files"
)


def missing_message(folder: Path, names: list[str]) -> str:
    """The one message for SadTalker files missing from ``folder``, with the command that fetches them."""
    return f"SadTalker checkpoints missing from {folder}: {', '.join(names)}; {FETCH_HINT}"


def current_files(size: int) -> list[str]:
    """The files of the current layout at ``size`` (what 'talker models download --for sadtalker' fetches)."""
    mapping, _ = _pickle_layout()
    return [safetensors_name(size), *(fname for fname, _ in mapping.values())]


def safetensors_name(size: int) -> str:
    return f"SadTalker_V0.0.2_{size}.safetensors"


def _pickle_layout() -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    """From the schema's 'files': (mapping network -> (file, key), legacy network -> (file, key))."""
    mapping, legacy = {}, {}
    for fname, rec in schema()["files"].items():
        if not isinstance(rec, dict):
            continue
        if "container_keys" in rec:
            legacy.update({net: (fname, key) for key, net in rec["container_keys"].items()})
        elif "network" in rec:
            (mapping if rec["network"] in MAPPING_NETWORKS else legacy)[rec["network"]] = (fname, rec["container_key"])
    return mapping, legacy


@dataclass
class SadTalkerFiles:
    """The checkpoint files of one SadTalker setup.

    root: the checkpoint folder. size: face-render resolution, 256 or 512.
    safetensors: the ``SadTalker_V0.0.2_<size>.safetensors`` file, or None in the legacy layout.
    mapping_crop / mapping_full: the 70- and 73-channel MappingNet files.
    legacy: network name -> legacy ``.pth``/``.pth.tar`` file holding it (every legacy file
        found; used for the networks the safetensors file does not provide).
    """

    root: Path
    size: int
    safetensors: Path | None
    mapping_crop: Path
    mapping_full: Path
    legacy: dict = field(default_factory=dict)

    def source_of(self, name: str) -> tuple[Path, str]:
        """(file, prefix or container key) that holds network ``name``."""
        network_entries(name)  # unknown names raise KeyError
        mapping, legacy = _pickle_layout()
        if name in MAPPING_NETWORKS:
            return getattr(self, name), mapping[name][1]
        if self.safetensors is not None and name in SAFETENSORS_NETWORKS:
            return self.safetensors, name + "."
        if name in self.legacy:
            return self.legacy[name], legacy[name][1]
        where = f"{safetensors_name(self.size)} does not contain it" if self.safetensors is not None else "not found"
        file = legacy[name][0] if name in legacy else "?"
        raise CheckpointError(
            f"the SadTalker '{name}' network is only in the legacy file {file} ({where}); put {file} into {self.root}"
        )


def find_sadtalker_files(checkpoint_dir: Path | str, size: int) -> SadTalkerFiles:
    """Find the files of a ``size`` setup in ``checkpoint_dir`` (no content is read).

    Raises CheckpointError listing every missing file.
    """
    root = Path(checkpoint_dir).expanduser()
    if size not in SIZES:
        raise CheckpointError(f"SadTalker checkpoints exist for sizes 256 and 512, not {size}")
    if not root.is_dir():
        raise CheckpointError(f"checkpoint folder {root} does not exist; check the path")
    mapping, legacy = _pickle_layout()
    found_legacy = {net: root / fname for net, (fname, _) in legacy.items() if (root / fname).is_file()}
    safetensors = None
    if any(root.glob("*.safetensors")) or not found_legacy:
        # the current layout, also the one named when the folder holds neither
        missing = [name for name in current_files(size) if not (root / name).is_file()]
        safetensors = root / safetensors_name(size)
    else:
        needed = sorted({legacy[net][0] for net in SAFETENSORS_NETWORKS})
        missing = [n for n in needed + [f for f, _ in mapping.values()] if not (root / n).is_file()]
    if missing:
        raise CheckpointError(missing_message(root, missing))
    return SadTalkerFiles(
        root=root,
        size=size,
        safetensors=safetensors,
        mapping_crop=root / mapping["mapping_crop"][0],
        mapping_full=root / mapping["mapping_full"][0],
        legacy=found_legacy,
    )


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return CheckpointError(f"{path} cannot be read (truncated or corrupt: {reason}); download it again")


def _safetensors_headers(path: Path, prefix: str) -> dict:
    """key (prefix removed) -> shape of the tensors under ``prefix``, from the header only."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k[len(prefix) :]: tuple(f.get_slice(k).get_shape()) for k in f.keys() if k.startswith(prefix)}
    except Exception as err:  # SafetensorError, OSError: the header is damaged or the file is short
        raise _unreadable(path, err) from err


def _safetensors_tensors(path: Path, prefix: str, keys) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(prefix + k) for k in keys}
    except Exception as err:
        raise _unreadable(path, err) from err


def _load_pickle(path: Path) -> dict:
    """The pickle's object (talker.models.torch_files.torch_load), or a CheckpointError that says why not."""
    from talker.models.torch_files import torch_load

    try:
        return torch_load(path)
    except Exception as err:  # zip/pickle errors, EOFError, disallowed globals
        if "Weights only load failed" in str(err):
            detail = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line), "").split(". Please")[0]
            raise CheckpointError(
                f"{path} holds Python objects besides tensors, which could run code when loaded, so it is refused"
                f"{f' ({detail})' if detail else ''}; use the official file"
            ) from err
        raise _unreadable(path, err) from err


def _pickled_state(path: Path, container_key: str, name: str) -> dict:
    obj = _load_pickle(path)
    if not isinstance(obj, dict) or not isinstance(obj.get(container_key), dict):
        keys = ", ".join(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path} has no '{container_key}' state dict for the SadTalker '{name}' network (it holds: {keys}); "
            "download the official file again"
        )
    return obj[container_key]


def load_network_state(files: SadTalkerFiles, name: str) -> dict:
    """The verified state dict of network ``name`` (schema key order), floats as float32 tensors.

    ``name`` is a schema network: face_3drecon, audio2exp, audio2pose, kp_extractor, generator,
    mapping_crop, mapping_full, or he_estimator (legacy file only). Raises CheckpointError for a
    missing, unreadable or mismatching file.
    """
    import torch

    path, where = files.source_of(name)
    entries = network_entries(name)
    if path.suffix == ".safetensors":
        shapes = _safetensors_headers(path, where)
        check_state_dict(name, shapes, path)
        state = _safetensors_tensors(path, where, list(shapes))
    else:
        state = _pickled_state(path, where, name)
        check_state_dict(name, state, path)
    ordered = [k for k in entries if k in state]
    return {k: state[k].to(torch.float32) if state[k].is_floating_point() else state[k] for k in ordered}


def verify_sadtalker_files(files: SadTalkerFiles) -> None:
    """Check the structure (keys and shapes) of every network a run needs, without loading tensors
    where the format allows (safetensors headers; memory-mapped pickles). Raises CheckpointError."""
    for name in NEEDED_NETWORKS:
        path, where = files.source_of(name)
        if path.suffix == ".safetensors":
            check_state_dict(name, _safetensors_headers(path, where), path)
        else:
            check_state_dict(name, _pickled_state(path, where, name), path)
