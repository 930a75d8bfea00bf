"""Sending a picture from one tab to another ("Send to img2img" and the like).

A tab registers its destination image with ``add_paste_fields(tabname, init_img, fields)``; a
button registers with ``register_paste_params_button(ParamBinding(...))``; once every tab is built
the WebUI calls ``connect_paste_params_buttons()``, which makes each button copy the source image
into the destination tab's image. The real WebUI first extracts the selected gallery picture in
the browser (JavaScript ``extract_image_from_gallery``) and then switches tab (``switch_to_<tab>``);
here the first gallery picture is taken on the server and the test switches tab itself.
"""

from PIL import Image

paste_fields = {}
registered_param_bindings = []


class ParamBinding:
    def __init__(self, paste_button, tabname, source_text_component=None, source_image_component=None,
                 source_tabname=None, override_settings_component=None, paste_field_names=None):
        self.paste_button = paste_button
        self.tabname = tabname
        self.source_text_component = source_text_component
        self.source_image_component = source_image_component
        self.source_tabname = source_tabname
        self.override_settings_component = override_settings_component
        self.paste_field_names = paste_field_names or []


def add_paste_fields(tabname, init_img, fields, override_settings_component=None):
    paste_fields[tabname] = {"init_img": init_img, "fields": fields,
                             "override_settings_component": override_settings_component}


def register_paste_params_button(binding):
    registered_param_bindings.append(binding)


def image_from_url_text(filedata):
    """The first picture of a gallery's value (items are paths or (path, caption) pairs) as a PIL image."""
    if not filedata:
        return None
    first = filedata[0]
    path = first[0] if isinstance(first, (tuple, list)) else first
    path = getattr(path, "path", None) or (path.get("path") if isinstance(path, dict) else path)
    return Image.open(path)


def connect_paste_params_buttons():
    for binding in registered_param_bindings:
        destination = paste_fields[binding.tabname]["init_img"]  # KeyError, as in the real WebUI
        if binding.source_image_component and destination:
            binding.paste_button.click(fn=image_from_url_text, inputs=[binding.source_image_component],
                                       outputs=[destination], show_progress="hidden")
