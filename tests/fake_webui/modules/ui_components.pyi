"""The WebUI's small components (modules/ui_components.py): ToolButton, its icon button."""

import gradio as gr

from gradio.events import Dependency

class ToolButton(gr.Button):
    """Small button with single emoji as text, fits inside gradio forms (the real one is also a FormComponent)."""

    def __init__(self, *args, **kwargs):
        self.webui_tooltip = kwargs.pop("tooltip", None)  # the WebUI patches every component to take it
        classes = kwargs.pop("elem_classes", [])
        super().__init__(*args, elem_classes=["tool", *classes], **kwargs)

    def get_block_name(self):
        return "button"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component