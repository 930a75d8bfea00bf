"""ComfyUI nodes: Load Portrait, Text to Speech, Make Talking Video, Score (see ``talker.comfy.nodes``).

ComfyUI imports ``custom_nodes/<folder>/__init__.py`` of each custom node folder and reads its
``NODE_CLASS_MAPPINGS``; the repository's top-level ``__init__.py`` re-exports the two mappings
defined in ``talker.comfy.nodes`` (none when a requirement is missing) and points ``WEB_DIRECTORY``
at ``talker/comfy/web``. ``values`` converts ComfyUI's IMAGE, AUDIO and VIDEO; ``folders`` keeps
file names inside ComfyUI's input, output and temp folders.
"""
