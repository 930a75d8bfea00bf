"""The job service on its single-machine default: SQLite queue and job store (no --broker), a real
`talker serve` and a real Celery `talker worker` as subprocesses, loopback receivers for webhooks and
a fake Discord API.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile

import httpx
import numpy as np
import pytest
from nacl.signing import SigningKey
from PIL import Image

import service_helpers as sh
from talker.service.webhooks import verify_signature

ACME, BETA = "key-acme-0123456789", "key-beta-9876543210"
SECRET = "webhook-secret-acme"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("service-media")
    image, audio = sh.tiny_media(folder)
    return {"image": image, "audio": audio, "long": sh.long_speech(folder), "folder": folder}


@pytest.fixture(scope="module")
def discord_fake():
    fake = sh.Receiver(statuses=(200,))
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def discord_key():
    return SigningKey.generate()


@pytest.fixture(scope="module")
def service(tmp_path_factory, media, discord_fake, discord_key):
    config = {
        "tenants": {
            "acme": {"key": ACME, "webhook_secret": SECRET, "allow_private_webhooks": True},
            "beta": {"key": BETA, "webhook_secret": "beta-secret"},
        },
        "limits": {"upload_bytes": 3_000_000, "image_pixels": 1_000_000, "audio_seconds": 30},
        "worker": {"heartbeat_s": 0.5, "stale_s": 3, "reap_interval_s": 1},
        "webhooks": {"retries": 4, "backoff_s": 0.5, "timeout_s": 5},
        "discord": {"public_key": discord_key.verify_key.encode().hex(), "tenant": "acme",
                    "api_base": discord_fake.url + "/api/v10", "avatars": {"anna": str(media["image"])}},
    }
    with sh.running(tmp_path_factory.mktemp("service-sqlite"), None, config) as svc:
        yield svc


@pytest.fixture()
def acme(service):
    with service.client(ACME) as c:
        yield c


def test_a_job_ends_with_a_valid_mp4_served_with_range(service, acme, media, tmp_path):
    r = sh.submit(acme, media["image"], media["audio"], size=256, still="true", report="true")
    assert r.status_code == 202, r.text
    job = sh.wait_job(acme, r.json()["id"])
    assert job["state"] == "done", (job, service.logs())
    assert job["frames_done"] == job["frames_total"] > 0 and job["fps"] > 0 and job["attempts"] == 1
    assert job["options"] == {"size": 256, "still": True}
    assert 0 < job["cold_start_s"] < 120  # the worker process's start to its first frame

    video = acme.get(job["links"]["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    (tmp_path / "job.mp4").write_bytes(video.content)
    facts = sh.check_mp4(tmp_path / "job.mp4")
    assert facts["video"]["width"] >= 256
    assert abs(facts["duration_s"] - job["frames_total"] / 25) < 0.1

    part = acme.get(job["links"]["video"], headers={"range": "bytes=100-299"})
    assert part.status_code == 206 and part.content == video.content[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{len(video.content)}"

    report = acme.get(job["links"]["report"])
    assert report.status_code == 200 and report.json()["verdict"] in ("pass", "warn", "fail")

    metrics = httpx.get(f"{service.base}/metrics").text
    assert 'talker_jobs{state="done"}' in metrics and "talker_queue_depth" in metrics and "talker_render_fps" in metrics
    assert httpx.get(f"{service.base}/docs").status_code == 200
    schema = httpx.get(f"{service.base}/openapi.json").json()
    assert "/v1/batches" in schema["paths"] and "/v1/jobs/{job_id}/video" in schema["paths"]


def test_wrong_key_401_and_other_tenants_job_404(service, acme, media):
    job_id = sh.submit(acme, media["image"], media["audio"]).json()["id"]
    with service.client(None) as anonymous, service.client("not-a-key") as wrong, service.client(BETA) as beta:
        for c in (anonymous, wrong):
            r = c.get(f"/v1/jobs/{job_id}")
            assert r.status_code == 401 and "API key" in r.json()["error"]
            assert sh.submit(c, media["image"], media["audio"]).status_code == 401
        for method, path in (("GET", ""), ("GET", "/video"), ("GET", "/report"), ("DELETE", "")):
            r = beta.request(method, f"/v1/jobs/{job_id}{path}")
            assert r.status_code == 404, (method, path, r.text)
        assert job_id not in [j["id"] for j in beta.get("/v1/jobs").json()["jobs"]]
    assert job_id in [j["id"] for j in acme.get("/v1/jobs").json()["jobs"]]
    sh.wait_job(acme, job_id)


def test_idempotent_resubmit_returns_the_same_job(service, acme, media):
    key = {"idempotency-key": f"campaign-42-{time.time_ns()}"}
    first = sh.submit(acme, media["image"], media["audio"], headers=key, seed=3)
    again = sh.submit(acme, media["image"], media["audio"], headers=key, seed=3)
    other = sh.submit(acme, media["image"], media["audio"], seed=3)
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 202)
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    for job_id in (first.json()["id"], other.json()["id"]):
        assert sh.wait_job(acme, job_id)["state"] == "done"
    assert len(list(service.results.glob(f"acme/{first.json()['id']}/*"))) == 3  # image, audio, video


def test_oversized_and_wrongly_typed_uploads_413_415(service, acme, media, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(3_200_000))
    r = sh.submit(acme, big, media["audio"])
    assert r.status_code == 413 and "3.0 MB upload limit" in r.json()["error"], r.text

    wide = tmp_path / "wide.png"
    Image.new("RGB", (1200, 1000), "gray").save(wide)
    r = sh.submit(acme, wide, media["audio"])
    assert r.status_code == 413 and "1200x1000 pixels" in r.json()["error"] and "megapixel limit" in r.json()["error"]

    long_wav = tmp_path / "long.wav"
    import soundfile as sf

    sf.write(long_wav, np.zeros(16000 * 31, np.float32), 16000)
    r = sh.submit(acme, media["image"], long_wav)
    assert r.status_code == 413 and "31 s, over the 30 s audio limit" in r.json()["error"]

    text_as_png = tmp_path / "portrait.png"
    text_as_png.write_text("this is not a picture at all")
    r = sh.submit(acme, text_as_png, media["audio"])
    assert r.status_code == 415 and "not a PNG, JPEG, WebP or BMP image" in r.json()["error"]
    assert "judged by its content" in r.json()["error"]

    png_as_wav = tmp_path / "speech.wav"
    png_as_wav.write_bytes(media["image"].read_bytes())
    r = sh.submit(acme, media["image"], png_as_wav)
    assert r.status_code == 415 and "not audio" in r.json()["error"]

    r = sh.submit(acme, media["image"], text="a" * 5001)
    assert r.status_code == 413 and "5001 characters, over the 5000 character limit" in r.json()["error"]

    r = sh.submit(acme, media["image"], media["audio"], size=300)
    assert r.status_code == 422 and r.json()["error"] == "--size must be 256 or 512, not 300"
    r = sh.submit(acme, media["image"], media["audio"], colour="blue")
    assert r.status_code == 422 and "unknown option 'colour'" in r.json()["error"]
    r = acme.post("/v1/jobs", files={"audio": ("a.wav", media["audio"].read_bytes())})
    assert r.status_code == 422 and "no portrait" in r.json()["error"]
    assert not list(service.results.rglob(".part-*"))


def test_cancel_stops_a_running_render_within_a_second_and_leaves_no_file(service, acme, media):
    job_id = sh.submit(acme, media["image"], media["long"], size=512, preprocess="full").json()["id"]
    sh.wait_for(lambda: acme.get(f"/v1/jobs/{job_id}").json()["frames_done"] > 0, 60, "the render to start")
    asked = time.time()
    r = acme.delete(f"/v1/jobs/{job_id}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    stopped = sh.wait_for(lambda: (j := acme.get(f"/v1/jobs/{job_id}").json())["stage"].startswith("cancelled: stopped") and j,
                          10, "the worker to stop the render")
    frames = int(stopped["stage"].split("after ")[1].split()[0])
    store = service.store()
    assert store.get(job_id).heartbeat_at - asked < 1.0, "the render went on for more than a second"
    assert 0 < frames < stopped["frames_total"]
    assert sorted(p.name for p in (service.results / "acme" / job_id).iterdir()) == ["audio.wav", "image.jpg"]
    assert not list(service.tmp.glob("talker-*")) and not list(service.tmp.rglob("*.mp4")), "the worker left files"
    assert acme.get(f"/v1/jobs/{job_id}/video").status_code == 404
    assert acme.delete(f"/v1/jobs/{job_id}").status_code == 200  # cancelling twice is harmless

    queued = sh.submit(acme, media["image"], media["audio"]).json()["id"]
    acme.delete(f"/v1/jobs/{queued}")
    done = sh.submit(acme, media["image"], media["audio"]).json()["id"]
    assert sh.wait_job(acme, done)["state"] == "done"
    assert acme.get(f"/v1/jobs/{queued}").json()["state"] == "cancelled"
    r = acme.delete(f"/v1/jobs/{done}")
    assert r.status_code == 409 and "already ended (done)" in r.json()["error"]


def test_live_video_plays_while_the_job_renders(service, acme, media, tmp_path):
    """/live sends the fragmented MP4 as the worker writes it: fragments arrive and decode while the
    job is still running, the whole stream is the job's video, and the live file is gone at the end."""
    from talker.media import count_frames

    job_id = sh.submit(acme, media["image"], media["long"], size=512, preprocess="full").json()["id"]
    got, during = bytearray(), None
    with acme.stream("GET", f"/v1/jobs/{job_id}/live", timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
        for chunk in r.iter_bytes():
            got += chunk
            if during is None and got.count(b"moof") >= 2:
                during = (bytes(got), acme.get(f"/v1/jobs/{job_id}").json())
    assert during is not None, "no fragment came"
    prefix, job_then = during
    assert job_then["state"] == "running" and job_then["frames_done"] < job_then["frames_total"], job_then
    (tmp_path / "prefix.mp4").write_bytes(prefix)
    assert count_frames(tmp_path / "prefix.mp4") > 0  # what came while rendering plays

    job = sh.wait_job(acme, job_id)
    assert job["state"] == "done" and job["links"]["live"] is None
    (tmp_path / "live.mp4").write_bytes(got)
    (tmp_path / "final.mp4").write_bytes(acme.get(job["links"]["video"]).content)
    sh.check_mp4(tmp_path / "live.mp4")
    assert count_frames(tmp_path / "live.mp4") == count_frames(tmp_path / "final.mp4") == job["frames_total"]
    assert not (service.results / "acme" / job_id / "live.mp4").exists()
    r = acme.get(f"/v1/jobs/{job_id}/live", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"].endswith(f"/v1/jobs/{job_id}/video")


def test_webhook_is_signed_and_retried_after_a_500(service, acme, media):
    receiver = sh.Receiver(statuses=(500, 200))
    try:
        job_id = sh.submit(acme, media["image"], media["audio"], webhook=receiver.url + "/hook").json()["id"]
        sh.wait_for(lambda: len(receiver.requests) >= 2, 30, "the webhook and its retry")
        for req in receiver.requests:
            h = req["headers"]
            assert req["path"] == "/hook"
            assert verify_signature(SECRET, h["x-talker-timestamp"], req["body"], h["x-talker-signature"])
            assert not verify_signature("another-secret", h["x-talker-timestamp"], req["body"], h["x-talker-signature"])
            body = json.loads(req["body"])
            assert body["event"] == "job.done" and body["job"]["id"] == job_id
        assert receiver.requests[1]["at"] - receiver.requests[0]["at"] >= 0.5  # backoff
        time.sleep(1.5)
        assert len(receiver.requests) == 2  # a 200 ends the retries
    finally:
        receiver.close()
    with service.client(BETA) as beta:  # beta may not send webhooks to loopback
        r = sh.submit(beta, media["image"], media["audio"], webhook="http://127.0.0.1:9/hook")
        assert r.status_code == 422 and "loopback, private or reserved" in r.json()["error"]


def _discord_post(service, key, payload: dict, good: bool = True) -> httpx.Response:
    body = json.dumps({"id": str(time.time_ns()), **payload}).encode()  # Discord gives every interaction an id
    timestamp = str(int(time.time()))
    signed = (key if good else SigningKey.generate()).sign(timestamp.encode() + body).signature.hex()
    return httpx.post(f"{service.base}/v1/discord/interactions", content=body, timeout=10,
                      headers={"x-signature-ed25519": signed, "x-signature-timestamp": timestamp, "content-type": "application/json"})


def test_discord_rejects_bad_signatures_and_acks_a_command_in_under_3_s(service, discord_key, discord_fake):
    assert _discord_post(service, discord_key, {"type": 1}, good=False).status_code == 401
    assert _discord_post(service, discord_key, {"type": 1}).json() == {"type": 1}
    command = {"type": 2, "application_id": "app123", "token": "tok456",
               "data": {"name": "talk", "options": [{"name": "text", "value": "Hello from the bot"}, {"name": "avatar", "value": "anna"}]}}
    start = time.perf_counter()
    r = _discord_post(service, discord_key, command)
    assert r.status_code == 200 and r.json() == {"type": 5}
    assert time.perf_counter() - start < 3.0
    posted = sh.wait_for(lambda: [q for q in discord_fake.requests if q["path"] == "/api/v10/webhooks/app123/tok456"],
                         60, "the follow-up with the video")
    body = posted[0]["body"]
    assert b'name="files[0]"' in body and b"ftypisom" in body and b"Here is your video." in body


def test_batch_of_scripts_x_avatars_and_its_zip(service, acme, media, tmp_path):
    second = tmp_path / "second.png"
    Image.open(media["image"]).transpose(Image.FLIP_LEFT_RIGHT).save(second)
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerows([["text", "still", "audio"], ["Buy our maps.", "true", ""], ["", "", "map.wav"]])
    files = [("manifest", ("jobs.csv", manifest.getvalue().encode())),
             ("files", ("face.jpg", media["image"].read_bytes())), ("files", ("second.png", second.read_bytes())),
             ("files", ("map.wav", media["audio"].read_bytes()))]
    r = acme.post("/v1/batches", files=files)
    assert r.status_code == 202, r.text
    batch = r.json()
    assert len(batch["jobs"]) == 4  # 2 scripts x 2 avatars
    status = sh.wait_for(lambda: (b := acme.get(f"/v1/batches/{batch['id']}").json())["finished"] and b, 90, "the batch")
    assert status["counts"] == {"done": 4}, status
    with service.client(BETA) as beta:
        assert beta.get(f"/v1/batches/{batch['id']}").status_code == 404
    z = acme.get(batch["links"]["zip"])
    assert z.status_code == 200
    with zipfile.ZipFile(io.BytesIO(z.content)) as archive:
        names = sorted(archive.namelist())
        assert names == ["001_face.mp4", "002_second.mp4", "003_face.mp4", "004_second.mp4", "manifest.json"]
        (tmp_path / "one.mp4").write_bytes(archive.read("002_second.mp4"))
    sh.check_mp4(tmp_path / "one.mp4")
    r = acme.post("/v1/batches", files=[("manifest", ("bad.csv", b"avatar,text\nnobody.png,hi\n")),
                                        ("files", ("face.jpg", media["image"].read_bytes()))])
    assert r.status_code == 422 and "manifest line 2: no uploaded portrait named 'nobody.png'" in r.json()["error"]

