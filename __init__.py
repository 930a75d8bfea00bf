"""ComfyUI entry point: ComfyUI imports ``custom_nodes/<this folder>/__init__.py`` and reads
``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` (the nodes are in ``talker/comfy/nodes.py``).

This folder goes first on ``sys.path`` so that ``import talker`` finds the package next to this file,
also when ComfyUI's ``custom_nodes`` folder (on its path) holds this folder under the name ``talker``.
Its dependencies come from ``pip install -e <this folder>`` in ComfyUI's Python (see docs/comfyui.md).
"""

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)

from talker.comfy.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
