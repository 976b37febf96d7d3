"""The change stream between the pipe and the delivery stream (Kinesis Data Streams): shard logs.

A durable log split into shards as Kinesis splits it: the MD5 of the partition key, read as a
128-bit number, falls in one shard's hash key range, and the ranges divide 0 .. 2**128 - 1
evenly. Each shard numbers its records with increasing 56-digit sequence numbers, so records of
one partition key keep their order.

Each shard is an append-only file of frames (length, CRC-32, position, arrival time, partition
key, data), as a shard is an ordered log, with an index file of each record's end offset, so a
reader finds any position without a scan. A put appends its frames, syncs them to disk, and
only then appends their index entries: readers, who find records through the index, see only
records whose put is durable. The index itself is not synced; whoever opens the stream or puts
next re-indexes frames past it that pass their CRC and cuts off a torn tail, so a crash of the
process or the machine loses nothing a put returned for. One writer at a time holds the
stream's lock file.

Not emulated: resharding, enhanced fan-out, throughput limits and throttling, explicit hash
keys, aggregation (subsequence numbers are always 0), and the retention period (records are
kept until the root is removed).
"""

from __future__ import annotations

import bisect
import fcntl
import hashlib
import json
import os
import struct
import time
import zlib
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

HASH_SPACE = 2**128
MAX_RECORD_BYTES = 1024 * 1024
_FRAME = struct.Struct("<IIqdH")  # length after the CRC, CRC-32 of it, position, arrival, key
_AFTER_CRC = 4 + 4  # the CRC covers the frame from here on: the head, the key, the data
_HEAD = struct.Struct("<qdH")  # position, arrival, key length
_CHECK = struct.Struct("<II")  # length after the CRC, CRC-32 of it
_ENTRY = 8  # one index entry: a frame's end offset (int64)


@dataclass(frozen=True)
class Shard:
    """One shard: its id and hash key range, as DescribeStream shows them."""

    index: int
    shard_id: str
    starting_hash_key: int
    ending_hash_key: int


class Record(NamedTuple):
    """One record as GetRecords returns it (a tuple, so buffers pickle fast)."""

    shard_id: str
    seq: int
    sequence_number: str
    partition_key: str
    data: bytes
    approximate_arrival_timestamp: float


def even_shards(count: int) -> list[Shard]:
    """Shards splitting the hash key space evenly, as CreateStream does."""
    starts = [index * HASH_SPACE // count for index in range(count)] + [HASH_SPACE]
    return [
        Shard(index, f"shardId-{index:012d}", starts[index], starts[index + 1] - 1)
        for index in range(count)
    ]


def sequence_number(shard: int, seq: int) -> str:
    """The 56-digit sequence number of a shard's seq-th record."""
    return _sequence_format(shard) % seq


def _sequence_format(shard: int) -> str:
    """The ``%`` format of a shard's sequence numbers, for formatting many at once."""
    return f"49{shard:06d}%048d"


class Stream:
    """A Kinesis data stream with a fixed number of shards, kept in the folder ``path``."""

    def __init__(self, path: Path, name: str, shard_count: int, region: str, account_id: str):
        self.name, self.path = name, Path(path)
        self.arn = f"arn:aws:kinesis:{region}:{account_id}:stream/{name}"
        self.path.mkdir(parents=True, exist_ok=True)
        self._logs: list[int] = []
        self._indexes: list[int] = []
        self._lock_fd = os.open(self.path / "write.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            with self._locked():
                stored = self._stored_shard_count(shard_count)
                if stored != shard_count:
                    raise ValueError(
                        f"stream {name!r} already exists with {stored} shards, not "
                        f"{shard_count}; resharding is not emulated: tear down the local root "
                        "or keep the shard count"
                    )
                self.shards = even_shards(shard_count)
                self._logs = [self._open(f"{shard.shard_id}.log") for shard in self.shards]
                self._indexes = [self._open(f"{shard.shard_id}.idx") for shard in self.shards]
                for shard in self.shards:
                    self._repair(shard.index, whole=True)
        except BaseException:
            self.close()
            raise
        # 128-bit big-endian starts: bytes order as the numbers do, so an MD5 digest is
        # placed without converting it to an int
        self._starts = [shard.starting_hash_key.to_bytes(16, "big") for shard in self.shards]

    def _stored_shard_count(self, shard_count: int) -> int:
        """The shard count the stream was created with (``shard_count`` if it is new)."""
        meta = self.path / "meta.json"
        if not meta.exists():
            staging = self.path / "meta.json.tmp"
            with open(staging, "w") as handle:
                json.dump({"shard_count": shard_count}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, meta)
        return json.loads(meta.read_text())["shard_count"]

    def _open(self, file_name: str) -> int:
        return os.open(self.path / file_name, os.O_RDWR | os.O_CREAT, 0o644)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The stream's write lock, across processes and handles (not threads sharing one)."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def shard_for(self, partition_key: str) -> int:
        """The shard index whose hash key range holds MD5(partition key)."""
        return bisect.bisect_right(self._starts, hashlib.md5(partition_key.encode()).digest()) - 1

    def put_records(self, records: Sequence[tuple[str, bytes]]) -> list[tuple[str, str]]:
        """PutRecords: (partition key, data) pairs, durable when it returns.

        Returns each record's (shard id, sequence number), in the order given.
        """
        shards, keys = [], []
        for partition_key, data in records:
            if not partition_key or len(partition_key) > 256:
                raise ValueError("partition key must be 1 to 256 characters")
            key = partition_key.encode()
            if len(data) + len(key) > MAX_RECORD_BYTES:
                raise ValueError(f"record of {len(data)} bytes exceeds Kinesis's 1 MiB limit")
            shards.append(self.shard_for(partition_key))
            keys.append(key)
        now = time.time()
        placed = []
        with self._locked():
            tops, ends = {}, {}
            for shard in set(shards):
                tops[shard], ends[shard] = self._repair(shard)
            frames = {shard: bytearray() for shard in tops}
            entries = {shard: array("q") for shard in tops}
            head, check, crc = _HEAD.pack, _CHECK.pack, zlib.crc32
            for shard, key, (_, data) in zip(shards, keys, records, strict=True):
                tops[shard] = seq = tops[shard] + 1
                body = head(seq, now, len(key)) + key + data
                framed = frames[shard]
                framed += check(len(body), crc(body))
                framed += body
                entries[shard].append(ends[shard] + len(framed))
                placed.append((shard, seq))
            for shard, framed in frames.items():
                _write_all(self._logs[shard], framed, ends[shard])
                os.fdatasync(self._logs[shard])
            for shard, offsets in entries.items():
                before = tops[shard] - len(offsets)
                _write_all(self._indexes[shard], offsets.tobytes(), before * _ENTRY)
        shard_ids = [shard.shard_id for shard in self.shards]
        formats = [_sequence_format(shard.index) for shard in self.shards]
        return [(shard_ids[shard], formats[shard] % seq) for shard, seq in placed]

    def get_records(self, shard: int, after: int, limit: int = 10_000) -> list[Record]:
        """GetRecords from a shard, after a position (0 = from the trim horizon)."""
        start, ends = self._span(shard, after, limit)
        if not ends:
            return []
        blob = os.pread(self._logs[shard], ends[-1] - start, start)
        shard_id, number = self.shards[shard].shard_id, _sequence_format(shard)
        unpack, head, records, offset = _FRAME.unpack_from, _FRAME.size, [], 0
        new = tuple.__new__  # a Record without the Python-level __new__ of NamedTuple
        for end in ends:
            _, _, seq, arrival, key_size = unpack(blob, offset)
            key_end = offset + head + key_size
            key = blob[offset + head : key_end].decode()
            end -= start
            records.append(
                new(Record, (shard_id, seq, number % seq, key, blob[key_end:end], arrival))
            )
            offset = end
        return records

    def extent(self, shard: int, after: int, limit: int) -> tuple[int, int, int]:
        """Of the next ``limit`` records after a position: the last position, how many, and
        their bytes as stored, without reading them (for buffering decisions)."""
        start, ends = self._span(shard, after, limit)
        return after + len(ends), len(ends), (ends[-1] - start if ends else 0)

    def _span(self, shard: int, after: int, limit: int) -> tuple[int, array]:
        """Where the records after a position start, and the end offset of each (at most
        ``limit``), from the index."""
        upto = min(self._top(shard), after + max(0, limit))
        if upto <= after:
            return 0, array("q")
        first = max(0, after - 1)
        entries = array(
            "q", os.pread(self._indexes[shard], (upto - first) * _ENTRY, first * _ENTRY)
        )
        start = entries[0] if after else 0
        return start, entries[1:] if after else entries

    def _top(self, shard: int) -> int:
        """How many records a shard's index holds."""
        return os.fstat(self._indexes[shard]).st_size // _ENTRY

    def _end(self, shard: int, top: int) -> int:
        """The end offset of a shard's last indexed record (0 when empty)."""
        if not top:
            return 0
        return array("q", os.pread(self._indexes[shard], _ENTRY, (top - 1) * _ENTRY))[0]

    def _repair(self, shard: int, whole: bool = False) -> tuple[int, int]:
        """Make a shard's index cover exactly its durable frames; returns its record count and
        where its log ends.

        Called with the lock held. Index entries the crash of a machine left wrong (zeros, or
        pointing past the log) are dropped: the last one at every put, and every one when the
        stream is opened (``whole``), since unsynced pages may reach the disk in any order.
        Frames past the index that pass their checks (CRC, sizes, position) are synced and
        indexed again; a torn frame and anything after it is cut off.
        """
        log, index = self._logs[shard], self._indexes[shard]
        size = os.fstat(log).st_size
        indexed = os.fstat(index).st_size
        top = indexed // _ENTRY
        if whole and top:
            entries = np.frombuffer(os.pread(index, top * _ENTRY, 0), dtype="<i8")
            wrong = (entries > size) | (np.diff(entries, prepend=0) <= 0)
            if wrong.any():
                top = int(wrong.argmax())
        end = self._end(shard, top)
        while top and (end > size or end <= self._end(shard, top - 1)):
            top -= 1
            end = self._end(shard, top)
        if indexed != top * _ENTRY:  # dropped entries, or a torn one
            os.ftruncate(index, top * _ENTRY)
        if end == size:
            return top, end
        tail = os.pread(log, size - end, end)
        offsets, offset = array("q"), 0
        while offset + _FRAME.size <= len(tail):
            length, checksum, seq, _, key_size = _FRAME.unpack_from(tail, offset)
            body = tail[offset + _AFTER_CRC : offset + _AFTER_CRC + length]
            if (
                len(body) != length
                or not 1 <= key_size <= length - _HEAD.size
                or seq != top + len(offsets) + 1
                or zlib.crc32(body) != checksum
            ):
                break
            offset += _AFTER_CRC + length
            offsets.append(end + offset)
        if end + offset != size:
            os.ftruncate(log, end + offset)
        os.fsync(log)  # durable before readers can find them
        if offsets:
            _write_all(index, offsets.tobytes(), top * _ENTRY)
        return top + len(offsets), end + offset

    def latest_sequences(self) -> dict[int, int]:
        """The newest position of every shard (0 for an empty shard)."""
        return {shard.index: self._top(shard.index) for shard in self.shards}

    def count(self) -> int:
        """Records held in the stream."""
        return sum(self.latest_sequences().values())

    def close(self) -> None:
        """Close the files (again is a no-op)."""
        for descriptor in (*self._logs, *self._indexes, self._lock_fd):
            if descriptor >= 0:
                os.close(descriptor)
        self._logs, self._indexes, self._lock_fd = [], [], -1


def _write_all(descriptor: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``."""
    view = memoryview(data)
    while view:
        written = os.pwrite(descriptor, view, offset)
        view, offset = view[written:], offset + written
