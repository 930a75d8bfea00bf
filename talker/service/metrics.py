"""``/metrics`` for Prometheus, read from the store and the broker at each scrape (so every API
replica reports the same numbers and none is kept in memory):

    talker_queue_depth            messages waiting in the broker's render queue
    talker_jobs{state=...}        jobs in each state
    talker_render_fps             frames per second being rendered now, summed over running jobs
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def queue_depth(celery_app, queue: str) -> int:
    """Messages waiting in ``queue`` (not counting those a worker holds). The queue is declared
    (as a worker does): Redis forgets an empty list."""
    with celery_app.connection_for_read() as conn:
        return conn.default_channel.queue_declare(queue=queue).message_count


class ServiceCollector:
    def __init__(self, store, celery_app, queue: str):
        self.store, self.celery_app, self.queue = store, celery_app, queue

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
            depth = queue_depth(self.celery_app, self.queue)
        except Exception as err:  # broker down: say so in the log, leave the gauge out
            log.warning("queue depth unavailable: %s", err)
            return
        yield GaugeMetricFamily("talker_queue_depth", "render messages waiting in the broker", value=depth)


def metrics_text(collector: ServiceCollector) -> bytes:
    """The Prometheus text exposition of the service's metrics."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry)
