"""How the command line's help prints options: each default said once, metavars named after the option.

argparse's ``ArgumentDefaultsHelpFormatter`` appends ``(default: ...)`` to every option, also where
the help already says its default or there is none (``(default: None)``), and its metavars are the
internal destination names (``--portrait-prompt SD_PROMPT``). ``HelpFormatter`` does neither.
"""

from __future__ import annotations

import argparse
from pathlib import Path


class HelpFormatter(argparse.HelpFormatter):
    """Adds ``(default: X)`` only where the help text does not mention its default and X is a value
    worth saying (not None, False or empty); an option's metavar is PATH for a path, else its long
    name in capitals (``--portrait-prompt PORTRAIT_PROMPT``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unsaid = not any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS)) and action.default != ""
        if action.option_strings and unsaid and "default" not in text and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        if action.type is Path:
            return "PATH"
        return max(action.option_strings, key=len).lstrip("-").upper().replace("-", "_")
