"""The Celery app and the work a ``talker worker`` does.

Delivery: a render message is acknowledged only after the job ended (``acks_late``), a message
whose pool process died is put back (``task_reject_on_worker_lost``), and Redis delivers an
unacknowledged message again after ``visibility_timeout_s``. Exactly-once completion comes from
the job store, not the broker: a worker *claims* the job (queued -> running, or a running job whose
heartbeat is older than ``stale_s``) and writes every later change only while it still holds the
claim; a second delivery of the same job finds it claimed or finished and does nothing. A worker
that dies stops heartbeating, and the controller (in ``talker serve``) re-queues its job, or fails
it after ``worker.max_attempts`` starts. Heartbeats come from a process of their own
(``talker.service.heartbeat``), so a render holding the interpreter lock cannot starve them.

Webhooks and Discord follow-ups go to the notify queue (``<queue>.notify``), which the notifier of
each ``talker worker`` node consumes: a slow receiver never holds a render process.

Each pool process loads the models once, when it starts (``worker_process_init``), and records the
cold start on the first job it renders: seconds from the start of its ``talker worker`` node (the
process that forked it) to its first rendered frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

from talker.service.config import ServiceConfig
from talker.service.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job, open_store
from talker.service.results import FolderResults, open_results

log = logging.getLogger(__name__)

RENDER, WEBHOOK, DISCORD = "talker.render", "talker.webhook", "talker.discord"
PROGRESS_EVERY_S = 0.5  # progress written to the store at most this often
CANCEL_POLL_S = 0.25  # how often a running job looks for a cancel
PROCESS_START_TIMEOUT_S = 300.0  # how long a new pool process may take to warm up


class Runtime:
    """Per-process handles (store, results), reopened after a fork."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.pid = None
        self.process_start = started_at(os.getpid())
        self.cold_start_s = None

    def _open(self):
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self._store = open_store(self.config.store_url)
            self._results = open_results(self.config.results_url)

    @property
    def store(self):
        self._open()
        return self._store

    @property
    def results(self):
        self._open()
        return self._results


def make_celery(config: ServiceConfig):
    """The Celery app of the service, with its three tasks registered."""
    from celery import Celery
    from celery.signals import worker_process_init

    broker = config.broker_url
    if broker.startswith("sqla+sqlite:///"):
        Path(broker[len("sqla+sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    app = Celery("talker", broker=broker)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=config.worker.queue,
        task_serializer="json",
        accept_content=["json"],
        # kombu's SQLAlchemy transport hands every transport option to create_engine: Redis only
        broker_transport_options={"visibility_timeout": config.worker.visibility_timeout_s} if broker.startswith("redis") else {},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        worker_hijack_root_logger=False,
        # notifications wait for slow receivers on a queue of their own, never in a render process
        task_routes={WEBHOOK: {"queue": config.worker.notify_queue}, DISCORD: {"queue": config.worker.notify_queue}},
        # a pool process loads the models before it reports up (warm_up, tens of seconds on a busy
        # CPU); Celery's 4 s default killed replacement after replacement of a killed process
        worker_proc_alive_timeout=PROCESS_START_TIMEOUT_S,
        worker_send_task_events=False,
    )
    rt = Runtime(config)
    app.talker_runtime = rt

    @worker_process_init.connect(weak=False)
    def _load_models(**_):
        rt.process_start = started_at(os.getppid())  # the `talker worker` node that forked this process
        share_cores(int(os.environ.get(PROCESSES_ENV, "1")))
        sweep_temp()
        warm_up()

    @app.task(name=RENDER, bind=True)
    def render(self, job_id: str) -> None:
        run_job(rt, app, job_id)

    @app.task(name=WEBHOOK, bind=True, max_retries=config.webhooks.retries)
    def webhook(self, job_id: str, event: str) -> None:
        from talker.errors import OptionError
        from talker.service.webhooks import post_signed

        job = rt.store.get(job_id)
        tenant = config.tenants.get(job.tenant) if job else None
        if job is None or not job.webhook or tenant is None or not tenant.webhook_secret:
            return
        try:  # resolved and checked again (DNS may have changed), then sent to the checked address
            status = post_signed(job.webhook, tenant.webhook_secret, {"event": event, "job": job.public()},
                                 f"{job.id}.{event}", config.webhooks.timeout_s, tenant.allow_private_webhooks)
        except OptionError:
            log.warning("webhook of job %s not sent: its address is refused now", job_id)
            return
        except Exception as err:
            status = type(err).__name__
        if not (isinstance(status, int) and 200 <= status < 300):
            log.info("webhook of job %s: %s, retrying", job_id, status)
            raise self.retry(countdown=config.webhooks.backoff_s * 2**self.request.retries)

    @app.task(name=DISCORD, bind=True, max_retries=config.webhooks.retries)
    def discord(self, job_id: str) -> None:
        from talker.service.discord import follow_up

        job = rt.store.get(job_id)
        if job is None or not job.discord:
            return
        with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-") as tmp:
            video = None
            if job.state == DONE:
                video = Path(tmp) / f"talker-{job.id[:8]}.mp4"
                rt.results.get_file(job.video, video)
            message = "Here is your video." if video else f"Sorry, the video could not be made: {job.error or job.state}"
            try:
                status = follow_up(config.discord.api_base, job.discord, video, message, config.webhooks.timeout_s)
            except Exception as err:  # its message would name the URL, which holds the token
                status = type(err).__name__
        if not (isinstance(status, int) and 200 <= status < 300):
            log.info("Discord follow-up of job %s: %s, retrying", job_id, status)
            raise self.retry(countdown=config.webhooks.backoff_s * 2**self.request.retries)

    return app


def started_at(pid: int) -> float:
    """When process ``pid`` started (Unix seconds), from /proc on Linux; elsewhere: now."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def notify(app, job: Job) -> None:
    """Queue the webhook and the Discord follow-up of a job that ended (on the notify queue)."""
    if job.webhook:
        app.send_task(WEBHOOK, args=[job.id, f"job.{job.state}"])
    if job.discord:
        app.send_task(DISCORD, args=[job.id])


PROCESSES_ENV = "TALKER_WORKER_PROCESSES"
"""Set by ``talker worker`` to its --concurrency for the pool processes it forks."""


def share_cores(processes: int) -> None:
    """Give this render process its share of the CPU cores for torch's thread pool (at least one).

    Each torch process starts an OpenMP thread per core; render processes that outnumber the cores
    then spin-wait on each other's cores (paste-back of a 256 render into a 512 picture measured 2 ms
    a frame alone and up to 20 ms beside another busy process on 2 cores)."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, processes)))


TEMP_PREFIX = "talker-job-"  # a job's temporary folder: talker-job-<pid of its process>-<random>


def sweep_temp() -> None:
    """Delete the temporary folders of jobs whose process is gone (a killed worker leaves them)."""
    import shutil

    for folder in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        pid = folder.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            log.info("deleted %s, left by a worker process that is gone", folder)


def warm_up() -> None:
    """Load what every render needs (the face networks, the phone recogniser, torch) into this process."""
    import numpy as np

    from audio2coeff.embedded import embedded_track
    from talker.errors import NoFaceError
    from talker.face.detect import detect_faces, face_landmarks
    from talker.types import Audio

    t = time.perf_counter()
    rgb = np.zeros((256, 256, 3), np.uint8)
    detect_faces(rgb)
    with contextlib.suppress(NoFaceError):  # a blank picture has none; the networks load all the same
        face_landmarks(rgb, (64, 64, 192, 192))
    noise = np.random.default_rng(0).normal(0, 0.05, 16000).astype(np.float32)
    embedded_track(Audio(samples=noise))
    log.info("worker process %d ready in %.1f s", os.getpid(), time.perf_counter() - t)


class Claim:
    """This process's hold on a running job: its heartbeats (sent by ``talker.service.heartbeat``,
    a process of its own, so a render that holds the interpreter lock cannot starve them) and a
    thread that notices a cancel or a take-over.

    ``lost`` turns True within ``CANCEL_POLL_S`` of the job being cancelled or re-queued, and the
    progress callback then raises ``talker.errors.Cancelled`` so the render stops.
    """

    def __init__(self, store, store_url: str, job_id: str, token: str, heartbeat_s: float):
        self.store, self.store_url, self.job_id, self.token, self.heartbeat_s = store, store_url, job_id, token, heartbeat_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def held(self) -> dict:
        return {"state": [RUNNING], "worker": [self.token]}

    def __enter__(self) -> "Claim":
        from talker.service import heartbeat

        heartbeat.hold(self.store_url, self.heartbeat_s, self.job_id, self.token)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        from talker.service import heartbeat

        self._stop.set()
        self._thread.join()
        heartbeat.release(self.store_url, self.heartbeat_s)

    def _run(self) -> None:
        while not self._stop.wait(CANCEL_POLL_S):
            try:
                job = self.store.get(self.job_id)
                self.lost = job is None or job.state != RUNNING or job.worker != self.token
            except Exception as err:  # the store is briefly unreachable: keep rendering
                log.warning("job %s: cannot reach the job store (%s)", self.job_id, err)
            if self.lost:
                return


def run_job(rt: Runtime, app, job_id: str) -> None:
    """Claim the job, render it, store the MP4 (and report) and record the outcome."""
    from talker.errors import Cancelled, TalkerError
    from talker.options import MakeOptions
    from talker.pipeline import Progress, make

    store, results, config = rt.store, rt.results, rt.config
    job = _patiently(lambda: store.get(job_id))  # a store outage at the start must not drop the job
    if job is None or job.state not in (QUEUED, RUNNING):
        return
    now = time.time()
    if job.attempts >= config.worker.max_attempts:  # a delivery again after its worker died: stop here
        if give_up(store, job, config.worker.max_attempts, now - config.worker.stale_s):
            notify(app, store.get(job_id))
        return
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    claim = dict(state=RUNNING, worker=token, heartbeat_at=now, attempts=job.attempts + 1, started_at=now,
                 stage="starting", frames_done=0, error=None)
    if not _patiently(lambda: store.update(job_id, only_if={"state": [QUEUED]}, **claim)
                      or store.update(job_id, only_if={"state": [RUNNING]}, heartbeat_before=now - config.worker.stale_s, **claim)):
        return  # finished, cancelled, or held by a live worker: this delivery is a duplicate
    log.info("job %s claimed by %s (attempt %d)", job_id, token, job.attempts + 1)

    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-") as tmp, Claim(store, config.store_url, job_id, token, config.worker.heartbeat_s) as held:
        last, frames = [0.0], [0]

        def progress(p: Progress) -> None:
            if held.lost:
                raise Cancelled(f"job {job_id} was cancelled")
            frames[0] = p.done
            extra = {}
            if p.stage == "render" and p.done and rt.cold_start_s is None:
                rt.cold_start_s = extra["cold_start_s"] = time.time() - rt.process_start
            t = time.time()
            if extra or t - last[0] >= PROGRESS_EVERY_S or p.stage != "render" or p.done == p.total:
                last[0] = t
                try:
                    store.update(job_id, only_if=held.held(), stage=p.stage, frames_done=p.done, frames_total=p.total,
                                 fps=round(p.fps, 2), eta_s=round(p.eta_s, 2), **extra)
                except Exception as err:  # progress is best effort: a store outage must not stop the render
                    log.warning("job %s: progress not recorded (%s)", job_id, err)

        try:
            paths = {}
            for role, key in job.inputs.items():
                paths[role] = Path(tmp) / f"{role}{Path(key).suffix}"
                results.get_file(key, paths[role])
            options = MakeOptions(**job.options, image=paths.get("image"), audio=paths.get("audio"),
                                  out=Path(tmp) / "video.mp4", checkpoints=config.worker.checkpoints)
            live = results.path(job.live_key) if isinstance(results, FolderResults) else None
            if live is not None:  # left behind by a worker killed mid-render when this is a re-run
                live.parent.mkdir(parents=True, exist_ok=True)
                live.unlink(missing_ok=True)
            try:
                result = make(options, progress=progress, stream=live)
            finally:
                if live is not None:
                    live.unlink(missing_ok=True)  # a reader that has it open still gets the rest
            report_key = None
            if job.want_report:
                report_key = f"{job.tenant}/{job.id}/report.json"
                results.put_file(report_key, _score(result, Path(tmp)))
            video_key = f"{job.tenant}/{job.id}/video.mp4"
            results.put_file(video_key, result.video)
            ended = dict(state=DONE, stage="done", video=video_key, report=report_key, finished_at=time.time(), eta_s=0.0)
        except Cancelled:
            log.info("job %s stopped after %d frames: cancelled or taken over", job_id, frames[0])
            # a cancelled job records when and where its render stopped (heartbeat_at: the stop time)
            store.update(job_id, only_if={"state": [CANCELLED], "worker": [token]},
                         stage=f"cancelled: stopped after {frames[0]} frames", heartbeat_at=time.time())
            return
        except TalkerError as err:
            ended = dict(state=FAILED, error=without_paths(str(err), Path(tmp)), finished_at=time.time())
        except Exception as err:  # a bug, not the user's mistake: keep the traceback in the log
            log.exception("job %s failed", job_id)
            ended = dict(state=FAILED, error=f"internal error ({type(err).__name__}); the service's log has the details",
                         finished_at=time.time())

    if not _patiently(lambda: store.update(job_id, only_if={"state": [RUNNING], "worker": [token]}, **ended)):
        if ended.get("video") and store.get(job_id).state == CANCELLED:
            results.delete(ended["video"])  # cancelled after the render: leave no file
        return
    notify(app, store.get(job_id))


def without_paths(message: str, folder: Path) -> str:
    """``message`` as a tenant may see it: files of the job's ``folder``, and any other absolute
    path on the server, shown by their names only."""
    import re

    message = message.replace(f"{folder}{os.sep}", "")
    return re.sub(r"(?<![\w.:/])/(?:[^\s'\"/:]+/)+([^\s'\":/]+)", r"\1", message)


def give_up(store, job: Job, max_attempts: int, stale_before: float) -> bool:
    """Fail a job that was started ``max_attempts`` times and whose worker stopped each time (it
    is queued again, or running with no heartbeat since ``stale_before``), naming the reason; True
    when this call failed it."""
    ended = dict(state=FAILED, finished_at=time.time(), error=(
        f"gave up after {job.attempts} attempt{'s' if job.attempts != 1 else ''} (worker.max_attempts is {max_attempts}): the worker stopped "
        f"each time before the job ended (last stage: {job.stage or 'starting'}); a shorter or lighter input may pass"))
    return (store.update(job.id, only_if={"state": [QUEUED]}, **ended)
            or store.update(job.id, only_if={"state": [RUNNING], "worker": [job.worker]}, heartbeat_before=stale_before, **ended))


def _patiently(call, patience_s: float = 30.0):
    """``call()``, tried again every second while the store is unreachable, for up to ``patience_s``."""
    end = time.monotonic() + patience_s
    while True:
        try:
            return call()
        except Exception as err:
            if time.monotonic() > end:
                raise
            log.warning("job store unreachable (%s); trying again", err)
            time.sleep(1.0)


def _score(result, folder: Path) -> Path:
    """Grade the video (talker.score) and write the JSON report; returns its path."""
    from talker.score import score_and_write

    json_path = folder / "report.json"
    score_and_write(result.video, result.audio, json_path)
    return json_path
