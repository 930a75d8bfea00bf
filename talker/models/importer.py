"""``talker models import PATH``: bring files copied from elsewhere into the models folder, checked.

PATH is a folder laid out like SadTalker (``checkpoints/`` and ``gfpgan/weights/``), a
``checkpoints`` folder itself, a SadTalker WebUI extension folder, a WebUI folder, a folder of
loose files, or a zip of any of these. Each file the manifest knows is hard-linked into the
models folder when both are on one file system (no extra disk space), copied otherwise (or when
asked), as ``<name>.part``; it gets its final name only after size, sha256 and structure pass.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from talker.errors import CheckpointError, OptionError
from talker.models.manifest import Manifest, ModelFile
from talker.models.store import VERIFIED, ModelStore, locations_in
from talker.models.verify import verify_file

WEIGHT_SUFFIXES = (".pth", ".tar", ".safetensors", ".pt", ".ckpt", ".bin", ".dat")
"""Names with these endings that the manifest does not know are reported as ignored."""


@dataclass
class ImportReport:
    """What an import did: files placed, files already there, files refused (with the reason), names ignored."""

    imported: list[tuple[ModelFile, Path]] = field(default_factory=list)
    already: list[tuple[ModelFile, Path]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def import_models(source: Path | str, store: ModelStore, manifest: Manifest, *, copy: bool = False,
                  progress: bool = False, say: Callable[[str], None] = print) -> ImportReport:
    """Import every manifest file found in ``source`` (folder or zip); CheckpointError if there is none."""
    source = Path(source).expanduser().absolute()
    if not source.exists():
        raise OptionError(f"{source} does not exist: give the folder or zip that holds the model files")
    report = ImportReport()
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise OptionError(f"{source} is neither a folder nor a zip file")
        with zipfile.ZipFile(source) as archive:
            _import_zip(archive, source, store, manifest, report, progress, say)
    else:
        _import_folder(source, store, manifest, copy, report, progress, say)
    if not (report.imported or report.already or report.refused):
        raise CheckpointError(
            f"{source} holds none of the model files talker uses (looked for names such as "
            f"{manifest.files[0].file} in checkpoints/ and GFPGANv1.4.pth in gfpgan/weights/); "
            "`talker models list` shows every name"
        )
    return report


def _import_folder(source: Path, store: ModelStore, manifest: Manifest, copy: bool, report: ImportReport,
                   progress: bool, say) -> None:
    locations = locations_in(source)
    known = {e.file for e in manifest.files}
    for entry in manifest.files:
        found = next((p for loc in locations for p in loc.paths(entry) if p.is_file()), None)
        if found is not None:
            _place(entry, store, report, progress, say, found,
                   lambda part, src=found: _link_or_copy(src, part, copy))
    folders = {d for loc in locations for ds in loc.folders.values() for d in ds if d.is_dir()}
    report.ignored = sorted({p.name for d in folders for p in d.iterdir()
                             if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES) and p.name not in known})


def _import_zip(archive: zipfile.ZipFile, source: Path, store: ModelStore, manifest: Manifest,
                report: ImportReport, progress: bool, say) -> None:
    members = [m for m in archive.infolist() if not m.is_dir()]
    known = {e.file for e in manifest.files}
    for entry in manifest.files:
        named = [m for m in members if PurePosixPath(m.filename).name == entry.file]
        if not named:
            continue
        # prefer the copy in the SadTalker sub-folder of that name, then the shallowest one
        member = min(named, key=lambda m: (not str(PurePosixPath(m.filename).parent).endswith(entry.folder),
                                           m.filename.count("/")))
        label = Path(f"{source}:{member.filename}")
        if member.file_size != entry.size:
            report.refused.append((str(label), f"{member.file_size:,} bytes instead of {entry.size:,}"))
            say(f"{entry.id}: refused {label}: {member.file_size:,} bytes instead of {entry.size:,}")
            continue
        _place(entry, store, report, progress, say, label, lambda part, m=member: _extract(archive, m, part))
    report.ignored = sorted({PurePosixPath(m.filename).name for m in members
                             if m.filename.endswith(WEIGHT_SUFFIXES) and PurePosixPath(m.filename).name not in known})


def _place(entry: ModelFile, store: ModelStore, report: ImportReport, progress: bool, say, origin: Path,
           write: Callable[[Path], str]) -> None:
    """Write ``entry`` as .part with ``write``, verify it, rename it into the models folder."""
    target, part = store.target(entry), store.part_path(entry)
    state = store.state(entry)
    if origin == target or (state.state == VERIFIED and state.path == target):
        report.already.append((entry, target))
        say(f"{entry.id}: already in the models folder: {target}")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    part.unlink(missing_ok=True)
    how = write(part)
    try:
        digest = verify_file(entry, part, progress=progress)
    except CheckpointError as err:
        part.unlink(missing_ok=True)
        reason = str(err).replace(str(part), str(origin))
        report.refused.append((str(origin), reason))
        say(f"{entry.id}: refused {origin}: {reason}")
        return
    os.replace(part, target)
    store.remember(entry, target, ok=True, sha256=digest)
    report.imported.append((entry, target))
    say(f"{entry.id}: {how} and verified: {target}")


def _link_or_copy(source: Path, part: Path, copy: bool) -> str:
    if not copy:
        try:
            os.link(source, part)
            return "hard-linked"
        except OSError:  # another file system, or links not allowed
            pass
    shutil.copyfile(source, part)
    return "copied"


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, part: Path) -> str:
    with archive.open(member) as src, open(part, "wb") as dst:
        shutil.copyfileobj(src, dst, 4 << 20)
    return "extracted"
