"""``talker doctor``: what this machine has for talker, one line per check, with the fix.

Each check is OK, WARN (works, but a feature is missing or slower) or FAIL (``talker make``
cannot run); the command exits 1 when anything FAILs. ``run_checks()`` gives the same lines to
other front ends (web UI, service health).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from talker.errors import apt_get_install

OK, WARN, FAIL = "OK", "WARN", "FAIL"
MIN_PYTHON = (3, 10)
_TIMEOUT = 20  # seconds for a probed program
DISK_MARGIN = 2 * 10**9  # bytes kept free beyond the missing model files (renders, temp files)
SHOWN_FEATURES = {"sadtalker": " (neural backend; without it talker uses the embedded one)",
                  "gfpgan": " (--enhancer gfpgan)"}
"""Features always reported; others only when some of their files are present."""


@dataclass(frozen=True)
class Check:
    """One line of the report: ``level`` is OK / WARN / FAIL; ``fix`` says what to do when not OK."""

    name: str
    level: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.level:<4}  {self.name:<12}  {self.detail}" + (f"\n{'':<20}fix: {self.fix}" if self.fix else "")


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] < MIN_PYTHON:
        return Check("python", FAIL, f"{version} ({sys.executable})",
                     f"talker needs Python {'.'.join(map(str, MIN_PYTHON))} or newer")
    return Check("python", OK, f"{version} ({sys.executable})")


def check_torch() -> list[Check]:
    """torch itself, then one line per kind of device it can use."""
    try:
        import torch
    except ImportError as err:
        return [Check("torch", FAIL, f"cannot import torch ({err})", "pip install torch (see pytorch.org for GPU builds)")]
    lines = [Check("torch", OK, f"{torch.__version__} (CUDA build {torch.version.cuda})" if torch.version.cuda
                   else f"{torch.__version__} (CPU build)")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(Check(f"cuda:{i}", OK, f"{props.name}, {props.total_memory / 2**30:.1f} GiB, "
                                                f"compute capability {props.major}.{props.minor}"))
    elif torch.version.cuda:
        lines.append(Check("cuda", WARN, "this torch is built for CUDA but sees no GPU",
                           "check the NVIDIA driver (`nvidia-smi`) and CUDA_VISIBLE_DEVICES; rendering falls back to the CPU"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        lines.append(Check("mps", OK, "Apple GPU available"))
    gpu = len(lines) > 1 and lines[-1].level == OK
    lines.append(Check("cpu", OK, f"{os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads"
                       + ("" if gpu else "; no GPU: the neural backend renders slowly, the embedded one is fine")))
    return lines


def check_ffmpeg() -> Check:
    """The ffmpeg that imageio-ffmpeg provides runs and has the H.264 and AAC encoders."""
    fix = "pip install --force-reinstall imageio-ffmpeg (it ships ffmpeg), or point IMAGEIO_FFMPEG_EXE at an ffmpeg with libx264"
    try:
        import imageio_ffmpeg
        exe = imageio_ffmpeg.get_ffmpeg_exe()
        version = _run([exe, "-hide_banner", "-version"]).splitlines()[0]
        encoders = _run([exe, "-hide_banner", "-encoders"])
    except (ImportError, OSError, RuntimeError, subprocess.SubprocessError, IndexError) as err:
        return Check("ffmpeg", FAIL, f"not usable ({_gist(err)})", fix)
    missing = [name for name in ("libx264", "aac") if f" {name} " not in encoders]
    if missing:
        return Check("ffmpeg", FAIL, f"{version}: lacks the {' and '.join(missing)} encoder", fix)
    return Check("ffmpeg", OK, f"{version.replace('ffmpeg version ', '').split(' Copyright')[0]} ({exe})")


def check_program(name: str, purpose: str, fix: str, version_args: tuple[str, ...] = ("--version",)) -> Check:
    """An optional system program: WARN with the install command when it is missing."""
    exe = shutil.which(name)
    if exe is None:
        return Check(name, WARN, f"not found: {purpose}", fix)
    try:
        first = (_run([exe, *version_args]).strip().splitlines() or [""])[0]
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        return Check(name, WARN, f"{exe} does not run ({_gist(err)}): {purpose}", fix)
    return Check(name, OK, f"{' '.join(first.split())} ({exe})")


def check_requirements() -> Check:
    """Every requirement of the installed talker is met in this Python (hosts reinstall their own pins)."""
    from talker.requirements import unmet_requirements

    unmet = unmet_requirements()
    if unmet:
        return Check("requirements", FAIL, "; ".join(u.problem for u in unmet), " && ".join(u.fix for u in unmet))
    return Check("requirements", OK, "every requirement of talker is met")


def check_face() -> Check:
    """The face stage finds the face and its landmarks in the portrait shipped with talker (a real run)."""
    import time

    fix = "reinstall talker (pip install --force-reinstall -e .); the face networks ship in talker/data/face"
    try:
        import numpy as np
        from PIL import Image

        from talker.face import detect_faces, face_landmarks

        rgb = np.array(Image.open(Path(__file__).parent / "data" / "astronaut.jpg").convert("RGB"))
        start = time.perf_counter()
        faces = detect_faces(rgb)
        points = face_landmarks(rgb, faces[0]) if faces else None
        seconds = time.perf_counter() - start
    except Exception as err:  # a broken install shows here, not at the first render
        return Check("face", FAIL, f"the face stage does not run ({_gist(err)})", fix)
    if points is None:
        return Check("face", FAIL, "found no face in the shipped portrait", fix)
    return Check("face", OK, f"found the shipped portrait's face and its {len(points)} landmarks in {seconds:.2f} s")


def check_models(models_dir: Path | str | None = None, manifest_path: Path | str | None = None,
                 discover: bool = True) -> list[Check]:
    """The models folder, reused folders, the files of each feature, and free disk for what is missing.

    Missing model files are WARN, not FAIL: without them talker uses its embedded backend. The
    states come from ``talker models verify`` records (no file is hashed here).
    """
    from talker.errors import TalkerError
    from talker.models.manifest import load_manifest
    from talker.models.store import FAILED, feature_states, open_store, resolve_models_dir

    root, origin = resolve_models_dir(models_dir)
    try:
        manifest = load_manifest(manifest_path)
    except TalkerError as err:
        return [Check("models", WARN, str(err), "reinstall talker, or fix --manifest / $TALKER_MANIFEST")]
    store = open_store(models_dir, discover)
    existing = next(p for p in (root, *root.parents) if p.exists())
    if os.access(existing, os.W_OK):
        where = "" if existing == root else " (created on the first download)"
        lines = [Check("models", OK, f"{root}{where}, from {origin}")]
    else:
        lines = [Check("models", WARN, f"{root} ({origin}) is not writable: downloads and imports cannot go there",
                       "choose another folder with --models-dir or $TALKER_MODELS")]
    lines += [Check("reusing", OK, f"{loc.root} ({loc.kind})") for loc in store.locations[1:]]
    missing_bytes = 0
    for feature in feature_states(manifest, store):
        if not feature.ready and feature.feature not in SHOWN_FEATURES and not any(s.usable for s in feature.files):
            continue
        fix = feature.fix() + ("   (offline: talker models import FOLDER_OR_ZIP)" if feature.missing else "")
        lines.append(Check(feature.feature, OK if feature.ready else WARN,
                           feature.summary() + SHOWN_FEATURES.get(feature.feature, ""), fix))
        missing_bytes += sum(s.entry.size for s in feature.files if not s.usable)
    for entry in manifest.files:
        state = store.state(entry)
        if state.state == FAILED:
            lines.append(Check(entry.id, WARN, f"{state.path} failed its checks", f"talker models download {entry.id}"))
    free = shutil.disk_usage(existing).free
    detail = f"{free / 1e9:.1f} GB free in {existing}"
    if missing_bytes:
        detail += f"; the missing files need {missing_bytes / 1e9:.2f} GB"
    lines.append(Check("disk", WARN if free < missing_bytes + DISK_MARGIN else OK, detail,
                       "" if free >= missing_bytes + DISK_MARGIN else "free some space or use --models-dir on a larger disk"))
    return lines


def run_checks(models_dir: Path | str | None = None, manifest_path: Path | str | None = None,
               discover: bool = True) -> list[Check]:
    """Every check, in report order."""
    return [
        check_python(),
        *check_torch(),
        check_ffmpeg(),
        check_requirements(),
        check_face(),
        check_program("espeak-ng", "needed for --text (speech from words)",
                      f"{apt_get_install('espeak-ng')} (Debian/Ubuntu), brew install espeak-ng (macOS)"),
        check_program("festival", "optional: only the test suite uses it",
                      apt_get_install("festival", "festvox-us-slt-hts"), version_args=("--version",)),
        *check_models(models_dir, manifest_path, discover),
    ]


def run_doctor(args) -> int:
    """Print the report; 1 when something required FAILs, else 0."""
    checks = run_checks(args.models_dir, args.manifest, discover=not args.no_reuse)
    for check in checks:
        print(check.line())
    failed = [c.name for c in checks if c.level == FAIL]
    warned = [c.name for c in checks if c.level == WARN]
    print(f"\n{'FAIL: ' + ', '.join(failed) + ' must be fixed' if failed else 'talker can run'}"
          + (f"; warnings: {', '.join(warned)}" if warned else ""))
    return 1 if failed else 0


def add_doctor_command(subparsers) -> argparse.ArgumentParser:
    """Add ``doctor`` to the CLI's sub-parsers (``run=run_doctor``)."""
    p = subparsers.add_parser("doctor",
                              help="check Python, requirements, torch and devices, ffmpeg, the face stage, espeak-ng, "
                                   "models, disk",
                              description="Check what this machine has for talker; each problem comes with its fix. "
                                          "Exits 1 when something required is missing.")
    p.add_argument("--models-dir", type=Path, help="the models folder (default: $TALKER_MODELS, else a per-user data folder)")
    p.add_argument("--manifest", type=Path, help="another model manifest (default: $TALKER_MANIFEST, else the built-in one)")
    p.add_argument("--no-reuse", action="store_true", help="ignore SadTalker / WebUI folders found elsewhere")
    p.set_defaults(run=run_doctor)
    return p


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, timeout=_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"exit status {done.returncode}: {done.stderr.decode('utf-8', 'replace').strip()[:120]}")
    return done.stdout.decode("utf-8", "replace")


def _gist(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:120]}" if text else type(err).__name__
