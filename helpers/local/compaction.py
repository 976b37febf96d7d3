"""Compaction of the lake's small objects (what a Glue job or an Athena INSERT does on AWS).

Firehose writes one object per buffer and partition: a day of live streaming is tens of
thousands of small objects, and a query reads every footer. ``Compactor`` merges the small
objects of a partition into larger ones: the same Parquet columns and types (Snappy, as
Firehose writes them), in the same partition folder, the rows in the order of their objects'
keys (Firehose's keys start with the delivery time), named after the first of them with
``-compacted-<id>`` so that the output sorts where its rows came from.

A compaction is atomic for readers, in any process, and survives ``kill -9`` at any moment:

1. the output is written to a temporary file beside the bucket (``Bucket.staging_file``);
2. its record, ``<partition>/_compaction/<output name>.json``, names its sources (file
   names in the partition, with their row counts) and is written at once;
3. the output is renamed into place: the commit. A reader that lists the partition sees
   the output, reads its record and hides its sources (``visible_objects``); before this
   rename the record names an output that is not there and readers ignore it;
4. the sources are deleted, once ``grace_s`` has passed (a query that listed them just
   before the commit may still be reading them); the record stays as long as its output
   does, so that a maintained view in another process can move its rows' positions
   (``athena_views``) instead of reading the lake again.

Every run first recovers under a file lock: a record whose output is not there (a crash
before the commit, or an output since compacted again) is deleted, and the sources of a
committed output are deleted once their grace has passed. So a crash leaves either the
old objects visible or the new one, and the next run finishes or rolls back.

Records are folders and files whose names start with ``_``, which Athena and Glue skip in a
table's location, and which are not in a partition folder of their own: the crawler and
the engine's listing of registered partitions pass them by.

Not emulated: compacting objects of different schemas together (each schema is compacted
apart), sorting rows (they keep their delivery order), and S3's lack of a rename (on AWS
the output is written once, under its final key).
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from helpers.local.s3 import Bucket, ObjectInfo

log = logging.getLogger(__name__)

RECORDS = "_compaction"
"""The folder of compaction records inside a partition folder."""
MARK = "-compacted-"
"""In an output's name, between its first source's name and its own id."""
_ROWS_PER_WRITE = 131_072  # rows buffered before they are written as one row group


def record_key(output_key: str) -> str:
    """The key of the record of a compaction output."""
    folder, _, name = output_key.rpartition("/")
    return f"{folder}/{RECORDS}/{name}.json"


def is_record(key: str) -> bool:
    return f"/{RECORDS}/" in f"/{key}"


def _record_parts(record: str) -> tuple[str, str]:
    """The partition folder of a compaction record and the key of the output it stands for
    (``<partition>/<output>``)."""
    folder = record[: record.index(f"{RECORDS}/")]
    return folder, folder + record.rsplit("/", 1)[1].removesuffix(".json")


def visible_objects(
    bucket: Bucket, listing: list[ObjectInfo]
) -> tuple[list[ObjectInfo], dict[str, list[tuple[str, int]]]]:
    """The data objects a reader sees in a listing of the lake, and the compactions behind
    them: output key -> [(source key, rows), ...] in row order, for each output listed.

    Records are left out, and so are the sources of every listed output (they are hidden
    from the moment the output is committed until they are deleted)."""
    listed = {info.key for info in listing}
    compactions: dict[str, list[tuple[str, int]]] = {}
    for info in listing:
        if not is_record(info.key):
            continue
        folder, output = _record_parts(info.key)
        if output not in listed:
            continue  # not committed (or compacted again): inert
        try:
            sources = _read_record(str(bucket.local_path(info.key)), info.size, info.last_modified)
        except (OSError, ValueError) as error:  # only a foreign file: records are atomic
            log.warning("compaction record %s is unreadable: %s", info.key, error)
            continue
        compactions[output] = [(folder + name, rows) for name, rows in sources]
    hidden = {source for sources in compactions.values() for source, _ in sources}
    objects = [info for info in listing if not is_record(info.key) and info.key not in hidden]
    return objects, compactions


@lru_cache(maxsize=4096)
def _read_record(path: str, size: int, modified: Any) -> tuple[tuple[str, int], ...]:
    """A record's sources (records are immutable: read once per version)."""
    with open(path) as handle:
        record = json.load(handle)
    return tuple((name, int(rows)) for name, rows in record["sources"])


@dataclass
class CompactionResult:
    """What one run did."""

    partitions: list[str] = field(default_factory=list)  # compacted partition folders
    outputs: list[str] = field(default_factory=list)  # keys written
    sources: int = 0  # objects merged
    rows: int = 0
    deleted: int = 0  # sources deleted (this run's or earlier runs')
    rolled_back: int = 0  # records of uncommitted outputs removed
    skipped: list[str] = field(default_factory=list)  # unreadable objects left alone
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "outputs": self.outputs,
            "sources": self.sources,
            "rows": self.rows,
            "deleted": self.deleted,
            "rolled_back": self.rolled_back,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
        }


class Compactor:
    """Compacts the small objects of the partitions under ``prefix``.

    Parameters
    ----------
    bucket, prefix
        The lake and the table's location in it (``sales/``).
    lock_path
        A file that one run at a time locks (in any process).
    small_bytes
        Objects under this size are small; larger ones (compacted already) are left alone.
    max_small
        A partition with more small objects than this is compacted at once, even while
        it is being written.
    quiet_s
        A partition whose newest small object is this old is no longer being written; it
        is compacted if it has two small objects or more.
    grace_s
        Sources are deleted this long after their output was committed.
    target_bytes
        An output holds sources of about this much in all, at most.
    """

    def __init__(
        self,
        bucket: Bucket,
        prefix: str,
        lock_path: Path,
        small_bytes: int = 32 * 2**20,
        max_small: int = 256,
        quiet_s: float = 900.0,
        grace_s: float = 60.0,
        target_bytes: int = 128 * 2**20,
    ):
        if max_small < 1:
            raise ValueError(f"max_small must be 1 or more, not {max_small}")
        self.bucket, self.prefix, self.lock_path = bucket, prefix, Path(lock_path)
        self.small_bytes, self.max_small, self.quiet_s = small_bytes, max_small, quiet_s
        self.grace_s, self.target_bytes = grace_s, target_bytes

    def _step(self, name: str) -> None:
        """Called between the steps of a compaction (tests make a run fail or die here)."""

    def run(
        self,
        force: bool = False,
        before: float | None = None,
        now: float | None = None,
    ) -> CompactionResult:
        """Recover, then compact every partition that needs it (``force``: every one with
        two small objects or more) from its small objects last modified before ``before``
        (a time; default any), then delete the sources whose grace has passed."""
        result = CompactionResult()
        started = time.monotonic()
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = time.time() if now is None else now
            listing = self.bucket.list_objects(self.prefix)
            self._recover(listing, now, result)
            listing = self.bucket.list_objects(self.prefix)
            objects, _ = visible_objects(self.bucket, listing)
            by_partition: dict[str, list[ObjectInfo]] = defaultdict(list)
            for info in objects:
                folder = info.key[: info.key.rfind("/") + 1]
                if info.size < self.small_bytes and folder != self.prefix:
                    by_partition[folder].append(info)
            for folder, small in sorted(by_partition.items()):
                if before is not None:
                    small = [info for info in small if info.last_modified.timestamp() < before]
                if self._due(small, now, force):
                    self._compact_partition(folder, small, result)
            if self.grace_s <= 0 and result.outputs:
                self._recover(self.bucket.list_objects(self.prefix), time.time(), result)
        result.seconds = time.monotonic() - started
        return result

    def _due(self, small: list[ObjectInfo], now: float, force: bool) -> bool:
        """Whether a partition with these small objects is compacted now."""
        if len(small) < 2:
            return False
        if force or len(small) > self.max_small:
            return True
        newest = max(info.last_modified.timestamp() for info in small)
        return now - newest >= self.quiet_s

    def _recover(self, listing: list[ObjectInfo], now: float, result: CompactionResult) -> None:
        """Roll back uncommitted compactions and finish committed ones (see the module)."""
        listed = {info.key for info in listing}
        for info in listing:
            if not is_record(info.key):
                continue
            folder, output = _record_parts(info.key)
            if output not in listed:
                self.bucket.delete_object(info.key)
                result.rolled_back += 1
                continue
            if now - info.last_modified.timestamp() < self.grace_s:
                continue
            try:
                sources = _read_record(
                    str(self.bucket.local_path(info.key)), info.size, info.last_modified
                )
            except (OSError, ValueError) as error:
                log.warning("compaction record %s is unreadable: %s", info.key, error)
                continue
            for name, _ in sources:
                if folder + name in listed:
                    self._step("delete source")
                    result.deleted += self.bucket.delete_object(folder + name)
                    # the record of a source that was an output itself is inert now
                    if record_key(folder + name) in listed:
                        self.bucket.delete_object(record_key(folder + name))

    def _compact_partition(self, folder: str, small: list[ObjectInfo], result) -> None:
        """Compact the small objects of one partition, by schema, in chunks of about
        ``target_bytes``."""
        by_schema: dict[str, list[tuple[ObjectInfo, int]]] = defaultdict(list)
        for info in sorted(small, key=lambda info: info.key):
            try:
                metadata = pq.read_metadata(self.bucket.local_path(info.key))
            except (pa.ArrowInvalid, OSError) as error:
                result.skipped.append(f"{self.bucket.uri(info.key)}: {error}")
                continue
            schema = metadata.schema.to_arrow_schema().remove_metadata().to_string()
            by_schema[schema].append((info, metadata.num_rows))
        compacted = False
        for group in by_schema.values():
            chunk: list[tuple[ObjectInfo, int]] = []
            for item in [*group, None]:
                full = item is None or (
                    chunk and sum(i.size for i, _ in chunk) + item[0].size > self.target_bytes
                )
                if full and len(chunk) >= 2:
                    self._compact(folder, chunk, result)
                    compacted = True
                if full:
                    chunk = []
                if item is not None:
                    chunk.append(item)
        if compacted:
            result.partitions.append(folder)

    def _compact(self, folder: str, sources: list[tuple[ObjectInfo, int]], result) -> None:
        """Write one output of ``sources`` (in their order) and commit it with its record."""
        first = sources[0][0].key[len(folder) :].removesuffix(".parquet").split(MARK)[0]
        output = f"{folder}{first}{MARK}{uuid.uuid4().hex[:12]}.parquet"
        staging = self.bucket.staging_file()
        rows = 0
        try:
            rows = _concatenate(
                [self.bucket.local_path(info.key) for info, _ in sources], staging, self._step
            )
            expected = sum(count for _, count in sources)
            if rows != expected:
                raise ValueError(f"{output}: wrote {rows} rows of {expected}")  # never expected
            record = {
                "output": output[len(folder) :],
                "sources": [[info.key[len(folder) :], count] for info, count in sources],
                "rows": rows,
                "created": time.time(),
            }
            self._step("write record")
            self.bucket.put_object(record_key(output), json.dumps(record).encode())
            self._step("commit")
            self.bucket.commit(staging, output)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        self._step("committed")
        result.outputs.append(output)
        result.sources += len(sources)
        result.rows += rows


def _concatenate(paths: list[Path], target: Path, step: Callable[[str], None]) -> int:
    """Write the rows of these Parquet objects (one schema), in order, to ``target`` as
    Firehose writes an object (Snappy); returns the rows written."""
    writer, pending, rows = None, [], 0
    try:
        for path in paths:
            table = pq.ParquetFile(path).read()
            table = table.replace_schema_metadata(None)
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema, compression="snappy")
            pending.append(table)
            rows += table.num_rows
            if sum(t.num_rows for t in pending) >= _ROWS_PER_WRITE:
                writer.write_table(pa.concat_tables(pending))
                pending = []
                step("write")
        if pending:
            writer.write_table(pa.concat_tables(pending))
    finally:
        if writer is not None:
            writer.close()
    return rows
