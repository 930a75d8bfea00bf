"""Job service speed on this machine: throughput, queue overhead and worker cold start (run by hand, never in CI).

    python benchmarks/service.py                       # SQLite default broker and Redis, 6 jobs a run
    python benchmarks/service.py --brokers redis --jobs 8

Every job is a 5 s clip (Festival speech, astronaut portrait, embedded backend, 256 crop), sent
through the real API (`talker serve`, multipart upload) to real workers (`talker worker`, one
Celery process each, --concurrency 1), all as subprocesses on this machine. Measured per broker:

- cold start: a job waits in the queue, then `talker worker` is started; seconds from starting the
  process to the job's first rendered frame (the store's frames_done > 0, polled every 20 ms);
  also the worker's own figure (its pool process's start to first frame, Job.cold_start_s);
- queue overhead: one job at a time to a warm, idle worker; submit (Job.created_at, set when the
  API accepts the request) to start (Job.started_at, set when a worker claims it), in ms;
- throughput: N jobs submitted at once to 1 worker, then to 2 workers; jobs per minute from the
  first submission to the last job's end.

Baseline of the same run: the same N jobs rendered one after another with ``talker.pipeline.make``
in this process (after one untimed job, as the workers are warm), jobs per minute, measured before,
between and after the brokers' runs; a broker's ratios use the two baselines around it. Raw results go
to benchmarks/out/service_cpu.json. Other programs using the CPU slow every figure: the load
average is recorded before and after each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

# The repository root replaces this folder on the path: benchmarks/enhance.py and renderer.py must
# not shadow the packages of the same names.
ROOT = Path(__file__).resolve().parents[1]
sys.path[0:1] = [str(ROOT), str(ROOT / "tests")]

import media_factory as mf  # noqa: E402

SPEECH = "Welcome to our spring update. Today we talk about maps, prices and big plans for you."
CLIP_S = 5.0
OPTIONS = {"backend": "embedded", "size": "256", "preprocess": "crop"}
KEY = "benchmark-key"
POLL_S = 0.02


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """The astronaut PNG and exactly CLIP_S seconds of Festival speech (trimmed or padded with silence)."""
    image = mf.save_png(mf.astronaut(), folder / "astronaut.png")
    wav = folder / "speech.wav"
    mf.festival_speech(SPEECH, wav)
    data, sr = sf.read(wav, dtype="float32")
    n = int(CLIP_S * sr)
    data = np.concatenate([data, np.zeros(max(0, n - len(data)), np.float32)])[:n]
    sf.write(wav, data, sr)
    return image, wav


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> float:
    return round(os.getloadavg()[0], 2)


class Service:
    """`talker serve` plus any number of `talker worker` processes on one broker, in a temp folder."""

    def __init__(self, folder: Path, broker: str):
        from talker.service.config import load_config
        from talker.service.jobs import open_store

        self.folder = folder
        config = folder / "service.yaml"
        config.write_text(json.dumps({"tenants": {"bench": {"key": KEY}}}))
        self.args = ["--broker", broker, "--results", str(folder / "results"), "--config", str(config)]
        self.env = {**os.environ, "TALKER_DATA": str(folder / "data")}
        self.store = open_store(load_config(config, broker=broker).store_url)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.api = self._start("serve", "--host", "127.0.0.1", "--port", str(self.port))
        self._wait_healthy()

    def _start(self, *argv: str) -> subprocess.Popen:
        log = open(self.folder / f"{argv[0]}-{len(self.procs)}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "talker.cli", *argv, *self.args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def _wait_healthy(self, timeout_s: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.api.poll() is None, "talker serve exited; see its log in " + str(self.folder)
            time.sleep(0.1)
        raise TimeoutError("talker serve did not answer /healthz")

    def start_worker(self) -> tuple[subprocess.Popen, float]:
        """A new `talker worker` process and the time.time() just before it was started."""
        t0 = time.time()
        return self._start("worker", "--concurrency", "1"), t0

    def submit(self, image: Path, wav: Path, seed: int) -> str:
        import httpx

        with open(image, "rb") as im, open(wav, "rb") as au:
            reply = httpx.post(f"{self.url}/v1/jobs", headers={"Authorization": f"Bearer {KEY}"},
                               data={**OPTIONS, "seed": str(seed)},
                               files={"image": ("face.png", im, "image/png"), "audio": ("speech.wav", au, "audio/wav")},
                               timeout=60)
        assert reply.status_code == 202, reply.text
        return reply.json()["id"]

    def wait(self, ids: list[str], timeout_s: float = 600):
        """The jobs once all have ended; raises if one did not end done."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            jobs = [self.store.get(i) for i in ids]
            if all(j.state in ("done", "failed", "cancelled") for j in jobs):
                bad = [j for j in jobs if j.state != "done"]
                assert not bad, f"job {bad[0].id} ended {bad[0].state}: {bad[0].error}"
                return jobs
            time.sleep(0.05)
        raise TimeoutError(f"jobs not done after {timeout_s} s")

    def first_frame(self, job_id: str, timeout_s: float = 300) -> float:
        """time.time() at which the job's first rendered frames were first seen in the store."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.store.get(job_id).frames_done > 0:
                return time.time()
            time.sleep(POLL_S)
        raise TimeoutError("no frame rendered")

    def close(self) -> None:
        """SIGTERM to each process group this object started (workers first), then SIGKILL after 30 s."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def throughput(jobs) -> float:
    """Jobs per minute from the first submission to the last end."""
    span = max(j.finished_at for j in jobs) - min(j.created_at for j in jobs)
    return round(len(jobs) / span * 60, 2)


def bench_broker(name: str, broker: str, folder: Path, image: Path, wav: Path, n_jobs: int, n_overhead: int) -> dict:
    out: dict = {"broker": name, "load_before": load()}
    svc = Service(folder, broker)
    try:
        # 1. Cold start: the job is queued before the worker process exists.
        job_id = svc.submit(image, wav, seed=0)
        _, t0 = svc.start_worker()
        seen = svc.first_frame(job_id)
        (job,) = svc.wait([job_id])
        out["cold_start_s"] = round(seen - t0, 3)
        out["cold_start_pool_process_s"] = round(job.cold_start_s, 3) if job.cold_start_s else None
        out["cold_start_job_s"] = round(job.finished_at - t0, 3)

        # 2. Queue overhead: one job at a time to the warm, idle worker.
        overhead = []
        for i in range(n_overhead):
            (job,) = svc.wait([svc.submit(image, wav, seed=100 + i)])
            overhead.append((job.started_at - job.created_at) * 1000)
        out["queue_overhead_ms"] = {"median": round(statistics.median(overhead), 1),
                                    "min": round(min(overhead), 1), "max": round(max(overhead), 1),
                                    "all": [round(x, 1) for x in overhead]}

        # 3. Throughput with 1 worker, then 2.
        for workers in (1, 2):
            if workers == 2:
                svc.start_worker()
                svc.wait([svc.submit(image, wav, seed=200 + i) for i in range(2)])  # both warm
            load_before = load()
            ids = [svc.submit(image, wav, seed=300 + 10 * workers + i) for i in range(n_jobs)]
            jobs = svc.wait(ids)
            out[f"workers_{workers}"] = {
                "jobs": n_jobs, "jobs_per_min": throughput(jobs),
                "seconds": round(max(j.finished_at for j in jobs) - min(j.created_at for j in jobs), 2),
                "render_s_median": round(statistics.median(j.finished_at - j.started_at for j in jobs), 2),
                "by_worker": {w: sum(1 for j in jobs if j.worker.split(":")[1] == w) for w in {j.worker.split(":")[1] for j in jobs}},
                "load_before": load_before, "load_after": load(),
            }
    finally:
        svc.close()
    out["load_after"] = load()
    return out


def bench_in_process(image: Path, wav: Path, folder: Path, n_jobs: int) -> dict:
    """The same jobs with talker.pipeline.make in this process, one after another (one untimed first)."""
    from talker.options import MakeOptions
    from talker.pipeline import make

    def one(seed: int) -> float:
        t = time.perf_counter()
        make(MakeOptions(image=image, audio=wav, out=folder / f"make_{seed}.mp4", force=True, backend="embedded",
                         size=256, preprocess="crop", seed=seed))
        return time.perf_counter() - t

    load_before = load()
    first = one(0)
    times = [one(1 + i) for i in range(n_jobs)]
    return {"jobs": n_jobs, "jobs_per_min": round(n_jobs / sum(times) * 60, 2), "first_job_s": round(first, 2),
            "job_s_median": round(statistics.median(times), 2), "load_before": load_before, "load_after": load()}


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError("redis-server did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brokers", nargs="+", choices=("sqlite", "redis"), default=["sqlite", "redis"])
    ap.add_argument("--jobs", type=int, default=6, help="jobs per throughput run (and in-process baseline)")
    ap.add_argument("--overhead-jobs", type=int, default=5, help="jobs, one at a time, for the queue overhead")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "service_cpu.json")
    args = ap.parse_args()

    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "clip_s": CLIP_S, "options": OPTIONS, "runs": []}
    with tempfile.TemporaryDirectory(prefix="talker-bench-service-") as tmp:
        tmp = Path(tmp)
        image, wav = make_inputs(tmp)
        # The baseline runs before, between and after the brokers' runs: each broker's ratios use
        # the mean of the two that bracket it, measured under much the same load.
        result["in_process"] = [bench_in_process(image, wav, tmp, args.jobs)]
        print("in-process make:", result["in_process"][-1], flush=True)
        for name in args.brokers:
            folder = tmp / name
            folder.mkdir()
            redis = None
            if name == "redis":
                redis, broker = start_redis(folder)
            else:
                broker = f"sqla+sqlite:///{folder / 'queue.sqlite'}"
            try:
                run = bench_broker(name, broker, folder, image, wav, args.jobs, args.overhead_jobs)
            finally:
                if redis is not None:
                    redis.terminate()
                    redis.wait()
            result["in_process"].append(bench_in_process(image, wav, tmp, args.jobs))
            print("in-process make:", result["in_process"][-1], flush=True)
            baseline = statistics.mean(b["jobs_per_min"] for b in result["in_process"][-2:])
            run["in_process_jobs_per_min"] = round(baseline, 2)
            for w in (1, 2):
                run[f"workers_{w}"]["vs_in_process"] = round(run[f"workers_{w}"]["jobs_per_min"] / baseline, 2)
            result["runs"].append(run)
            print(json.dumps(run), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
