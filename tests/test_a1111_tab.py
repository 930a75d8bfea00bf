"""The Stable Diffusion WebUI extension (install.py, scripts/talker_tab.py) against the fake WebUI in
tests/fake_webui: the WebUI's start-up runs install.py and loads the tab script the way A1111 does,
the page is served, and headless Chromium uses it: Send to Talker from txt2img, a render through the
tab's Generate, and the WebUI's own GFPGAN file found under models/GFPGAN."""

from __future__ import annotations

import ast
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

import media_factory as mf
from talker.media import probe_media
from talker.types import FPS

ROOT = Path(__file__).resolve().parents[1]
FAKE_WEBUI = Path(__file__).resolve().parent / "fake_webui" / "webui.py"
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def webui(tmp_path_factory, astronaut_png):
    """(url, WebUI folder, READY info): the fake WebUI with this repository as its extension, the
    astronaut in txt2img's gallery, and a GFPGANv1.4.pth of its own under models/GFPGAN (not a real
    checkpoint: talker names it when it tries to load it)."""
    import json

    root = tmp_path_factory.mktemp("webui")
    (root / "models" / "GFPGAN").mkdir(parents=True)
    (root / "models" / "GFPGAN" / "GFPGANv1.4.pth").write_bytes(b"not a checkpoint")
    (root / "extensions").mkdir()
    port = free_port()
    env = {**os.environ, "FAKE_WEBUI_DATA_DIR": str(root), "HOME": str(root / "home"),
           "TALKER_MODELS": str(root / "talker-models"), "TALKER_REUSE_DIRS": "", "SADTALKER_CHECKPOINTS": "",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, str(FAKE_WEBUI), str(ROOT), str(port), str(astronaut_png)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: ([lines.put(x) for x in proc.stdout], lines.put(None)), daemon=True).start()
    seen, deadline = [], time.monotonic() + 180
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("the fake WebUI did not start in time:\n" + "".join(seen))
            if line is None:
                pytest.fail("the fake WebUI exited:\n" + "".join(seen))
            seen.append(line)
            if line.startswith("READY "):
                break
        yield f"http://127.0.0.1:{port}/", root, json.loads(line[len("READY "):])
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def hello_wav(tmp_path_factory) -> Path:
    wav = tmp_path_factory.mktemp("tab_speech") / "hello.wav"
    mf.festival_speech("Hello there, my friend.", wav)
    return wav


def test_install_py_installs_nothing_and_says_how_when_the_package_is_missing():
    tree = ast.parse((ROOT / "install.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])}
    assert not imported & {"pip", "subprocess", "launch", "setuptools"}, imported

    installed = subprocess.run([sys.executable, "install.py"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0 and installed.stdout == "" and installed.stderr == ""
    # without site-packages the talker distribution is not installed: one line with the command
    missing = subprocess.run([sys.executable, "-S", str(ROOT / "install.py")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 0, missing.stderr
    lines = missing.stdout.splitlines()
    assert len(lines) == 1 and "-m pip install -e" in lines[0] and str(ROOT) in lines[0], missing.stdout


def test_scripts_holds_only_the_tab_entry(webui):
    _, _, info = webui
    assert sorted(p.name for p in (ROOT / "scripts").glob("*.py")) == ["talker_tab.py"]
    assert info["scripts"] == ["talker_tab.py"]
    assert info["install"] == ""  # the package is installed here: install.py says nothing
    assert info["tabs"] == ["txt2img", "img2img", "Talker"]


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium")
def test_send_to_talker_then_generate_writes_an_mp4_and_uses_the_webui_gfpgan(webui, hello_wav):
    from playwright.sync_api import sync_playwright

    url, root, _ = webui
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.get_by_role("tab", name="img2img").click()
            page.wait_for_selector("#img2img_send_to_talker", timeout=30_000)
            page.get_by_role("tab", name="txt2img").click()
            # an icon button like its neighbours, the WebUI's ToolButton
            send, extras = page.locator("#txt2img_send_to_talker"), page.locator("#txt2img_send_to_extras")
            assert send.inner_text().strip() == "🗣️" and "tool" in send.get_attribute("class").split()
            assert send.bounding_box()["width"] <= 1.5 * extras.bounding_box()["width"]

            # 1. txt2img's picture -> the Talker tab's portrait
            page.click("#txt2img_send_to_talker")
            page.get_by_role("tab", name="Talker").click()
            page.wait_for_selector("#talker-image img", timeout=30_000)

            # 2. a voice, no grading (talker score has its own tests), Generate -> a video in the page
            page.set_input_files("#talker-audio input[type=file]", str(hello_wav))
            page.wait_for_selector("#talker-audio audio", state="attached", timeout=30_000)
            page.click("#talker-grade input")
            page.click("#talker-generate")
            page.wait_for_selector("#talker-video video[src]", timeout=120_000)

            videos = list((root / "outputs" / "talker").rglob("*.mp4"))
            assert [v.name for v in videos] == ["portrait_hello.mp4"]  # a sent picture has no file name
            facts = probe_media(videos[0])
            assert facts["video"]["codec"] == "h264" and facts["audio"]["codec"] == "aac"
            assert abs(facts["duration_s"] - sf.info(hello_wav).duration) <= 1.5 / FPS

            # 3. enhancer gfpgan: the tab loads the WebUI's models/GFPGAN file (and says it is damaged)
            page.get_by_text("enhancement", exact=True).click()
            page.click("#talker-enhancer input")
            page.get_by_role("option", name="gfpgan").click()
            page.click("#talker-generate")
            expected = str(root / "models" / "GFPGAN" / "GFPGANv1.4.pth")
            status = page.locator("#talker-status")
            deadline = time.monotonic() + 60
            while expected not in status.inner_text() and time.monotonic() < deadline:
                time.sleep(0.25)
            assert expected in status.inner_text() and "Error" in status.inner_text(), status.inner_text()
            assert len(list((root / "outputs" / "talker").rglob("*.mp4"))) == 1  # nothing half-written
        finally:
            browser.close()


@pytest.fixture
def tab_script(monkeypatch):
    """scripts/talker_tab.py loaded as the WebUI loads it, in this process, against the fake ``modules``;
    the fake WebUI's modules are dropped again afterwards."""
    import importlib.util

    monkeypatch.syspath_prepend(str(FAKE_WEBUI.parent))
    monkeypatch.syspath_prepend(str(ROOT))
    spec = importlib.util.spec_from_file_location("talker_tab.py", ROOT / "scripts" / "talker_tab.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        for name in [n for n in sys.modules if n == "modules" or n.startswith("modules.")]:
            del sys.modules[name]


def notice_of(tabs) -> str:
    (blocks, title, elem_id), = tabs
    assert (title, elem_id) == ("Talker", "talker")
    return " ".join(str(getattr(b, "value", "")) for b in blocks.blocks.values())


def test_the_tab_says_why_instead_of_vanishing(tab_script, monkeypatch):
    from modules import infotext_utils

    hint = "talker: the talker package is not installed in the WebUI's Python; install it once with ..."
    monkeypatch.setattr(tab_script, "install_hint", lambda: hint)
    assert hint in notice_of(tab_script.on_ui_tabs())
    unmet = "talker: needs numpy>=1.24, found numpy 1.23.5; fix: ...\ntalker: needs pillow>=9.5, found pillow 9.4.0; fix: ..."
    monkeypatch.setattr(tab_script, "install_hint", lambda: unmet)
    shown = notice_of(tab_script.on_ui_tabs())
    assert "numpy 1.23.5; fix: ...  \ntalker: needs pillow" in shown  # one line per problem (a Markdown line break)
    assert infotext_utils.paste_fields["talker"]["init_img"] is None  # Send to Talker still connects

    def too_old(*args, **kwargs):
        raise TypeError("Gallery.__init__() got an unexpected keyword argument 'fit_columns'")

    import talker.webui.app

    monkeypatch.setattr(tab_script, "install_hint", lambda: None)
    monkeypatch.setattr(talker.webui.app, "build_blocks", too_old)
    text = notice_of(tab_script.on_ui_tabs())
    assert "cannot be built with this WebUI's Gradio" in text and "fit_columns" in text


def test_the_tab_renders_under_the_webui_queue_lock(tab_script, monkeypatch):
    """Where the WebUI has modules.call_queue (AUTOMATIC1111, Forge), its queue_lock is the page's render_lock."""
    import threading
    import types

    import talker.webui.app

    assert tab_script.webui_queue_lock() is None  # the fake WebUI has no call_queue
    call_queue = types.ModuleType("modules.call_queue")
    call_queue.queue_lock = threading.Lock()  # as modules/call_queue.py defines it
    monkeypatch.setitem(sys.modules, "modules.call_queue", call_queue)
    monkeypatch.setattr(tab_script, "install_hint", lambda: None)
    given = {}
    real = talker.webui.app.build_blocks

    def recording(*args, **kwargs):
        given.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(talker.webui.app, "build_blocks", recording)
    (blocks, title, _), = tab_script.on_ui_tabs()
    assert given["render_lock"] is call_queue.queue_lock and "talker-generate" in {
        getattr(b, "elem_id", None) for b in blocks.blocks.values()}
