"""The HTTP API (FastAPI; the OpenAPI page is at /docs) and the controller.

``create_app(config)`` serves the routes below; every route under /v1 except the Discord one
needs a tenant's API key. The controller is a thread of the API process that, every
``reap_interval_s``, re-queues running jobs whose worker stopped heartbeating and publishes jobs
whose message never reached the broker (it was down at submission).
"""

# (no `from __future__ import annotations`: FastAPI reads the routes' annotations at run time)
import json
import logging
import shutil
import tempfile
import threading
import time
import zipfile
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path, PureWindowsPath

from talker.errors import TalkerError
from talker.service import security
from talker.service.config import ServiceConfig, Tenant, data_dir
from talker.service.jobs import CANCELLED, QUEUED, RUNNING, Job, open_store
from talker.service.results import FolderResults, S3Results, open_results
from talker.service.security import Lockout, RateLimits, Refused

log = logging.getLogger(__name__)

MAX_BATCH_JOBS = 1000
MAX_BATCH_FILES = 200
FORM_FIELDS_BYTES = 1_000_000  # room for a job's form fields beside its two files
DISCORD_MAX_BYTES = 16_384  # an interaction is a few kB of JSON
RETRY_AFTER_S = 5  # what a 503 asks the client to wait, in seconds
LIVE_WAIT_S = 600.0  # how long /live waits for a queued job to start before answering 503
LIVE_POLL_S = 0.5  # how often /live looks at a queued job (and at whether its client left)


def fingerprint(form) -> str:
    """sha256 hex of a submission's fields and files (to tell a retry from another request)."""
    import hashlib

    digest = hashlib.sha256()
    for name, value in sorted(form.multi_items(), key=lambda item: item[0]):
        digest.update(name.encode() + b"\0")
        if isinstance(value, str):
            digest.update(value.encode() + b"\0")
        else:
            value.file.seek(0)
            for chunk in iter(lambda: value.file.read(1 << 20), b""):
                digest.update(chunk)
            value.file.seek(0)
    return digest.hexdigest()


def failure_classes() -> list[type]:
    """The base exception classes of the store and broker clients installed here."""
    import importlib

    found = []
    for module, name in (("sqlalchemy.exc", "SQLAlchemyError"), ("redis.exceptions", "RedisError"),
                         ("kombu.exceptions", "KombuError")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except ImportError:
            continue
    return found


def outage(err: BaseException) -> str | None:
    """What is down when ``err`` means the job store, the broker or the disk failed (the request
    was fine: 503), else None."""
    import errno

    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return "the server's disk is full"
    kinds = {"sqlalchemy.exc": "the job store is unavailable", "redis.exceptions": "the job store is unavailable",
             "kombu.exceptions": "the queue (broker) is unavailable", "amqp.exceptions": "the queue (broker) is unavailable"}
    for cls in type(err).__mro__:
        module = cls.__module__
        if module in kinds and cls.__name__ in ("OperationalError", "ConnectionError", "TimeoutError", "DBAPIError"):
            if "full" in str(err):
                return "the server's disk is full"
            return kinds[module]
    return None
_SERVICE_FIELDS = ("webhook", "report")


class Service:
    """What the routes share: settings, store, results, the Celery app used to publish."""

    def __init__(self, config: ServiceConfig):
        from talker.service.metrics import MetricsCache, QueueDepth, ServiceCollector
        from talker.service.tasks import make_celery

        self.config = config
        self.store = open_store(config.store_url)
        self.results = open_results(config.results_url)
        self.celery = make_celery(config)
        self.metrics = MetricsCache(ServiceCollector(self.store, QueueDepth(config.broker_url, config.worker.queue)))

    # --------------------------------------------------------------------------- submission

    def save_upload(self, upload, role: str, key_prefix: str) -> str:
        """Check an uploaded file (size, type from content, pixels or seconds) and put it in the
        results store; returns its key. Refused 413 / 415."""
        limits = self.config.limits
        name = f"the {role} upload{f' {upload.filename!r}' if upload.filename else ''}"
        security.check_size(name, upload.size or 0, limits)
        with tempfile.NamedTemporaryFile(prefix="talker-upload-") as tmp:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, tmp)
            tmp.flush()
            security.check_size(name, tmp.tell(), limits)
            check = security.check_image if role == "image" else security.check_audio
            suffix = check(name, Path(tmp.name), limits)
            key = f"{key_prefix}/{role}{suffix}"
            self.results.put_file(key, Path(tmp.name))
        return key

    @contextmanager
    def nothing_left_if_refused(self, folder: str, unless=lambda: False):
        """Delete the results ``folder`` of a submission that raised (a refused upload, the store
        down), unless ``unless()`` says jobs already use it."""
        try:
            yield
        except BaseException:
            if not unless():
                self.results.delete_folder(folder)
            raise

    def submit(self, job: Job) -> tuple[Job, bool]:
        """Store the job and publish it; (job, True) when new, (the earlier job, False) for a reused
        idempotency key. A failed publish is retried by the controller."""
        stored = self.store.add(job)
        if stored.id != job.id:
            return stored, False
        self.publish(stored)
        return stored, True

    def publish(self, job: Job) -> None:
        from talker.service.tasks import RENDER

        try:
            self.celery.send_task(RENDER, args=[job.id], queue=self.config.worker.queue)
        except Exception as err:
            log.warning("job %s not published yet (%s); the controller retries", job.id, err)
            return
        self.store.update(job.id, only_if={"state": [QUEUED]}, enqueued=True)

    def service_fields(self, tenant: Tenant, form: dict) -> dict:
        """webhook and report from a form, checked (OptionError for a refused webhook)."""
        from talker.service.webhooks import check_url

        from talker.service.forms import parse_bool

        out = {"webhook": form.get("webhook") or None, "want_report": parse_bool("report", str(form.get("report", "")))}
        if out["webhook"]:
            if not tenant.webhook_secret:
                from talker.errors import OptionError

                raise OptionError(f"tenant {tenant.name!r} has no webhook_secret in the service config, so webhooks cannot be signed")
            check_url(out["webhook"], tenant.allow_private_webhooks)
        return out

    def job_of(self, tenant: Tenant, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None or job.tenant != tenant.name:
            raise Refused(404, f"no job {job_id} (a job is visible only with its own tenant's key)")
        return job

    def readiness(self) -> dict[str, str]:
        """'ok' or what is wrong, for the broker, the job store and the disk."""
        def disk():
            folders = [tempfile.gettempdir(), data_dir()] + ([self.results.root] if isinstance(self.results, FolderResults) else [])
            for folder in folders:
                free = shutil.disk_usage(folder if Path(folder).exists() else tempfile.gettempdir()).free
                if free < self.config.limits.min_free_bytes:
                    raise OSError(f"{free / 1e9:.2f} GB free in {folder}, under limits.min_free_bytes "
                                  f"({self.config.limits.min_free_bytes / 1e9:.2f} GB)")

        checks = {}
        for name, check in (("broker", self.metrics.collector.depth.read), ("store", self.store.counts), ("disk", disk)):
            try:
                check()
                checks[name] = "ok"
            except Exception as err:
                checks[name] = f"{type(err).__name__}: {err}"[:300]
        return checks

    # --------------------------------------------------------------------------- controller

    def reap(self) -> None:
        """Re-queue running jobs without a recent heartbeat (fail them after worker.max_attempts);
        publish jobs never published."""
        now = time.time()
        stale = now - self.config.worker.stale_s
        for job in self.store.active():
            if job.state == RUNNING and (job.heartbeat_at or 0) < stale and job.attempts >= self.config.worker.max_attempts:
                from talker.service.tasks import give_up, notify

                if give_up(self.store, job, self.config.worker.max_attempts, stale):
                    log.warning("job %s: worker %s stopped on attempt %d of %d; failed", job.id, job.worker,
                                job.attempts, self.config.worker.max_attempts)
                    notify(self.celery, self.store.get(job.id))
            elif job.state == RUNNING and (job.heartbeat_at or 0) < stale:
                if self.store.update(job.id, only_if={"state": [RUNNING], "worker": [job.worker]}, heartbeat_before=stale,
                                     state=QUEUED, stage="re-queued: its worker stopped", enqueued=False):
                    log.warning("job %s: worker %s stopped, re-queued", job.id, job.worker)
                    self.publish(job)
            elif job.state == QUEUED and not job.enqueued and job.created_at < now - 1.0:
                self.publish(job)

    def sweep(self) -> None:
        """Delete finished jobs older than retention.finished_s (record, inputs, outputs) and, in a
        results folder, job and batch folders that belong to no job and are older than
        retention.orphan_s."""
        now, keep = time.time(), self.config.retention
        if keep.finished_s is not None:
            for job in self.store.finished_before(now - keep.finished_s):
                for key in [*job.inputs.values(), job.video, job.report]:
                    if key and "/batches/" not in key:  # a batch's uploads serve its other jobs
                        self.results.delete(key)
                self.results.delete_folder(f"{job.tenant}/{job.id}")
                self.store.delete(job)
                log.info("job %s: deleted, %.0f s after it ended (retention.finished_s)", job.id, now - job.finished_at)
        if isinstance(self.results, FolderResults):
            for folder in self.results.folders(older_than=now - keep.orphan_s):
                tenant, *rest = folder.split("/")
                owned = (self.store.jobs(tenant, batch=rest[1], limit=1) if rest[0] == "batches"
                         else self.store.get(rest[0]) is not None)
                if not owned:
                    self.results.delete_folder(folder)
                    log.info("deleted %s: it belongs to no job (retention.orphan_s)", folder)

    def run_controller(self, stop: threading.Event) -> None:
        swept = 0.0
        while not stop.wait(self.config.worker.reap_interval_s):
            try:
                self.reap()
                if time.monotonic() - swept >= self.config.retention.sweep_interval_s:
                    swept = time.monotonic()
                    self.sweep()
            except Exception as err:
                log.warning("controller: %s", err)


def create_app(config: ServiceConfig):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
    from starlette.background import BackgroundTask
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from talker.service.batches import parse_manifest
    from talker.service.discord import SeenInteractions
    from talker.service.forms import openapi_schema, options_from_form

    svc = Service(config)
    seen_interactions = SeenInteractions()
    rate_limits = RateLimits()
    lockout = Lockout(config.limits.wrong_keys_per_minute)
    stop = threading.Event()
    if not config.tenants:
        log.warning("no tenants in the service config: every /v1 request will be refused (401); see docs/service.md")

    @asynccontextmanager
    async def lifespan(_app):
        thread = threading.Thread(target=svc.run_controller, args=(stop,), daemon=True, name="talker-controller")
        thread.start()
        yield
        stop.set()

    app = FastAPI(title="talker job service", version="1", lifespan=lifespan,
                  description="Render talking-head videos from a portrait and speech: jobs, batches, webhooks, Discord.")
    app.state.service = svc

    # every answer that is not a success has one shape: {"error": "what is wrong and what to do"}
    def error(status: int, message: str, headers: dict | None = None, **extra):
        return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)

    @app.exception_handler(Refused)
    async def _refused(_req, err: Refused):
        return error(err.status, err.message, err.headers)

    @app.exception_handler(TalkerError)
    async def _talker_error(_req, err: TalkerError):
        return error(422, str(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req, err: StarletteHTTPException):
        return error(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req, err: RequestValidationError):
        first = err.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
        return error(422, f"{where}: {first.get('msg', 'invalid')}")

    async def _unexpected(_req, err: Exception):
        reason = outage(err)
        if reason:
            log.warning("answered 503: %s (%s: %s)", reason, type(err).__name__, err)
            return error(503, f"{reason}; try again shortly", {"Retry-After": str(RETRY_AFTER_S)})
        log.error("internal error", exc_info=err)
        return error(500, "internal error; the service's log has the details")

    # the store's, the broker's and the disk's failures are answered here, on a connection that
    # stays usable; anything else reaches the server-error handler (a bug: 500, then logged again)
    for kind in (OSError, *failure_classes(), Exception):
        app.add_exception_handler(kind, _unexpected)

    def tenant(request: Request) -> Tenant:
        address = request.client.host if request.client else "unknown"
        lockout.check(address)
        try:
            return security.tenant_of(config, request.headers)
        except Refused:
            lockout.failed(address)
            raise

    async def read_form(request: Request, max_files: int, max_bytes: int):
        """The multipart form, its body cut at ``max_bytes`` while it streams in."""
        what = f"the request ({max_files} files at most)"
        return await security.capped(request, max_bytes, what).form(max_files=max_files, max_fields=1000)

    @app.get("/healthz", tags=["service"])
    def healthz():
        """Liveness: 200 when the process answers and the job store answers."""
        svc.store.counts()
        return {"ok": True}

    @app.get("/readyz", tags=["service"])
    def readyz():
        """Readiness: 200 when the broker, the job store and the disk (free space of the results,
        data and temporary folders over limits.min_free_bytes) all work; 503 naming what does not."""
        checks = svc.readiness()
        failed = {name: state for name, state in checks.items() if state != "ok"}
        if failed:
            return error(503, "not ready: " + "; ".join(f"{k}: {v}" for k, v in failed.items()),
                         {"Retry-After": str(RETRY_AFTER_S)}, checks=checks)
        return {"ok": True, "checks": checks}

    @app.get("/metrics", tags=["service"])
    def metrics():
        """Prometheus metrics: queue depth, jobs by state, render fps."""
        return Response(svc.metrics.text(), media_type="text/plain; version=0.0.4")

    job_schema = openapi_schema(
        {"image": "the portrait (PNG, JPEG, WebP or BMP)", "audio": "the speech (WAV, MP3, OGG, FLAC, M4A...); or give text"},
        {"webhook": {"type": "string", "description": "URL notified (signed POST) when the job ends"},
         "report": {"type": "boolean", "description": "also grade the video (GET .../report)"}},
    )

    @app.post("/v1/jobs", status_code=202, tags=["jobs"], openapi_extra=job_schema)
    async def create_job(request: Request):
        """Submit a render: a portrait and speech (or text) plus any option of ``talker make``.
        An ``Idempotency-Key`` header returns the job made earlier with the same key (200)."""
        who = tenant(request)
        rate_limits.take(who)
        form = await read_form(request, max_files=2, max_bytes=2 * config.limits.upload_bytes + FORM_FIELDS_BYTES)

        def work():
            uploads = {k: form[k] for k in ("image", "audio") if hasattr(form.get(k), "filename")}
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str) and k not in _SERVICE_FIELDS}
            if "image" not in uploads:
                raise Refused(422, "no portrait: send the picture as the multipart file field 'image'")
            options = options_from_form(fields, has_audio="audio" in uploads)
            security.check_operator_options(options, who)
            job = Job(tenant=who.name, options=options, idempotency_key=request.headers.get("idempotency-key"),
                      fingerprint=fingerprint(form), **svc.service_fields(who, form))
            if job.idempotency_key and (earlier := svc.store.find(who.name, job.idempotency_key)) is not None:
                if earlier.fingerprint not in (None, job.fingerprint):
                    raise Refused(422, f"Idempotency-Key {job.idempotency_key!r} was used for another request (other "
                                       "files or fields); send a new key for a new job")
                return earlier, False
            RateLimits.check_active(who, svc.store)
            security.check_text(options.get("text"), config.limits, spoken="audio" not in uploads)
            with svc.nothing_left_if_refused(f"{who.name}/{job.id}"):
                job.inputs = {role: svc.save_upload(up, role, f"{who.name}/{job.id}") for role, up in uploads.items()}
                stored, created = svc.submit(job)
            if not created:  # the same key raced in from another request: drop this one's uploads
                for key in job.inputs.values():
                    svc.results.delete(key)
            return stored, created

        try:
            job, created = await run_in_threadpool(work)
        finally:
            await form.close()  # the spooled uploads
        return JSONResponse(job.public(), status_code=202 if created else 200, headers={"Location": f"/v1/jobs/{job.id}"})

    @app.get("/v1/jobs", tags=["jobs"])
    def list_jobs(request: Request, limit: int = 100, state: str | None = None, before: float | None = None):
        """The tenant's jobs, newest first, ``limit`` at most (1 to 1000), only those in ``state``
        when given; ``next`` is the address of the following page (None after the last)."""
        from talker.service.jobs import STATES

        name, limit = tenant(request).name, min(max(limit, 1), 1000)
        if state is not None and state not in STATES:
            raise Refused(422, f"state must be one of {', '.join(STATES)}, not {state!r}")
        found, cursor = [], before
        while len(found) < limit:
            page = svc.store.jobs(name, limit=limit, before=cursor)
            found += [j for j in page if state is None or j.state == state]
            if len(page) < limit:
                break
            cursor = page[-1].created_at
        found, more = found[:limit], None
        if len(found) == limit:
            more = f"/v1/jobs?limit={limit}&before={found[-1].created_at!r}" + (f"&state={state}" if state else "")
        return {"jobs": [j.public() for j in found], "next": more}

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: str, request: Request):
        """State, stage, frames done, fps and ETA of a job."""
        return svc.job_of(tenant(request), job_id).public()

    @app.delete("/v1/jobs/{job_id}", tags=["jobs"])
    def cancel_job(job_id: str, request: Request):
        """Cancel a queued or running job; a running render stops within a second and leaves no file."""
        job = svc.job_of(tenant(request), job_id)
        if svc.store.update(job_id, only_if={"state": [QUEUED, RUNNING]}, state=CANCELLED, stage="cancelled",
                            finished_at=time.time()):
            from talker.service.tasks import notify

            job = svc.store.get(job_id)
            try:
                notify(svc.celery, job)
            except Exception as err:  # the broker is down: the cancel stands, the webhook is lost
                log.warning("job %s cancelled, webhook not queued: %s", job_id, err)
            return job.public()
        job = svc.store.get(job_id)
        if job.state == CANCELLED:
            return job.public()
        raise Refused(409, f"job {job_id} has already ended ({job.state}); nothing to cancel")

    def output(job: Job, key: str | None, what: str, media_type: str):
        if key is None:
            hint = " (submit with report=true to get one)" if what == "report" and not job.want_report else ""
            raise Refused(404, f"job {job.id} has no {what}: it is {job.state}{hint}")
        if isinstance(svc.results, S3Results):
            return RedirectResponse(svc.results.url(key), status_code=307)
        return FileResponse(svc.results.path(key), media_type=media_type, filename=f"{job.name or job.id}{Path(key).suffix}")

    @app.api_route("/v1/jobs/{job_id}/video", methods=["GET", "HEAD"], tags=["jobs"])
    def get_video(job_id: str, request: Request):
        """The MP4 of a finished job (HTTP Range requests are served)."""
        job = svc.job_of(tenant(request), job_id)
        return output(job, job.video, "video", "video/mp4")

    @app.get("/v1/jobs/{job_id}/live", tags=["jobs"])
    async def get_live(job_id: str, request: Request):
        """The video while it renders: a fragmented MP4 that grows until the job ends (players start
        at once). Waits while the job is queued (up to LIVE_WAIT_S, and only while the client is
        connected); a finished job is redirected to its video. Needs a
        results folder shared by the API and the workers (not S3)."""
        import asyncio

        from fastapi.responses import StreamingResponse

        from talker.streaming import follow

        job = svc.job_of(tenant(request), job_id)
        if isinstance(svc.results, S3Results):
            raise Refused(404, "live video needs a results folder shared by the API and the workers; "
                               f"with S3 results, fetch {job.public()['links']['self']}/video when the job is done")
        live = svc.results.path(job.live_key)

        def ended() -> bool:
            return svc.store.get(job_id).state not in (QUEUED, RUNNING)

        since = time.monotonic()
        while not live.exists():  # queued, or starting: the worker opens the stream at its first frame
            if await request.is_disconnected():
                return Response(status_code=204)  # nobody is listening any more
            if time.monotonic() - since > LIVE_WAIT_S:
                raise Refused(503, f"job {job_id} has not started in {LIVE_WAIT_S:.0f} s; open /live again later",
                              {"Retry-After": "30"})
            job = await run_in_threadpool(svc.store.get, job_id)
            if job.state not in (QUEUED, RUNNING):
                if job.video:
                    return RedirectResponse(f"/v1/jobs/{job_id}/video", status_code=307)
                raise Refused(409, f"job {job_id} ended ({job.state}) without a video" + (f": {job.error}" if job.error else ""))
            await asyncio.sleep(LIVE_POLL_S)
        return StreamingResponse(follow(live, done=ended), media_type="video/mp4",
                                 headers={"Cache-Control": "no-store"})

    @app.get("/v1/jobs/{job_id}/report", tags=["jobs"])
    def get_report(job_id: str, request: Request):
        """The score report (JSON) of a finished job submitted with report=true."""
        job = svc.job_of(tenant(request), job_id)
        return output(job, job.report, "report", "application/json")

    batch_schema = openapi_schema(
        {"manifest": "CSV (header row) or JSONL: columns avatar, text, audio and any render option",
         "files": "the portraits and recordings the manifest names (repeat the field)"},
        {"webhook": {"type": "string", "description": "URL notified for each job"}},
    )

    @app.post("/v1/batches", status_code=202, tags=["batches"], openapi_extra=batch_schema)
    async def create_batch(request: Request):
        """One job per manifest row; a row without an avatar is made with every uploaded portrait."""
        import uuid

        who = tenant(request)
        rate_limits.take(who)
        form = await read_form(request, max_files=MAX_BATCH_FILES, max_bytes=config.limits.batch_bytes)

        def work():
            manifest = form.get("manifest")
            if not hasattr(manifest, "filename"):
                raise Refused(422, "no manifest: send the CSV or JSONL as the multipart file field 'manifest'")
            batch = uuid.uuid4().hex
            files, avatars, recordings = {}, [], []
            for up in form.getlist("files"):
                head = up.file.read(16)
                up.file.seek(0)
                role = "image" if security.image_type(head) else "audio"
                name = PureWindowsPath(up.filename or f"file{len(files)}").name  # no folder, '/' or '\\'-separated
                files[name] = (up, role)
                (avatars if role == "image" else recordings).append(name)
            rows = parse_manifest(manifest.file.read(), avatars, recordings, MAX_BATCH_JOBS)
            for row in rows:
                security.check_operator_options(row.options, who)
            RateLimits.check_active(who, svc.store, adding=len(rows))
            for text, spoken in {(row.options.get("text"), row.audio is None) for row in rows}:  # each script once
                security.check_text(text, config.limits, spoken)
            extra = svc.service_fields(who, form)
            ids = []
            with svc.nothing_left_if_refused(f"{who.name}/batches/{batch}", unless=lambda: ids):
                keys = {name: svc.save_upload(up, role, f"{who.name}/batches/{batch}/{n:03d}")
                        for n, (name, (up, role)) in enumerate(files.items())}
                for row in rows:
                    inputs = {"image": keys[row.avatar]} | ({"audio": keys[row.audio]} if row.audio else {})
                    job, _ = svc.submit(Job(tenant=who.name, batch=batch, name=row.name, options=row.options,
                                            inputs=inputs, **extra))
                    ids.append(job.id)
            return {"id": batch, "jobs": ids, "links": {"self": f"/v1/batches/{batch}", "zip": f"/v1/batches/{batch}/zip"}}

        try:
            made = await run_in_threadpool(work)
            return JSONResponse(made, status_code=202, headers={"Location": made["links"]["self"]})
        finally:
            await form.close()

    def batch_jobs(request: Request, batch_id: str) -> list[Job]:
        jobs = svc.store.jobs(tenant(request).name, batch=batch_id, limit=MAX_BATCH_JOBS)
        if not jobs:
            raise Refused(404, f"no batch {batch_id}")
        return sorted(jobs, key=lambda j: j.name or "")

    @app.get("/v1/batches/{batch_id}", tags=["batches"])
    def get_batch(batch_id: str, request: Request):
        """Counts by state and the batch's jobs."""
        jobs = batch_jobs(request, batch_id)
        counts: dict[str, int] = {}
        for j in jobs:
            counts[j.state] = counts.get(j.state, 0) + 1
        finished = all(j.state in ("done", "failed", "cancelled") for j in jobs)
        return {"id": batch_id, "total": len(jobs), "counts": counts, "finished": finished,
                "jobs": [j.public() for j in jobs], "links": {"zip": f"/v1/batches/{batch_id}/zip"}}

    @app.get("/v1/batches/{batch_id}/zip", tags=["batches"])
    def get_batch_zip(batch_id: str, request: Request):
        """A zip of the batch's finished videos, named <row>_<avatar>.mp4, and a manifest.json of all jobs."""
        jobs = batch_jobs(request, batch_id)
        tmp = tempfile.NamedTemporaryFile(prefix="talker-batch-", suffix=".zip", delete=False)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            for j in jobs:
                if j.video:
                    with svc.results.open(j.video) as src, z.open(f"{j.name}.mp4", "w") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            z.writestr("manifest.json", json.dumps([j.public() for j in jobs], indent=1))
        tmp.close()
        return FileResponse(tmp.name, media_type="application/zip", filename=f"batch-{batch_id}.zip",
                            background=BackgroundTask(Path(tmp.name).unlink, missing_ok=True))

    @app.post("/v1/discord/interactions", tags=["discord"])
    async def discord_interaction(request: Request):
        """Discord's interactions endpoint: Ed25519-verified; /talk answers 'deferred' at once and
        posts the video as a follow-up."""
        from talker.service import discord

        settings = config.discord
        if not settings.public_key or settings.tenant not in config.tenants:
            raise Refused(404, "Discord is not set up: give discord.public_key and discord.tenant in the service config")
        body = await security.capped(request, DISCORD_MAX_BYTES, "a Discord interaction").body()
        if not discord.verify(settings.public_key, request.headers.get("x-signature-ed25519", ""),
                              request.headers.get("x-signature-timestamp", ""), body):
            raise Refused(401, "invalid request signature")
        if not discord.fresh(request.headers.get("x-signature-timestamp", "")):
            raise Refused(401, f"the request's timestamp is more than {discord.MAX_AGE_S / 60:.0f} minutes from the server's clock")
        try:
            interaction = json.loads(body)
        except json.JSONDecodeError:
            raise Refused(400, "the interaction is not JSON") from None
        if not isinstance(interaction, dict) or not isinstance(interaction.get("id"), str):
            raise Refused(400, "the interaction must be a JSON object with its id")
        if not seen_interactions.first_time(interaction["id"]):
            raise Refused(409, f"interaction {interaction['id']} was already handled (a replayed request)")
        if interaction.get("type") == discord.PING:
            return {"type": discord.PONG}
        if interaction.get("type") != discord.APPLICATION_COMMAND or not interaction.get("token") or not interaction.get("application_id"):
            raise Refused(400, f"interaction type {interaction.get('type')} is not handled (a command needs its token and application_id)")
        opts = discord.command_options(interaction)
        avatars = settings.avatars
        avatar = opts.get("avatar") or next(iter(avatars), None)
        if avatar not in avatars:
            return {"type": 4, "data": {"content": f"Unknown avatar {avatar!r}; choose one of: {', '.join(avatars) or 'none configured'}"}}

        def work():
            options = options_from_form({"text": opts.get("text") or ""}, has_audio=False)
            security.check_text(options.get("text"), config.limits, spoken=True)
            job = Job(tenant=settings.tenant, options=options, name=f"discord_{avatar}",
                      discord={"application_id": interaction["application_id"], "token": interaction["token"]})
            path = Path(avatars[avatar]).expanduser()
            key = f"{job.tenant}/{job.id}/image{path.suffix.lower()}"
            svc.results.put_file(key, path)
            job.inputs = {"image": key}
            svc.store.add(job)
            return job

        try:
            job = await run_in_threadpool(work)
        except (TalkerError, Refused) as err:
            return {"type": 4, "data": {"content": f"Cannot make that video: {err}"}}
        return JSONResponse({"type": discord.DEFERRED_CHANNEL_MESSAGE},
                            background=BackgroundTask(svc.publish, job))

    from talker.service.openapi import document

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi
    return app
