"""Job records, kept in the store next to the broker so that no state lives only in a process.

``open_store(url)`` gives a ``SqlJobStore`` for ``sqlite:///...`` (any SQLAlchemy URL) or a
``RedisJobStore`` for ``redis://...``. Both offer the same few operations, and every change of a
record is one atomic conditional update: a worker finishes a job only while it still holds it, a
cancel wins over a late progress report, a second delivery of the same message cannot run a job
that a live worker holds.

States: queued -> running -> done | failed | cancelled; a running job whose worker stops sending
heartbeats goes back to queued (the controller in ``talker.service.app``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from dataclasses import dataclass, field

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINAL = (DONE, FAILED, CANCELLED)


@dataclass
class Job:
    """One render. Times are Unix seconds; ``fps`` frames per second; ``eta_s`` seconds left;
    ``cold_start_s``: set on the first job a worker pool process renders, seconds from the start
    of its ``talker worker`` node to that first rendered frame.

    name: a label (a batch row's '<row>_<avatar>', used for the file in the batch's zip);
    fingerprint: sha256 hex of the request that made it (fields and files), to tell a retry of
    that request from another request reusing its Idempotency-Key;
    options: MakeOptions fields from the form (validated); inputs: role ('image', 'audio') ->
    key in the results store; video / report: keys of the outputs once done.
    """

    tenant: str
    options: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    batch: str | None = None
    name: str | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None
    state: str = QUEUED
    stage: str | None = None
    frames_done: int = 0
    frames_total: int = 0
    fps: float = 0.0
    eta_s: float | None = None
    error: str | None = None
    webhook: str | None = None
    discord: dict | None = None
    want_report: bool = False
    video: str | None = None
    report: str | None = None
    worker: str | None = None
    attempts: int = 0
    enqueued: bool = False
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    cold_start_s: float | None = None

    def public(self) -> dict:
        """What the API shows the job's tenant."""
        keys = ("id", "name", "state", "stage", "frames_done", "frames_total", "fps", "eta_s", "error", "batch",
                "attempts", "created_at", "started_at", "finished_at", "cold_start_s", "options")
        out = {k: getattr(self, k) for k in keys}
        out["links"] = {
            "self": f"/v1/jobs/{self.id}",
            "video": f"/v1/jobs/{self.id}/video" if self.video else None,
            "report": f"/v1/jobs/{self.id}/report" if self.report else None,
            "live": f"/v1/jobs/{self.id}/live" if self.state in (QUEUED, RUNNING) else None,
        }
        return out

    @property
    def live_key(self) -> str:
        """Where the worker writes the fragmented MP4 that grows while the job renders (a shared
        results folder only), and removes it when the job ends."""
        return f"{self.tenant}/{self.id}/live.mp4"


FIELDS = [f.name for f in dataclasses.fields(Job)]
_JSON_FIELDS = ("options", "inputs", "discord")


def open_store(url: str):
    """The job store at ``url``: redis://... -> RedisJobStore, any other URL -> SqlJobStore."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisJobStore(url)
    return SqlJobStore(url)


class SqlJobStore:
    """Jobs as rows of the table ``talker_jobs`` (SQLite in WAL mode by default)."""

    def __init__(self, url: str):
        import sqlalchemy as sa

        self.sa = sa
        kwargs = {}
        if url.startswith("sqlite"):
            from pathlib import Path

            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 60}
        self.engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        meta = sa.MetaData()
        types = {int: sa.Integer, float: sa.Float, bool: sa.Boolean, str: sa.Text}
        columns = []
        for f in dataclasses.fields(Job):
            base = f.type.split(" |")[0] if isinstance(f.type, str) else f.type
            kind = {"int": int, "float": float, "bool": bool}.get(base, str)
            columns.append(sa.Column(f.name, types[kind], primary_key=f.name == "id"))
        self.table = sa.Table(
            "talker_jobs", meta, *columns,
            sa.UniqueConstraint("tenant", "idempotency_key", name="talker_jobs_idempotency"),
            sa.Index("talker_jobs_state", "state"),
            sa.Index("talker_jobs_tenant_batch", "tenant", "batch"),
        )
        meta.create_all(self.engine)
        with self.engine.begin() as c:  # a table made by an older version lacks the newer fields
            have = {col["name"] for col in sa.inspect(c).get_columns("talker_jobs")}
            for column in columns:
                if column.name not in have:
                    c.execute(sa.text(f'ALTER TABLE talker_jobs ADD COLUMN "{column.name}" {column.type.compile(self.engine.dialect)}'))

    def add(self, job: Job) -> Job:
        """Insert ``job``; with an idempotency key already used by its tenant, return that job instead."""
        row = {k: (json.dumps(v) if k in _JSON_FIELDS and v is not None else v) for k, v in dataclasses.asdict(job).items()}
        try:
            with self.engine.begin() as c:
                c.execute(self.table.insert().values(**row))
            return job
        except self.sa.exc.IntegrityError:
            if job.idempotency_key is None:
                raise
            return self.find(job.tenant, job.idempotency_key)

    def find(self, tenant: str, idempotency_key: str) -> Job | None:
        """The tenant's job made with ``idempotency_key``, or None."""
        t = self.table
        found = self._select((t.c.tenant == tenant) & (t.c.idempotency_key == idempotency_key))
        return found[0] if found else None

    def get(self, job_id: str) -> Job | None:
        found = self._select(self.table.c.id == job_id)
        return found[0] if found else None

    def update(self, job_id: str, only_if: dict | None = None, heartbeat_before: float | None = None, **values) -> bool:
        """Set ``values`` when every ``only_if`` field has one of its allowed values (and the
        heartbeat is older than ``heartbeat_before``); True when the record changed."""
        t = self.table
        cond = t.c.id == job_id
        for name, allowed in (only_if or {}).items():
            cond &= t.c[name].in_(list(allowed))
        if heartbeat_before is not None:
            cond &= t.c.heartbeat_at < heartbeat_before
        values = {k: (json.dumps(v) if k in _JSON_FIELDS and v is not None else v) for k, v in values.items()}
        with self.engine.begin() as c:
            return c.execute(t.update().where(cond).values(**values)).rowcount == 1

    def jobs(self, tenant: str, batch: str | None = None, limit: int = 1000, before: float | None = None) -> list[Job]:
        """A tenant's jobs (of one batch), newest first; only those created before ``before``
        (Unix seconds) when given."""
        t = self.table
        cond = t.c.tenant == tenant
        if batch is not None:
            cond &= t.c.batch == batch
        if before is not None:
            cond &= t.c.created_at < before
        return self._select(cond, limit)

    def active(self) -> list[Job]:
        """All queued and running jobs."""
        return self._select(self.table.c.state.in_([QUEUED, RUNNING]), limit=100_000)

    def finished_before(self, when: float, limit: int = 1000) -> list[Job]:
        """Jobs that ended before ``when`` (Unix seconds), oldest first."""
        t = self.table
        cond = t.c.state.in_(list(FINAL)) & (t.c.finished_at < when)
        with self.engine.connect() as c:
            rows = c.execute(self.sa.select(t).where(cond).order_by(t.c.finished_at).limit(limit)).mappings().all()
        return [_job(dict(r)) for r in rows]

    def delete(self, job: Job) -> None:
        """Forget ``job`` (its record and idempotency key)."""
        with self.engine.begin() as c:
            c.execute(self.table.delete().where(self.table.c.id == job.id))

    def counts(self) -> dict[str, int]:
        """Number of jobs in each state."""
        t = self.table
        with self.engine.connect() as c:
            rows = c.execute(self.sa.select(t.c.state, self.sa.func.count()).group_by(t.c.state)).all()
        return {s: 0 for s in STATES} | {s: n for s, n in rows}

    def _select(self, cond, limit: int = 1000) -> list[Job]:
        t = self.table
        with self.engine.connect() as c:
            rows = c.execute(self.sa.select(t).where(cond).order_by(t.c.created_at.desc()).limit(limit)).mappings().all()
        return [_job(dict(r)) for r in rows]


def _job(row: dict) -> Job:
    for k in _JSON_FIELDS:
        if isinstance(row.get(k), str):
            row[k] = json.loads(row[k])
    return Job(**{k: row.get(k) for k in FIELDS if k in row})


# The conditional update of one Redis hash, atomic on the server. Fields hold JSON text.
# KEYS: job hash, counts hash, active set, finished sorted set (score: Unix seconds). ARGV: id, n conditions, (field, n values, values...)*,
# heartbeat_before ('' for none), then field, value pairs to set.
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local i = 3
for c = 1, tonumber(ARGV[2]) do
  local cur = redis.call('HGET', KEYS[1], ARGV[i]); local n = tonumber(ARGV[i + 1]); local ok = false
  for v = 1, n do if cur == ARGV[i + 1 + v] then ok = true end end
  if not ok then return 0 end
  i = i + 2 + n
end
if ARGV[i] ~= '' then
  local hb = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at'))
  if hb == nil or hb >= tonumber(ARGV[i]) then return 0 end
end
i = i + 1
local old = redis.call('HGET', KEYS[1], 'state')
local final = false
while i < #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'state' and ARGV[i + 1] ~= old then
    local s = cjson.decode(ARGV[i + 1])
    redis.call('HINCRBY', KEYS[2], cjson.decode(old), -1); redis.call('HINCRBY', KEYS[2], s, 1)
    if s == 'done' or s == 'failed' or s == 'cancelled' then redis.call('SREM', KEYS[3], ARGV[1]); final = true
    else redis.call('SADD', KEYS[3], ARGV[1]); redis.call('ZREM', KEYS[4], ARGV[1]) end
  end
  i = i + 2
end
if final then
  local at = tonumber(redis.call('HGET', KEYS[1], 'finished_at')) or tonumber(redis.call('TIME')[1])
  redis.call('ZADD', KEYS[4], at, ARGV[1])
end
return 1
"""


class RedisJobStore:
    """Jobs as Redis hashes ``talker:job:<id>`` (values JSON), with per-tenant and per-batch
    indexes, a set of unfinished jobs and counters by state. Persist Redis (appendonly) so a
    restart keeps them."""

    P = "talker:"

    def __init__(self, url: str):
        import redis

        self.r = redis.Redis.from_url(url, socket_timeout=30, retry_on_timeout=True, health_check_interval=10)
        self._update = self.r.register_script(_UPDATE)

    def add(self, job: Job) -> Job:
        p = self.P
        if job.idempotency_key is not None:
            idem = f"{p}idem:{job.tenant}:{job.idempotency_key}"
            if not self.r.set(idem, job.id, nx=True):
                found = self.get(self.r.get(idem).decode())
                if found is not None:
                    return found
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(f"{p}job:{job.id}", mapping={k: json.dumps(v) for k, v in dataclasses.asdict(job).items()})
        pipe.zadd(f"{p}tenant:{job.tenant}", {job.id: job.created_at})
        if job.batch:
            pipe.zadd(f"{p}batch:{job.tenant}:{job.batch}", {job.id: job.created_at})
        pipe.hincrby(f"{p}counts", job.state, 1)
        pipe.sadd(f"{p}active", job.id)
        pipe.execute()
        return job

    def find(self, tenant: str, idempotency_key: str) -> Job | None:
        job_id = self.r.get(f"{self.P}idem:{tenant}:{idempotency_key}")
        return self.get(job_id.decode()) if job_id else None

    def get(self, job_id: str) -> Job | None:
        raw = self.r.hgetall(f"{self.P}job:{job_id}")
        return _job({k.decode(): json.loads(v) for k, v in raw.items()}) if raw else None

    def update(self, job_id: str, only_if: dict | None = None, heartbeat_before: float | None = None, **values) -> bool:
        args: list = [job_id, len(only_if or {})]
        for name, allowed in (only_if or {}).items():
            args += [name, len(allowed), *map(json.dumps, allowed)]
        args.append("" if heartbeat_before is None else repr(float(heartbeat_before)))
        for k, v in values.items():
            args += [k, json.dumps(v)]
        keys = [f"{self.P}job:{job_id}", f"{self.P}counts", f"{self.P}active", f"{self.P}finished"]
        return self._update(keys=keys, args=args) == 1

    def jobs(self, tenant: str, batch: str | None = None, limit: int = 1000, before: float | None = None) -> list[Job]:
        index = f"{self.P}batch:{tenant}:{batch}" if batch else f"{self.P}tenant:{tenant}"
        top = "+inf" if before is None else f"({before!r}"
        return self._load([i.decode() for i in self.r.zrevrangebyscore(index, top, "-inf", start=0, num=limit)])

    def active(self) -> list[Job]:
        found = self._load([i.decode() for i in self.r.smembers(f"{self.P}active")])
        return sorted(found, key=lambda j: -j.created_at)

    def finished_before(self, when: float, limit: int = 1000) -> list[Job]:
        """Jobs that ended before ``when`` (Unix seconds), oldest first (from the ``finished``
        index, which every finishing update fills)."""
        return self._load([i.decode() for i in self.r.zrangebyscore(f"{self.P}finished", "-inf", f"({when}", 0, limit)])

    def delete(self, job: Job) -> None:
        """Forget ``job``: its record, indexes, idempotency key and its count."""
        p = self.P
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(f"{p}job:{job.id}")
        pipe.zrem(f"{p}tenant:{job.tenant}", job.id)
        if job.batch:
            pipe.zrem(f"{p}batch:{job.tenant}:{job.batch}", job.id)
        if job.idempotency_key is not None:
            pipe.delete(f"{p}idem:{job.tenant}:{job.idempotency_key}")
        pipe.hincrby(f"{p}counts", job.state, -1)
        pipe.srem(f"{p}active", job.id)
        pipe.zrem(f"{p}finished", job.id)
        pipe.execute()

    def _load(self, ids: list[str]) -> list[Job]:
        pipe = self.r.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(f"{self.P}job:{i}")
        return [_job({k.decode(): json.loads(v) for k, v in raw.items()}) for raw in pipe.execute() if raw]

    def counts(self) -> dict[str, int]:
        raw = self.r.hgetall(f"{self.P}counts")
        return {s: 0 for s in STATES} | {k.decode(): int(v) for k, v in raw.items()}
