"""Drive the real ``talker webui`` from Debian's headless Chromium through Playwright.

    with WebUIServer(tmp_path) as server:         # `talker webui` on a free loopback port
        with chromium() as browser:
            page = open_page(browser, server.url)
            upload(page, portrait_png, speech_wav)
            choose(page, "backend and compute", "talker-backend", "embedded")
            page.click("#talker-generate")
            status = wait_finished(page)

Playwright's own browser download does not work offline, so the system Chromium is launched with
``executable_path``; the flags keep it off the network and quiet.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebUIServer:
    """``talker webui --port P --output-dir DIR`` as a subprocess; ``url`` once it answers HTTP.

    output_dir: the --output-dir; the server's stdout and stderr go to ``<output_dir>/server.log``.
    Entering waits up to ``start_timeout_s`` for the page to load and fails with the log if the
    process ends first; leaving stops the process (SIGTERM, then SIGKILL after 10 s).
    """

    def __init__(self, output_dir: Path, start_timeout_s: float = 120.0):
        self.output_dir = Path(output_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.start_timeout_s = start_timeout_s
        self.log_path = self.output_dir / "server.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "WebUIServer":
        self.output_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "talker.cli", "webui", "--port", str(self.port),
                 "--output-dir", str(self.output_dir)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"talker webui exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"talker webui did not answer at {self.url} within {self.start_timeout_s:.0f} s:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def pause(self) -> None:
        """Freeze the server process (SIGSTOP): the page keeps showing what it last received."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run on (SIGCONT)."""
        self.process.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def chromium():
    """A headless Debian Chromium driven by Playwright (yields the Browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str):
    """A page in a fresh browser context (its own cookies and Gradio session), loaded at ``url``."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#talker-generate")
    return page


def upload(page, image: Path, audio: Path | None = None) -> None:
    """Put the portrait (and the voice) into the page's upload widgets and wait until both show."""
    page.set_input_files("#talker-image input[type=file]", str(image))
    page.wait_for_selector("#talker-image img")
    if audio is not None:
        page.set_input_files("#talker-audio input[type=file]", str(audio))
        page.wait_for_selector("#talker-audio audio, #talker-audio [data-testid=waveform-controls]", state="attached")


def choose(page, accordion: str, elem_id: str, value: str) -> None:
    """Open the accordion titled ``accordion`` and pick ``value`` in the drop-down ``#elem_id``."""
    box = page.locator(f"#{elem_id} input[role=combobox]")
    if not box.is_visible():
        page.get_by_text(accordion, exact=True).click()
    box.click()
    page.get_by_role("option", name=value, exact=True).click()
    assert box.input_value() == value


def wait_finished(page, timeout_s: float = 120.0) -> str:
    """Wait until the status box reports the end of a render ('Done', 'Error' or 'Stopped'); its text."""
    page.wait_for_function(
        "() => /^(Done|Error|Stopped)/.test(document.querySelector('#talker-status').innerText.trim())",
        timeout=timeout_s * 1000,
    )
    return page.inner_text("#talker-status").strip()


def freeze_when_shown(page, server: WebUIServer, selector: str, text: str) -> None:
    """Pause ``server`` as soon as an element matching ``selector`` contains ``text``.

    A MutationObserver in the page watches for the text and calls back into the test, which stops
    the server process, so a passing state (a progress bar) stays on screen for a screenshot. Call
    before the action that leads there; wait with ``page.wait_for_function("window.talkerFrozen")``
    and call ``server.resume()`` afterwards.
    """
    def freeze(_source):
        server.pause()
        return True

    page.expose_binding("talkerFreeze", freeze)
    page.evaluate(
        """([selector, text]) => {
            const check = () => {
                const el = document.querySelector(selector);
                if (el && el.innerText.includes(text) && !window.talkerFreezing) {
                    window.talkerFreezing = true;
                    window.talkerFreeze().then(() => { window.talkerFrozen = true; });
                }
            };
            new MutationObserver(check).observe(document.body, {subtree: true, childList: true, characterData: true});
        }""",
        [selector, text],
    )


def download_video(page, folder: Path) -> Path:
    """Click the result video's download button and save the file in ``folder``; its path."""
    with page.expect_download() as info:
        page.click("#talker-video [data-testid=download-link]")
    download = info.value
    path = Path(folder) / download.suggested_filename
    download.save_as(path)
    return path
