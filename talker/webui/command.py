"""``talker webui``: serve the web page. Gradio is imported only when the command runs."""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUTPUT_DIR = Path("results") / "webui"


def add_webui_command(sub) -> None:
    """Register ``talker webui`` on the CLI's subparsers."""
    p = sub.add_parser(
        "webui",
        help="serve the web page: upload a portrait and a voice, get the clip and its score",
        description="Serve the talker web page (Gradio). Renders run one at a time; each browser "
        "session writes its clips into its own folder under --output-dir.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="TCP port")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs internet)")
    p.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
                   help="folder for the sessions' clips and reports (one sub-folder per browser session)")
    p.set_defaults(run=_run_webui)


def _run_webui(args) -> int:
    from talker.webui.app import launch  # raises MissingDependencyError without Gradio

    launch(args.host, args.port, args.share, args.output_dir)
    return 0
