"""ComfyUI's input, output and temp folders, and file names kept inside them.

Inside ComfyUI the folders are ``folder_paths``'s (``ComfyUI/input``, ``output``, ``temp`` unless
its command line moves them); outside ComfyUI (tests, scripts) they are ``./input``, ``./output``
and ``./temp`` of the working directory. The nodes read only what ``input_file`` accepts and write
only where ``next_free_path`` points, as ComfyUI's own LoadImage and Save nodes do.
"""

from __future__ import annotations

import re
from pathlib import Path

from talker.errors import OptionError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
"""Portrait files listed in the input folder (the formats ``talker.media.read_image`` takes)."""

def folder(kind: str) -> Path:
    """The absolute 'input', 'output' or 'temp' folder."""
    try:
        import folder_paths  # ComfyUI's module
    except ImportError:
        return (Path.cwd() / kind).absolute()
    return Path({"input": folder_paths.get_input_directory, "output": folder_paths.get_output_directory,
                 "temp": folder_paths.get_temp_directory}[kind]()).absolute()


def input_images() -> list[str]:
    """The portrait files at the top of the input folder, sorted (what core LoadImage lists)."""
    root = folder("input")
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def input_file(name: str, widget: str) -> Path:
    """The file a file widget names: ``name`` relative to the input folder, or with a ComfyUI
    annotation (``"x.png [output]"``) to the output or temp folder. Raises OptionError naming the
    widget when the name leaves that folder or no such file exists."""
    text = (name or "").strip()
    match = re.fullmatch(r"(.*?)\s*\[(input|output|temp)\]", text)
    kind, relative = (match.group(2), match.group(1)) if match else ("input", text)
    root = folder(kind)
    path = (root / relative).resolve()
    if not relative or not path.is_relative_to(root.resolve()):
        raise OptionError(f"{widget} {name!r} is not a file of ComfyUI's {kind} folder; pick one from the list "
                          "or upload it")
    if not path.is_file():
        raise OptionError(f"{widget} {name!r} is not in ComfyUI's {kind} folder any more; upload it again")
    return path


def next_free_path(filename_prefix: str, suffix: str, kind: str = "output", widget: str = "filename_prefix") -> Path:
    """``<folder>/<prefix>_NNNNN<suffix>`` with the first unused number, where the prefix may name
    sub-folders (created) but must stay inside the folder. Raises OptionError naming ``widget``."""
    root = folder(kind)
    prefix = (filename_prefix or "").strip().replace("\\", "/")
    target = (root / prefix).resolve() if prefix else root
    if not prefix or prefix.endswith("/") or not target.is_relative_to(root.resolve()):
        raise OptionError(
            f"{widget} {filename_prefix!r} must name a file inside ComfyUI's {kind} folder, e.g. 'talker/clip'"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(target.name) + r"_(\d+)" + re.escape(suffix) + "$")
    used = [int(m.group(1)) for p in target.parent.iterdir() if (m := pattern.match(p.name))]
    return target.parent / f"{target.name}_{max(used, default=0) + 1:05d}{suffix}"


def saved_result(path: Path, kind: str) -> dict:
    """The ``ui`` entry ComfyUI's front end shows a file of a folder by: filename, subfolder, type."""
    subfolder = path.parent.relative_to(folder(kind).resolve()).as_posix()
    return {"filename": path.name, "subfolder": "" if subfolder == "." else subfolder, "type": kind}
