"""Stable Diffusion WebUI (AUTOMATIC1111 / Forge) runs this file at start-up, as ``python install.py``.

It installs nothing. When the talker package is installed in the WebUI's Python it prints nothing;
otherwise it prints one line with the command that installs it. ``scripts/talker_tab.py`` shows the
same line in its tab.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys


def install_hint() -> str | None:
    """None when the ``talker`` distribution is installed in this Python, else the one line saying how.

    This folder itself is not searched: ``python install.py`` puts it on sys.path, and the
    ``talker.egg-info`` a build leaves in it says nothing about the Python running now.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != here]
    if any(True for _ in importlib.metadata.distributions(name="talker", path=path)):
        return None
    return (
        f'talker: the talker package is not installed in the WebUI\'s Python; install it once with '
        f'"{sys.executable}" -m pip install -e "{here}" and restart the WebUI (without the [webui] extra: '
        "the WebUI brings its own Gradio)"
    )

if __name__ == "__main__":
    hint = install_hint()
    if hint:
        print(hint)
