"""The web UI: ``talker webui`` (a Gradio page) and the page builder the WebUI tab and ComfyUI reuse.

``talker.webui.command`` registers the subcommand and imports nothing heavy; ``talker.webui.app``
needs Gradio (``pip install "talker[webui]"``); ``talker.webui.form`` is the options table.
"""
