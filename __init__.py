"""ComfyUI entry point: ComfyUI imports ``custom_nodes/<this folder>/__init__.py`` and reads
``NODE_CLASS_MAPPINGS``, ``NODE_DISPLAY_NAME_MAPPINGS`` and ``WEB_DIRECTORY`` (the nodes are in
``talker/comfy/nodes.py``, their front-end script in ``talker/comfy/web``).

This folder goes first on ``sys.path`` so that ``import talker`` finds the package next to this file,
also when ComfyUI's ``custom_nodes`` folder (on its path) holds this folder under the name ``talker``.
Its dependencies are ``requirements.txt`` (ComfyUI-Manager installs them; by hand:
``python -m pip install -r requirements.txt`` in ComfyUI's Python). When one is missing or too old,
no node is registered and one console line says which and the command that installs them.
"""

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)

from talker.requirements import unmet_of  # noqa: E402  (standard library and packaging only)

_requirements = os.path.join(_here, "requirements.txt")
with open(_requirements, encoding="utf-8") as _file:
    _unmet = unmet_of(_file.read().splitlines())

if _unmet:
    _more = f" (and {len(_unmet) - 1} more)" if len(_unmet) > 1 else ""
    print(f"talker: ComfyUI nodes not loaded: {_unmet[0].problem}{_more}; fix: "
          f'"{sys.executable}" -m pip install -r "{_requirements}", then restart ComfyUI')
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}
else:
    from talker.comfy.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

WEB_DIRECTORY = "./talker/comfy/web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
