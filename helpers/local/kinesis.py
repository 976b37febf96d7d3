"""The change stream between the pipe and the delivery stream (Kinesis Data Streams), in SQLite.

A durable log split into shards as Kinesis splits it: the MD5 of the partition key, read as a
128-bit number, falls in one shard's hash key range, and the ranges divide 0 .. 2**128 - 1
evenly. Each shard numbers its records with increasing 56-digit sequence numbers, so records of
one partition key keep their order.

Not emulated: resharding, enhanced fan-out, throughput limits and throttling, explicit hash
keys, aggregation (subsequence numbers are always 0), and the retention period (records are
kept until the root is removed).
"""

from __future__ import annotations

import bisect
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from helpers.local.sqlite import Database

HASH_SPACE = 2**128
MAX_RECORD_BYTES = 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    shard INTEGER NOT NULL, seq INTEGER NOT NULL, partition_key TEXT NOT NULL,
    data BLOB NOT NULL, arrival REAL NOT NULL, PRIMARY KEY (shard, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


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
    """A Kinesis data stream with a fixed number of shards."""

    def __init__(self, path: Path, name: str, shard_count: int, region: str, account_id: str):
        self.name = name
        self.arn = f"arn:aws:kinesis:{region}:{account_id}:stream/{name}"
        self.db = Database(path, _SCHEMA)
        with self.db.write() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO meta VALUES ('shard_count', ?)", (str(shard_count),)
            )
        stored = int(self.db.scalar("SELECT value FROM meta WHERE name = 'shard_count'"))
        if stored != shard_count:
            raise ValueError(
                f"stream {name!r} already exists with {stored} shards, not {shard_count}; "
                "resharding is not emulated: tear down the local root or keep the shard count"
            )
        self.shards = even_shards(shard_count)
        self._starts = [shard.starting_hash_key for shard in self.shards]

    def shard_for(self, partition_key: str) -> int:
        """The shard index whose hash key range holds MD5(partition key)."""
        digest = int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")
        return bisect.bisect_right(self._starts, digest) - 1

    def put_records(self, records: Sequence[tuple[str, bytes]]) -> list[tuple[str, str]]:
        """PutRecords: (partition key, data) pairs, committed together.

        Returns each record's (shard id, sequence number), in the order given.
        """
        shards = []
        for partition_key, data in records:
            if not partition_key or len(partition_key) > 256:
                raise ValueError("partition key must be 1 to 256 characters")
            if len(data) + len(partition_key.encode()) > MAX_RECORD_BYTES:
                raise ValueError(f"record of {len(data)} bytes exceeds Kinesis's 1 MiB limit")
            shards.append(self.shard_for(partition_key))
        now = time.time()
        with self.db.write() as connection:
            tops = self._tops(connection)
            rows = []
            for shard, (partition_key, data) in zip(shards, records, strict=True):
                tops[shard] = seq = tops[shard] + 1
                rows.append((shard, seq, partition_key, data, now))
            connection.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", rows)
        shard_ids = [shard.shard_id for shard in self.shards]
        formats = [_sequence_format(shard.index) for shard in self.shards]
        return [(shard_ids[shard], formats[shard] % seq) for shard, seq, *_ in rows]

    def get_records(self, shard: int, after: int, limit: int = 10_000) -> list[Record]:
        """GetRecords from a shard, after a position (0 = from the trim horizon)."""
        shard_id, number = self.shards[shard].shard_id, _sequence_format(shard)
        return [
            Record(shard_id, seq, number % seq, key, data, arrival)
            for seq, key, data, arrival in self.db.read(
                "SELECT seq, partition_key, data, arrival FROM records "
                "WHERE shard = ? AND seq > ? ORDER BY seq LIMIT ?",
                (shard, after, limit),
            )
        ]

    def extent(self, shard: int, after: int, limit: int) -> tuple[int, int, int]:
        """Of the next ``limit`` records after a position: the last position, how many, and
        their bytes, without reading the data (for buffering decisions)."""
        row = self.db.connection.execute(
            "SELECT max(seq), count(*), coalesce(sum(length(data)), 0) FROM "
            "(SELECT seq, data FROM records WHERE shard = ? AND seq > ? ORDER BY seq LIMIT ?)",
            (shard, after, limit),
        ).fetchone()
        return (row[0] or after), row[1], row[2]

    def latest_sequences(self) -> dict[int, int]:
        """The newest position of every shard (0 for an empty shard)."""
        return self._tops(self.db.connection)

    def _tops(self, connection) -> dict[int, int]:
        return {
            shard.index: connection.execute(
                "SELECT coalesce(max(seq), 0) FROM records WHERE shard = ?", (shard.index,)
            ).fetchone()[0]
            for shard in self.shards
        }

    def count(self) -> int:
        """Records held in the stream."""
        return self.db.scalar("SELECT count(*) FROM records")

    def close(self) -> None:
        self.db.close()
