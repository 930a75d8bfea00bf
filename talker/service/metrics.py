"""``/metrics`` for Prometheus, read from the store and the broker (so every API replica reports the
same numbers and none is kept only in memory):

    talker_queue_depth            messages waiting in the broker's render queue
    talker_jobs{state=...}        jobs in each state
    talker_render_fps             frames per second being rendered now, summed over running jobs

A scrape never touches the connections that publish jobs: the queue depth is read on a connection
of its own (``QueueDepth``), and the whole text is made at most once per ``max_age_s`` however many
scrapers ask at once (``MetricsCache``), so a flood of ``GET /metrics`` costs one read a second and
cannot hold the connections a submission needs.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class QueueDepth:
    """Messages waiting in ``queue`` of the broker at ``broker_url`` (not counting those a worker
    holds), read on a connection of its own: its own SQLAlchemy engine (one connection, for kombu's
    ``sqla+`` transport), its own Redis client (Redis keeps the queue as lists, one per priority), or
    for another broker a kombu connection opened for each read."""

    def __init__(self, broker_url: str, queue: str):
        self.queue = queue
        if broker_url.startswith("sqla+"):
            import sqlalchemy as sa

            self.sa = sa
            sqlite = {"timeout": 5, "check_same_thread": False} if "sqlite" in broker_url else {}
            self.engine = sa.create_engine(broker_url[len("sqla+"):], poolclass=sa.pool.StaticPool, connect_args=sqlite)
            self.read = self._sql
        elif broker_url.startswith(("redis://", "rediss://")):
            import redis

            self.redis = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)
            self.read = self._redis
        else:
            self.url = broker_url
            self.read = self._kombu

    def _sql(self) -> int:
        sql = ("SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON m.queue_id = q.id "
               "WHERE q.name = :queue AND m.visible")
        try:
            with self.engine.connect() as c:
                return int(c.execute(self.sa.text(sql), {"queue": self.queue}).scalar() or 0)
        except self.sa.exc.OperationalError as err:
            if "no such table" in str(err):  # nothing published yet
                return 0
            raise

    def _redis(self) -> int:
        from kombu.transport.redis import PRIORITY_STEPS, Channel

        keys = [self.queue] + [f"{self.queue}{Channel.sep}{p}" for p in PRIORITY_STEPS if p]
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        return sum(pipe.execute())

    def _kombu(self) -> int:
        """Any other broker: a connection opened for this read and closed after it."""
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as conn:
            return conn.default_channel.queue_declare(queue=self.queue, passive=True).message_count


class ServiceCollector:
    def __init__(self, store, depth: QueueDepth):
        self.store, self.depth = store, depth

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        jobs = GaugeMetricFamily("talker_jobs", "jobs in each state", labels=["state"])
        for state, n in self.store.counts().items():
            jobs.add_metric([state], n)
        yield jobs
        running = [j for j in self.store.active() if j.state == "running"]
        yield GaugeMetricFamily("talker_render_fps", "frames per second rendered now, over all running jobs",
                                value=sum(j.fps or 0.0 for j in running))
        try:
            depth = self.depth.read()
        except Exception as err:  # broker down: say so in the log, leave the gauge out
            log.warning("queue depth unavailable: %s", err)
            return
        yield GaugeMetricFamily("talker_queue_depth", "render messages waiting in the broker", value=depth)


class MetricsCache:
    """The Prometheus text of ``collector``, made again only when older than ``max_age_s`` seconds,
    by one caller at a time; callers that come while it is being made get the previous text."""

    def __init__(self, collector: ServiceCollector, max_age_s: float = 1.0):
        self.collector, self.max_age_s = collector, max_age_s
        self._lock = threading.Lock()
        self._text: bytes | None = None
        self._made_at = 0.0

    def text(self) -> bytes:
        if self._text is not None and time.monotonic() - self._made_at < self.max_age_s:
            return self._text
        if not self._lock.acquire(blocking=self._text is None):
            return self._text  # another caller is making it now
        try:
            if self._text is None or time.monotonic() - self._made_at >= self.max_age_s:
                self._text, self._made_at = metrics_text(self.collector), time.monotonic()
            return self._text
        finally:
            self._lock.release()


def metrics_text(collector: ServiceCollector) -> bytes:
    """The Prometheus text exposition of the service's metrics."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry)
