"""The WebUI's callback registry, reduced to the two callbacks the tab registers.

As in the real module: ``on_ui_tabs`` callbacks return a list of (gradio Blocks, title, elem_id)
or None; ``on_after_component`` callbacks get each component just created and the keyword
arguments it was created with (``elem_id`` among them). A failing callback is reported and skipped.
"""

import traceback

callbacks_ui_tabs = []
callbacks_after_component = []


def on_ui_tabs(callback, *, name=None):
    callbacks_ui_tabs.append(callback)


def on_after_component(callback, *, name=None):
    callbacks_after_component.append(callback)


def ui_tabs_callback():
    res = []
    for callback in callbacks_ui_tabs:
        try:
            res += callback() or []
        except Exception:
            traceback.print_exc()
    return res


def after_component_callback(component, **kwargs):
    for callback in callbacks_after_component:
        try:
            callback(component, **kwargs)
        except Exception:
            traceback.print_exc()
