"""The WebUI's folders. The real module derives them from its own location and ``--data-dir``;
here ``data_path`` is ``$FAKE_WEBUI_DATA_DIR`` (a test's temporary WebUI folder) when set."""

import os

script_path = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
data_path = os.environ.get("FAKE_WEBUI_DATA_DIR", script_path)
models_path = os.path.join(data_path, "models")
extensions_dir = os.path.join(data_path, "extensions")
