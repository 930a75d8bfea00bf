"""The job service's pure parts, without processes: form validation, manifests, content sniffing,
webhook signatures and address checks, settings, the job store's conditional updates."""

from __future__ import annotations

import json
import time

import pytest

from talker.errors import OptionError
from talker.service.batches import parse_manifest
from talker.service.config import load_config
from talker.service.forms import options_from_form
from talker.service.jobs import CANCELLED, DONE, QUEUED, RUNNING, Job, RedisJobStore, SqlJobStore
from talker.service.security import audio_type, image_type
from talker.service.webhooks import check_url, post_signed, signature, verify_signature


def test_form_values_are_typed_and_judged_by_make_options():
    assert options_from_form({"size": "512", "still": "true", "face-index": "", "seed": "7"}, has_audio=True) == {
        "size": 512, "still": True, "face_index": None, "seed": 7}
    with pytest.raises(OptionError, match="pose-style must be between 0 and 45, not 99"):
        options_from_form({"pose_style": "99"}, has_audio=True)
    with pytest.raises(OptionError, match="option still must be true or false, not 'maybe'"):
        options_from_form({"still": "maybe"}, has_audio=True)
    with pytest.raises(OptionError, match="no speech given"):
        options_from_form({}, has_audio=False)
    with pytest.raises(OptionError, match="unknown option 'out'"):
        options_from_form({"out": "/etc/passwd.mp4"}, has_audio=True)  # the server picks where files go


def test_manifest_rows_without_avatar_are_made_with_every_portrait():
    csv_rows = b"text,size\nHello there.,512\nBuy maps.,\n"
    jobs = parse_manifest(csv_rows, ["anna.png", "ben.jpg"], [], max_rows=10)
    assert [(j.name, j.avatar) for j in jobs] == [("001_anna", "anna.png"), ("002_ben", "ben.jpg"),
                                                 ("003_anna", "anna.png"), ("004_ben", "ben.jpg")]
    assert jobs[0].options == {"text": "Hello there.", "size": 512} and jobs[2].options == {"text": "Buy maps."}
    jsonl = b'{"avatar": "ben.jpg", "audio": "a.wav", "still": true}\n\n{"avatar": "anna.png", "text": "Hi"}\n'
    jobs = parse_manifest(jsonl, ["anna.png", "ben.jpg"], ["a.wav"], max_rows=10)
    assert [(j.avatar, j.audio, j.options) for j in jobs] == [("ben.jpg", "a.wav", {"still": True}), ("anna.png", None, {"text": "Hi"})]
    with pytest.raises(OptionError, match="manifest line 3: --size must be 256 or 512"):
        parse_manifest(b"text,size\nok,256\nbad,300\n", ["a.png"], [], max_rows=10)
    with pytest.raises(OptionError, match="manifest line 1 is not JSON"):
        parse_manifest(b'{"text": \n', ["a.png"], [], max_rows=10)
    with pytest.raises(OptionError, match="makes 4 jobs, more than the 3"):
        parse_manifest(b"text\na\nb\n", ["a.png", "b.png"], [], max_rows=3)


def test_types_come_from_the_content(tmp_path, astronaut_png):
    assert image_type(astronaut_png.read_bytes()[:16]) == ".png"
    assert image_type(b"\xff\xd8\xff\xe0\x00\x10JFIF") == ".jpg"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == ".webp"
    assert image_type(b"GIF89a") is None and image_type(b"<svg xmlns=") is None
    assert audio_type(b"RIFF\x24\x00\x00\x00WAVEfmt ") == ".wav"
    assert audio_type(b"ID3\x04\x00") == ".mp3" and audio_type(b"\xff\xfb\x90\x00") == ".mp3"
    assert audio_type(b"\x00\x00\x00\x20ftypM4A ") == ".m4a" and audio_type(b"OggS\x00") == ".ogg"
    assert audio_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is None and audio_type(b"hello") is None


def test_webhook_signature_and_private_addresses():
    body = json.dumps({"event": "job.done"}).encode()
    ts = str(int(time.time()))
    sig = signature("s3cret", ts, body)
    assert sig.startswith("v1=") and len(sig) == 67
    assert verify_signature("s3cret", ts, body, sig)
    assert not verify_signature("s3cret", ts, body + b" ", sig)
    assert not verify_signature("s3cret", str(int(time.time()) - 3600), body, signature("s3cret", str(int(time.time()) - 3600), body))
    for url in ("http://127.0.0.1:8080/hook", "http://10.1.2.3/h", "http://192.168.0.5/h", "http://[::1]/h",
                "http://169.254.169.254/latest/meta-data", "http://localhost/h", "http://0.0.0.0/h",
                # private IPv4 addresses written as IPv6: IPv4-compatible, IPv4-mapped, NAT64, 6to4, Teredo
                "http://[::127.0.0.1]/h", "http://[::ffff:10.0.0.1]/h", "http://[64:ff9b::a9fe:a9fe]/h",
                "http://[64:ff9b:1::a9fe:a9fe]/h", "http://[2002:a9fe:a9fe::]/h", "http://[2002:7f00:1::1]/h",
                "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/h"):
        with pytest.raises(OptionError, match="loopback, private or reserved"):
            check_url(url, allow_private=False)
        check_url(url, allow_private=True)
    with pytest.raises(OptionError, match="http:// or https://"):
        check_url("file:///etc/passwd", allow_private=True)
    assert check_url("https://93.184.215.14/hook", allow_private=False) == ["93.184.215.14"]  # public, no DNS needed
    for public in ("http://[2606:4700:4700::1111]/h", "http://[64:ff9b::5db8:d70e]/h", "http://[2002:5db8:d70e::]/h"):
        check_url(public, allow_private=False)  # public IPv6, and public IPv4 behind NAT64 and 6to4


def test_a_webhook_goes_to_the_address_that_was_checked():
    """The name is resolved once and the POST connects to that address, sending the name as Host."""
    import service_helpers as sh

    receiver = sh.Receiver()
    try:
        port = receiver.url.rsplit(":", 1)[1]
        status = post_signed(f"http://localhost:{port}/hook", "s3cret", {"event": "job.done"}, "job1.job.done", 5, True)
        assert status == 200
        [request] = receiver.requests
        assert request["headers"]["host"] == f"localhost:{port}" and request["headers"]["x-talker-event-id"] == "job1.job.done"
        with pytest.raises(OptionError, match="loopback"):
            post_signed(f"http://localhost:{port}/hook", "s3cret", {}, "e", 5, False)
        assert len(receiver.requests) == 1
    finally:
        receiver.close()


def test_settings_file_errors_name_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("TALKER_BROKER", raising=False)
    monkeypatch.setenv("TALKER_DATA", str(tmp_path / "data"))
    path = tmp_path / "service.yaml"
    path.write_text("tenants:\n  acme: {key: k1}\nlimits: {upload_bytes: 10}\n")
    config = load_config(path)
    assert config.limits.upload_bytes == 10 and config.tenant_by_key("k1").name == "acme" and config.tenant_by_key("k2") is None
    assert config.broker_url == f"sqla+sqlite:///{tmp_path / 'data' / 'queue.sqlite'}"
    assert config.store_url == f"sqlite:///{tmp_path / 'data' / 'queue.sqlite'}"  # the table next to the queue
    assert load_config(path, broker="redis://h:6379/0").store_url == "redis://h:6379/0"
    path.write_text("limits: {upload_megabytes: 10}\n")
    with pytest.raises(OptionError, match="upload_megabytes"):
        load_config(path)
    path.write_text("tenants:\n  acme: {webhook_secret: x}\n")
    with pytest.raises(OptionError, match="tenant 'acme' needs a key"):
        load_config(path)
    path.write_text("brokr: redis://x\n")
    with pytest.raises(OptionError, match="unknown setting\\(s\\) brokr"):
        load_config(path)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        yield SqlJobStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
        return
    from service_helpers import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    yield RedisJobStore(server.url)
    server.stop()


def test_store_updates_are_conditional(store):
    job = store.add(Job(tenant="acme", options={"size": 256}, idempotency_key="k"))
    assert store.add(Job(tenant="acme", idempotency_key="k")).id == job.id
    assert store.add(Job(tenant="beta", idempotency_key="k")).id != job.id
    now = time.time()
    assert store.update(job.id, only_if={"state": [QUEUED]}, state=RUNNING, worker="w1", heartbeat_at=now)
    assert not store.update(job.id, only_if={"state": [QUEUED]}, state=RUNNING, worker="w2")  # already claimed
    assert not store.update(job.id, only_if={"state": [RUNNING]}, heartbeat_before=now - 30, worker="w2")  # alive
    assert store.update(job.id, only_if={"state": [RUNNING]}, state=CANCELLED)
    assert not store.update(job.id, only_if={"state": [RUNNING], "worker": ["w1"]}, state=DONE)  # cancel wins
    got = store.get(job.id)
    assert (got.state, got.worker, got.options) == (CANCELLED, "w1", {"size": 256})
    assert store.counts()[CANCELLED] == 1 and store.counts()[QUEUED] == 1 and store.active()[0].tenant == "beta"
    assert [j.id for j in store.jobs("acme")] == [job.id] and store.find("acme", "k").id == job.id


def test_finished_jobs_are_found_by_age_and_forgotten(store):
    old, new, running = (store.add(Job(tenant="acme", idempotency_key=k)) for k in ("a", "b", "c"))
    store.update(old.id, state="done", finished_at=time.time() - 100)
    store.update(new.id, state="failed", finished_at=time.time())
    store.update(running.id, state="running")
    time.sleep(0.01)
    assert [j.id for j in store.finished_before(time.time() - 50)] == [old.id]
    assert {j.id for j in store.finished_before(time.time() + 5)} == {old.id, new.id}
    store.delete(store.get(old.id))
    assert store.get(old.id) is None and store.find("acme", "a") is None
    assert store.counts()["done"] == 0 and store.counts()["failed"] == 1 and store.counts()["running"] == 1
    assert {j.id for j in store.jobs("acme")} == {new.id, running.id}
    assert [j.id for j in store.jobs("acme", before=running.created_at)] == [new.id]  # a page of older jobs
