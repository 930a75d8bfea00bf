"""Build the talker page with the Gradio of this Python, and optionally render one clip through it.

    python tools/gradio_page_check.py OUT_DIR                  build_blocks() only
    python tools/gradio_page_check.py OUT_DIR --render SITE    also serve it and make a clip in Chromium

Run by tools/check_gradio_versions.sh in a virtual environment holding one Gradio release. With
--render, SITE (a site-packages folder with talker's pipeline dependencies and Playwright) is put
*after* the environment's own packages on sys.path, so its Gradio, FastAPI and pydantic still win.
The page is served as a WebUI serves it (queue on, several workers), Debian's Chromium uploads the
astronaut and a Festival sentence, clicks Generate and waits for the clip; the MP4 is probed.
Prints one line per step and exits non-zero on the first failure.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(out: Path):
    import gradio as gr

    from talker.webui import compat
    from talker.webui.app import build_blocks

    blocks = build_blocks(out / "clips")
    decisions = {name: getattr(compat, name)
                 for name in ("STATIC_PATHS", "UNLOAD", "LABELLED_CHOICES", "UPLOAD_NAMES")}
    print(f"gradio {gr.__version__}: build_blocks() built {len(blocks.blocks)} blocks; {decisions}")
    return blocks


def render(blocks, out: Path, site: str) -> None:
    sys.path.append(site)
    sys.path.insert(0, str(ROOT / "tests"))
    import browser_helpers as bh
    import media_factory as mf

    from talker.media import probe_media

    portrait = mf.save_png(mf.astronaut(), out / "astronaut.png")
    speech = out / "hello.wav"
    mf.festival_speech("Hello, this is a short test.", speech)
    port = bh.free_port()
    blocks.queue(**_queue_arguments(blocks))
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, show_error=False)
    try:
        with bh.chromium() as browser:
            page = bh.open_page(browser, f"http://127.0.0.1:{port}/")
            bh.upload(page, portrait, speech)
            started = time.monotonic()
            page.click("#talker-generate")
            status = bh.wait_finished(page, timeout_s=300)
            page.screenshot(path=str(out / "page.png"), full_page=True)
            print(f"status after {time.monotonic() - started:.1f} s: {status!r}")
            assert status.startswith("Done"), status
            page.wait_for_selector("#talker-video video")
            clips = sorted((out / "clips").glob("*/*.mp4"))
            info = probe_media(clips[-1])
            print(f"clip {clips[-1].name}: {info}")
    finally:
        blocks.close()


def _queue_arguments(blocks) -> dict:
    """Several workers, as AUTOMATIC1111 serves its page (``queue(64)``): renders must still be one at a time."""
    from talker.webui import compat

    workers = compat.accepted(blocks.queue, default_concurrency_limit=4)  # Gradio >= 4
    return workers or {"concurrency_count": 4}  # Gradio 3


if __name__ == "__main__":
    out = Path(sys.argv[1]).absolute()
    out.mkdir(parents=True, exist_ok=True)
    page = build(out)
    if "--render" in sys.argv:
        render(page, out, sys.argv[sys.argv.index("--render") + 1])
