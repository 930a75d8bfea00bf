"""The job service's HTTP answers when things fail, with a real `talker serve` (no render worker is
needed) on a real redis-server that the tests stop and start: one JSON error shape for every
status, 503 while the broker and store are down, a readiness route, manifests that used to give
plain-text 500s.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from nacl.signing import SigningKey

import service_helpers as sh

KEY = "key-api-0123456789"
HASTY, SMALL, OPS = "key-hasty-0123456789", "key-small-0123456789", "key-ops-0123456789"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = sh.RedisServer(tmp_path_factory.mktemp("api-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def discord_key():
    return SigningKey.generate()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    image, audio = sh.tiny_media(tmp_path_factory.mktemp("api-media"))
    return {"image": image, "audio": audio}


@pytest.fixture(scope="module")
def api(tmp_path_factory, redis_server, discord_key, media):
    config = {"tenants": {"acme": {"key": KEY}, "hasty": {"key": HASTY, "rate_per_minute": 2},
                          "small": {"key": SMALL, "max_active_jobs": 1}, "ops": {"key": OPS, "allow_options": ["batch_size"]}},
              "retention": {"finished_s": 2, "orphan_s": 3600, "sweep_interval_s": 0.5},
              "worker": {"reap_interval_s": 0.5},
              "discord": {"public_key": discord_key.verify_key.encode().hex(), "tenant": "acme",
                          "avatars": {"anna": str(media["image"])}}}
    svc = sh.Service(tmp_path_factory.mktemp("api"), redis_server.url, config)
    try:
        yield svc.start_api()
    finally:
        svc.stop()


@pytest.fixture()
def acme(api):
    with api.client(KEY) as c:
        yield c


def assert_error(r: httpx.Response, status: int, *words: str) -> None:
    """The one error shape: a JSON object whose 'error' says what is wrong."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json", r.headers
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    for word in words:
        assert word in body["error"], (word, body)


def test_every_status_has_the_one_json_error_shape(api, acme, discord_key):
    assert_error(acme.get("/v1/nothing-here"), 404, "Not Found")
    assert_error(acme.put("/v1/jobs"), 405, "Method Not Allowed")
    assert_error(acme.get("/v1/jobs", params={"limit": "many"}), 422, "limit:")
    assert_error(httpx.get(f"{api.base}/v1/jobs"), 401, "API key")

    wide = b"text,avatar\n" + b"a" * 200_000 + b",face.jpg\n"
    assert_error(acme.post("/v1/batches", files=[("manifest", ("m.csv", wide))]), 422, "128 kB")
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    assert_error(acme.post("/v1/batches", files=[("manifest", ("m.jsonl", deep))]), 422, "nested too deeply")

    body, stamp = b"[1, 2, 3]", str(int(time.time()))
    signed = discord_key.sign(stamp.encode() + body).signature.hex()
    r = httpx.post(f"{api.base}/v1/discord/interactions", content=body,
                   headers={"x-signature-ed25519": signed, "x-signature-timestamp": stamp})
    assert_error(r, 400, "JSON object")


def test_broker_and_store_down_503_and_readiness(api, acme, redis_server, media):
    ready = httpx.get(f"{api.base}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"broker": "ok", "store": "ok", "disk": "ok"}
    redis_server.stop()
    try:
        r = sh.submit(acme, media["image"], media["audio"])
        assert_error(r, 503, "job store is unavailable", "try again")
        assert not list(api.results.rglob("*.*")), "the refused submission left its uploads"
        assert r.headers["retry-after"] == "5"
        assert_error(acme.get("/v1/jobs"), 503, "unavailable")
        not_ready = httpx.get(f"{api.base}/readyz", timeout=30)
        assert_error(not_ready, 503, "not ready", "broker", "store")
        assert not_ready.json()["checks"]["disk"] == "ok"
    finally:
        redis_server.start()
    sh.wait_for(lambda: httpx.get(f"{api.base}/readyz", timeout=30).status_code == 200, 30, "readiness after the restart")
    assert sh.submit(acme, media["image"], media["audio"]).status_code == 202


def test_readiness_reports_a_disk_short_of_space(tmp_path, redis_server):
    svc = sh.Service(tmp_path, redis_server.url, {"tenants": {"acme": {"key": KEY}},
                                                   "limits": {"min_free_bytes": 10**18}})
    try:
        svc.start_api()
        r = httpx.get(f"{svc.base}/readyz")
        assert_error(r, 503, "disk:", "under limits.min_free_bytes")
        assert json.loads(r.text)["checks"]["broker"] == "ok"
        assert httpx.get(f"{svc.base}/healthz").status_code == 200  # alive, not ready
    finally:
        svc.stop()


def test_refused_submissions_leave_no_files(api, acme, media, tmp_path):
    import numpy as np
    import soundfile as sf

    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    left = lambda: sorted(p for p in api.results.rglob("*") if p.name not in ("acme", "batches"))  # noqa: E731
    before = left()
    assert_error(sh.submit(acme, media["image"], silent), 422, "only silence")  # the portrait was fine
    files = [("manifest", ("m.csv", b"avatar,text\nface.jpg,hi\nnobody.png,hi\n")),
             ("files", ("face.jpg", media["image"].read_bytes())), ("files", ("map.wav", media["audio"].read_bytes()))]
    assert_error(acme.post("/v1/batches", files=files), 422, "nobody.png")
    files[0] = ("manifest", ("m.csv", b"avatar,audio\nface.jpg,map.wav\n"))
    files.append(("files", ("silent.wav", silent.read_bytes())))
    assert_error(acme.post("/v1/batches", files=files), 422, "only silence")
    assert left() == before


def test_finished_jobs_and_orphans_are_swept(api, media):
    """retention.finished_s is 2 s here: a finished job's record and files go; a job folder and a
    batch folder that belong to no job go once older than retention.orphan_s; recent ones stay."""
    import os

    from talker.service.jobs import DONE, Job

    store = api.store()
    job = Job(tenant="acme", id="f" * 32)
    job.inputs, job.video = {"image": f"acme/{job.id}/image.jpg"}, f"acme/{job.id}/video.mp4"
    store.add(job)
    store.update(job.id, state=DONE, finished_at=time.time())
    for key in (*job.inputs.values(), job.video):
        (api.results / key).parent.mkdir(parents=True, exist_ok=True)
        (api.results / key).write_bytes(b"x")
    old, recent, old_batch = api.results / "acme" / ("0" * 32), api.results / "acme" / ("1" * 32), api.results / "acme" / "batches" / "b1"
    for folder in (old, recent, old_batch):
        folder.mkdir(parents=True)
        (folder / "image.jpg").write_bytes(b"x")
    for folder in (old, old_batch):
        os.utime(folder, (time.time() - 7200, time.time() - 7200))
    sh.wait_for(lambda: store.get(job.id) is None, 20, "the finished job to be deleted")
    sh.wait_for(lambda: not old.exists() and not old_batch.exists(), 10, "the orphans to be deleted")
    assert not (api.results / "acme" / job.id).exists() and recent.exists()
    with api.client(KEY) as c:
        assert c.get(f"/v1/jobs/{job.id}").status_code == 404


def test_first_run_without_config_makes_a_key_shown_once(tmp_path):
    """`talker serve` with no config file: a key is made and stored 0600 in the data folder, printed
    once with a curl line; requests without it are still refused; a restart keeps it and hides it."""
    import stat

    port = sh.free_port()
    env = {"TALKER_DATA": str(tmp_path / "data"), "TALKER_CONFIG": ""}
    base = f"http://127.0.0.1:{port}"

    def start() -> sh.Node:
        node = sh.Node("serve", ["--port", port, "--results", tmp_path / "results"], tmp_path, env)
        sh.wait_for(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200 if _listening(port) else False,
                    60, "talker serve to start")
        return node

    node = start()
    try:
        key_file = tmp_path / "data" / "api-key"
        key = key_file.read_text().strip()
        assert len(key) >= 40 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        log = node.log_text()
        assert log.count(key) == 2 and f"curl -H 'Authorization: Bearer {key}'" in log and f"http://127.0.0.1:{port}/v1/jobs" in log
        assert_error(httpx.get(f"{base}/v1/jobs"), 401, "API key")
        assert httpx.get(f"{base}/v1/jobs", headers={"authorization": f"Bearer {key}"}).status_code == 200
    finally:
        node.stop()
    node = start()
    try:
        assert key not in node.log_text() and str(key_file) in node.log_text()
        assert httpx.get(f"{base}/v1/jobs", headers={"authorization": f"Bearer {key}"}).status_code == 200
    finally:
        node.stop()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_tenant_limits_options_and_idempotency(api, acme, media):
    def as_(key, **fields):
        with api.client(key) as c:
            return sh.submit(c, media["image"], media["audio"], **fields)

    first = as_(SMALL)
    assert first.status_code == 202 and first.headers["location"] == f"/v1/jobs/{first.json()['id']}"
    r = as_(SMALL)  # no worker here: the first job is still queued
    assert_error(r, 429, "1 jobs queued or running", "may have 1 at once")
    assert int(r.headers["retry-after"]) > 0

    assert [as_(HASTY).status_code for _ in range(2)] == [202, 202]
    r = as_(HASTY)
    assert_error(r, 429, "2 times a minute")
    assert 0 < int(r.headers["retry-after"]) <= 30

    assert_error(sh.submit(acme, media["image"], media["audio"], device="cuda", batch_size=10**12), 403,
                 "options device, batch_size are set by the service's operator")
    assert as_(OPS, batch_size=4).status_code == 202
    assert_error(as_(OPS, compile="true"), 403, "compile is set by the service's operator")
    assert_error(sh.submit(acme, media["image"], media["audio"], report="banana"), 422, "report must be true or false")
    assert_error(sh.submit(acme, media["image"], media["audio"], seed=-1), 422, "seed must be between 0 and")

    key = {"idempotency-key": f"order-{time.time_ns()}"}
    made = sh.submit(acme, media["image"], media["audio"], headers=key, seed=1)
    again = sh.submit(acme, media["image"], media["audio"], headers=key, seed=1)
    assert (made.status_code, again.status_code) == (202, 200) and made.json()["id"] == again.json()["id"]
    assert_error(sh.submit(acme, media["image"], media["audio"], headers=key, seed=2), 422, "used for another request")


def test_openapi_document_and_head_on_a_video(api, acme):
    doc = httpx.get(f"{api.base}/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer", **{
        "description": "Authorization: Bearer <the tenant's API key>"}}
    assert set(doc["components"]["schemas"]["Job"]["properties"]) >= {"id", "state", "links", "error"}
    post = doc["paths"]["/v1/jobs"]["post"]
    assert post["security"] == [{"bearer": []}, {"apiKey": []}] and "Location" in post["responses"]["202"]["headers"]
    assert post["responses"]["429"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "head" in doc["paths"]["/v1/jobs/{job_id}/video"]
    assert "security" not in doc["paths"]["/v1/discord/interactions"]["post"]

    from talker.service.jobs import DONE, Job

    store = api.store()
    job = store.add(Job(tenant="acme"))
    video = api.results / "acme" / job.id / "video.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\0" * 1234)
    store.update(job.id, state=DONE, video=f"acme/{job.id}/video.mp4", finished_at=time.time() + 3600)
    head = acme.head(f"/v1/jobs/{job.id}/video")
    assert head.status_code == 200 and head.headers["content-length"] == "1234" and head.content == b""


def test_abandoned_live_requests_cost_nothing(api, acme, media):
    """100 clients open /live on a queued job (no worker here) and leave; the API then idles."""
    import asyncio
    import os

    job_id = sh.submit(acme, media["image"], media["audio"]).json()["id"]

    async def open_and_leave():
        async with httpx.AsyncClient(base_url=api.base, headers={"authorization": f"Bearer {KEY}"}, timeout=5,
                                     limits=httpx.Limits(max_connections=100)) as c:
            async def one():
                try:
                    await c.get(f"/v1/jobs/{job_id}/live", timeout=1.0)
                except httpx.TimeoutException:
                    pass  # gave up waiting: the connection is closed

            await asyncio.gather(*(one() for _ in range(100)))

    asyncio.run(open_and_leave())
    time.sleep(2.0)

    def cpu_s() -> float:
        fields = open(f"/proc/{api.api.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = cpu_s()
    time.sleep(3.0)
    used = cpu_s() - before
    assert used < 0.3, f"the API used {used:.2f} s of CPU in 3 s after its /live clients left"


def test_an_address_guessing_keys_is_locked_out(tmp_path, redis_server):
    svc = sh.Service(tmp_path, redis_server.url, {"tenants": {"acme": {"key": KEY}}, "limits": {"wrong_keys_per_minute": 5}})
    try:
        svc.start_api()
        with svc.client("guess") as guesser, svc.client(KEY) as right:
            assert right.get("/v1/jobs").status_code == 200
            assert [guesser.get("/v1/jobs").status_code for _ in range(5)] == [401] * 5
            r = guesser.get("/v1/jobs")
            assert_error(r, 429, "too many wrong API keys")
            assert 50 <= int(r.headers["retry-after"]) <= 61
            assert right.get("/v1/jobs").status_code == 429  # a right guess now would not be told apart
    finally:
        svc.stop()


def test_the_job_list_pages_and_filters(api):
    from talker.service.jobs import DONE, Job

    store = api.store()
    made = []
    for n in range(5):
        job = store.add(Job(tenant="acme", name=f"page{n}", created_at=time.time() - 10_000 + n))
        made.append(job.id)
    store.update(made[1], state=DONE, finished_at=time.time() + 3600)
    with api.client(KEY) as c:
        first = c.get("/v1/jobs", params={"limit": 2, "before": time.time() - 9_000}).json()
        assert [j["id"] for j in first["jobs"]] == made[4:2:-1] and first["next"]
        second = c.get(first["next"]).json()
        assert [j["id"] for j in second["jobs"]] == made[2:0:-1]
        third = c.get(second["next"]).json()
        assert [j["id"] for j in third["jobs"]] == made[:1] and third["next"] is None
        done = c.get("/v1/jobs", params={"state": "done", "before": time.time() - 9_000}).json()
        assert [j["id"] for j in done["jobs"]] == [made[1]]
        assert_error(c.get("/v1/jobs", params={"state": "finished"}), 422, "state must be one of")


def test_batch_file_names_lose_their_folders(acme, media):
    """A portrait uploaded as 'C:\\shoot\\face.jpg' (a Windows browser's name) is 'face.jpg' in the manifest and the zip."""
    files = [("manifest", ("m.csv", b"avatar,text\nface.jpg,Hello there.\n")),
             ("files", ("C:\\shoot\\face.jpg", media["image"].read_bytes()))]
    r = acme.post("/v1/batches", files=files)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/batches/{r.json()['id']}"
    assert [j["name"] for j in acme.get(r.headers["location"]).json()["jobs"]] == ["001_face"]
