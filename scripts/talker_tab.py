"""The "Talker" tab of Stable Diffusion WebUI (AUTOMATIC1111 / Forge), and "Send to Talker".

The WebUI runs every .py file in an extension's scripts/ folder at start-up; this is the only one.
The tab is ``talker.webui.app.build_blocks`` (the page of ``talker webui``) built with the WebUI's own
Gradio, writing into ``<WebUI data folder>/outputs/talker`` and using the model files already in the
WebUI: its folder (``models/SadTalker``, ``extensions/SadTalker``, ``models/GFPGAN``) and
``--gfpgan-models-path`` are searched before talker's own models folder. Nothing is installed: when
the talker package is missing, or a requirement of it is not met in the WebUI's Python, the tab
shows install.py's lines (one per problem, with its fix) instead of the page.

"Send to Talker" buttons (the icon 🗣️, the WebUI's own ToolButton like the Send buttons beside them)
sit after txt2img's and img2img's "Send to extras" and put the picture shown in the gallery into
the tab's portrait (``javascript/talker.js`` switches to the tab).

WebUI calls used (tests/fake_webui implements these and only these):
    modules.script_callbacks.on_ui_tabs(callback)          callback() -> [(blocks, "Talker", "talker")]
    modules.script_callbacks.on_after_component(callback)  callback(component, elem_id=..., **kwargs)
    modules.paths_internal.data_path                       the WebUI's data folder
    modules.shared.cmd_opts.gfpgan_models_path             --gfpgan-models-path (default models/GFPGAN)
    modules.ui_components.ToolButton(value, elem_id=, tooltip=)  the WebUI's icon button
    modules.call_queue.queue_lock (optional)               held around each render, as the WebUI holds it
                                                           around each generation: one GPU job at a time
    modules.infotext_utils (modules.generation_parameters_copypaste before WebUI 1.8):
        ParamBinding(paste_button=, tabname=, source_image_component=), register_paste_params_button,
        add_paste_fields(tabname, init_img, fields)
    gallery elem_ids "txt2img_gallery", "img2img_gallery"; button elem_ids "<tab>_send_to_extras"
"""

from __future__ import annotations

import importlib.util
import traceback
from pathlib import Path

from modules import paths_internal, script_callbacks, shared

try:
    from modules import infotext_utils as paste  # WebUI 1.8 and later, Forge
except ImportError:
    from modules import generation_parameters_copypaste as paste  # earlier WebUIs

TAB_ID = "talker"
SOURCE_TABS = ("txt2img", "img2img")
PORTRAIT_ELEM_ID = "talker-image"
"""elem_id of the page's portrait input (``talker.webui.app``): where Send to Talker puts the picture."""
EXTENSION_DIR = Path(__file__).resolve().parents[1]
SEND_ICON = "🗣️"
"""Send to Talker is an icon button like its neighbours (🖼️ img2img, 🎨️ inpaint, 📐 extras)."""

_galleries: dict = {}


def install_hint() -> str | None:
    """install.py's line when the talker package is not installed in the WebUI's Python, else None."""
    spec = importlib.util.spec_from_file_location("talker_extension_install", EXTENSION_DIR / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.install_hint()


def model_dirs() -> list[Path]:
    """The WebUI's folders holding model files talker can use in place."""
    return [Path(paths_internal.data_path), Path(shared.cmd_opts.gfpgan_models_path)]


def webui_queue_lock():
    """The lock the WebUI holds around each image generation (``modules.call_queue.queue_lock``), or None."""
    try:
        from modules import call_queue
    except ImportError:
        return None
    return getattr(call_queue, "queue_lock", None)


def on_ui_tabs():
    """The tab: talker's page, or one line saying why it cannot be shown (the tab never just vanishes)."""
    import gradio as gr

    portrait = None
    try:
        notice = install_hint()
        if notice is None:
            try:
                from talker.webui.app import build_blocks

                blocks = build_blocks(Path(paths_internal.data_path) / "outputs" / "talker",
                                      extra_model_dirs=model_dirs(), render_lock=webui_queue_lock())
                portrait = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == PORTRAIT_ELEM_ID)
            except Exception as err:  # e.g. a Gradio older than the page needs: say so in the tab
                traceback.print_exc()
                notice = f"talker: the tab cannot be built with this WebUI's Gradio {gr.__version__} ({type(err).__name__}: {err})"
        if notice is not None:
            print(notice)
            with gr.Blocks(analytics_enabled=False) as blocks:
                gr.Markdown(notice.replace("\n", "  \n"))  # one line per problem
        return [(blocks, "Talker", TAB_ID)]
    finally:  # the WebUI connects the Send buttons to every registered tab: register it even on failure
        paste.add_paste_fields(TAB_ID, portrait, None)


def on_after_component(component, **kwargs):
    """Add "Send to Talker" after the "Send to extras" button of txt2img and img2img."""
    elem_id = kwargs.get("elem_id")
    for tab in SOURCE_TABS:
        if elem_id == f"{tab}_gallery":
            _galleries[tab] = component
        elif elem_id == f"{tab}_send_to_extras" and tab in _galleries:
            from modules.ui_components import ToolButton

            button = ToolButton(SEND_ICON, elem_id=f"{tab}_send_to_talker", tooltip="Send image to the Talker tab.")
            paste.register_paste_params_button(
                paste.ParamBinding(paste_button=button, tabname=TAB_ID, source_image_component=_galleries[tab])
            )


script_callbacks.on_ui_tabs(on_ui_tabs)
script_callbacks.on_after_component(on_after_component)
