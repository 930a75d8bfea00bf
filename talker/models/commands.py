"""``talker models list | download | import | verify``: argparse wiring and what each prints.

``add_models_commands(subparsers)`` adds the ``models`` command to the CLI's sub-parsers; each
leaf sets ``run=func`` with ``func(args) -> int`` (0: all good, 1: some file failed). User
mistakes (unknown name, missing path, bad manifest) raise ``TalkerError`` subclasses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from talker.errors import OptionError
from talker.models.manifest import ENV_MANIFEST, Manifest, ModelFile, load_manifest
from talker.models.store import ENV_MODELS, FAILED, FileState, ModelStore, feature_states, open_store, resolve_models_dir


def add_models_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``models`` with its four sub-commands to ``subparsers`` (from ``add_subparsers``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", type=Path,
                        help=f"the models folder (default: ${ENV_MODELS}, else a per-user data folder)")
    common.add_argument("--manifest", type=Path, help=f"another model manifest (default: ${ENV_MANIFEST}, else the built-in one)")
    common.add_argument("--no-reuse", action="store_true",
                        help="ignore SadTalker / WebUI folders found elsewhere; use the models folder only")

    models = subparsers.add_parser("models", help="list, download, import and verify model files",
                                   description="Manage the model files of the neural backend and the face enhancer. "
                                   "Without an action: list them.")
    models.set_defaults(run=run_list, models_dir=None, manifest=None, no_reuse=False)  # bare `talker models`
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")

    p = sub.add_parser("list", parents=[common], help="what is present, missing or verified, and what each file enables")
    p.set_defaults(run=run_list)

    p = sub.add_parser("download", parents=[common], help="download model files (resumable, checked)",
                       description="Download files by id, file name or feature; `--for sadtalker` fetches the "
                                   "neural backend, `gfpgan` the face enhancer.")
    p.add_argument("names", nargs="*", metavar="NAME", help="file ids, file names or features (see `talker models list`)")
    p.add_argument("--all", action="store_true", help="every file in the manifest, optional ones included")
    p.add_argument("--for", dest="features", action="append", default=[], metavar="FEATURE",
                   help="the files a feature needs (sadtalker, sadtalker-legacy, gfpgan, ...); repeatable")
    p.add_argument("--mirror", help="base URL tried first for every file (<URL>/<file name>); also $TALKER_MODELS_MIRROR")
    p.add_argument("--retries", type=int, default=3, help="failed attempts without progress before trying the next source")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds without data before an attempt fails")
    p.set_defaults(run=run_download)

    p = sub.add_parser("import", parents=[common], help="copy or hard-link files from a folder or zip, checking each",
                       description="Import model files from a SadTalker checkout, its checkpoints folder, a WebUI or "
                                   "its SadTalker extension folder, or a zip of one of them.")
    p.add_argument("path", type=Path, metavar="PATH", help="folder or zip holding the files")
    p.add_argument("--copy", action="store_true", help="always copy (default: hard-link when on the same disk)")
    p.set_defaults(run=run_import)

    p = sub.add_parser("verify", parents=[common], help="check sizes, sha256 and network structure of the files present")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these ids, file names or features")
    p.add_argument("--no-sha256", action="store_true", help="skip the digests (size and structure only: much faster)")
    p.set_defaults(run=run_verify)
    return models


def _open(args) -> tuple[Manifest, ModelStore]:
    return load_manifest(args.manifest), open_store(args.models_dir, discover=not args.no_reuse)


def _header(args, store: ModelStore) -> None:
    _, origin = resolve_models_dir(args.models_dir)
    print(f"models folder: {store.root} ({origin})")
    for loc in store.locations[1:]:
        print(f"also using:    {loc.root} ({loc.kind})")


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _state_text(state: FileState, store: ModelStore) -> str:
    text = state.state + (f" ({state.detail})" if state.detail and state.state != FAILED else "")
    if state.path is not None and state.state != "partial" and not state.path.is_relative_to(store.root):
        text += f" in {state.path.parent}"
    return text


def run_list(args) -> int:
    manifest, store = _open(args)
    _header(args, store)
    rows = [(e.id, e.file, _state_text(store.state(e), store), _size(e.size),
             ",".join(e.features) + (" (optional)" if e.optional else ""), e.enables) for e in manifest.files]
    titles = ("ID", "FILE", "STATUS", "SIZE", "FOR", "ENABLES")
    widths = [max(len(t), *(len(r[i]) for r in rows)) for i, t in enumerate(titles[:-1])]
    for row in (titles, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    print()
    for feature in feature_states(manifest, store):
        print(f"{feature.feature}: {feature.summary()}" + (f": `{feature.fix()}`" if feature.fix() else ""))
    for entry in manifest.files:
        state = store.state(entry)
        if state.state == FAILED:
            print(f"{entry.id} failed its checks: {state.detail}")
    return 0


def run_download(args) -> int:
    from talker.models.download import DownloadSettings, download_many

    manifest, store = _open(args)
    if not (args.names or args.features or args.all):
        raise OptionError("say what to download: NAME..., --for FEATURE (e.g. --for sadtalker) or --all")
    if args.retries < 0 or args.timeout <= 0:
        raise OptionError("--retries must be >= 0 and --timeout > 0")
    entries = manifest.select(args.names, args.features, args.all)
    settings = DownloadSettings(retries=args.retries, timeout=args.timeout, mirror=args.mirror)
    print(f"models folder: {store.root}")
    done, failed = download_many(entries, store, settings)
    for line in failed:
        print(f"FAILED {line}")
    print(f"{len(done)} of {len(entries)} files ready")
    return 1 if failed else 0


def run_import(args) -> int:
    from talker.models.importer import import_models

    manifest, store = _open(args)
    print(f"models folder: {store.root}")
    report = import_models(args.path, store, manifest, copy=args.copy, progress=True)
    if report.ignored:
        print(f"ignored (not used by talker): {', '.join(report.ignored)}")
    print(f"{len(report.imported)} imported, {len(report.already)} already present, {len(report.refused)} refused")
    return 1 if report.refused else 0


def run_verify(args) -> int:
    from talker.errors import CheckpointError
    from talker.models.verify import verify_file

    manifest, store = _open(args)
    _header(args, store)
    entries: list[ModelFile] = manifest.select(args.names) if args.names else list(manifest.files)
    checked = bad = 0
    for entry in entries:
        for path in store.candidates(entry):
            checked += 1
            try:
                digest = verify_file(entry, path, sha256=not args.no_sha256, progress=True)
            except CheckpointError as err:
                bad += 1
                store.remember(entry, path, ok=False, problem=str(err))
                print(f"FAILED {entry.id}: {err}")
                continue
            if args.no_sha256 and entry.sha256:
                print(f"ok     {entry.id}: {path} (size, structure; sha256 skipped, so not recorded as verified)")
            else:
                store.remember(entry, path, ok=True, sha256=digest)
                print(f"ok     {entry.id}: {path} (size, {'sha256, ' if entry.sha256 else ''}structure)")
    print(f"{checked - bad} of {checked} files passed" if checked else "no model files present: see `talker models list`")
    return 1 if bad else 0
