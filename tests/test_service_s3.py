"""Results in an S3-compatible bucket: moto's S3 server on loopback stands in for MinIO / AWS.
The API stores the uploads there, the worker reads them and PUTs the MP4, the API answers with a
pre-signed redirect that serves the video (and its Range requests) from the bucket."""

from __future__ import annotations

import io
import zipfile

import boto3
import httpx
import pytest

import service_helpers as sh

KEY = "key-s3-tenant"
S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3(monkeypatch_module):
    from moto.server import ThreadedMotoServer

    port = sh.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in {**S3_ENV, "S3_ENDPOINT_URL": endpoint}.items():
        monkeypatch_module.setenv(k, v)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="talker-results")
    yield client
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def service(tmp_path_factory, s3):
    with sh.running(tmp_path_factory.mktemp("service-s3"), None, {"tenants": {"team": {"key": KEY}}},
                    results="s3://talker-results/campaigns") as svc:
        yield svc


def test_a_job_with_results_in_a_bucket(service, s3, tmp_path):
    image, audio = sh.tiny_media(tmp_path)
    with service.client(KEY) as c:
        job_id = sh.submit(c, image, audio).json()["id"]
        job = sh.wait_job(c, job_id)
        assert job["state"] == "done", service.logs()
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="talker-results")["Contents"])
        assert keys == [f"campaigns/team/{job_id}/{n}" for n in ("audio.wav", "image.jpg", "video.mp4")]
        assert not (service.results.exists())  # nothing went to a local folder

        redirect = c.get(job["links"]["video"])
        assert redirect.status_code == 307 and "Signature" in redirect.headers["location"]
        video = httpx.get(redirect.headers["location"])
        assert video.status_code == 200
        (tmp_path / "v.mp4").write_bytes(video.content)
        sh.check_mp4(tmp_path / "v.mp4")
        part = httpx.get(redirect.headers["location"], headers={"range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == video.content[:100]

        batch = c.post("/v1/batches", files=[("manifest", ("m.csv", b"audio\nmap.wav\n")),
                                             ("files", ("face.jpg", image.read_bytes())), ("files", ("map.wav", audio.read_bytes()))]).json()
        sh.wait_for(lambda: c.get(f"/v1/batches/{batch['id']}").json()["finished"], 60, "the batch")
        with zipfile.ZipFile(io.BytesIO(c.get(batch["links"]["zip"]).content)) as z:
            assert z.namelist() == ["001_face.mp4", "manifest.json"] and z.read("001_face.mp4")[4:8] == b"ftyp"
