"""How the command line's help prints options: each default said once, metavars named after the option.

argparse's ``ArgumentDefaultsHelpFormatter`` appends ``(default: ...)`` to every option, also where
the help already says its default or there is none (``(default: None)``), and its metavars are the
internal destination names (``--portrait-prompt SD_PROMPT``). ``HelpFormatter`` does neither.
``ArgumentParser`` uses it for its own help and, through ``add_subparsers``, for every sub-command's.
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
        default = action.default
        unsaid = not any(default is nothing for nothing in (None, False, argparse.SUPPRESS)) and not (
            isinstance(default, (str, list, tuple)) and not default)
        if action.option_strings and unsaid and "default" not in text and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        if action.type is Path:
            return "PATH"
        return max(action.option_strings, key=len).lstrip("-").upper().replace("-", "_")


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose help is written by ``HelpFormatter``; the parsers of its
    sub-commands (``add_subparsers().add_parser``) are of this class too, so every ``--help`` of the
    command line reads the same."""

    def __init__(self, *args, formatter_class: type[argparse.HelpFormatter] = HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)
