"""Errors a user can act on.

Every error the CLI, the API or the web UI shows to a user is a ``TalkerError``: its message says
what was wrong and what to do. The CLI prints ``error: <message>`` on one line and exits with
``exit_code``; it never prints a traceback for these.
"""

from __future__ import annotations


def apt_get_install(*packages: str) -> str:
    """The shell line that installs Debian/Ubuntu ``packages`` both as root without sudo (as in a
    container) and as a user with sudo, in the README's form:
    ``SUDO=$(command -v sudo || true); $SUDO apt-get update && $SUDO apt-get install -y espeak-ng``."""
    return f"SUDO=$(command -v sudo || true); $SUDO apt-get update && $SUDO apt-get install -y {' '.join(packages)}"


class TalkerError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is one actionable sentence or two."""

    exit_code = 2


class InputImageError(TalkerError):
    """The portrait cannot be read, is too large, or is not an image."""


class NoFaceError(TalkerError):
    """No usable face in the portrait."""


class AmbiguousFaceError(TalkerError):
    """Several faces and the choice is not clear; the message lists them and says how to pick."""


class InputAudioError(TalkerError):
    """The audio cannot be decoded, is empty, or is too short to make a video from."""


class OutputError(TalkerError):
    """The output cannot be written (folder missing or not writable, file exists without --force)."""


class MissingDependencyError(TalkerError):
    """An optional program or package is needed for the requested feature; the message says how to get it."""


class CheckpointError(TalkerError):
    """A model file is missing or does not match the expected structure."""


class OptionError(TalkerError):
    """An option value is out of range or options contradict each other."""


class GpuMemoryError(TalkerError):
    """The GPU ran out of memory and no lower preset was left to fall back to."""


class SpaceMismatchError(TalkerError):
    """A renderer was given a CoeffTrack in a coefficient space it cannot draw."""


class Cancelled(TalkerError):
    """The run was stopped on request (the web UI's Stop, the API's DELETE). Raised from a progress
    callback, it ends ``pipeline.make`` at the next report and the partial MP4 is removed."""

    exit_code = 130
