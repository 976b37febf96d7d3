"""The lake's object store (S3): a bucket is a folder, a key is a relative path.

Objects appear atomically, as S3's do: each is written to a temporary file beside the bucket,
flushed to disk, then renamed into place, so a reader never sees a partial object and a crash
leaves at most an orphan temporary file (cleared on the next start).

Not emulated: a key that is also a prefix of other keys (``a`` beside ``a/b``), keys with
empty or dot segments, versioning, multipart uploads, ETags as S3 computes them, storage classes,
lifecycle rules other than expiration by prefix (:meth:`Bucket.expire`), encryption, and
access control.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers.exceptions import DiskFullError
from helpers.local.durable import sync_directory


@dataclass(frozen=True)
class ObjectInfo:
    """One entry of ListObjectsV2."""

    key: str
    size: int
    last_modified: datetime


class Bucket:
    """An S3 bucket under a local folder."""

    def __init__(self, root: Path, name: str):
        self.name = name
        self.path = Path(root) / name
        self._staging = Path(root) / f".staging-{name}"
        self.path.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)

    def clear_staging(self) -> None:
        """Remove temporary files a crashed writer left (only the consumer may call this)."""
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging.mkdir(parents=True, exist_ok=True)

    def uri(self, key: str = "") -> str:
        """The object's ``s3://`` address."""
        return f"s3://{self.name}/{key}"

    def local_path(self, key: str) -> Path:
        """Where the object lies on disk (for DuckDB and pyarrow to read it in place)."""
        return self.path / key

    def put_object(self, key: str, body: bytes, private: bool = False) -> None:
        """Write an object atomically and durably; ``private``, readable by its owner only."""
        self._check_key(key)
        staging = self.staging_file()
        opener = (lambda path, flags: os.open(path, flags, 0o600)) if private else None
        with self._writing(staging, key), open(staging, "wb", opener=opener) as handle:
            handle.write(body)
        self.commit(staging, key)

    def staging_file(self) -> Path:
        """A new temporary file beside the bucket (not an object): write it, then ``commit``."""
        return self._staging / uuid.uuid4().hex

    def commit(self, staging: Path, key: str) -> None:
        """Make a written ``staging_file`` the object ``key`` at once and durably (synced,
        renamed into place, the folder synced). A full disk removes the staging file and raises
        :class:`DiskFullError`."""
        self._check_key(key)
        target = self.path / key
        with self._writing(staging, key):
            with open(staging, "rb+") as handle:
                os.fsync(handle.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
        sync_directory(target.parent)

    @contextlib.contextmanager
    def _writing(self, staging: Path, key: str) -> Iterator[None]:
        """On any write error the staging file goes; a full disk raises DiskFullError."""
        try:
            yield
        except OSError as error:
            staging.unlink(missing_ok=True)
            if error.errno == errno.ENOSPC:
                raise DiskFullError.at(self.path, f"writing the object {key!r}") from None
            raise

    def _check_key(self, key: str) -> None:
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") for part in parts):
            raise ValueError(
                f"invalid object key {key!r}: the local lake needs keys of non-empty segments "
                "without '.', '..', '//' or a trailing '/'"
            )
        for depth in range(1, len(parts)):
            if (self.path.joinpath(*parts[:depth])).is_file():
                raise ValueError(
                    f"cannot write {key!r}: object {'/'.join(parts[:depth])!r} exists, and a "
                    "local bucket cannot hold both a key and keys below it"
                )
        if (self.path / key).is_dir():
            raise ValueError(
                f"cannot write {key!r}: keys below it exist, and a local bucket cannot hold "
                "both a key and keys below it"
            )

    def delete_object(self, key: str) -> bool:
        """DeleteObject, durably; returns whether there was one."""
        target = self.path / key
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        sync_directory(target.parent)
        return True

    def get_object(self, key: str) -> bytes:
        """The object's bytes; KeyError if there is none."""
        try:
            return (self.path / key).read_bytes()
        except FileNotFoundError:
            raise KeyError(f"no object {self.uri(key)}") from None

    def list_objects(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order (as ListObjectsV2)."""
        base = self.path / prefix.rsplit("/", 1)[0] if "/" in prefix else self.path
        if not base.exists():
            return []
        found = []
        for directory, _, files in os.walk(base):
            for filename in files:
                path = Path(directory) / filename
                key = path.relative_to(self.path).as_posix()
                if key.startswith(prefix):
                    stat = path.stat()
                    found.append(
                        ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
                    )
        return sorted(found, key=lambda info: info.key)

    def expire(self, prefix: str, days: int, now: float | None = None) -> int:
        """Apply a lifecycle rule ``Expiration: Days`` to the objects under a prefix; returns
        how many expired.

        As S3 counts it: an object expires at the first midnight UTC at or after its creation
        plus ``days`` days. Each goes by one unlink (a kill leaves it whole or gone), and
        folders left empty go with it.
        """
        moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        expired = 0
        for info in self.list_objects(prefix):
            if moment >= expiry(info.last_modified, days):
                path = self.path / info.key
                path.unlink(missing_ok=True)
                expired += 1
                for parent in path.parents:
                    if parent == self.path:
                        break
                    try:
                        parent.rmdir()
                    except OSError:  # not empty
                        break
        return expired

    def delete_objects(self, prefix: str = "") -> int:
        """Delete every object under a prefix; returns how many."""
        objects = self.list_objects(prefix)
        for info in objects:
            (self.path / info.key).unlink(missing_ok=True)
        return len(objects)


def expiry(created: datetime, days: int) -> datetime:
    """When S3's lifecycle expires an object created at ``created`` after ``days`` days: the
    first midnight UTC at or after ``created + days``."""
    due = created.astimezone(UTC) + timedelta(days=days)
    midnight = due.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if midnight == due else midnight + timedelta(days=1)
