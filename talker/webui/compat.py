"""The few places where the page's Gradio calls differ between Gradio releases, decided by feature checks.

The page (``talker.webui.app``) runs on the Gradio of its host: 6.x for ``talker webui``, 4.40 in
Forge, 3.41.2 in AUTOMATIC1111 1.10 (checked by tools/check_gradio_versions.sh). Every difference
is decided here, from what the installed Gradio has (an attribute, a parameter name), never from
its version string:

    STATIC_PATHS    gradio.set_static_paths exists (Gradio >= 4.33): the output folder is served in
                    place. Without it (3.x) Gradio copies each output file into its own cache folder
                    and serves that copy, so nothing needs registering.
    SESSION_HASH    gr.Request carries the browser session's hash (Gradio >= 4, by its signature).
                    Without it (3.41) ``session_key`` uses a token the page keeps in a gr.State.
    UNLOAD          Blocks.unload exists (Gradio >= 4.25): a closed tab's session is dropped then.
                    Without it sessions are dropped after SESSION_IDLE_S without a request.
    LABELLED_CHOICES  gr.Dropdown takes (label, value) choices (Gradio >= 4, by its signature); 3.x
                    takes strings only, so ``dropdown`` shows the labels and ``chosen`` maps the label
                    the browser sends back to its value.
    UPLOAD_NAMES    an uploaded file keeps its own name (Gradio >= 4: components have a data_model,
                    and the file sits in a folder of Gradio's cache under that name). Gradio 3
                    re-encodes an uploaded picture under a temporary name and adds
                    "-<crop start>-<crop end>" to an audio file's stem; the page then asks the
                    browser for the picture's name (``portrait_name_js``).
    accepted()      keyword arguments the installed Gradio names, so a newer option the page can do
                    without (a component's ``sources=``, an event's ``concurrency_id=``) is left out
                    instead of failing or warning.
    render_queue()  one render at a time: the event's own ``concurrency_limit=1, concurrency_id=``
                    where events take them (Gradio >= 4); otherwise (3.x, whose concurrency is the
                    whole app's ``queue(concurrency_count=)``) a process-wide lock held around each render.
"""

from __future__ import annotations

import inspect
import threading
from typing import Callable

import gradio as gr

STATIC_PATHS = hasattr(gr, "set_static_paths")
UNLOAD = hasattr(gr.Blocks, "unload")
SESSION_HASH = "session_hash" in inspect.signature(gr.Request.__init__).parameters
SESSION_IDLE_S = 6 * 3600.0
"""Without Blocks.unload: a session with no request for this long (seconds) is forgotten (its clips stay on disk)."""

UPLOAD_NAMES = hasattr(gr.Image, "data_model")

LABELLED_CHOICES = "tuple" in str(inspect.signature(gr.Dropdown.__init__).parameters["choices"].annotation)
RENDER_LOCK = threading.Lock()
"""Held around each render where events cannot be limited one at a time (Gradio 3): one per process."""


def accepted(function: Callable, **arguments) -> dict:
    """The ``arguments`` that ``function`` names as parameters; a catch-all ``**kwargs`` does not count
    (Gradio 3 components take and ignore unknown keywords with a warning)."""
    named = inspect.signature(function).parameters
    return {name: value for name, value in arguments.items()
            if name in named and named[name].kind is not inspect.Parameter.VAR_KEYWORD}


def render_queue(event: Callable, queue_id: str, lock=None) -> tuple[dict, object]:
    """How renders through ``event`` (a listener such as ``Dependency.then``) run one at a time.

    Returns (keyword arguments for ``event``, lock to hold around each render or None). queue_id:
    the ``concurrency_id`` shared by every render event; lock: a host's lock to hold anyway (the
    WebUI's ``modules.call_queue.queue_lock``, so a render never runs beside an image generation).
    """
    limit = accepted(event, concurrency_limit=1, concurrency_id=queue_id)
    if len(limit) == 2:
        return limit, lock
    return {}, RENDER_LOCK if lock is None else lock


def serve_folder(folder) -> bool:
    """Let Gradio serve files from ``folder`` in place where it can (see STATIC_PATHS); True if registered."""
    if STATIC_PATHS:
        gr.set_static_paths([str(folder)])
    return STATIC_PATHS


def on_unload(blocks: gr.Blocks, function: Callable) -> bool:
    """Call ``function(request)`` when a browser session closes, where Gradio can (see UNLOAD); True if so."""
    if UNLOAD:
        blocks.unload(function)
    return UNLOAD


def dropdown(pairs: list[tuple[str, object]], value, **arguments) -> gr.Dropdown:
    """A drop-down of (label, value) ``pairs`` starting at ``value``; read its values with ``chosen``."""
    if LABELLED_CHOICES:
        return gr.Dropdown(choices=pairs, value=value, **arguments)
    labels = {label: v for label, v in pairs}
    shown = next((label for label, v in pairs if v == value), value)
    component = gr.Dropdown(choices=list(labels), value=shown, **arguments)
    component.talker_values = labels
    return component


def chosen(component: gr.Component, value):
    """The value a component's browser value stands for: a ``dropdown``'s label becomes its value."""
    labels = getattr(component, "talker_values", None)
    return labels.get(value, value) if labels and isinstance(value, str) else value


PORTRAIT_NAME_JS = "() => (window.talker_portrait_name ? window.talker_portrait_name() : '')"
"""Gradio 3 (no UPLOAD_NAMES): the name of the picture the user last dropped or picked in the portrait
input, as the WebUI extension's ``javascript/talker.js`` records it ('' elsewhere, or for a picture
sent from another tab or pasted)."""


def session_key(request: gr.Request, token: str | None) -> str:
    """The key of the browser session of ``request``: Gradio's session hash where the request has
    one (see SESSION_HASH), else ``token``, the page's per-session gr.State value; 'anonymous' if neither."""
    return (request.session_hash if SESSION_HASH else token) or "anonymous"
