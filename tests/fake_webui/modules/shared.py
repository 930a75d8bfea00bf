"""``shared.cmd_opts``: the WebUI's parsed command line; only the option the tab reads."""

import argparse
import os

from modules.paths_internal import models_path

cmd_opts = argparse.Namespace(gfpgan_models_path=os.path.join(models_path, "GFPGAN"))
