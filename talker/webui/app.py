"""The talker web page (Gradio): a portrait and a voice in, the talking clip and its score report out.

    build_blocks(output_root)    the page as a ``gradio.Blocks``, to launch or to render inside another app
    launch(host, port, share, output_root)    serve it (``talker webui``)

The options are the rows of ``talker.webui.form`` (the CLI's defaults and choices); a submission
becomes one ``MakeOptions`` and goes through ``talker.pipeline.make``, which validates it. Renders
wait in one queue served one at a time, so two visitors never render at once on one device; the
other events (Stop, the page's own updates) do not wait in it. Each browser session writes into its
own folder under ``output_root`` and sees only its own clips.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from talker.errors import Cancelled, MissingDependencyError, OptionError, TalkerError

try:
    import gradio as gr
except ImportError as err:  # the optional extra is not installed
    raise MissingDependencyError('the web UI needs Gradio: pip install "talker[webui]"') from err

from talker.models.store import ENV_REUSE
from talker.pipeline import Progress
from talker.progress import _STAGE_TEXT as STAGE_TEXT
from talker.webui import compat
from talker.webui.form import GROUPS, FormField, build_options, form_fields

log = logging.getLogger(__name__)

RENDER_QUEUE = "talker-render"
"""The ``concurrency_id`` of the render event (Gradio >= 4): every render of the app waits in this one queue."""

REPORT_HEADERS = ["check", "value", "verdict", "reason"]


@dataclass
class Clip:
    """One finished render of a session: the MP4, its first frame (PNG) and a caption for the history."""

    video: Path
    poster: Path
    caption: str


@dataclass
class Session:
    """What one browser session owns: its output folder, its clips, and its Stop request."""

    folder: Path
    clips: list[Clip] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    seen: float = field(default_factory=time.monotonic)

    def next_output(self, portrait: str, voice: str) -> Path:
        """The session folder's MP4 for a clip of ``portrait`` speaking ``voice`` (names, see
        ``upload_stem``): <portrait>_<voice>.mp4, or <portrait>_<voice>_2.mp4 and on when taken."""
        self.folder.mkdir(parents=True, exist_ok=True)
        out, n = self.folder / f"{portrait}_{voice}.mp4", 1
        while out.exists():
            n += 1
            out = self.folder / f"{portrait}_{voice}_{n}.mp4"
        return out


GRADIO_TEMP_NAME = re.compile(r"tmp[a-z0-9_]{6,}|image|audio|blob|webcam|clipboard", re.IGNORECASE)
"""Stems Gradio gives files it made itself (a re-encoded upload, a recording, a pasted picture)."""


def upload_stem(path: str | Path | None, fallback: str, named: str | None = None) -> str:
    """The name of an uploaded file as the user knows it, for naming the clip: ``named`` (the name
    the browser reported) or the stem of Gradio's ``path``, without Gradio 3's audio crop suffix
    ("-0-100") and with characters unsafe in file names replaced by '_'; ``fallback`` ('portrait',
    'voice', 'text') when there is no name or only one Gradio made up."""
    stem = Path(named).stem if named else Path(path).stem if path else ""
    if not compat.UPLOAD_NAMES:
        stem = re.sub(r"-\d+-\d+$", "", stem)
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._")
    return fallback if not stem or GRADIO_TEMP_NAME.fullmatch(stem) else stem


class Sessions:
    """The sessions of one page, by Gradio's session hash; each gets a fresh folder under ``root``.

    idle_s: where Gradio cannot say when a session closes (no ``Blocks.unload``), a session with no
    request for this many seconds is forgotten at the next ``get``; None keeps sessions until ``forget``.
    """

    def __init__(self, root: Path, idle_s: float | None = None):
        self.root = root
        self.idle_s = idle_s
        self._by_hash: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, request: gr.Request, token: str | None = None) -> Session:
        """The session of ``request`` (token: the page's per-session token, used where Gradio's request
        has no session hash, see ``compat.session_key``); made at its first request."""
        key = compat.session_key(request, token)
        now = time.monotonic()
        with self._lock:
            if self.idle_s is not None:
                for old in [k for k, s in self._by_hash.items() if k != key and now - s.seen > self.idle_s]:
                    del self._by_hash[old]
            if key not in self._by_hash:
                name = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
                self._by_hash[key] = Session(self.root / name)
            session = self._by_hash[key]
            session.seen = now
            return session

    def forget(self, request: gr.Request) -> None:
        """Drop a closed session from memory (its clips stay on disk)."""
        with self._lock:
            self._by_hash.pop(compat.session_key(request, None), None)


class PageProgress:
    """A ``talker.pipeline.ProgressCallback`` that drives the page's progress bar and obeys Stop.

    bar: the event's ``gr.Progress``; stop: set by the Stop button. Each report first checks
    ``stop`` and raises ``Cancelled`` when it is set, which ends ``make`` (the partial MP4 is removed).
    """

    def __init__(self, bar: gr.Progress, stop: threading.Event):
        self.bar = bar
        self.stop = stop

    def __call__(self, p: Progress) -> None:
        if self.stop.is_set():
            raise Cancelled("the render was stopped; nothing was written")
        if p.stage == "render" and p.total:
            self.bar((p.done, p.total), desc=render_text(p), unit="frames")
        else:
            self.bar(None, desc=STAGE_TEXT.get(p.stage, p.stage))


def render_text(p: Progress) -> str:
    """'rendering 12/50 frames, 31 fps, 1.2 s left' for a render report."""
    return f"rendering {p.done}/{p.total} frames, {p.fps:.0f} fps, {p.eta_s:.1f} s left"


def build_blocks(output_root: Path, extra_model_dirs: list[Path] | None = None, render_lock=None) -> gr.Blocks:
    """Build the talker page and return it, not launched.

    output_root: the folder under which each browser session gets its own sub-folder
        (``<YYYYmmdd-HHMMSS>-<8 hex>``, made at its first render) for its MP4s and their reports
        (``<clip>.report.json`` and ``.report.png``). It is created if missing and, where Gradio has
        ``set_static_paths``, registered with it, so the clips are served from where they are written
        (Gradio 3 serves copies in its cache instead).
    extra_model_dirs: folders holding model files to use in place, searched before the usual ones
        (for example an AUTOMATIC1111 WebUI's root, whose ``models/GFPGAN`` is then found). They are
        prepended to ``$TALKER_REUSE_DIRS`` of this process, which ``talker.models.store`` reads.
    render_lock: a lock (``with``-able) held around every render and its score, e.g. the WebUI's
        ``modules.call_queue.queue_lock``, so a render never runs beside the host's own GPU work.

    The returned Blocks can be launched (``launch`` below does) or rendered inside another Gradio
    app, e.g. ``with gr.Tab("Talker"): build_blocks(root).render()``. Renders run one at a time: on
    Gradio >= 4 the render event has ``concurrency_id`` RENDER_QUEUE with a concurrency limit of 1;
    on Gradio 3 each render holds ``compat.RENDER_LOCK`` (or ``render_lock``) instead. The host app
    must have its queue enabled (``Blocks.queue()``) for the progress bar to show.
    """
    output_root = Path(output_root).expanduser().absolute()
    output_root.mkdir(parents=True, exist_ok=True)
    compat.serve_folder(output_root)
    if extra_model_dirs:
        reuse = [str(Path(d).expanduser().absolute()) for d in extra_model_dirs]
        os.environ[ENV_REUSE] = os.pathsep.join([*reuse, *filter(None, os.environ.get(ENV_REUSE, "").split(os.pathsep))])
    sessions = Sessions(output_root, idle_s=None if compat.UNLOAD else compat.SESSION_IDLE_S)
    rows = form_fields()

    with gr.Blocks(title="talker", analytics_enabled=False) as blocks:
        gr.Markdown("## talker: a portrait and a voice in, a talking clip out")
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Accordion("inputs", open=True):
                    image = gr.Image(label="portrait", type="filepath", elem_id="talker-image", height=300,
                                     **compat.accepted(gr.Image.__init__, format="png",
                                                       sources=["upload", "clipboard", "webcam"]))
                    audio = gr.Audio(label="voice (upload or record)", type="filepath", elem_id="talker-audio",
                                     **compat.accepted(gr.Audio.__init__, sources=["upload", "microphone"]))
                    text = gr.Textbox(label="script", lines=2, elem_id="talker-text",
                                      info="words to speak with espeak-ng when no voice is given; "
                                           "with a voice, its transcript (sharper lip sync)")
                widgets: dict[str, gr.Component] = {}
                for group in GROUPS:
                    members = [row for row in rows if row.group == group]
                    if members:
                        with gr.Accordion(group, open=False):
                            for row in members:
                                widgets[row.name] = _widget(row)
                grade = gr.Checkbox(value=True, label="grade the clip (talker score)", elem_id="talker-grade")
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id="talker-generate")
                    stop = gr.Button("Stop", variant="stop", elem_id="talker-stop")
            with gr.Column(scale=1):
                status = gr.Markdown("Give a portrait and a voice (or a script), then Generate.", elem_id="talker-status")
                video = gr.Video(label="result (MP4: H.264, 48 kHz AAC)", elem_id="talker-video", interactive=False)
                verdict = gr.Markdown(elem_id="talker-verdict")
                table = gr.Dataframe(headers=REPORT_HEADERS, label="score", interactive=False, wrap=True,
                                     elem_id="talker-report", **compat.accepted(
                                         gr.Dataframe.__init__, column_widths=["26%", "14%", "12%", "48%"]))
                report_png = gr.Image(label="score report", type="filepath", interactive=False,
                                      elem_id="talker-report-png")
                history = gr.Gallery(label="this session's clips (click one to play it)", columns=5,
                                     height=200, object_fit="contain", allow_preview=False,
                                     elem_id="talker-history", interactive=False,
                                     **compat.accepted(gr.Gallery.__init__, fit_columns=False))

        token = gr.State(None)  # this browser session's key where Gradio's request has no session hash
        portrait_name = None  # Gradio 3: the portrait's file name, from the browser
        if not compat.UPLOAD_NAMES:
            portrait_name = gr.Textbox(visible=False, elem_id="talker-image-name")
            image.change(None, None, portrait_name, _js=compat.PORTRAIT_NAME_JS)

        def begin(key: str | None, request: gr.Request):
            key = key or secrets.token_hex(8)
            sessions.get(request, key).stop.clear()
            return "Working... (renders run one at a time: a render waits for the one before it)", key

        def request_stop(key: str | None, request: gr.Request):
            sessions.get(request, key).stop.set()
            return "Stopping..."

        def render(values: dict, request: gr.Request, progress=gr.Progress()):
            session = sessions.get(request, values[token])
            if lock is not None:
                progress(None, desc="waiting for the GPU (another render or generation is running)")
            with lock or nullcontext():
                return finish(values, session, progress)

        def finish(values: dict, session: Session, progress: gr.Progress):
            named = values[portrait_name] if portrait_name is not None else None
            out = session.next_output(upload_stem(values[image], "portrait", named),
                                      upload_stem(values[audio], "voice" if values[audio] else "text"))
            options = build_options({name: compat.chosen(w, values[w]) for name, w in widgets.items()},
                                    values[image], values[audio], values[text], out)
            try:
                result = _make(options, PageProgress(progress, session.stop))
            except TalkerError as err:
                return {status: _problem(err)}
            shown = {video: str(result.video), status: f"Done: {result.video.name} ({result.audio.duration:.1f} s)",
                     verdict: "", table: [], report_png: None}  # no score of an earlier clip beside this one
            caption = f"{result.video.stem} ({result.audio.duration:.1f} s)"
            if values[grade]:
                progress(1.0, desc="grading the clip")
                try:
                    report, png = _score(result, options)
                except TalkerError as err:
                    shown[status] = f"Done: {result.video.name}; the score failed: {err}"
                else:
                    caption += f" {report.verdict.upper()}"
                    shown[verdict] = f"**score: {report.verdict.upper()}**"
                    shown[table] = [[c.name, "-" if c.value is None else f"{c.value:.3g}", c.verdict, c.reason]
                                    for c in report.checks]
                    shown[report_png] = str(png)
            session.clips.append(Clip(result.video, _poster(result.video), caption))
            shown[history] = [(str(c.poster), c.caption) for c in session.clips]
            return shown

        def replay(key: str | None, event: gr.SelectData, request: gr.Request):
            clips = sessions.get(request, key).clips
            return str(clips[event.index].video) if event.index < len(clips) else None

        inputs = {image, audio, text, grade, token, *widgets.values()}
        if portrait_name is not None:
            inputs.add(portrait_name)
        outputs = [status, video, verdict, table, report_png, history]
        queued = generate.click(begin, token, [status, token], queue=False)
        one_at_a_time, lock = compat.render_queue(queued.then, RENDER_QUEUE, render_lock)
        queued.then(render, inputs, outputs, **one_at_a_time,
                    **compat.accepted(queued.then, show_progress_on=[video]))
        stop.click(request_stop, token, status, queue=False)
        history.select(replay, token, video, queue=False)
        compat.on_unload(blocks, sessions.forget)
    return blocks


def launch(host: str, port: int, share: bool, output_root: Path) -> None:
    """Serve the page (``build_blocks(output_root)``) at http://host:port until interrupted.

    host: the interface to listen on ('127.0.0.1' keeps it on this machine, '0.0.0.0' opens it to the
    network); port: the TCP port; share: also open a public gradio.live link (needs internet).
    Blocks the calling thread. A port in use or an address that is not this machine's is an
    OptionError.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    blocks = build_blocks(output_root)
    blocks.queue()
    try:
        blocks.launch(server_name=host, server_port=port, share=share, show_error=False,
                      allowed_paths=[str(Path(output_root).expanduser().absolute())])
    except OSError:  # Gradio's "Cannot find empty port", or an address this machine does not have
        raise OptionError(f"cannot serve on {host}:{port}: the port is in use or the address is not this "
                          "machine's; pass --port with a free port, or --host with one of its addresses") from None


def _widget(row: FormField) -> gr.Component:
    """The Gradio input for one form row, starting at the MakeOptions default."""
    common = dict(label=row.label, info=row.info or None, elem_id=f"talker-{row.name.replace('_', '-')}")
    kind, default = row.kind, row.default
    if kind == "dropdown":
        choices = [("none" if v == "" else str(v), v) for v in row.choice_values()]
        return compat.dropdown(choices, "" if default is None else default, **common)
    if kind == "slider":
        lo, hi, step = row.slider
        return gr.Slider(minimum=lo, maximum=hi, step=step, value=default, **common)
    if kind == "checkbox":
        return gr.Checkbox(value=default, **common)
    if kind == "number":
        whole = row.optional or isinstance(default, int)
        lo, hi = row.bounds or (None, None)
        return gr.Number(value=default, precision=0 if whole else None, minimum=lo, maximum=hi, **common)
    return gr.Textbox(value="" if default is None else str(default), **common)


def _make(options, progress: PageProgress):
    from talker.pipeline import make

    try:
        return make(options, progress=progress)
    except TalkerError:
        raise
    except Exception:  # a bug, not the user's mistake: the log gets the traceback, the page one line
        log.exception("render failed")
        raise TalkerError("the render failed unexpectedly; the server log has the details") from None


def _score(result, options):
    """Grade the clip and write <clip>.report.json and .report.png beside it; (ScoreReport, PNG path)."""
    from talker.media import read_image
    from talker.score import score_and_write

    json_path = result.video.with_suffix(".report.json")
    report = score_and_write(result.video, result.audio, json_path, image=read_image(options.image),
                             transcript=options.text)
    return report, json_path.with_suffix(".png")


def _poster(video: Path) -> Path:
    """Write the clip's first frame beside it as <clip>.poster.png and return that path."""
    from PIL import Image

    from talker.media import read_video_frames

    frames = read_video_frames(video)
    try:
        first = next(frames)
    finally:
        frames.close()
    path = video.with_suffix(".poster.png")
    Image.fromarray(first).save(path)
    return path


def _problem(err: TalkerError) -> str:
    return f"**{'Stopped' if isinstance(err, Cancelled) else 'Error'}:** {err}"
