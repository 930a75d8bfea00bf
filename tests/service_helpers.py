"""Real components for the job-service tests: redis-server, `talker serve` and `talker worker` as
subprocesses, loopback HTTP receivers (webhooks, a fake Discord API), tiny test media.

Every process runs in its own session (process group), so a test can SIGKILL a whole worker node
(the Celery main process and its pool processes) the way a machine dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

import media_factory as mf

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout_s: float, what: str, every_s: float = 0.1):
    """Call ``check`` until it returns something truthy; AssertionError naming ``what`` after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


class RedisServer:
    """Debian's redis-server on a free loopback port, persisting every write (appendonly, fsync
    always) in ``folder`` so that a restart keeps the queue and the job records."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.proc = Path(folder), free_port(), None
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(self._pong, 10, "redis-server to answer")
        return self

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Node:
    """One `talker serve` or `talker worker` subprocess (its own process group), logging to a file."""

    def __init__(self, command: str, args: list, folder: Path, env: dict):
        self.log = Path(folder) / f"{command}-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "talker.cli", command, *map(str, args)],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=REPO,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole node at once: the main process and its pool processes."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM to the main process (Celery's warm shutdown stops its own pool); SIGKILL to the
        group after 15 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class Service:
    """A running job service: config file, one API process, worker nodes; ``client(key)`` talks to it."""

    def __init__(self, folder: Path, broker: str | None, config: dict, results: str | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.results = self.folder / "results"
        self.tmp = self.folder / "worker-tmp"
        self.tmp.mkdir(exist_ok=True)
        self.config_path = self.folder / "service.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {"TALKER_DATA": str(self.folder / "data"), "TMPDIR": str(self.tmp)}
        self.common = ["--results", results or self.results, "--config", self.config_path] + (["--broker", broker] if broker else [])
        self.store_url = broker or f"sqlite:///{self.folder / 'data' / 'queue.sqlite'}"
        self.api = None
        self.workers: list[Node] = []

    def store(self):
        """The job store the service uses, opened from the test (to read what the API does not show)."""
        from talker.service.jobs import open_store

        return open_store(self.store_url)

    def start_api(self) -> "Service":
        self.api = Node("serve", ["--port", self.port, *self.common], self.folder, self.env)
        wait_for(self._healthy, 60, f"talker serve to answer /healthz (log: {self.api.log})", every_s=0.2)
        return self

    def _healthy(self) -> bool:
        if self.api.proc.poll() is not None:
            raise AssertionError(f"talker serve exited:\n{self.api.log_text()[-3000:]}")
        try:
            return httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self, concurrency: int = 1) -> Node:
        node = Node("worker", ["--concurrency", concurrency, *self.common], self.folder, self.env)
        self.workers.append(node)
        wait_for(lambda: "ready." in node.log_text() or node.proc.poll() is not None, 60, "the worker to start")
        assert node.proc.poll() is None, node.log_text()[-3000:]
        return node

    def client(self, key: str | None, **kwargs) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60, **kwargs)

    def stop(self) -> None:
        nodes = [n for n in [*self.workers, self.api] if n is not None and n.proc.poll() is None]
        for node in nodes:  # all at once: their warm shutdowns overlap
            node.proc.terminate()
        for node in nodes:
            node.stop()

    def logs(self) -> str:
        """The tail of every process's log, for assertion messages."""
        return "\n".join(f"--- {n.log.name}\n{n.log_text()[-2500:]}" for n in [self.api, *self.workers] if n)


@contextlib.contextmanager
def running(folder: Path, broker: str | None, config: dict, workers=(1,), results: str | None = None):
    """A Service with its API and one worker node per entry of ``workers`` (its concurrency), stopped at the end."""
    svc = Service(folder, broker, config, results)
    try:
        svc.start_api()
        for concurrency in workers:
            svc.start_worker(concurrency)
        yield svc
    finally:
        svc.stop()


def submit(client: httpx.Client, image: Path, audio: Path | None = None, headers: dict | None = None, **fields) -> httpx.Response:
    """POST /v1/jobs with the files and form fields."""
    files = {"image": (image.name, image.read_bytes())}
    if audio is not None:
        files["audio"] = (audio.name, audio.read_bytes())
    return client.post("/v1/jobs", files=files, data={k: str(v) for k, v in fields.items()}, headers=headers or {})


def wait_job(client: httpx.Client, job_id: str, states=("done", "failed", "cancelled"), timeout_s: float = 60) -> dict:
    def check():
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in states else None

    return wait_for(check, timeout_s, f"job {job_id} to reach {'/'.join(states)}", every_s=0.2)


def check_mp4(path: Path) -> dict:
    """ffmpeg's view of an MP4 that must hold H.264 video and AAC audio; returns probe_media's facts."""
    from talker.media import probe_media

    facts = probe_media(path)
    assert facts["video"] is not None and facts["video"]["codec"] == "h264", facts
    assert facts["audio"] is not None and facts["audio"]["codec"] == "aac", facts
    return facts


def tiny_media(folder: Path) -> tuple[Path, Path]:
    """(portrait JPEG 320 x 320 with a face, 0.6 s of espeak-ng speech): a job of ~16 frames."""
    from PIL import Image

    folder = Path(folder)
    image, audio = folder / "face.jpg", folder / "map.wav"
    Image.fromarray(mf.astronaut()).crop((96, 0, 416, 320)).save(image, quality=85)
    mf.espeak_speech("map", audio)
    return image, audio


def long_speech(folder: Path, seconds_hint: str = "long") -> Path:
    """About 14 s of espeak-ng speech (~350 frames, a few seconds of rendering)."""
    wav = Path(folder) / f"{seconds_hint}.wav"
    mf.espeak_speech(
        "Welcome to our spring product update. Today we will talk about maps, prices and big plans. "
        "Our team built a better mobile app for busy people. We promise to listen and to help you move faster.",
        wav,
    )
    return wav


class Receiver:
    """A loopback HTTP server that records each POST (path, headers, body) and answers, after
    ``delay_s`` seconds, with the next status of ``statuses`` (the last one repeats)."""

    def __init__(self, statuses=(200,), delay_s: float = 0.0):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": body, "at": time.time()})
                status = outer.statuses[min(len(outer.requests) - 1, len(outer.statuses) - 1)]
                time.sleep(delay_s)
                payload = json.dumps({"ok": status < 300}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def post_streaming(port: int, path: str, headers: dict, total_bytes: int, preamble: bytes = b"",
                   declare: bool = False, chunk: int = 1 << 16, timeout_s: float = 20) -> tuple[int | None, int]:
    """POST a body of ``preamble`` then zeros, ``total_bytes`` in all, over a raw socket (chunked,
    or with ``declare`` as a Content-Length), and stop sending as soon as the server answers,
    closes, or stops reading for ``timeout_s``. Returns (the HTTP status, or None without an
    answer; the body bytes sent)."""
    framing = f"Content-Length: {total_bytes}" if declare else "Transfer-Encoding: chunked"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{framing}\r\n{head}\r\n".encode())
        sent, block = 0, preamble + bytes(chunk)
        while sent < total_bytes and not select.select([s], [], [], 0.01 if not sent else 0)[0]:
            try:
                s.sendall(block if declare else b"%x\r\n%s\r\n" % (len(block), block))
            except OSError:
                break
            sent, block = sent + len(block), bytes(chunk)
        else:
            if sent >= total_bytes and not declare:
                s.sendall(b"0\r\n\r\n")
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
                more = s.recv(4096)
                if not more:
                    break
                answer += more
        except OSError:
            if not answer:
                return None, sent
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/") else None
    return (int(status) if status else None), sent


def _length(head: bytes) -> int:
    """The Content-Length of an HTTP answer's head (0 when absent)."""
    for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def peak_rss_mb(pid: int) -> float:
    """The most resident memory process ``pid`` has held (VmHWM), in MB."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
