"""A minimal Stable Diffusion WebUI start-up, to test an extension against (see README.md).

    python webui.py EXTENSION_DIR PORT [PICTURE]

As the WebUI does at start-up, it
  1. runs the extension's install.py in a subprocess (``python install.py``, the WebUI's folder on
     PYTHONPATH) and prints what it printed;
  2. loads every ``scripts/*.py`` of the extension as ``modules/scripts.py`` does: with the extension
     folder first on ``sys.path`` while the file runs, through ``importlib`` from the file's path;
  3. builds txt2img and img2img, each with its output gallery (holding PICTURE, as if just generated)
     and its Send to img2img / inpaint / extras icon buttons (the WebUI's ToolButton), reporting every component to the
     ``on_after_component`` callbacks (the WebUI patches Gradio's component constructor to do so);
  4. adds the tabs the ``on_ui_tabs`` callbacks return, each in a ``gr.Tab(label, id=elem_id)``,
     connects the Send buttons (``infotext_utils.connect_paste_params_buttons``) and serves the page
     on 127.0.0.1:PORT with the queue on.
Then it prints one line ``READY {json}`` (the tabs' titles, install.py's output) and serves until killed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gradio as gr  # noqa: E402

from modules import infotext_utils, paths_internal, script_callbacks  # noqa: E402
from modules.ui_components import ToolButton  # noqa: E402


def run_installer(extension_dir: str) -> str:
    path = os.path.join(extension_dir, "install.py")
    if not os.path.isfile(path):
        return ""
    env = {**os.environ, "PYTHONPATH": paths_internal.script_path + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, path], capture_output=True, text=True, env=env, timeout=120, check=True)
    return done.stdout.strip()


def load_scripts(extension_dir: str) -> list[str]:
    """Load the extension's scripts/*.py; returns their names."""
    folder = os.path.join(extension_dir, "scripts")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".py"))
    saved = sys.path
    for name in names:
        path = os.path.join(folder, name)
        try:
            sys.path = [extension_dir] + sys.path
            spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            sys.path = saved
    return names


def component(cls, **kwargs):
    """Create a Gradio component and report it to the after-component callbacks, as the WebUI does."""
    made = cls(**kwargs)
    script_callbacks.after_component_callback(made, **kwargs)
    return made


def output_panel(tabname: str, picture: str | None) -> None:
    """The part of txt2img / img2img an extension hooks into: the gallery and the Send buttons."""
    gallery = component(gr.Gallery, label="Output", show_label=False, elem_id=f"{tabname}_gallery",
                        value=[picture] if picture else None, columns=4)
    with gr.Row(elem_id=f"image_buttons_{tabname}"):
        buttons = {target: component(ToolButton, value=icon, elem_id=f"{tabname}_send_to_{target}",
                                     tooltip=f"Send image and generation parameters to {target} tab.")
                   for target, icon in (("img2img", "🖼️"), ("inpaint", "🎨️"), ("extras", "📐"))}
    for target, button in buttons.items():
        infotext_utils.register_paste_params_button(infotext_utils.ParamBinding(
            paste_button=button, tabname=target, source_image_component=gallery))


def create_ui(picture: str | None) -> gr.Blocks:
    interfaces = []
    for tabname in ("txt2img", "img2img"):
        with gr.Blocks(analytics_enabled=False) as interface:
            init_img = component(gr.Image, label="Image for img2img", type="pil", elem_id=f"{tabname}_init_img") \
                if tabname == "img2img" else None
            output_panel(tabname, picture)
        interfaces.append((interface, tabname, tabname))
    infotext_utils.add_paste_fields("img2img", init_img, None)
    for target in ("inpaint", "extras"):  # destinations of the built-in Send buttons
        infotext_utils.add_paste_fields(target, None, None)
    interfaces += script_callbacks.ui_tabs_callback()
    with gr.Blocks(title="Stable Diffusion (fake)", analytics_enabled=False) as demo:
        with gr.Tabs(elem_id="tabs"):
            for interface, label, ifid in interfaces:
                with gr.Tab(label, id=ifid, elem_id=f"tab_{ifid}"):
                    interface.render()
        infotext_utils.connect_paste_params_buttons()
    demo.fake_tabs = [label for _, label, _ in interfaces]
    return demo


def main(extension_dir: str, port: int, picture: str | None) -> None:
    installed = run_installer(extension_dir)
    scripts = load_scripts(extension_dir)
    demo = create_ui(picture)
    demo.queue()
    allowed = [os.path.dirname(os.path.abspath(picture))] if picture else []
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False,
                allowed_paths=allowed, show_error=False)
    print("READY " + json.dumps({"tabs": demo.fake_tabs, "install": installed, "scripts": scripts}), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
