"""The job service scaled out on Redis (Debian's redis-server, started here on a free port): one
API, two worker nodes. 200 concurrent submissions, a broker restart in the middle of a batch, a
worker node killed with SIGKILL in the middle of a render.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
import zipfile

import httpx
import pytest

import service_helpers as sh

KEY = "key-redis-tenant-42"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("redis-media")
    image, audio = sh.tiny_media(folder)
    return {"image": image, "audio": audio, "long": sh.long_speech(folder)}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = sh.RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory, redis_server):
    config = {"tenants": {"team": {"key": KEY}},
              "worker": {"heartbeat_s": 0.5, "stale_s": 3, "reap_interval_s": 1, "visibility_timeout_s": 30}}
    with sh.running(tmp_path_factory.mktemp("service-redis"), redis_server.url, config, workers=(2, 1)) as svc:
        yield svc


@pytest.fixture()
def client(service):
    with service.client(KEY) as c:
        yield c


def test_200_concurrent_submissions_all_finish_once(service, client, media):
    image, audio = media["image"].read_bytes(), media["audio"].read_bytes()

    async def submit_all():
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=service.base, headers={"authorization": f"Bearer {KEY}"},
                                     timeout=120, limits=limits) as c:
            async def one(n):
                files = {"image": ("face.jpg", image), "audio": ("map.wav", audio)}
                return await c.post("/v1/jobs", files=files, data={"seed": str(n)})

            return await asyncio.gather(*(one(n) for n in range(200)))

    start = time.perf_counter()
    answers = asyncio.run(submit_all())
    assert [r.status_code for r in answers] == [202] * 200
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 200
    submitted = time.perf_counter() - start

    def all_done():
        jobs = [j for j in client.get("/v1/jobs", params={"limit": 1000}).json()["jobs"] if j["id"] in ids]
        return jobs if all(j["state"] in ("done", "failed", "cancelled") for j in jobs) else None

    jobs = sh.wait_for(all_done, 300, "200 jobs to finish", every_s=1)
    elapsed = time.perf_counter() - start
    assert len(jobs) == 200 and {j["state"] for j in jobs} == {"done"}, service.logs()
    assert {j["attempts"] for j in jobs} == {1}, "a job ran twice"
    videos = sorted(service.results.glob("team/*/video.mp4"))
    assert len(videos) == 200 and {v.parent.name for v in videos} == ids
    for v in videos[:: 50]:
        sh.check_mp4(v)
    assert {j["options"]["seed"] for j in jobs} == set(range(200))
    metrics = httpx.get(f"{service.base}/metrics").text
    assert 'talker_jobs{state="done"} 200.0' in metrics and "talker_queue_depth 0.0" in metrics
    print(f"200 jobs submitted in {submitted:.1f} s, all rendered after {elapsed:.1f} s ({200 / elapsed * 60:.0f} jobs/min)")


def test_broker_restart_mid_batch_and_the_batch_completes(service, client, media, redis_server):
    rows = "\n".join(json.dumps({"audio": "map.wav", "seed": n}) for n in range(20))
    files = [("manifest", ("batch.jsonl", rows.encode())), ("files", ("face.jpg", media["image"].read_bytes())),
             ("files", ("map.wav", media["audio"].read_bytes()))]
    batch = client.post("/v1/batches", files=files).json()
    assert len(batch["jobs"]) == 20
    status = lambda: client.get(f"/v1/batches/{batch['id']}").json()  # noqa: E731
    sh.wait_for(lambda: status()["counts"].get("done", 0) >= 1, 60, "the first job of the batch")
    before = status()
    assert not before["finished"], "the batch ended before the broker could be restarted; make it longer"
    redis_server.stop()
    time.sleep(1.0)
    redis_server.start()
    after = sh.wait_for(lambda: (s := status())["finished"] and s, 120, "the batch to finish after the restart", every_s=0.5)
    assert after["counts"] == {"done": 20}, (after["counts"], service.logs())
    z = client.get(batch["links"]["zip"])
    with zipfile.ZipFile(io.BytesIO(z.content)) as archive:
        assert len([n for n in archive.namelist() if n.endswith(".mp4")]) == 20
    assert all(j["attempts"] >= 1 for j in after["jobs"])
    print(f"done before the restart: {before['counts'].get('done', 0)} of 20")


def test_worker_sigkilled_mid_render_the_job_completes_once_on_another(service, client, media):
    job_id = sh.submit(client, media["image"], media["long"], size=512, preprocess="full").json()["id"]
    sh.wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["frames_done"] > 0, 60, "the render to start")
    store = service.store()
    first = store.get(job_id)
    pool_pid = int(first.worker.split(":")[1])
    node = next(n for n in service.workers if os.getpgid(pool_pid) == n.pid)
    node.kill()
    killed_at = time.time()
    job = sh.wait_job(client, job_id, timeout_s=90)
    assert job["state"] == "done", (job, service.logs())
    final = store.get(job_id)
    assert final.attempts == 2 and final.worker != first.worker
    assert int(final.worker.split(":")[1]) != pool_pid and final.started_at > killed_at
    assert sorted(p.name for p in (service.results / "team" / job_id).iterdir()) == ["audio.wav", "image.jpg", "video.mp4"]
    facts = sh.check_mp4(service.results / "team" / job_id / "video.mp4")
    assert abs(facts["duration_s"] - job["frames_total"] / 25) < 0.1
    assert not list(service.results.rglob(".part-*"))
    print(f"killed at frame {first.frames_done}; re-run finished {final.finished_at - killed_at:.1f} s after the kill")


def test_pool_process_sigkilled_mid_render_the_job_completes_once(service, client, media):
    """SIGKILL of the render process only (its node lives on and starts a replacement): the job's
    message is put back or its heartbeat stops, and the job is rendered once more and done."""
    import signal

    job_id = sh.submit(client, media["image"], media["long"], size=512, preprocess="full").json()["id"]
    sh.wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["frames_done"] > 0, 60, "the render to start")
    store = service.store()
    first = store.get(job_id)
    pool_pid = int(first.worker.split(":")[1])
    os.kill(pool_pid, signal.SIGKILL)
    killed_at = time.time()
    job = sh.wait_job(client, job_id, timeout_s=120)
    assert job["state"] == "done", (job, service.logs())
    final = store.get(job_id)
    assert final.attempts == 2 and int(final.worker.split(":")[1]) != pool_pid
    assert sorted(p.name for p in (service.results / "team" / job_id).iterdir()) == ["audio.wav", "image.jpg", "video.mp4"]
    print(f"pool process killed at frame {first.frames_done}; the job finished {final.finished_at - killed_at:.1f} s after the kill")
