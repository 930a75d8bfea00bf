"""Are the installed talker's requirements met in this Python? One line per unmet one, with its fix.

Hosts such as the Stable Diffusion WebUI reinstall their own pins at every start, so a requirement
that ``pip install`` once satisfied can be broken later. ``install.py`` (run by the WebUI at start-up),
the WebUI tab and ``talker doctor`` all print these lines. Only the standard library and
``packaging`` (pip's own copy when the package is missing) are used.
"""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion
except ImportError:  # pragma: no cover - every pip carries packaging
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.version import InvalidVersion


OPENCV = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")
"""The builds of OpenCV: each installs the same ``cv2``, so any of them meets talker's opencv requirement."""


@dataclass(frozen=True)
class Unmet:
    """One requirement this Python does not meet: what is wrong, and the command that fixes it."""

    problem: str
    fix: str

    @property
    def line(self) -> str:
        """The line install.py and the WebUI tab print."""
        return f"talker: {self.problem}; fix: {self.fix}"


def unmet_requirements(dist: str = "talker", path: list[str] | None = None) -> list[Unmet]:
    """The requirements of the installed distribution ``dist`` (its base ones, no extras) that this
    Python lacks or has in a version outside the range; [] when all are met or ``dist`` is not
    installed. ``path``: where to look for ``dist``'s metadata (default sys.path)."""
    distribution = next(iter(importlib.metadata.distributions(name=dist, path=path or sys.path)), None)
    return unmet_of((distribution.requires or []) if distribution is not None else [])


def unmet_of(requires: list[str]) -> list[Unmet]:
    """Those of the requirement lines ``requires`` (PEP 508: 'numpy>=1.24', with markers; blank lines,
    comments and unreadable lines are skipped) that this Python lacks or has outside their range."""
    unmet = []
    for text in requires:
        try:
            req = Requirement(text.split("#", 1)[0].strip())
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement, or one for another Python or platform
        spec = f"{req.name}{req.specifier}"
        fix = f'"{sys.executable}" -m pip install "{spec}"'
        names = OPENCV if req.name in OPENCV else (req.name,)
        versions = {name: _version(name) for name in names}
        installed = {name: v for name, v in versions.items() if v is not None}
        if not installed:
            unmet.append(Unmet(f"needs {spec}, which is not installed", fix))
        elif not any(_fits(req, v) for v in installed.values()):
            found = ", ".join(f"{name} {v}" for name, v in installed.items())
            unmet.append(Unmet(f"needs {spec}, found {found}", fix))
    return unmet


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _fits(req: Requirement, version: str) -> bool:
    try:
        return req.specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return True  # a local build with a version packaging cannot read: assume it fits
