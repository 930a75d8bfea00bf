"""The job service under attack and faults, on its single-machine default (SQLite queue and store),
with a real `talker serve` and a real Celery `talker worker` as subprocesses: a /metrics flood,
inputs whose length lies or that cannot make a video, a worker that keeps dying, a heartbeat
next to a render that holds the interpreter lock.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
import time
import zlib

import httpx
import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf
from nacl.signing import SigningKey
from PIL import Image

import service_helpers as sh

KEY = "key-faults-0123456789"
AUDIO_LIMIT_S = 30


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults-media")
    image, audio = sh.tiny_media(folder)
    return {"image": image, "audio": audio, "long": sh.long_speech(folder), "folder": folder}


@pytest.fixture(scope="module")
def discord_key():
    return SigningKey.generate()


@pytest.fixture(scope="module")
def fake_discord():
    fake = sh.Receiver(statuses=(200,))
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory, media, discord_key, fake_discord):
    config = {
        "tenants": {"acme": {"key": KEY, "webhook_secret": "faults-secret", "allow_private_webhooks": True}},
        "webhooks": {"retries": 1, "backoff_s": 0.2, "timeout_s": 30},
        "limits": {"upload_bytes": 3_000_000, "batch_bytes": 10_000_000, "image_pixels": 1_000_000,
                   "audio_seconds": AUDIO_LIMIT_S},
        "worker": {"heartbeat_s": 0.5, "stale_s": 3, "reap_interval_s": 1, "max_attempts": 1},
        "discord": {"public_key": discord_key.verify_key.encode().hex(), "tenant": "acme",
                    "api_base": fake_discord.url + "/api/v10", "avatars": {"anna": str(media["image"])}},
    }
    with sh.running(tmp_path_factory.mktemp("service-faults"), None, config) as svc:
        yield svc


@pytest.fixture()
def acme(service):
    with service.client(KEY) as c:
        yield c


def test_a_metrics_flood_leaves_submissions_working(service, media):
    """40 concurrent keep-alive scrapes, 3 rounds, the connections left open; then a submission is
    accepted in under a second and its job runs."""
    image, audio = media["image"].read_bytes(), media["audio"].read_bytes()

    async def flood_then_submit():
        limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
        async with httpx.AsyncClient(base_url=service.base, limits=limits, timeout=60) as scraper, \
                httpx.AsyncClient(base_url=service.base, headers={"authorization": f"Bearer {KEY}"}, timeout=60) as client:
            for _ in range(3):
                answers = await asyncio.gather(*(scraper.get("/metrics") for _ in range(40)))
                assert [a.status_code for a in answers] == [200] * 40
                assert all(b"talker_queue_depth" in a.content for a in answers)
            start = time.perf_counter()
            r = await client.post("/v1/jobs", files={"image": ("face.jpg", image), "audio": ("map.wav", audio)})
            return r, time.perf_counter() - start

    r, took = asyncio.run(flood_then_submit())
    assert r.status_code == 202, r.text
    assert took < 1.0, f"the submission took {took:.1f} s after the flood"
    with service.client(KEY) as c:
        assert sh.wait_job(c, r.json()["id"], timeout_s=90)["state"] == "done", service.logs()
    print(f"submission after the flood accepted in {took * 1000:.0f} ms")


def lying_mp3(path, seconds: float, claimed_frames: int = 100):
    """An MP3 of ``seconds`` of tone whose Xing header claims ``claimed_frames`` frames (~2.6 s)."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"sine=frequency=300:duration={seconds}", "-ac", "1", "-ar", "22050", "-c:a", "libmp3lame",
                    "-b:a", "32k", str(path)], check=True)
    data = bytearray(path.read_bytes())
    at = max(data.find(b"Xing"), data.find(b"Info"))
    assert at > 0 and struct.unpack(">I", data[at + 4:at + 8])[0] & 1, "no Xing frame count to change"
    data[at:at + 4] = b"Xing"
    data[at + 8:at + 12] = struct.pack(">I", claimed_frames)
    path.write_bytes(bytes(data))
    return path


def png_header_only(path, width: int, height: int):
    """A PNG that declares ``width`` x ``height`` pixels and holds none."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))  # noqa: E731
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_lengths_are_measured_not_read_from_headers(service, acme, media, tmp_path):
    """A 60 s MP3 whose header says 2.6 s, and text that takes longer to speak than the audio
    limit, are refused before a job exists."""
    from talker.media import probe_media

    mp3 = lying_mp3(tmp_path / "liar.mp3", 60)
    assert probe_media(mp3)["duration_s"] < 3  # what the header claims
    r = sh.submit(acme, media["image"], mp3)
    assert r.status_code == 413, r.text
    assert f"lasts at least {AUDIO_LIMIT_S + 1} s, over the {AUDIO_LIMIT_S} s audio limit" in r.json()["error"]

    text = "We promise to listen, and we promise to help you move faster. " * 12  # ~750 characters, ~45 s
    r = sh.submit(acme, media["image"], text=text)
    assert r.status_code == 413, r.text
    assert "takes" in r.json()["error"] and f"to speak, over the {AUDIO_LIMIT_S} s audio limit" in r.json()["error"]
    assert sh.submit(acme, media["image"], text="Hello there.").status_code == 202
    assert not [j for j in acme.get("/v1/jobs").json()["jobs"] if len(j["options"].get("text") or "") > 100]


def test_inputs_that_cannot_make_a_video_are_refused_before_202(service, acme, media, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000 * 2, np.float32), 16000)
    r = sh.submit(acme, media["image"], silent)
    assert r.status_code == 422 and "only silence" in r.json()["error"], r.text

    short = tmp_path / "short.wav"
    sf.write(short, np.random.default_rng(0).normal(0, 0.1, 1600).astype(np.float32), 16000)
    r = sh.submit(acme, media["image"], short)
    assert r.status_code == 422 and "0.10 s long" in r.json()["error"], r.text

    noisy = tmp_path / "noisy.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (400, 400, 3), np.uint8)).save(noisy)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(noisy.read_bytes()[: noisy.stat().st_size // 2])
    r = sh.submit(acme, truncated, media["audio"])
    assert r.status_code == 415 and "truncated or damaged" in r.json()["error"], r.text

    huge = png_header_only(tmp_path / "huge.png", 30000, 30000)
    r = sh.submit(acme, huge, media["audio"])
    assert r.status_code == 413 and "megapixel limit" in r.json()["error"], r.text


def test_bodies_are_cut_at_the_limit_while_they_stream(service):
    """A 300 MB unsigned Discord body, a chunked 60 MB upload and a batch declaring 5 GB are
    answered 413 after at most the limit (plus what the sockets buffer) was sent, and the API's
    memory does not grow with them."""
    before = sh.peak_rss_mb(service.api.pid)
    status, discord_sent = sh.post_streaming(service.port, "/v1/discord/interactions",
                                             {"content-type": "application/json"}, 300_000_000)
    assert status == 413 and discord_sent < 20_000_000, (status, discord_sent)

    boundary = "talkerboundary"
    preamble = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="face.png"\r\n'
                "Content-Type: image/png\r\n\r\n").encode()
    headers = {"authorization": f"Bearer {KEY}", "content-type": f"multipart/form-data; boundary={boundary}"}
    status, sent = sh.post_streaming(service.port, "/v1/jobs", headers, 60_000_000, preamble)
    assert status == 413 and sent < 7_000_000 + 13_000_000, (status, sent)

    status, sent_batch = sh.post_streaming(service.port, "/v1/batches", headers, 5 * 10**9, preamble, declare=True)
    assert status == 413 and sent_batch < 20_000_000, (status, sent_batch)
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as s:  # declared, nothing sent: refused at once
        s.sendall(f"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Length: {5 * 10**9}\r\n"
                  f"Authorization: Bearer {KEY}\r\n\r\n".encode())
        answer = b""
        while b"limit" not in answer and (more := s.recv(4096)):
            answer += more
    assert answer.startswith(b"HTTP/1.1 413") and b"10 MB limit" in answer, answer
    grew = sh.peak_rss_mb(service.api.pid) - before
    assert grew < 40, f"the API grew by {grew:.0f} MB"
    print(f"413 after {discord_sent / 1e6:.1f} MB of a Discord body, {sent / 1e6:.1f} MB of an upload, "
          f"{sent_batch / 1e6:.1f} MB of a batch; API peak memory grew {grew:.0f} MB")


def _discord(service, key, payload: dict, timestamp: float | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    stamp = str(int(time.time() if timestamp is None else timestamp))
    signature = key.sign(stamp.encode() + body).signature.hex()
    return httpx.post(f"{service.base}/v1/discord/interactions", content=body, timeout=10,
                      headers={"x-signature-ed25519": signature, "x-signature-timestamp": stamp,
                               "content-type": "application/json"})


def test_discord_refuses_old_and_replayed_requests(service, discord_key):
    ping = {"id": f"ping-{time.time_ns()}", "type": 1}
    a_year_ago = _discord(service, discord_key, ping, timestamp=time.time() - 365 * 86400)
    assert a_year_ago.status_code == 401 and "5 minutes" in a_year_ago.json()["error"]
    assert _discord(service, discord_key, ping).json() == {"type": 1}
    again = _discord(service, discord_key, ping)
    assert again.status_code == 409 and "already handled" in again.json()["error"]


def test_job_errors_show_no_server_paths(service, acme, media):
    """A job that needs the face enhancer's weights, which this machine lacks, fails with the
    model loader's message, without the models folder's path on the server."""
    import re

    from enhance.gfpgan_files import find_gfpgan
    from talker.models.store import open_store

    store = open_store()
    if any(find_gfpgan(f) for f in [store.root, *store.folders("gfpgan/weights"), *store.folders("checkpoints")]):
        pytest.skip("the GFPGAN weights are installed here, so the job would not fail")
    job = sh.wait_job(acme, sh.submit(acme, media["image"], media["audio"], enhancer="gfpgan").json()["id"], timeout_s=90)
    assert job["state"] == "failed" and "GFPGANv1.4.pth" in job["error"], job
    assert str(store.root) not in job["error"] and not re.search(r"(^|[\s(])/\w", job["error"]), job["error"]


def test_discord_tokens_stay_out_of_the_logs(service, discord_key, fake_discord):
    token = f"secret-token-{time.time_ns()}"
    command = {"id": f"cmd-{time.time_ns()}", "type": 2, "application_id": "app9", "token": token,
               "data": {"name": "talk", "options": [{"name": "text", "value": "Hello there."}]}}
    assert _discord(service, discord_key, command).json() == {"type": 5}
    sh.wait_for(lambda: [q for q in fake_discord.requests if token in q["path"]], 90, "the follow-up")
    time.sleep(0.5)
    assert token not in service.logs() and all(token not in n.log_text() for n in service.workers)


def test_a_slow_webhook_receiver_holds_no_render_process(service, acme, media):
    """One render process; job A's receiver takes 12 s to answer 500 (so it is tried twice). Job B,
    submitted as A ends, is rendered meanwhile; both deliveries carry A's one event id."""
    slow = sh.Receiver(statuses=(500, 200), delay_s=12)
    try:
        a = sh.submit(acme, media["image"], media["audio"], webhook=slow.url + "/hook").json()["id"]
        assert sh.wait_job(acme, a, timeout_s=90)["state"] == "done"
        sh.wait_for(lambda: slow.requests, 10, "the first delivery to start")
        b = sh.submit(acme, media["image"], media["audio"]).json()["id"]
        job_b = sh.wait_job(acme, b, timeout_s=90)
        waited = job_b["started_at"] - job_b["created_at"]
        assert job_b["state"] == "done" and waited < 6, f"job B waited {waited:.1f} s for a render process"
        sh.wait_for(lambda: len(slow.requests) >= 2, 40, "the retried delivery")
        ids = {r["headers"]["x-talker-event-id"] for r in slow.requests}
        assert ids == {f"{a}.job.done"}, ids
    finally:
        slow.close()
    print(f"job B started {waited:.1f} s after it was submitted, during a 12 s webhook delivery")


def test_a_heartbeat_survives_a_render_that_holds_the_interpreter_lock(tmp_path):
    """The heartbeat keeps being written while this process holds the GIL for 4 s (a switch
    interval of 60 s lets no other thread of this process run, as a long C call does)."""
    from talker.service.jobs import RUNNING, Job, open_store
    from talker.service.tasks import Claim

    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    store = open_store(url)
    job = store.add(Job(tenant="t", state=RUNNING, worker="me", heartbeat_at=time.time()))
    with Claim(store, url, job.id, "me", heartbeat_s=0.3):
        time.sleep(1.0)  # the heartbeat process starts
        before = store.get(job.id).heartbeat_at
        held_from = time.time()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(60)
        try:
            while time.time() - held_from < 4.0:
                pass
        finally:
            sys.setswitchinterval(interval)
        during = store.get(job.id).heartbeat_at
    assert during > before and during > held_from + 3.0, (before, held_from, during)
    last = store.get(job.id).heartbeat_at
    time.sleep(1.0)
    assert store.get(job.id).heartbeat_at == last, "the heartbeat went on after the claim ended"


def test_a_job_whose_worker_keeps_dying_fails_with_the_reason(service, acme, media):
    """worker.max_attempts is 1 here: the render's node is killed once, and the job fails, naming
    why, instead of being queued again for ever; a new worker then runs other jobs."""
    job_id = sh.submit(acme, media["image"], media["long"], size=512, preprocess="full").json()["id"]
    sh.wait_for(lambda: acme.get(f"/v1/jobs/{job_id}").json()["frames_done"] > 0, 90, "the render to start")
    for node in service.workers:
        node.kill()
    job = sh.wait_job(acme, job_id, timeout_s=30)
    assert job["state"] == "failed" and job["attempts"] == 1, job
    assert "gave up after 1 attempt (worker.max_attempts is 1): the worker stopped each time" in job["error"]
    left = list(service.tmp.glob("talker-job-*"))
    assert left, "the killed render left no temporary folder: nothing to show"
    service.start_worker()
    assert not any(p.exists() for p in left), "the new worker did not delete the killed one's temporary folder"
    time.sleep(3)
    assert acme.get(f"/v1/jobs/{job_id}").json()["state"] == "failed"
    other = sh.submit(acme, media["image"], media["audio"]).json()["id"]
    assert sh.wait_job(acme, other, timeout_s=90)["state"] == "done"
