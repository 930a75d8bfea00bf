"""The WebUI's small components (modules/ui_components.py): ToolButton, its icon button."""

import gradio as gr


def ToolButton(*args, **kwargs):  # noqa: N802 - the WebUI's class name
    """Small button with single emoji as text (class 'tool'). The real one is a gr.Button subclass
    whose block name is 'button'; a subclass is not drawn by the Gradio the tests run, so here it is
    a plain gr.Button. ``tooltip`` is dropped: the WebUI patches every component to take it."""
    kwargs.pop("tooltip", None)
    classes = kwargs.pop("elem_classes", [])
    return gr.Button(*args, elem_classes=["tool", *classes], **kwargs)
