"""The change stream between the pipe and the delivery stream (Kinesis Data Streams): shard logs.

A durable log split into shards as Kinesis splits it: the MD5 of the partition key, read as a
128-bit number, falls in one shard's hash key range, and the ranges divide 0 .. 2**128 - 1
evenly. Each shard numbers its records with increasing 56-digit sequence numbers, so records of
one partition key keep their order.

Each shard is an append-only log of frames (length, CRC-32, position, arrival time, partition
key, data), as a shard is an ordered log, kept as a series of segments (a file pair each,
``<shard id>-<first position>.log`` and ``.idx``: the frames, and each record's end offset, so
a reader finds any position without a scan). A put appends its frames to the last segment,
syncs them to disk, and only then appends their index entries: readers, who find records
through the index, see only records whose put is durable. The index of the last segment is not
synced; whoever opens the stream or puts next re-indexes frames past it that pass their CRC and
cuts off a torn tail, so a crash of the process or the machine loses nothing a put returned for.
One writer at a time holds the stream's lock file, and one thread at a time uses a handle.

Positions are never given out twice. Each put also records the shard's newest position in
``high-water``, apart from the logs (after the frames are synced, itself unsynced: a crash can
leave it behind its log, never ahead, and the larger of the two counts); a log found shorter than that (its tail lost, or restored
from an older copy) goes on in a new segment above it, and :meth:`Stream.continue_above` moves
it above a consumer's checkpoint (the delivery stream calls it when it opens), so that new
records are never numbered under a position a consumer has passed.

Retention (:meth:`Stream.trim`) removes whole segments, oldest first, once their newest record
is older than the retention period and every consumer has read past them; reading a trimmed
position raises :class:`~helpers.exceptions.TrimmedDataAccessError`. Kinesis itself raises
nothing there: GetRecords has no trimmed-data error (its ``ExpiredIteratorException`` is about an
iterator older than 5 minutes, not about retention), and an iterator below the trim horizon reads
on from the oldest record kept (AT_TIMESTAMP says so outright: "the iterator returned is for the
oldest untrimmed data record"), skipping what was trimmed. Here the skip is refused with the
fix, so that no loss passes silently; it can only happen to a reader behind a trim (a restored
checkpoint), as this retention never trims what a consumer has not read.

Not emulated: resharding, enhanced fan-out, throughput limits and throttling, explicit hash
keys, aggregation (subsequence numbers are always 0), iterators (a position stands for one),
and trimming what a consumer has not read (Kinesis trims by age alone; here retention never
loses a record before the lake has it).
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import struct
import threading
import time
import zlib
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from helpers.exceptions import DiskFullError, StateFileError, TrimmedDataAccessError
from helpers.local.durable import sync_directory

log = logging.getLogger(__name__)

HASH_SPACE = 2**128
MAX_RECORD_BYTES = 1024 * 1024
_FRAME = struct.Struct("<IIqdH")  # length after the CRC, CRC-32 of it, position, arrival, key
_AFTER_CRC = 4 + 4  # the CRC covers the frame from here on: the head, the key, the data
_HEAD = struct.Struct("<qdH")  # position, arrival, key length
_CHECK = struct.Struct("<II")  # length after the CRC, CRC-32 of it
_ENTRY = 8  # one index entry: a frame's end offset (int64)
RETENTION_HOURS = 24
"""Kinesis's default retention period (the template's ``StreamRetentionHours``)."""
MIN_RETENTION_HOURS, MAX_RETENTION_HOURS = 24, 8760
SEGMENT_BYTES = int(os.environ.get("SALESCAST_KINESIS_SEGMENT_BYTES", 64 * 1024 * 1024))
"""A shard's log is a series of segments: a new one starts once the last holds this much
(``SALESCAST_KINESIS_SEGMENT_BYTES``, read by every process that puts)..."""
TRIMMED_POSITION = "TrimmedPosition"
"""The code of a read below the trim horizon: Kinesis has no error of its own for it (see the
module docstring), and ``ExpiredIteratorException``, which it has, means something else."""
SEGMENT_SECONDS = 3600.0
"""...or has held records for an hour, so that retention frees space an hour at a time."""
HIGH_WATER = "high-water"
"""The file of each shard's highest position given out (8 bytes a shard), apart from the logs."""


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


def _guarded(method):
    """The method holds the handle's thread lock: a segment's files are closed when another
    handle trimmed it, never while a thread of this one reads them."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        with self._guard:
            return method(self, *args, **kwargs)

    return guarded


class _Segment:
    """One file pair of a shard's log: the records from position ``first`` on."""

    __slots__ = ("first", "index", "log", "newest", "oldest")

    def __init__(self, first: int, log: int, index: int):
        self.first, self.log, self.index = first, log, index
        self.oldest: float | None = None  # arrival of its first record
        self.newest: float | None = None  # arrival of its last record, once it is sealed

    def count(self) -> int:
        return os.fstat(self.index).st_size // _ENTRY

    def close(self) -> None:
        os.close(self.log)
        os.close(self.index)


class Stream:
    """A Kinesis data stream with a fixed number of shards, kept in the folder ``path``.

    ``retention_hours`` is the stream's retention period (the template's
    ``StreamRetentionHours``: 24 to 8760, 24 by default); see :meth:`trim`.
    """

    def __init__(
        self,
        path: Path,
        name: str,
        shard_count: int,
        region: str,
        account_id: str,
        retention_hours: float = RETENTION_HOURS,
    ):
        if not MIN_RETENTION_HOURS <= retention_hours <= MAX_RETENTION_HOURS:
            raise ValueError(
                f"retention of {retention_hours:g} hours is outside Kinesis's "
                f"{MIN_RETENTION_HOURS}..{MAX_RETENTION_HOURS} (StreamRetentionHours)"
            )
        self._guard = threading.RLock()  # one thread at a time uses the files of a handle
        self.name, self.path = name, Path(path)
        self.retention_hours = retention_hours
        self.arn = f"arn:aws:kinesis:{region}:{account_id}:stream/{name}"
        self.path.mkdir(parents=True, exist_ok=True)
        self._segments: list[list[_Segment]] = []
        self._high_fd = -1
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
                self._segments = [[] for _ in self.shards]
                self._high_fd = os.open(self.path / HIGH_WATER, os.O_RDWR | os.O_CREAT, 0o644)
                for shard in self.shards:
                    self._migrate(shard)
                    self._clean(shard)
                    self._repair(shard.index, whole=True)
        except BaseException:
            self.close()
            raise
        # 128-bit big-endian starts: bytes order as the numbers do, so an MD5 digest is
        # placed without converting it to an int
        self._starts = [shard.starting_hash_key.to_bytes(16, "big") for shard in self.shards]

    # files --------------------------------------------------------------------------------

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
            sync_directory(self.path)
        try:
            stored = json.loads(meta.read_text())["shard_count"]
            if not isinstance(stored, int) or isinstance(stored, bool) or stored < 1:
                raise ValueError(f"shard_count {stored!r} is not a positive whole number")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise StateFileError(
                f"{meta} cannot be read as the stream's description ({error}): it is damaged"
                " or was replaced. It holds only the shard count: write"
                f' {{"shard_count": {shard_count}}} into it if the stream was made with'
                f" {shard_count} shards (the shard logs beside it are named by shard), restore"
                f" it from a copy of the root, or remove the root {self.path.parent} to start"
                " again empty (its data is then lost)"
            ) from None
        return stored

    def _segment_path(self, shard: int, first: int, suffix: str) -> Path:
        return self.path / f"{self.shards[shard].shard_id}-{first:020d}{suffix}"

    def _migrate(self, shard: Shard) -> None:
        """A shard log of one file pair (before segments) becomes the segment from 1."""
        for suffix in (".log", ".idx"):
            legacy = self.path / f"{shard.shard_id}{suffix}"
            if legacy.exists():
                os.replace(legacy, self._segment_path(shard.index, 1, suffix))
                sync_directory(self.path)

    def _listed(self, shard: int) -> dict[int, set[str]]:
        """The segments on disk: first position -> the suffixes present."""
        prefix = f"{self.shards[shard].shard_id}-"
        found: dict[int, set[str]] = {}
        for entry in os.listdir(self.path):
            if entry.startswith(prefix) and entry[-4:] in (".log", ".idx"):
                number = entry[len(prefix) : -4]
                if number.isdigit():
                    found.setdefault(int(number), set()).add(entry[-4:])
        return found

    def _clean(self, shard: Shard) -> None:
        """Finish what a crash interrupted: a trim (a segment without its index: the index
        goes first) or a new segment (its log is made first, and nothing is written to it
        before its index exists). Either way the file left holds no record to keep, and goes.
        Running handles never see such a file: they list segments by their index."""
        for first, suffixes in self._listed(shard.index).items():
            if suffixes != {".log", ".idx"}:
                for suffix in suffixes:
                    self._segment_path(shard.index, first, suffix).unlink(missing_ok=True)
        sync_directory(self.path)

    def _refresh(self, shard: int) -> list[_Segment]:
        """The shard's segments as they are on disk now (another handle may have added or
        trimmed some); the first segment, from 1, is made when there is none."""
        listed = sorted(
            first for first, suffixes in self._listed(shard).items() if ".idx" in suffixes
        )
        current = {segment.first: segment for segment in self._segments[shard]}
        segments = []
        for first in listed:
            segment = current.pop(first, None)
            if segment is None:
                try:
                    segment = self._open_segment(shard, first, create=False)
                except FileNotFoundError:  # trimmed meanwhile
                    continue
            segments.append(segment)
        for gone in current.values():
            gone.close()
        if not segments:
            segments = [self._open_segment(shard, 1, create=True)]
        self._segments[shard] = segments
        return segments

    def _open_segment(self, shard: int, first: int, create: bool) -> _Segment:
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        log = os.open(self._segment_path(shard, first, ".log"), flags, 0o644)
        try:
            index = os.open(self._segment_path(shard, first, ".idx"), flags, 0o644)
        except BaseException:
            os.close(log)
            raise
        if create:
            sync_directory(self.path)
        return _Segment(first, log, index)

    def _roll(self, shard: int, first: int) -> _Segment:
        """Start a new segment at position ``first`` (with the lock held): the last one is
        sealed, its index synced (it is never repaired again)."""
        segments = self._segments[shard]
        os.fsync(segments[-1].index)
        segment = self._open_segment(shard, first, create=True)
        segments.append(segment)
        return segment

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The stream's write lock, across processes and handles (not threads sharing one)."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # high-water marks ---------------------------------------------------------------------

    def _high_water(self, shard: int) -> int:
        """The highest position the shard ever gave out, as recorded apart from its log."""
        raw = os.pread(self._high_fd, 8, shard * 8)
        return struct.unpack("<q", raw)[0] if len(raw) == 8 else 0

    def _set_high_water(self, shard: int, position: int, sync: bool = False) -> None:
        _write_all(self._high_fd, struct.pack("<q", position), shard * 8)
        if sync:
            os.fsync(self._high_fd)

    @_guarded
    def continue_above(self, shard: int, position: int) -> bool:
        """Make the shard give out positions above ``position`` from its next put on (a
        consumer's checkpoint there must not see new records under it); True if it was not
        already so."""
        with self._locked():
            top, _ = self._repair(shard)
            if max(top, self._high_water(shard)) >= position:
                return False
            self._set_high_water(shard, position, sync=True)
            return True

    # writes -------------------------------------------------------------------------------

    def shard_for(self, partition_key: str) -> int:
        """The shard index whose hash key range holds MD5(partition key)."""
        return bisect.bisect_right(self._starts, hashlib.md5(partition_key.encode()).digest()) - 1

    @_guarded
    def put_records(self, records: Sequence[tuple[str, bytes]]) -> list[tuple[str, str]]:
        """PutRecords: (partition key, data) pairs, durable when it returns.

        Returns each record's (shard id, sequence number), in the order given. A disk that is
        full raises :class:`~helpers.exceptions.DiskFullError`; none of the records is then
        readable, and the torn frames are cut off by the next put.
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
        try:
            with self._locked():
                tops, ends, segments = {}, {}, {}
                for shard in set(shards):
                    tops[shard], ends[shard] = self._repair(shard)
                    segments[shard] = self._writable(shard, tops[shard], ends[shard], now)
                    if segments[shard].first > tops[shard]:  # a new segment
                        tops[shard], ends[shard] = segments[shard].first - 1, 0
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
                    _write_all(segments[shard].log, framed, ends[shard])
                    os.fdatasync(segments[shard].log)
                for shard, offsets in entries.items():
                    segment = segments[shard]
                    before = tops[shard] - len(offsets) - segment.first + 1
                    _write_all(segment.index, offsets.tobytes(), before * _ENTRY)
                    self._set_high_water(shard, tops[shard])
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise DiskFullError.at(self.path, "the stream appended records") from None
            raise
        shard_ids = [shard.shard_id for shard in self.shards]
        formats = [_sequence_format(shard.index) for shard in self.shards]
        return [(shard_ids[shard], formats[shard] % seq) for shard, seq in placed]

    def _writable(self, shard: int, top: int, end: int, now: float) -> _Segment:
        """The segment the next records of a shard go to (with the lock held): a new one past
        the high-water mark when the log lost records it had given out (a tail lost, a log
        restored from an older copy: positions are never given out twice), or when the last
        one is full (``SEGMENT_BYTES``) or has held records for ``SEGMENT_SECONDS``."""
        segment = self._segments[shard][-1]
        high = self._high_water(shard)
        if high > top:
            log.warning(
                "%s: the shard log ends at position %d but gave out positions up to %d"
                " (recorded in %s): its tail was lost or it was restored from an older copy;"
                " new records continue above %d",
                self._segment_path(shard, segment.first, ".log"),
                top,
                high,
                self.path / HIGH_WATER,
                high,
            )
            return self._roll(shard, high + 1)
        if end and segment.oldest is None:
            segment.oldest = self._arrival(segment, 0)
        if end and (end >= SEGMENT_BYTES or now - segment.oldest >= SEGMENT_SECONDS):
            return self._roll(shard, top + 1)
        return segment

    # reads --------------------------------------------------------------------------------

    @_guarded
    def get_records(
        self, shard: int, after: int, limit: int = 10_000, upto: int | None = None
    ) -> list[Record]:
        """GetRecords from a shard: at most ``limit`` records after a position (0 = from the
        trim horizon), and none past ``upto``.

        A position that retention trimmed raises
        :class:`~helpers.exceptions.TrimmedDataAccessError`.
        """
        records: list[Record] = []
        shard_id, number = self.shards[shard].shard_id, _sequence_format(shard)
        unpack, head = _FRAME.unpack_from, _FRAME.size
        new = tuple.__new__  # a Record without the Python-level __new__ of NamedTuple
        while len(records) < limit:
            segment, first, start, ends = self._span(shard, after, limit - len(records))
            if upto is not None:
                ends = ends[: max(0, upto - first + 1)]
            if not ends:
                break
            blob = os.pread(segment.log, ends[-1] - start, start)
            offset = 0
            for end in ends:
                _, _, seq, arrival, key_size = unpack(blob, offset)
                key_end = offset + head + key_size
                key = blob[offset + head : key_end].decode()
                end -= start
                records.append(
                    new(Record, (shard_id, seq, number % seq, key, blob[key_end:end], arrival))
                )
                offset = end
            after = first + len(ends) - 1
        return records

    @_guarded
    def extent(self, shard: int, after: int, limit: int) -> tuple[int, int, int]:
        """Of the next records after a position (at most ``limit``, within one segment): the
        last position, how many, and their bytes as stored, without reading them (for
        buffering decisions)."""
        _, first, start, ends = self._span(shard, after, limit)
        if not ends:
            return after, 0, 0
        return first + len(ends) - 1, len(ends), ends[-1] - start

    def _span(self, shard: int, after: int, limit: int) -> tuple[_Segment, int, int, array]:
        """The segment holding the records after a position, the first one's position, where
        it starts, and the end offset of each (at most ``limit``), from the index."""
        segments = self._segments[shard]
        if not segments or after >= self._top(shard) or after < segments[0].first - 1:
            segments = self._refresh(shard)  # grown, rolled or trimmed by another handle
        if 0 < after < segments[0].first - 1:
            raise TrimmedDataAccessError(
                TRIMMED_POSITION,
                f"position {after} of {self.shards[shard].shard_id} in stream {self.name} is"
                f" past retention ({self.retention_hours:g} h): the oldest record kept is at"
                f" {segments[0].first}; read again from the trim horizon (after 0)",
            )
        at = max(0, bisect.bisect_right([s.first for s in segments], after + 1) - 1)
        for segment in segments[at:]:
            slot = max(0, after + 1 - segment.first)
            count = segment.count()
            if slot >= count:
                continue
            upto = min(count, slot + max(0, limit))
            if upto <= slot:
                break
            first = max(0, slot - 1)
            entries = array("q", os.pread(segment.index, (upto - first) * _ENTRY, first * _ENTRY))
            start = entries[0] if slot else 0
            return segment, segment.first + slot, start, entries[1:] if slot else entries
        return segments[-1], after + 1, 0, array("q")

    def _top(self, shard: int) -> int:
        """The shard's newest position as this handle knows its segments."""
        segment = self._segments[shard][-1]
        return segment.first - 1 + segment.count()

    def _end(self, segment: _Segment, top: int) -> int:
        """The end offset of a segment's ``top``-th record (0 for none)."""
        if not top:
            return 0
        return array("q", os.pread(segment.index, _ENTRY, (top - 1) * _ENTRY))[0]

    def _arrival(self, segment: _Segment, slot: int) -> float:
        """The arrival time of a segment's record in a slot (0 = its first)."""
        start = self._end(segment, slot)
        return _HEAD.unpack(os.pread(segment.log, _HEAD.size, start + _AFTER_CRC))[1]

    def _repair(self, shard: int, whole: bool = False) -> tuple[int, int]:
        """Make the shard's last segment index exactly its durable frames; returns the shard's
        newest position and where the segment's log ends.

        Called with the lock held. Index entries the crash of a machine left wrong (zeros, or
        pointing past the log) are dropped: the last one at every put, and every one when the
        stream is opened (``whole``), since unsynced pages may reach the disk in any order.
        Frames past the index that pass their checks (CRC, sizes, position) are synced and
        indexed again; a torn frame and anything after it is cut off. Sealed segments had
        their index synced when they were sealed.
        """
        segment = self._refresh(shard)[-1]
        log, index = segment.log, segment.index
        size = os.fstat(log).st_size
        indexed = os.fstat(index).st_size
        top = indexed // _ENTRY
        if whole and top:
            entries = np.frombuffer(os.pread(index, top * _ENTRY, 0), dtype="<i8")
            wrong = (entries > size) | (np.diff(entries, prepend=0) <= 0)
            if wrong.any():
                top = int(wrong.argmax())
        end = self._end(segment, top)
        while top and (end > size or end <= self._end(segment, top - 1)):
            top -= 1
            end = self._end(segment, top)
        if indexed != top * _ENTRY:  # dropped entries, or a torn one
            os.ftruncate(index, top * _ENTRY)
        if end == size:
            return segment.first - 1 + top, end
        tail = os.pread(log, size - end, end)
        offsets, offset = array("q"), 0
        while offset + _FRAME.size <= len(tail):
            length, checksum, seq, _, key_size = _FRAME.unpack_from(tail, offset)
            body = tail[offset + _AFTER_CRC : offset + _AFTER_CRC + length]
            if (
                len(body) != length
                or not 1 <= key_size <= length - _HEAD.size
                or seq != segment.first + top + len(offsets)
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
        return segment.first - 1 + top + len(offsets), end + offset

    # retention ----------------------------------------------------------------------------

    @_guarded
    def trim(self, checkpoints: dict[int, int], now: float | None = None) -> dict[str, int]:
        """Remove what retention lets go: records older than ``retention_hours`` that every
        consumer has read past (``checkpoints``: the lowest committed position of the
        consumers, per shard), never one a consumer still needs.

        Records go a segment at a time, oldest first, once the newest record of the segment
        is older than the retention period (Kinesis, too, keeps records *at least* that
        long); an expired last segment is sealed first. Each segment goes by two unlinks, its
        index first: a crash between them leaves a log without index, which the next open
        removes. Returns the records and bytes removed.
        """
        now = time.time() if now is None else now
        cutoff = now - self.retention_hours * 3600
        removed = {"records": 0, "bytes": 0}
        with self._locked():
            for shard in self.shards:
                top, _ = self._repair(shard.index)
                segments = self._segments[shard.index]
                last = segments[-1]
                if (
                    last.count()
                    and top <= checkpoints.get(shard.index, 0)
                    and self._newest(shard.index, last) < cutoff
                ):
                    self._roll(shard.index, max(top, self._high_water(shard.index)) + 1)
                while len(segments) > 1:
                    segment = segments[0]
                    count = segment.count()
                    if segment.first - 1 + count > checkpoints.get(shard.index, 0) or (
                        count and self._newest(shard.index, segment) >= cutoff
                    ):
                        break
                    size = os.fstat(segment.log).st_size + os.fstat(segment.index).st_size
                    for suffix in (".idx", ".log"):
                        self._segment_path(shard.index, segment.first, suffix).unlink()
                    segment.close()
                    segments.pop(0)
                    removed["records"] += count
                    removed["bytes"] += size
            sync_directory(self.path)
        return removed

    def _newest(self, shard: int, segment: _Segment) -> float:
        """The arrival time of a segment's last record (kept once the segment is sealed)."""
        if segment.newest is not None:
            return segment.newest
        count = segment.count()
        newest = self._arrival(segment, count - 1) if count else 0.0
        if segment is not self._segments[shard][-1]:
            segment.newest = newest
        return newest

    @_guarded
    def retained(self) -> dict[int, dict[str, int]]:
        """Per shard: the records kept, the oldest position kept (the trim horizon) and the
        bytes on disk."""
        found = {}
        for shard in self.shards:
            segments = self._refresh(shard.index)
            found[shard.index] = {
                "records": sum(segment.count() for segment in segments),
                "oldest": segments[0].first,
                "bytes": sum(
                    os.fstat(segment.log).st_blocks * 512 + os.fstat(segment.index).st_blocks * 512
                    for segment in segments
                ),
            }
        return found

    @_guarded
    def trim_horizon(self, shard: int) -> int:
        """The position before the oldest record kept: reads after it are served."""
        return self._refresh(shard)[0].first - 1

    @_guarded
    def latest_sequences(self) -> dict[int, int]:
        """The newest position of every shard (0 for an empty shard)."""
        tops = {}
        for shard in self.shards:
            self._refresh(shard.index)
            tops[shard.index] = self._top(shard.index)
        return tops

    @_guarded
    def count(self) -> int:
        """Records held in the stream (retention removes the oldest)."""
        return sum(
            segment.count() for shard in self.shards for segment in self._refresh(shard.index)
        )

    @_guarded
    def close(self) -> None:
        """Close the files (again is a no-op)."""
        for segments in self._segments:
            for segment in segments:
                segment.close()
        for descriptor in (self._high_fd, self._lock_fd):
            if descriptor >= 0:
                os.close(descriptor)
        self._segments, self._high_fd, self._lock_fd = [], -1, -1


def _write_all(descriptor: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``."""
    view = memoryview(data)
    while view:
        written = os.pwrite(descriptor, view, offset)
        view, offset = view[written:], offset + written
