"""`talker models download` against a real HTTP server on 127.0.0.1 serving synthetic files.

The server (http.server in a thread) can cut a transfer in the middle of the body, answer 404 or
503, redirect, and ignore or honour Range. Small torch files (a few MB of random tensors) are
used where the transfer mechanics are the point, a synthetic SadTalker Audio2Exp checkpoint
(11 MB, tests/sadtalker_checkpoints.py) where the structure check is.

The helpers here (LoopbackServer, write_manifest, torch_file, run_models) are shared with
test_models_store.py and test_doctor.py.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import socket
import threading
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from sadtalker_checkpoints import write_synthetic_sadtalker
from talker.errors import TalkerError
from talker.models.download import DownloadError, DownloadSettings, download
from talker.models.manifest import load_manifest
from talker.models.store import MISSING, PARTIAL, VERIFIED, ModelStore

FAST = DownloadSettings(retries=1, backoff=0.01, timeout=10, progress=False)


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------

@dataclass
class Route:
    """How the server answers one path: ``data`` with Range support, or ``status``, or a redirect.
    ``cut`` closes the connection after that many body bytes on the first ``cut_times`` requests."""

    data: bytes = b""
    status: int = 200
    redirect: str | None = None
    ranges: bool = True
    cut: int | None = None
    cut_times: int = 1
    hits: int = 0


@dataclass
class LoopbackServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 with a free port; ``log`` holds (path, Range, status)."""

    routes: dict[str, Route] = field(default_factory=dict)
    log: list[tuple[str, str | None, int]] = field(default_factory=list)

    def start(self) -> "LoopbackServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                route = server.routes.get(self.path)
                wanted = self.headers.get("Range")
                if route is None or route.status != 200:
                    status = 404 if route is None else route.status
                    server.log.append((self.path, wanted, status))
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                route.hits += 1
                if route.redirect:
                    server.log.append((self.path, wanted, 302))
                    self.send_response(302)
                    self.send_header("Location", route.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(wanted.split("=")[1].split("-")[0]) if wanted and route.ranges else 0
                if start >= len(route.data) and start:
                    server.log.append((self.path, wanted, 416))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(route.data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = route.data[start:]
                status = 206 if start else 200
                server.log.append((self.path, wanted, status))
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(route.data) - 1}/{len(route.data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if route.cut is not None and route.hits <= route.cut_times:
                    self.wfile.write(body[: route.cut])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = LoopbackServer().start()
    yield srv
    srv.stop()


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def manifest_entry(file: str, data: bytes | Path, urls: list[str], *, folder: str = "checkpoints",
                   pin: bool = True, networks: dict | None = None, fmt: str = "torch",
                   features: tuple[str, ...] = ("test",), optional: bool = False, size: int | None = None) -> dict:
    """A manifest table for ``data`` (bytes or a file): its size and (``pin``) sha256."""
    blob = data.read_bytes() if isinstance(data, Path) else data
    entry = {"file": file, "folder": folder, "size": len(blob) if size is None else size,
             "for": list(features), "optional": optional, "licence": "Apache-2.0", "format": fmt,
             "networks": networks or {}, "primary": urls[0], "mirrors": urls[1:], "enables": f"test file {file}"}
    if pin:
        entry["sha256"] = hashlib.sha256(blob).hexdigest()
    return entry


def write_manifest(path: Path, entries: dict[str, dict]) -> Path:
    """Write a manifest with these [files.<id>] tables (TOML written by hand: no extra dependency)."""
    lines = ["schema_version = 1", ""]
    for key, entry in entries.items():
        lines.append(f'[files."{key}"]')
        lines += [f"{k} = {_toml(v)}" for k, v in entry.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def synthetic_sadtalker_manifest(synth: Path, path: Path) -> tuple[Path, list[str]]:
    """A manifest for the synthetic SadTalker 256 set in ``synth`` (tests/sadtalker_checkpoints.py):
    the shipped entries' names, sources, networks and layout, with the synthetic files' sizes (and
    sha256 for the pickles). Returns (manifest path, entry ids)."""
    from talker.models.manifest import DEFAULT_MANIFEST, load_manifest

    published = load_manifest(DEFAULT_MANIFEST)
    entries = {}
    for eid in ("sadtalker-256", "mapping-crop", "mapping-full"):
        e = published.get(eid)
        file = synth / e.file
        entries[eid] = manifest_entry(e.file, file.read_bytes() if e.format == "torch" else b"", list(e.urls),
                                      networks=dict(e.networks), fmt=e.format, features=("sadtalker",),
                                      pin=e.format == "torch", size=file.stat().st_size)
    return write_manifest(path, entries), list(entries)


def torch_file(nbytes: int, seed: int = 0) -> bytes:
    """The bytes of a torch.save'd {'weight': float32 tensor} of about ``nbytes``."""
    g = torch.Generator().manual_seed(seed)
    buf = io.BytesIO()
    torch.save({"weight": torch.randn(nbytes // 4, generator=g)}, buf)
    return buf.getvalue()


def run_models(*argv: str) -> tuple[int, str]:
    """Run a `talker models ...` / `talker doctor` command through its argparse wiring; (status, stdout)."""
    from talker.doctor import add_doctor_command
    from talker.models.commands import add_models_commands

    parser = argparse.ArgumentParser(prog="talker")
    sub = parser.add_subparsers(dest="command", required=True)
    add_models_commands(sub)
    add_doctor_command(sub)
    args = parser.parse_args([str(a) for a in argv])
    out = io.StringIO()
    with redirect_stdout(out):
        try:
            status = args.run(args)
        except TalkerError as err:  # what talker.cli prints as one line
            print(f"error: {err}")
            status = err.exit_code
    return status, out.getvalue()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No reuse of real SadTalker / WebUI folders, no inherited model settings."""
    for var in ("TALKER_MODELS", "TALKER_MANIFEST", "SADTALKER_CHECKPOINTS", "TALKER_REUSE_DIRS",
                "TALKER_MODELS_MIRROR", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------

def _setup(tmp_path: Path, server: LoopbackServer, data: bytes, paths: list[str], **kw):
    manifest = load_manifest(write_manifest(tmp_path / "m.toml", {
        "small": manifest_entry("small_model.pth", data, [server.url(p) for p in paths], **kw)}))
    return manifest.get("small"), ModelStore(tmp_path / "models")


def test_resume_after_cut_transfer_uses_range_through_redirect(isolated, server):
    data = torch_file(3_000_000)
    cut = 1_000_000
    server.routes["/releases/small_model.pth"] = Route(redirect="/cdn/small_model.pth")
    server.routes["/cdn/small_model.pth"] = Route(data=data, cut=cut)
    entry, store = _setup(isolated, server, data, ["/releases/small_model.pth"])
    said = []

    path = download(entry, store, FAST, say=said.append)

    assert path == store.target(entry) and path.read_bytes() == data
    cdn = [(rng, status) for p, rng, status in server.log if p == "/cdn/small_model.pth"]
    assert cdn == [(None, 200), (f"bytes={cut}-", 206)], server.log  # the Range header survived the redirect
    assert not store.part_path(entry).exists()
    assert store.state(entry).state == VERIFIED
    assert any("resuming at byte 1,000,000" in s for s in said), said


def test_wrong_size_is_refused_and_leaves_nothing(isolated, server):
    data = torch_file(500_000)
    server.routes["/f.pth"] = Route(data=data + b"extra bytes")
    entry, store = _setup(isolated, server, data, ["/f.pth"])

    with pytest.raises(DownloadError, match=f"serves {len(data) + 11:,} bytes, the published small_model.pth has {len(data):,}"):
        download(entry, store, FAST, say=lambda s: None)

    assert not store.target(entry).exists() and not store.part_path(entry).exists()
    assert store.state(entry).state == MISSING
    assert not store.root.exists()  # nor the (empty) folders made for it


def test_same_size_other_content_is_refused_by_sha256(isolated, server):
    data, other = torch_file(400_000, seed=1), torch_file(400_000, seed=2)
    assert len(data) == len(other)
    server.routes["/f.pth"] = Route(data=other)
    entry, store = _setup(isolated, server, data, ["/f.pth"])

    with pytest.raises(DownloadError, match="sha256"):
        download(entry, store, FAST, say=lambda s: None)
    assert not store.target(entry).exists() and not store.part_path(entry).exists()


def test_404_on_primary_then_mirror_serves_it(isolated, server):
    data = torch_file(800_000)
    server.routes["/hf/small_model.pth"] = Route(data=data)
    entry, store = _setup(isolated, server, data, ["/gh/small_model.pth", "/hf/small_model.pth"])
    said = []

    path = download(entry, store, FAST, say=said.append)

    assert path.read_bytes() == data
    assert [(p, s) for p, _, s in server.log] == [("/gh/small_model.pth", 404), ("/hf/small_model.pth", 200)]
    assert any("HTTP 404" in s and "trying 127.0.0.1" in s for s in said), said


def test_503_is_retried_with_backoff_then_the_mirror_is_used(isolated, server):
    data = torch_file(300_000)
    server.routes["/gh/small_model.pth"] = Route(status=503)
    server.routes["/hf/small_model.pth"] = Route(data=data)
    entry, store = _setup(isolated, server, data, ["/gh/small_model.pth", "/hf/small_model.pth"])

    download(entry, store, DownloadSettings(retries=2, backoff=0.01, progress=False), say=lambda s: None)

    assert [s for p, _, s in server.log if p == "/gh/small_model.pth"] == [503, 503, 503]  # 1 + 2 retries
    assert store.state(entry).state == VERIFIED


@pytest.fixture(scope="module")
def audio2exp_files(tmp_path_factory) -> tuple[bytes, bytes]:
    """(synthetic auido2exp_00300-model.pth, synthetic auido2pose_00140-model.pth) bytes."""
    folder = write_synthetic_sadtalker(tmp_path_factory.mktemp("legacy"), legacy=True, only=["audio2exp", "audio2pose"])
    return (folder / "auido2exp_00300-model.pth").read_bytes(), (folder / "auido2pose_00140-model.pth").read_bytes()


def test_file_whose_structure_does_not_match_the_schema_is_refused(isolated, server, audio2exp_files):
    good, wrong = audio2exp_files
    server.routes["/auido2exp_00300-model.pth"] = Route(data=wrong)  # an Audio2Pose file under the Audio2Exp name
    entry = load_manifest(write_manifest(isolated / "m.toml", {"legacy-audio2exp": manifest_entry(
        "auido2exp_00300-model.pth", wrong, [server.url("/auido2exp_00300-model.pth")], pin=False,
        networks={"audio2exp": "model"})})).get("legacy-audio2exp")
    store = ModelStore(isolated / "models")

    with pytest.raises(DownloadError) as err:
        download(entry, store, FAST, say=lambda s: None)

    message = str(err.value)
    assert "does not hold the SadTalker 'audio2exp' network as published" in message
    assert "missing" in message and "unexpected" in message
    assert not store.target(entry).exists() and not store.part_path(entry).exists()
    assert store.state(entry).state == MISSING
    assert not store.root.exists()  # nor the (empty) folders made for it


def test_matching_structure_is_accepted_and_wrong_content_falls_back_to_the_mirror(isolated, server, audio2exp_files):
    good, wrong = audio2exp_files
    server.routes["/gh/auido2exp_00300-model.pth"] = Route(data=wrong[: len(good)].ljust(len(good), b"\0"))
    server.routes["/hf/auido2exp_00300-model.pth"] = Route(data=good)
    entry = load_manifest(write_manifest(isolated / "m.toml", {"legacy-audio2exp": manifest_entry(
        "auido2exp_00300-model.pth", good, [server.url("/gh/auido2exp_00300-model.pth"),
                                            server.url("/hf/auido2exp_00300-model.pth")],
        pin=False, networks={"audio2exp": "model"})})).get("legacy-audio2exp")
    store = ModelStore(isolated / "models")
    said = []

    path = download(entry, store, FAST, say=said.append)

    assert path.read_bytes() == good and store.state(entry).state == VERIFIED
    assert any("not the published one" in s for s in said), said


def test_interrupted_download_is_never_present_and_the_next_run_resumes(isolated, server):
    data = torch_file(2_000_000)
    server.routes["/f.pth"] = Route(data=data, cut=700_000)
    manifest_path = write_manifest(isolated / "m.toml", {"small": manifest_entry("small_model.pth", data, [server.url("/f.pth")])})
    models = isolated / "models"
    entry, store = load_manifest(manifest_path).get("small"), ModelStore(models)
    # first run: the transfer is cut, then the server fails every request until retries run out
    def fail_after_cut(line):
        if "resuming" in line:
            server.routes["/f.pth"] = Route(status=503)

    with pytest.raises(DownloadError, match="700,000 bytes received are kept"):
        download(entry, store, FAST, say=fail_after_cut)

    assert not store.target(entry).exists()
    assert store.state(entry).state == PARTIAL and store.find(entry) is None
    status, listing = run_models("models", "list", "--manifest", manifest_path, "--models-dir", models, "--no-reuse")
    row = next(line for line in listing.splitlines() if line.startswith("small "))
    assert "partial" in row and "present" not in row and "verified" not in row, listing

    # second run, server healthy: resumes from byte 700,000 through the CLI
    server.routes["/f.pth"] = Route(data=data)
    server.log.clear()
    status, out = run_models("models", "download", "small", "--manifest", manifest_path, "--models-dir", models, "--no-reuse")
    assert status == 0, out
    assert server.log == [("/f.pth", "bytes=700000-", 206)]
    assert store.target(entry).read_bytes() == data
    status, listing = run_models("models", "list", "--manifest", manifest_path, "--models-dir", models, "--no-reuse")
    assert "verified" in next(line for line in listing.splitlines() if line.startswith("small ")), listing


def test_download_cli_needs_a_selection_and_knows_features(isolated, server):
    data = torch_file(200_000)
    server.routes["/a.pth"] = Route(data=data)
    manifest_path = write_manifest(isolated / "m.toml", {
        "a": manifest_entry("a.pth", data, [server.url("/a.pth")], features=("demo",)),
        "b": manifest_entry("b.pth", data, [server.url("/b.pth")], features=("demo",), optional=True)})
    common = ("--manifest", manifest_path, "--models-dir", isolated / "models", "--no-reuse")

    status, out = run_models("models", "download", *common)
    assert status == 2 and "say what to download" in out
    status, out = run_models("models", "download", "nonesuch", *common)
    assert status == 2 and "no model named 'nonesuch'" in out
    status, out = run_models("models", "download", "--for", "demo", *common)  # the optional b is not fetched
    assert status == 0 and "1 of 1 files ready" in out, out
    status, out = run_models("models", "download", "b", *common)  # b is not on the server: 404, exit 1
    assert status == 1 and "HTTP 404" in out, out


def test_bare_models_command_lists(isolated):
    status, bare = run_models("models")
    assert status == 0 and bare == run_models("models", "list")[1]
    assert bare.startswith("models folder: ") and "SadTalker_V0.0.2_256.safetensors" in bare


def test_server_that_ignores_range_restarts_from_zero(isolated, server):
    data = torch_file(1_500_000)
    server.routes["/f.pth"] = Route(data=data, ranges=False, cut=600_000)
    entry, store = _setup(isolated, server, data, ["/f.pth"])
    said = []

    path = download(entry, store, FAST, say=said.append)

    assert path.read_bytes() == data
    assert [(rng, status) for _, rng, status in server.log] == [(None, 200), ("bytes=600000-", 200)]
    assert any("does not resume transfers; starting over" in s for s in said), said


def test_manifest_from_the_environment_and_an_in_house_mirror_first(isolated, server, monkeypatch):
    data = torch_file(100_000)
    server.routes["/in-house/a.pth"] = Route(data=data)
    manifest_path = write_manifest(isolated / "m.toml", {"a": manifest_entry("a.pth", data, [server.url("/gh/a.pth")])})
    monkeypatch.setenv("TALKER_MANIFEST", str(manifest_path))

    status, out = run_models("models", "download", "a", "--mirror", server.url("/in-house"),
                             "--models-dir", isolated / "models", "--no-reuse")

    assert status == 0, out
    assert [(p, s) for p, _, s in server.log] == [("/in-house/a.pth", 200)]  # the primary was not needed
