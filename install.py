"""Stable Diffusion WebUI (AUTOMATIC1111 / Forge) runs this file at start-up, as ``python install.py``.

It installs nothing. When the talker package is installed in the WebUI's Python and every one of
its requirements is met there (the WebUI reinstalls its own pins at each start), it prints nothing;
otherwise it prints one line per problem with the command that fixes it: the package missing, or a
requirement missing or in a version outside talker's range. ``scripts/talker_tab.py`` shows the
same lines in its tab.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys


def install_hint() -> str | None:
    """None when the ``talker`` distribution is installed in this Python with its requirements met,
    else the lines (one per problem) saying how to fix it.

    This folder itself is not searched: ``python install.py`` puts it on sys.path, and the
    ``talker.egg-info`` a build leaves in it says nothing about the Python running now.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != here]
    if any(True for _ in importlib.metadata.distributions(name="talker", path=path)):
        from talker.requirements import unmet_requirements

        return "\n".join(u.line for u in unmet_requirements(path=path)) or None
    return (
        f'talker: the talker package is not installed in the WebUI\'s Python; install it once with '
        f'"{sys.executable}" -m pip install -e "{here}" and restart the WebUI (without the [webui] extra: '
        "the WebUI brings its own Gradio)"
    )


if __name__ == "__main__":
    hint = install_hint()
    if hint:
        print(hint)
