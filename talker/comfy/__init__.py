"""ComfyUI nodes: Load Portrait, Make Talking Video, Score (see ``talker.comfy.nodes``).

ComfyUI imports ``custom_nodes/<folder>/__init__.py`` of each custom node folder and reads its
``NODE_CLASS_MAPPINGS``; the repository's top-level ``__init__.py`` re-exports the two mappings
defined in ``talker.comfy.nodes``.
"""
