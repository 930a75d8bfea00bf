"""talker.requirements: the lines install.py, the WebUI tab and `talker doctor` print when a host's
Python breaks one of talker's requirements (checked against real installed distributions)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from talker.requirements import unmet_requirements

ROOT = Path(__file__).resolve().parent.parent


def _distribution(folder: Path, requires: list[str]) -> list[str]:
    """A distribution 'talker' with these Requires-Dist lines, installed in ``folder``; the search path."""
    info = folder / "talker-0.1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", "Name: talker", "Version: 0.1.0", *[f"Requires-Dist: {r}" for r in requires]]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    return [str(folder), *sys.path]


def test_every_requirement_of_the_installed_talker_is_met_here():
    assert unmet_requirements() == []


def test_missing_and_out_of_range_requirements_each_get_a_line_with_the_fix(tmp_path):
    numpy = importlib.metadata.version("numpy")
    path = _distribution(tmp_path, ["numpy>=999", "surely-not-installed-talker-dep>=1", f"numpy<={numpy}",
                                    "pytest>=1; extra == 'test'", "tomli>=2; python_version < '3.0'"])
    lines = [u.line for u in unmet_requirements(path=path)]
    assert len(lines) == 2, lines  # the extra's and the other Python's requirements are not checked
    assert lines[0].startswith(f"talker: needs numpy>=999, found numpy {numpy}; fix: ")
    assert f'"{sys.executable}" -m pip install "numpy>=999"' in lines[0]
    assert lines[1].startswith("talker: needs surely-not-installed-talker-dep>=1, which is not installed")


def test_any_build_of_opencv_meets_the_opencv_requirement(tmp_path):
    builds = [d.metadata["Name"] for d in importlib.metadata.distributions()
              if d.metadata["Name"].lower().startswith("opencv-")]
    assert builds, "some OpenCV build is installed with talker"
    path = _distribution(tmp_path, ["opencv-contrib-python-headless>=4.8"])  # a build that is not installed
    assert unmet_requirements(path=path) == []
    assert "found opencv" in unmet_requirements(path=_distribution(tmp_path / "x", ["opencv-python>=999"]))[0].line


def test_install_py_prints_the_lines_for_a_broken_requirement(tmp_path):
    """install.py, as the WebUI runs it, with a talker whose requirement this Python does not meet."""
    path = _distribution(tmp_path, ["numpy>=999"])
    code = f"import runpy, sys; sys.path[:0] = {path[:1]!r}; runpy.run_path({str(ROOT / 'install.py')!r}, run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("talker: needs numpy>=999, found numpy"), done.stdout
