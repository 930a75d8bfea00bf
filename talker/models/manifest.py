"""The model manifest (checkpoints/manifest.toml): every file talker can use, its sources and checks.

``load_manifest()`` reads ``--manifest FILE``, else ``$TALKER_MANIFEST``, else the manifest shipped
with talker. Each entry becomes a ``ModelFile``; names given on the command line resolve through
``Manifest.select`` (entry ids, file names or feature names).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from talker.errors import OptionError

ENV_MANIFEST = "TALKER_MANIFEST"
# talker/data/manifest.toml links to checkpoints/manifest.toml, so the wheel carries it as package data.
DEFAULT_MANIFEST = Path(__file__).resolve().parents[1] / "data" / "manifest.toml"
FOLDERS = ("checkpoints", "gfpgan/weights", "Stable-diffusion", "ControlNet")
"""Sub-folders of a SadTalker checkout or an A1111 WebUI's models/ (and of a talker models folder) that hold model files."""
FORMATS = ("safetensors", "torch")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelFile:
    """One downloadable file. ``size`` in bytes; ``sha256`` lowercase hex or None when not pinned."""

    id: str
    file: str
    folder: str
    size: int
    sha256: str | None
    features: tuple[str, ...]
    optional: bool
    licence: str
    format: str
    networks: Mapping[str, str]
    urls: tuple[str, ...]
    enables: str
    sha256_from: str = ""

    @property
    def primary(self) -> str:
        return self.urls[0]

    @property
    def mirrors(self) -> tuple[str, ...]:
        return self.urls[1:]


@dataclass(frozen=True)
class Manifest:
    """All entries of one manifest file, in file order."""

    path: Path
    files: tuple[ModelFile, ...]
    by_id: Mapping[str, ModelFile] = field(repr=False, default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        """Feature names in first-use order."""
        seen: dict[str, None] = {}
        for entry in self.files:
            seen.update(dict.fromkeys(entry.features))
        return tuple(seen)

    def get(self, name: str) -> ModelFile:
        """The entry with this id or file name; OptionError naming the known ids otherwise."""
        entry = self.by_id.get(name) or next((e for e in self.files if e.file == name), None)
        if entry is None:
            raise OptionError(
                f"no model named {name!r}: use one of {', '.join(self.by_id)}, a file name they list, "
                f"or a feature ({', '.join(self.features)}); `talker models list` shows them all"
            )
        return entry

    def for_feature(self, feature: str, optional: bool = False) -> list[ModelFile]:
        """The entries a feature uses (without the optional ones unless asked)."""
        if feature not in self.features:
            raise OptionError(f"no feature named {feature!r}: use one of {', '.join(self.features)}")
        return [e for e in self.files if feature in e.features and (optional or not e.optional)]

    def select(self, names: Iterable[str] = (), features: Iterable[str] = (), everything: bool = False) -> list[ModelFile]:
        """Entries named by id, file name or feature (a feature gives its non-optional files), in manifest order."""
        if everything:
            return list(self.files)
        chosen: dict[str, ModelFile] = {}
        for feature in features:
            chosen.update((e.id, e) for e in self.for_feature(feature))
        for name in names:
            if name in self.features and name not in self.by_id:
                chosen.update((e.id, e) for e in self.for_feature(name))
            else:
                entry = self.get(name)
                chosen[entry.id] = entry
        return [e for e in self.files if e.id in chosen]


def manifest_path(path: Path | str | None = None) -> Path:
    """The manifest to use: ``path``, else $TALKER_MANIFEST, else the one shipped with talker."""
    chosen = path or os.environ.get(ENV_MANIFEST) or DEFAULT_MANIFEST
    return Path(chosen).expanduser()


def load_manifest(path: Path | str | None = None) -> Manifest:
    """Parse and check a manifest (see checkpoints/manifest.toml for the fields); OptionError if it is malformed."""
    source = manifest_path(path)
    try:
        with open(source, "rb") as f:
            data = _toml().load(f)
    except FileNotFoundError:
        raise OptionError(f"model manifest {source} does not exist: check --manifest or ${ENV_MANIFEST}") from None
    except ValueError as err:  # tomllib.TOMLDecodeError
        raise OptionError(f"model manifest {source} is not valid TOML ({err})") from None
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        raise OptionError(f"model manifest {source} has no [files.<id>] tables")
    entries = tuple(_entry(source, key, value) for key, value in files.items())
    return Manifest(source, entries, {e.id: e for e in entries})


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib


def _entry(source: Path, key: str, raw) -> ModelFile:
    def bad(why: str) -> OptionError:
        return OptionError(f"model manifest {source}: [files.{key}] {why}")

    if not isinstance(raw, dict):
        raise bad("is not a table")
    for name in ("file", "folder", "size", "for", "licence", "format", "primary", "enables"):
        if name not in raw:
            raise bad(f"lacks '{name}'")
    if raw["folder"] not in FOLDERS:
        raise bad(f"folder must be one of {', '.join(FOLDERS)}, not {raw['folder']!r}")
    if raw["format"] not in FORMATS:
        raise bad(f"format must be one of {', '.join(FORMATS)}, not {raw['format']!r}")
    if not isinstance(raw["size"], int) or raw["size"] <= 0:
        raise bad(f"size must be a positive number of bytes, not {raw['size']!r}")
    sha = raw.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
        raise bad(f"sha256 must be 64 lowercase hex digits, not {sha!r}")
    features = raw["for"]
    if not (isinstance(features, list) and features and all(isinstance(f, str) for f in features)):
        raise bad("'for' must be a non-empty list of feature names")
    networks = raw.get("networks", {})
    if not isinstance(networks, dict) or not all(isinstance(v, str) for v in networks.values()):
        raise bad("'networks' must map network names to key prefixes or container keys")
    mirrors = raw.get("mirrors", [])
    if not isinstance(mirrors, list):
        raise bad("'mirrors' must be a list of URLs")
    file_name = raw["file"]
    if Path(file_name).name != file_name or file_name.endswith(".part"):
        raise bad(f"file must be a plain file name, not {file_name!r}")
    return ModelFile(
        id=key, file=file_name, folder=raw["folder"], size=raw["size"], sha256=sha,
        features=tuple(features), optional=bool(raw.get("optional", False)), licence=raw["licence"],
        format=raw["format"], networks=dict(networks), urls=(raw["primary"], *mirrors),
        enables=raw["enables"], sha256_from=raw.get("sha256_from", ""),
    )
