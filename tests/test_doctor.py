"""`talker doctor`: real probes of this machine; missing programs simulated by PATH and IMAGEIO_FFMPEG_EXE."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from test_models_download import isolated, manifest_entry, run_models, torch_file, write_manifest  # noqa: F401
from talker.doctor import FAIL, OK, WARN, check_ffmpeg, check_models, check_program, check_python
from talker.models.manifest import load_manifest
from talker.models.store import ModelStore


def _lines(out: str) -> dict[str, str]:
    """check name -> its line (plus its fix line) from the report."""
    rows, last = {}, None
    for line in out.splitlines():
        if line[:4].strip() in (OK, WARN, FAIL) and len(line) > 6:
            last = line.split()[1]
            rows[last] = line
        elif last and line.strip().startswith("fix:"):
            rows[last] += "\n" + line
    return rows


def test_doctor_reports_this_machine_and_passes(isolated):
    status, out = run_models("doctor", "--models-dir", isolated / "models", "--no-reuse")
    rows = _lines(out)
    assert status == 0, out
    for name in ("python", "requirements", "torch", "cpu", "ffmpeg", "face", "models", "disk"):
        assert rows[name].startswith(OK), (name, out)
    assert "478 landmarks" in rows["face"]
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in rows["python"]
    assert rows["sadtalker"].startswith(WARN) and "fix: talker models download --for sadtalker" in rows["sadtalker"]
    assert "GB free" in rows["disk"] and "the missing files need" in rows["disk"]
    assert out.rstrip().endswith("warnings: sadtalker, gfpgan")


def test_program_version_line_is_shown_whole():
    """espeak-ng's version line ends with its data folder: it must not be cut."""
    espeak = check_program("espeak-ng", "needed for --text", "sudo apt-get install espeak-ng")
    assert espeak.level == OK, espeak.detail
    assert Path(re.search(r"Data at: (\S+)", espeak.detail).group(1)).is_dir(), espeak.detail


def test_missing_programs_are_warnings_with_the_install_command(isolated, monkeypatch):
    monkeypatch.setenv("PATH", str(isolated))  # no espeak-ng, no festival
    espeak = check_program("espeak-ng", "needed for --text", "sudo apt-get install espeak-ng")
    assert espeak.level == WARN and "not found" in espeak.detail and espeak.fix == "sudo apt-get install espeak-ng"


def test_broken_ffmpeg_fails_and_doctor_exits_1(isolated, monkeypatch):
    fake = isolated / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'ffmpeg version 0-fake'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    check = check_ffmpeg()
    assert check.level == FAIL and "lacks the libx264 and aac encoder" in check.detail and "imageio-ffmpeg" in check.fix
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(isolated / "nowhere"))
    assert check_ffmpeg().level == FAIL
    status, out = run_models("doctor", "--models-dir", isolated / "models", "--no-reuse")
    assert status == 1 and _lines(out)["ffmpeg"].startswith(FAIL) and "FAIL: ffmpeg must be fixed" in out, out


def test_python_check_is_ok_here():
    assert check_python().level == OK


def test_models_lines_follow_the_files(isolated):
    blob = torch_file(30_000)
    manifest_path = write_manifest(isolated / "m.toml", {
        "net": manifest_entry("mapping_00229-model.pth.tar", blob, ["http://127.0.0.1:9/x"], features=("sadtalker",)),
        "face": manifest_entry("GFPGANv1.4.pth", blob, ["http://127.0.0.1:9/y"], folder="gfpgan/weights",
                               features=("gfpgan",)),
    })
    models = isolated / "models"
    rows = {c.name: c for c in check_models(models, manifest_path, discover=False)}
    assert rows["sadtalker"].level == WARN and rows["gfpgan"].level == WARN and rows["models"].level == OK

    manifest, store = load_manifest(manifest_path), ModelStore(models)
    for entry in manifest.files:
        store.target(entry).parent.mkdir(parents=True, exist_ok=True)
        store.target(entry).write_bytes(blob)
    store.remember(manifest.get("net"), store.target(manifest.get("net")), ok=True)
    store.remember(manifest.get("face"), store.target(manifest.get("face")), ok=False, problem="sha256 differs")

    rows = {c.name: c for c in check_models(models, manifest_path, discover=False)}
    assert rows["sadtalker"].level == OK and "ready, all files verified" in rows["sadtalker"].detail
    assert rows["gfpgan"].level == WARN  # its only file failed its checks
    assert rows["face"].level == WARN and rows["face"].fix == "talker models download face"
    assert rows["disk"].level == OK and "GB free" in rows["disk"].detail
