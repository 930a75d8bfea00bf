"""``talker webui`` in a real headless Chromium: upload, Generate, progress, the MP4, errors, sessions, Stop.

One server (a `talker webui` subprocess on a free loopback port) serves every test of the module;
each test opens its own browser context, so each is a separate Gradio session. Renders use the
embedded backend at 256 pixels and short Festival speech.

With TALKER_SCREENSHOTS=DIR set, the screenshot test writes DIR/webui_before.png, webui_progress.png
and webui_after.png (the pictures of docs/webui.md: `TALKER_SCREENSHOTS=docs pytest tests/test_webui_browser.py`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import browser_helpers as bh  # noqa: E402
import media_factory as mf  # noqa: E402

pytestmark = pytest.mark.slow

FRAME_S = 0.04  # one video frame at 25 fps


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with bh.WebUIServer(tmp_path_factory.mktemp("webui")) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    with bh.chromium() as b:
        yield b


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """{name: (wav path, seconds)}: Festival speech of about 1, 2 and 5 s."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("webui_speech")
    texts = {
        "short": "Hello there.",
        "two": "Please bring the big map to me.",
        "long": "Welcome to our spring product update. Today we will talk about maps, prices, and big plans.",
    }
    made = {}
    for name, text in texts.items():
        wav = folder / f"{name}.wav"
        mf.festival_speech(text, wav)
        made[name] = (wav, sf.info(str(wav)).duration)
    return made


def check_mp4(path: Path, audio_s: float) -> float:
    """Assert H.264 video + AAC audio lasting the speech within one frame; the video's frame time (s)."""
    from talker.media import count_frames, probe_media

    info = probe_media(path)
    assert info["video"]["codec"] == "h264", info
    assert info["audio"]["codec"] == "aac", info
    video_s = count_frames(path) * FRAME_S
    assert abs(video_s - audio_s) <= FRAME_S, (video_s, audio_s)
    assert abs(info["duration_s"] - audio_s) <= FRAME_S, (info["duration_s"], audio_s)
    return video_s


def generate(page, image: Path, audio: Path) -> str:
    """Upload, pick the embedded backend, click Generate and wait for the end; the status text."""
    bh.upload(page, image, audio)
    bh.choose(page, "backend and compute", "talker-backend", "embedded")
    page.click("#talker-generate")
    return bh.wait_finished(page)


def test_astronaut_speaks_and_the_mp4_downloads(server, browser, speech, astronaut_png, tmp_path):
    wav, seconds = speech["two"]
    page = bh.open_page(browser, server.url)
    status = generate(page, astronaut_png, wav)
    assert status.startswith("Done"), status
    page.wait_for_selector("#talker-video video")
    mp4 = bh.download_video(page, tmp_path)
    check_mp4(mp4, seconds)
    assert mp4.name == f"{astronaut_png.stem}_{wav.stem}.mp4"  # named after the user's files
    # the score report came with it: a verdict, the table of checks and its PNG
    assert page.inner_text("#talker-verdict").startswith("score:")
    assert "av_sync_corr" in page.inner_text("#talker-report")
    page.wait_for_selector("#talker-report-png img")
    assert page.locator("#talker-history img").count() == 1
    page.context.close()


def test_picture_without_a_face_says_so(server, browser, speech, tmp_path):
    flat = mf.save_png(np.full((320, 320, 3), (90, 140, 200), np.uint8), tmp_path / "sky.png")
    page = bh.open_page(browser, server.url)
    status = generate(page, flat, speech["short"][0])
    assert status.startswith("Error") and "no face found" in status, status
    body = page.inner_text("body")
    assert "Traceback" not in body and "Exception" not in body
    assert page.locator("#talker-video video").count() == 0
    page.context.close()


def test_two_sessions_render_their_own_clips(server, browser, speech, astronaut_png, tmp_path):
    """Two browser contexts submit at once: renders queue one at a time, each page gets its own clip.

    The first page does not ask for the score: it shows none (and no other session's).
    """
    pages = {name: bh.open_page(browser, server.url) for name in ("short", "two")}
    for name, page in pages.items():
        bh.upload(page, astronaut_png, speech[name][0])
        bh.choose(page, "backend and compute", "talker-backend", "embedded")
    pages["short"].uncheck("#talker-grade input[type=checkbox]")
    for page in pages.values():
        page.click("#talker-generate")
    folders = set()
    for name, page in pages.items():
        status = bh.wait_finished(page)
        assert status.startswith("Done"), (name, status)
        (tmp_path / name).mkdir()
        mp4 = bh.download_video(page, tmp_path / name)
        assert mp4.stem.endswith(name)  # the session's own audio, not the other's
        check_mp4(mp4, speech[name][1])
        src = page.get_attribute("#talker-video video", "src")
        folders.add(Path(src.split("file=", 1)[1]).parent)
        assert page.locator("#talker-history img").count() == 1  # only its own clip in its history
        assert page.locator("#talker-report-png img").count() == (0 if name == "short" else 1)
    assert len(folders) == 2  # one output folder per session
    assert abs(speech["short"][1] - speech["two"][1]) > 0.5
    for page in pages.values():
        page.context.close()


def test_stop_cancels_the_render(server, browser, speech, astronaut_png):
    wav, _ = speech["long"]
    page = bh.open_page(browser, server.url)
    bh.upload(page, astronaut_png, wav)
    bh.choose(page, "backend and compute", "talker-backend", "embedded")
    page.click("#talker-generate")
    page.wait_for_selector("#talker-video .progress-text, #talker-video .eta-bar, #talker-video .progress-level",
                           state="attached")
    page.click("#talker-stop")
    status = bh.wait_finished(page)
    assert status.startswith("Stopped"), status
    assert page.locator("#talker-video video").count() == 0
    page.context.close()


def test_screenshots_before_during_and_after(server, browser, speech, astronaut_png, tmp_path):
    """The page before a run, while the progress bar shows frames, fps and time left, and after."""
    folder = Path(os.environ.get("TALKER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page = bh.open_page(browser, server.url)
    bh.upload(page, astronaut_png, speech["long"][0])
    bh.choose(page, "backend and compute", "talker-backend", "embedded")
    page.locator("#talker-text textarea").fill(
        "Welcome to our spring product update. Today we will talk about maps, prices, and big plans.")
    page.screenshot(path=folder / "webui_before.png", full_page=True)
    bh.freeze_when_shown(page, server, "#talker-video", "frames,")  # 'rendering 40/148 frames, 90 fps, ...'
    page.click("#talker-generate")
    page.wait_for_function("window.talkerFrozen === true", timeout=120_000)
    try:
        assert "rendering" in page.inner_text("#talker-video")
        page.screenshot(path=folder / "webui_progress.png", full_page=True)
    finally:
        server.resume()
    status = bh.wait_finished(page)
    assert status.startswith("Done"), status
    page.wait_for_selector("#talker-report-png img")
    page.wait_for_timeout(500)  # let the video's first frame paint
    page.screenshot(path=folder / "webui_after.png", full_page=True)
    for name in ("before", "progress", "after"):
        assert (folder / f"webui_{name}.png").stat().st_size > 10_000
    page.context.close()
