"""Uploaded inputs and rendered outputs: a folder shared by the API and the workers, or an
S3-compatible bucket (``s3://bucket/prefix``; ``S3_ENDPOINT_URL`` points boto3 at MinIO, Ceph...).

Keys are relative paths like ``<tenant>/<job>/video.mp4``. A file appears whole or not at all: in
a folder it is written under a temporary name and renamed; in a bucket a PUT is atomic.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def open_results(url: str):
    """FolderResults for a path, S3Results for s3://bucket[/prefix]."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        return S3Results(bucket, prefix.strip("/"))
    return FolderResults(Path(url).expanduser())


class FolderResults:
    def __init__(self, root: Path):
        self.root = Path(os.path.abspath(root))
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file of ``key`` (which never leaves the root)."""
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"key {key!r} leaves the results folder")
        return path

    def put_file(self, key: str, local: Path) -> None:
        """Copy ``local`` to ``key`` atomically (temporary name in the same folder, then rename)."""
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(local, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_file(self, key: str, local: Path) -> None:
        shutil.copyfile(self.path(key), local)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def open(self, key: str):
        """A binary file object to read ``key``."""
        return open(self.path(key), "rb")

    def delete_folder(self, prefix: str) -> None:
        """Delete every key under ``prefix`` (a folder: '<tenant>/<job>')."""
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def folders(self, older_than: float) -> list[str]:
        """Keys of the job folders ('<tenant>/<job>') and batch folders ('<tenant>/batches/<batch>')
        last changed before ``older_than`` (Unix seconds)."""
        found = []
        for tenant in (d for d in self.root.iterdir() if d.is_dir()):
            for folder in (d for d in tenant.iterdir() if d.is_dir()):
                inner = [b for b in folder.iterdir() if b.is_dir()] if folder.name == "batches" else [folder]
                found += [f.relative_to(self.root).as_posix() for f in inner if f.stat().st_mtime < older_than]
        return found


class S3Results:
    def __init__(self, bucket: str, prefix: str = ""):
        import boto3

        self.bucket, self.prefix = bucket, prefix
        self.s3 = boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, local: Path) -> None:
        self.s3.upload_file(str(local), self.bucket, self._key(key))

    def get_file(self, key: str, local: Path) -> None:
        self.s3.download_file(self.bucket, self._key(key), str(local))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError:
            return False

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    def open(self, key: str):
        return self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]

    def delete_folder(self, prefix: str) -> None:
        """Delete every key under ``prefix``/."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix) + "/")
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def url(self, key: str, expires_s: int = 3600) -> str:
        """A pre-signed GET address (the bucket serves Range requests itself)."""
        return self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_s
        )
