"""The models folder, existing SadTalker / A1111 folders reused in place, and what each file's state is.

The models folder is ``--models-dir``, else ``$TALKER_MODELS``, else a per-user data folder
(platformdirs' user data dir when installed, else ``$XDG_DATA_HOME`` or ``~/.local/share``, plus
``talker/models``). Inside it files sit where SadTalker keeps them: ``checkpoints/`` and
``gfpgan/weights/`` (a file dropped at the top of the folder is found too).

Files already on disk elsewhere are used where they are, never copied: a SadTalker checkout
(``checkpoints/`` + ``gfpgan/weights/``), an AUTOMATIC1111 WebUI (``models/SadTalker``,
``extensions/SadTalker/checkpoints`` and ``gfpgan/weights``, ``models/GFPGAN``, and for the portrait stage
``models/Stable-diffusion``, ``models/ControlNet``, ``extensions/sd-webui-controlnet/models``), the folder named by
``$SADTALKER_CHECKPOINTS`` (set by the SadTalker WebUI extension) and folders listed in
``$TALKER_REUSE_DIRS``. The usual places under the home folder are looked at too.

A file counts as present only under its exact published name and size: ``<name>.part`` files
(downloads in progress) never do. Verification results are remembered per path in
``<models folder>/.verified.json`` and trusted while the file's size and mtime are unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from talker.models.manifest import FOLDERS, Manifest, ModelFile

ENV_MODELS = "TALKER_MODELS"
ENV_SADTALKER = "SADTALKER_CHECKPOINTS"
ENV_REUSE = "TALKER_REUSE_DIRS"
HOME_CANDIDATES = ("SadTalker", "stable-diffusion-webui", "stable-diffusion-webui-forge")
"""Folders under the home folder where SadTalker checkouts and WebUIs usually live."""
RECORDS = ".verified.json"
PART = ".part"

VERIFIED, PRESENT, FAILED, WRONG_SIZE, PARTIAL, MISSING = (
    "verified", "present", "failed", "wrong size", "partial", "missing")
_RANK = {VERIFIED: 0, PRESENT: 1, FAILED: 2, WRONG_SIZE: 3}


def default_models_dir() -> Path:
    """The per-user data folder for models (no side effect: the folder may not exist yet)."""
    try:
        from platformdirs import user_data_dir
        return Path(user_data_dir("talker", appauthor=False)) / "models"
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        return Path(base) / "talker" / "models"


def resolve_models_dir(models_dir: Path | str | None = None) -> tuple[Path, str]:
    """The models folder and where the choice came from ('--models-dir', '$TALKER_MODELS' or 'default')."""
    if models_dir:
        return Path(models_dir).expanduser().absolute(), "--models-dir"
    if os.environ.get(ENV_MODELS):
        return Path(os.environ[ENV_MODELS]).expanduser().absolute(), f"${ENV_MODELS}"
    return default_models_dir(), "default"


@dataclass(frozen=True)
class Location:
    """A place holding model files: ``folders`` maps a manifest folder name to the directories searched."""

    kind: str
    root: Path
    folders: Mapping[str, tuple[Path, ...]]

    def paths(self, entry: ModelFile) -> list[Path]:
        return [d / entry.file for d in self.folders.get(entry.folder, ())]


def own_location(root: Path) -> Location:
    """The talker models folder: SadTalker's two sub-folders, then the folder itself."""
    return Location("models folder", root, {f: (root / f, root) for f in FOLDERS})


def locations_in(path: Path | str) -> list[Location]:
    """The model locations a folder holds: a WebUI, a SadTalker checkout / extension, or plain files."""
    path = Path(path).expanduser().absolute()
    if not path.is_dir():
        return []
    if (path / "webui.py").is_file() or ((path / "extensions").is_dir() and (path / "models").is_dir()):
        found = [Location("WebUI models/SadTalker", path / "models" / "SadTalker",
                          {"checkpoints": (path / "models" / "SadTalker",)}),
                 *locations_in(path / "extensions" / "SadTalker"),
                 Location("WebUI models/GFPGAN", path / "models" / "GFPGAN",
                          {"gfpgan/weights": (path / "models" / "GFPGAN",)}),
                 Location("WebUI models/Stable-diffusion", path / "models" / "Stable-diffusion",
                          {"Stable-diffusion": (path / "models" / "Stable-diffusion",)}),
                 Location("WebUI models/ControlNet", path / "models" / "ControlNet",
                          {"ControlNet": (path / "models" / "ControlNet", path / "extensions" / "sd-webui-controlnet" / "models")})]
        return [loc for loc in found if any(d.is_dir() for ds in loc.folders.values() for d in ds)]
    if (path / "checkpoints").is_dir() or (path / "gfpgan" / "weights").is_dir():
        kind = "SadTalker WebUI extension" if path.parent.name == "extensions" else "SadTalker checkout"
        return [Location(kind, path, {f: (path / f,) for f in FOLDERS})]
    weights = path.parent / "gfpgan" / "weights"
    folders = {"checkpoints": (path,), "gfpgan/weights": (path, weights) if path.name == "checkpoints" else (path,)}
    return [Location("folder", path, folders)]


def discover_locations(extra: Iterable[Path | str] = ()) -> list[Location]:
    """Existing SadTalker / WebUI folders to reuse: ``extra``, $SADTALKER_CHECKPOINTS, $TALKER_REUSE_DIRS, home."""
    candidates = [*extra]
    if os.environ.get(ENV_SADTALKER):
        candidates.append(os.environ[ENV_SADTALKER])
    candidates += [p for p in os.environ.get(ENV_REUSE, "").split(os.pathsep) if p]
    home = Path.home()
    candidates += [home / name for name in HOME_CANDIDATES]
    found: list[Location] = []
    for candidate in candidates:
        for loc in locations_in(candidate):
            if loc.root not in {f.root for f in found}:
                found.append(loc)
    return found


@dataclass(frozen=True)
class FileState:
    """Where a manifest entry stands: ``state`` is one of verified / present / failed / wrong size /
    partial / missing; ``path`` the file (or the .part file) it refers to; ``detail`` the reason
    for failed and wrong size, the progress for partial."""

    entry: ModelFile
    state: str
    path: Path | None = None
    detail: str = ""

    @property
    def usable(self) -> bool:
        return self.state in (VERIFIED, PRESENT)


class ModelStore:
    """The models folder (where downloads and imports go) plus reused locations (read only)."""

    def __init__(self, root: Path | str, reuse: Iterable[Location] = ()):
        self.root = Path(root).expanduser().absolute()
        own = own_location(self.root)
        self.locations = [own, *(loc for loc in reuse if loc.root != self.root)]
        self._records_path = self.root / RECORDS
        self._records: dict[str, dict] | None = None

    # -- where files are --------------------------------------------------------------------
    def target(self, entry: ModelFile) -> Path:
        """Where a download or an import of ``entry`` is written."""
        return self.root / entry.folder / entry.file

    def part_path(self, entry: ModelFile) -> Path:
        target = self.target(entry)
        return target.with_name(target.name + PART)

    def candidates(self, entry: ModelFile) -> list[Path]:
        """Every existing file with the entry's name, models folder first."""
        seen, found = set(), []
        for loc in self.locations:
            for path in loc.paths(entry):
                if path.is_file() and path not in seen:
                    seen.add(path)
                    found.append(path)
        return found

    def folders(self, folder: str) -> list[Path]:
        """Existing directories searched for files of one manifest folder ('checkpoints' or 'gfpgan/weights')."""
        out: list[Path] = []
        for loc in self.locations:
            out += [d for d in loc.folders.get(folder, ()) if d.is_dir() and d not in out]
        return out

    def find(self, entry: ModelFile) -> Path | None:
        """The best usable copy of ``entry`` (verified before present), or None."""
        state = self.state(entry)
        return state.path if state.usable else None

    # -- states -----------------------------------------------------------------------------
    def state(self, entry: ModelFile) -> FileState:
        """The best state among the entry's copies; partial/missing when there is no complete copy."""
        states = [self._state_of(entry, p) for p in self.candidates(entry)]
        if states:
            return min(states, key=lambda s: _RANK[s.state])
        part = self.part_path(entry)
        if part.is_file():
            done = part.stat().st_size
            return FileState(entry, PARTIAL, part, f"{done:,} of {entry.size:,} bytes ({100 * done / entry.size:.0f}%)")
        return FileState(entry, MISSING)

    def _state_of(self, entry: ModelFile, path: Path) -> FileState:
        size = path.stat().st_size
        if size != entry.size:
            return FileState(entry, WRONG_SIZE, path, f"{size:,} bytes instead of {entry.size:,}")
        record = self.record_of(entry, path)
        if record is None:
            return FileState(entry, PRESENT, path)
        return FileState(entry, VERIFIED, path) if record["ok"] else FileState(entry, FAILED, path, record["problem"])

    # -- verification records ---------------------------------------------------------------
    def _load_records(self) -> dict[str, dict]:
        if self._records is None:
            try:
                self._records = json.loads(self._records_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._records = {}
        return self._records

    def record_of(self, entry: ModelFile, path: Path) -> dict | None:
        """The remembered verification of ``path`` if it still applies (same file stat, same pins)."""
        record = self._load_records().get(str(Path(path).absolute()))
        if record is None:
            return None
        st = path.stat()
        current = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "pinned_sha256": entry.sha256, "pinned_size": entry.size}
        return record if all(record.get(k) == v for k, v in current.items()) else None

    def remember(self, entry: ModelFile, path: Path, ok: bool, problem: str = "", sha256: str | None = None) -> None:
        """Record a verification result for ``path`` (kept in memory when the models folder is read-only)."""
        st = path.stat()
        self._load_records()[str(Path(path).absolute())] = {
            "id": entry.id, "ok": ok, "problem": problem, "sha256": sha256, "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "pinned_sha256": entry.sha256, "pinned_size": entry.size,
        }
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self._records_path.with_name(RECORDS + PART)
            tmp.write_text(json.dumps(self._records, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self._records_path)
        except OSError:
            pass


def open_store(models_dir: Path | str | None = None, discover: bool = True, extra: Iterable[Path | str] = ()) -> ModelStore:
    """The models folder (see ``resolve_models_dir``) with the discovered reusable locations."""
    root, _ = resolve_models_dir(models_dir)
    return ModelStore(root, discover_locations(extra) if discover else ())


@dataclass(frozen=True)
class FeatureState:
    """The non-optional files of one feature and their states; ``ready`` when all are usable."""

    feature: str
    files: tuple[FileState, ...]

    @property
    def missing(self) -> list[str]:
        return [s.entry.id for s in self.files if not s.usable]

    @property
    def unverified(self) -> list[str]:
        return [s.entry.id for s in self.files if s.state == PRESENT]

    @property
    def ready(self) -> bool:
        return not self.missing

    def summary(self) -> str:
        """What is missing, or that the feature is ready (and whether every file was verified)."""
        if self.missing:
            return f"missing {', '.join(self.missing)}"
        if self.unverified:
            return f"ready (not verified yet: {', '.join(self.unverified)})"
        return "ready, all files verified"

    def fix(self) -> str:
        """The command that completes the feature, or '' when nothing is left to do."""
        if self.missing:
            return f"talker models download --for {self.feature}"
        return "talker models verify" if self.unverified else ""


def feature_states(manifest: Manifest, store: ModelStore) -> list[FeatureState]:
    """Each feature that has non-optional files, with their states."""
    return [FeatureState(f, tuple(store.state(e) for e in manifest.for_feature(f)))
            for f in manifest.features if manifest.for_feature(f)]
