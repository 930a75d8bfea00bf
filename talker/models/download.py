"""Downloading model files: resumable, retried, mirror-backed, verified, renamed into place atomically.

Only the standard library speaks HTTP (urllib, which follows the redirects GitHub and Hugging Face
use and keeps the Range header across them). A transfer writes ``<file>.part`` next to the target;
a cut transfer resumes from the bytes already there with ``Range: bytes=N-`` (a 206 reply is
appended, a 200 reply restarts), so a second ``talker models download`` continues where the first
stopped. Sources are the optional ``--mirror`` base URL, the manifest's primary, then its mirrors.
A source is dropped after a 4xx reply, after ``retries`` failures without progress (5xx,
connection errors, timeouts; waits ``backoff * 2**n`` seconds between them), or when what it
served has the wrong size, sha256 or structure. Only a file that passed every check is renamed to
its final name.
"""

from __future__ import annotations

import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

from talker import __version__
from talker.errors import CheckpointError, TalkerError
from talker.folders import made_folders
from talker.models.manifest import ModelFile
from talker.models.store import FAILED, PRESENT, VERIFIED, ModelStore
from talker.models.verify import verify_file

ENV_MIRROR = "TALKER_MODELS_MIRROR"
USER_AGENT = f"talker/{__version__} (+urllib)"
_CHUNK = 1 << 20
_MAX_WAIT = 30.0  # seconds, cap of one backoff wait


class DownloadError(TalkerError):
    """No source delivered a file that passed the checks; the message lists what each source did."""


class _SourceFailed(Exception):
    """This source cannot deliver the file; try the next one."""


@dataclass(frozen=True)
class DownloadSettings:
    """How hard to try: ``retries`` failed attempts without progress per source, waits of
    ``backoff * 2**n`` seconds (at most 30) between them, ``timeout`` seconds per socket operation."""

    retries: int = 3
    backoff: float = 1.0
    timeout: float = 30.0
    progress: bool = True
    mirror: str | None = None


def sources(entry: ModelFile, mirror: str | None = None) -> list[str]:
    """URLs to try in order: ``<mirror>/<file>`` (or $TALKER_MODELS_MIRROR), the primary, the mirrors."""
    base = mirror or os.environ.get(ENV_MIRROR)
    return ([f"{base.rstrip('/')}/{entry.file}"] if base else []) + list(entry.urls)


def download(entry: ModelFile, store: ModelStore, settings: DownloadSettings = DownloadSettings(),
             say: Callable[[str], None] = print) -> Path:
    """Make a verified copy of ``entry`` available and return its path (an existing one is reused)."""
    state = store.state(entry)
    if state.state == VERIFIED:
        say(f"{entry.id}: already verified: {state.path}")
        return state.path
    if state.state == PRESENT:
        try:
            digest = verify_file(entry, state.path, progress=settings.progress)
        except CheckpointError as err:
            store.remember(entry, state.path, ok=False, problem=str(err))
            say(f"{entry.id}: the copy at {state.path} failed its checks ({err}); downloading it again")
        else:
            store.remember(entry, state.path, ok=True, sha256=digest)
            say(f"{entry.id}: already present, now verified: {state.path}")
            return state.path
    elif state.state == FAILED:
        say(f"{entry.id}: the copy at {state.path} failed its checks before; downloading it again")

    target, part = store.target(entry), store.part_path(entry)
    with made_folders(target):  # taken back when nothing was received
        return _fetch(entry, store, target, part, settings, say)


def _fetch(entry: ModelFile, store: ModelStore, target: Path, part: Path, settings: DownloadSettings,
           say: Callable[[str], None]) -> Path:
    """Bring ``entry`` into ``target`` from its sources through ``part``; DownloadError when none delivered."""
    _check_space(entry, part)
    problems: list[str] = []
    with _exclusive(target):
        urls = sources(entry, settings.mirror)
        for i, url in enumerate(urls):
            host = urlsplit(url).netloc or url
            say(f"{entry.id}: downloading {entry.file} ({entry.size / 1e6:,.1f} MB) from {host}")
            try:
                _transfer(url, part, entry, settings, say)
                digest = _checked(entry, part, settings)
            except _SourceFailed as err:
                problems.append(f"{host}: {err}")
                if i + 1 < len(urls):
                    say(f"{entry.id}: {host} failed ({err}); trying {urlsplit(urls[i + 1]).netloc}")
                continue
            os.replace(part, target)
            store.remember(entry, target, ok=True, sha256=digest)
            say(f"{entry.id}: verified and saved: {target}")
            return target
    kept = f"; the {part.stat().st_size:,} bytes received are kept in {part} and the next attempt resumes" if part.is_file() else ""
    raise DownloadError(
        f"could not download {entry.file} ({'; '.join(problems)}){kept}. Check the network, or fetch the "
        f"file on a machine that can ({entry.primary}) and bring it here with `talker models import FOLDER`"
    )


def download_many(entries: Iterable[ModelFile], store: ModelStore, settings: DownloadSettings = DownloadSettings(),
                  say: Callable[[str], None] = print) -> tuple[list[Path], list[str]]:
    """Download each entry; returns (paths obtained, one error line per entry that failed)."""
    done, failed = [], []
    for entry in entries:
        try:
            done.append(download(entry, store, settings, say))
        except TalkerError as err:
            failed.append(f"{entry.id}: {err}")
    return done, failed


def _checked(entry: ModelFile, part: Path, settings: DownloadSettings) -> str | None:
    """Verify a finished .part; on failure delete it and drop the source."""
    try:
        return verify_file(entry, part, progress=settings.progress)
    except CheckpointError as err:
        part.unlink(missing_ok=True)
        raise _SourceFailed(f"served a file that is not the published one: {err}") from None


def _transfer(url: str, part: Path, entry: ModelFile, settings: DownloadSettings, say) -> None:
    """Bring ``part`` to exactly ``entry.size`` bytes from ``url``, resuming and retrying; or _SourceFailed."""
    failures = 0
    while True:
        offset = part.stat().st_size if part.is_file() else 0
        if offset > entry.size:
            part.unlink()
            offset = 0
        if offset == entry.size:
            return
        received, error = 0, ""
        try:
            received = _fetch_once(url, part, offset, entry, settings, say)
            if offset + received == entry.size:
                return
            error = f"the transfer ended after {offset + received:,} of {entry.size:,} bytes"
        except urllib.error.HTTPError as err:
            if err.code == 416 and offset:  # the .part does not fit what the server has: start over
                part.unlink()
                error = "HTTP 416 (range not satisfiable)"
            elif 400 <= err.code < 500:
                raise _SourceFailed(f"HTTP {err.code} {err.reason}") from None
            else:
                error = f"HTTP {err.code} {err.reason}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            received = (part.stat().st_size if part.is_file() else 0) - offset
            error = _describe(err)
        failures = 0 if received > 0 else failures + 1
        if failures > settings.retries:
            raise _SourceFailed(f"{error}, {failures} times")
        if failures:
            wait = min(settings.backoff * 2 ** (failures - 1), _MAX_WAIT)
            say(f"{entry.id}: {error}; retrying in {wait:.1f} s")
            time.sleep(wait)
        else:
            say(f"{entry.id}: {error}; resuming at byte {part.stat().st_size:,}")


def _fetch_once(url: str, part: Path, offset: int, entry: ModelFile, settings: DownloadSettings, say) -> int:
    """One HTTP request from ``offset``; appends to ``part`` and returns the number of bytes written."""
    from tqdm import tqdm

    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=settings.timeout) as resp:
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range", ""))
            if start != offset:
                raise _SourceFailed(f"resumed at byte {start} when asked for {offset}")
        else:
            if offset:
                say(f"{entry.id}: the server does not resume transfers; starting over")
                offset = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and total != entry.size:
            raise _SourceFailed(f"serves {total:,} bytes, the published {entry.file} has {entry.size:,}")
        written = 0
        with open(part, "ab" if offset else "wb") as out, tqdm(
                total=entry.size, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=entry.file, leave=False, disable=None if settings.progress else True) as bar:
            while chunk := resp.read(_CHUNK):
                if offset + written + len(chunk) > entry.size:
                    out.close()
                    part.unlink()
                    raise _SourceFailed(f"sends more than the {entry.size:,} bytes of the published {entry.file}")
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
        return written


def _content_range(value: str) -> tuple[int, int | None]:
    """(first byte, total size or None) of a ``Content-Range: bytes a-b/n`` header."""
    try:
        unit, _, rest = value.partition(" ")
        span, _, total = rest.partition("/")
        assert unit == "bytes"
        return int(span.split("-")[0]), (None if total == "*" else int(total))
    except (AssertionError, ValueError):
        raise _SourceFailed(f"sent an unreadable Content-Range {value!r}") from None


def _describe(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    if isinstance(err, http.client.IncompleteRead):
        return "the connection closed in the middle of the file"
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def _check_space(entry: ModelFile, part: Path) -> None:
    have = part.stat().st_size if part.is_file() else 0
    free = shutil.disk_usage(part.parent).free
    if free < entry.size - have:
        raise DownloadError(
            f"{entry.file} needs {(entry.size - have) / 1e9:.2f} GB more and {part.parent} has "
            f"{free / 1e9:.2f} GB free: free some space or choose another folder with --models-dir"
        )


@contextmanager
def _exclusive(target: Path):
    """Hold an advisory lock on ``<target>.lock`` so two talker processes never write one .part."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; a second download would resume the same .part
        yield
        return
    lock_path = target.with_name(target.name + ".lock")
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DownloadError(f"another talker process is downloading {target.name}; wait for it to finish") from None
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)
