"""The orders table and its change stream (DynamoDB and DynamoDB Streams), in SQLite.

Items are stored as DynamoDB AttributeValue JSON under their key ``order_id``. Every write
appends its stream record (view type NEW_AND_OLD_IMAGES) in the same transaction, so an item
change and its stream record are committed together or not at all. Stream records are the
JSON that Lambda and EventBridge Pipes receive, with increasing ``SequenceNumber``.

Not emulated: secondary indexes, conditional expressions beyond "update needs an existing
item", capacity and throttling, stream shards and their 4-hour rotation (one ordered log
stands for them, which keeps per-key order as DynamoDB does), TTL, transactions across tables,
items of other shapes than orders, and trimming a record the pipe has not read (DynamoDB
Streams trims by age alone; here retention never loses a change before the pipe passed it).

Retention: :meth:`Table.trim_stream` removes stream records older than 24 hours that the pipe
has read past (and gives space beyond a reserve back to the file system, :data:`FREE_SHARE`);
reading after a trimmed position raises
:class:`~helpers.exceptions.TrimmedDataAccessError` (``TrimmedDataAccessException``). Sequence
numbers are never given out twice: they continue above the trimmed ones and above a floor that
:meth:`Table.continue_above` raises (the pipe calls it on open when its checkpoint is ahead of
the stream, as after restoring this file from an older copy).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from helpers.exceptions import TrimmedDataAccessError
from helpers.local.sqlite import Database
from helpers.schema import KEY, item_size, items_json

SEQUENCE_BASE = 10**20
"""Stream sequence numbers are 21-digit decimal strings, as DynamoDB's are (numerically ordered)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (order_id TEXT PRIMARY KEY, item TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stream (
    seq INTEGER PRIMARY KEY, order_id TEXT NOT NULL, record TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


STREAM_RETENTION_S = 24 * 3600
"""DynamoDB Streams keeps a stream record for 24 hours."""
FREE_SHARE = 0.25
"""Free pages a trim leaves in ``dynamodb.sqlite`` for new records, as a share of the file:
at a steady rate a trim frees what the next hours write, so the file neither shrinks nor
grows; after the rate fell, the rest goes back to the file system. Files made before this
setting (SQLite's ``auto_vacuum`` is fixed when a file is made) keep their size."""
TRIM_CHUNK = 5000
"""Stream records removed per transaction of a trim (each short, so writers barely wait)."""
_LATEST = (
    "SELECT max(coalesce((SELECT max(seq) FROM stream), 0),"
    " coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'seq_floor'), 0))"
)
"""The newest position given out: the newest record's, or the floor once trims or a
restored copy left none above it."""

CHECKPOINT_PAGES = 16384
"""The WAL is copied into the table's file every 256 MiB, not SQLite's 16 MiB. Order ids are
random, so a large write dirties most pages of the key index; a page is copied once per
checkpoint however many commits rewrote it, and this cuts the table's disk writes by about a
fifth on a million-order backfill (the WAL file keeps its largest size until closed)."""

_quote = json.encoder.encode_basestring  # a JSON string literal, in C


class Table:
    """A DynamoDB table of orders with a NEW_AND_OLD_IMAGES stream.

    Parameters
    ----------
    path
        The SQLite file holding items and stream records.
    name, region, account_id
        Used for the stream ARN and the records' ``awsRegion``.
    """

    def __init__(self, path: Path, name: str, region: str, account_id: str):
        self.name, self.region = name, region
        self.db = Database(path, _SCHEMA, checkpoint_pages=CHECKPOINT_PAGES, incremental=True)
        with self.db.write() as connection:
            label = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            connection.execute("INSERT OR IGNORE INTO meta VALUES ('stream_label', ?)", (label,))
        label = self.db.scalar("SELECT value FROM meta WHERE name = 'stream_label'")
        self.arn = f"arn:aws:dynamodb:{region}:{account_id}:table/{name}"
        self.stream_arn = f"{self.arn}/stream/{label}"
        self._record_head = (
            '{"eventID":"%s","eventName":"%s","eventVersion":"1.1","eventSource":"aws:dynamodb",'
            f'"awsRegion":"{region}","dynamodb":{{"ApproximateCreationDateTime":%d,'
            '"Keys":{"order_id":{"S":%s}}'
        )
        self._record_tail = (
            ',"SequenceNumber":"%d","SizeBytes":%d,"StreamViewType":"NEW_AND_OLD_IMAGES"},'
            f'"eventSourceARN":"{self.stream_arn}"}}'
        )

    # writes -------------------------------------------------------------------------------

    def put_items(self, orders: pa.Table) -> None:
        """PutItem for each validated order (:func:`~helpers.schema.validated_table`), in order:
        a new key is an INSERT, an existing one is overwritten (MODIFY, with the old image)."""
        self._put(orders)

    def update_items(self, changes: Sequence[Mapping[str, Any]]) -> pa.Table:
        """UpdateItem with a condition that the item exists; returns the new orders.

        Every change is checked (existence and schema) before anything is written, in the
        write's own transaction: an order another writer deletes meanwhile waits for it, and
        is never written back.
        """
        from helpers.platform import merge_updates  # pandas: not needed by the pipe's runtime

        with self.db.write() as connection:
            current = self._items([change[KEY] for change in changes], connection)
            items = {key: json.loads(text) for key, text in current.items()}
            orders = merge_updates(changes, items)
            self._put(orders, current)
        return orders

    def batch(self) -> AbstractContextManager:
        """Writes inside share one transaction: a batch of changes is one commit (one sync)."""
        return self.db.write()

    def delete_items(self, keys: Iterable[str]) -> int:
        """DeleteItem for each key; a missing key is a no-op (and no stream record)."""
        return self._write([(key, None, 0) for key in keys])

    def _put(self, orders: pa.Table, current: dict[str, str] | None = None) -> None:
        """Write validated orders; ``current`` holds their items as this transaction read them."""
        texts, sizes = items_json(orders)
        self._write(list(zip(orders[KEY].to_pylist(), texts, sizes.tolist(), strict=True)), current)

    def _write(
        self, changes: Sequence[tuple[str, str | None, int]], current: dict[str, str] | None = None
    ) -> int:
        """Apply (key, item JSON or None to delete, item size) changes with their stream
        records, in one transaction; a call holds puts or deletes, not both. ``current`` (the
        changed keys' items, read in the transaction this joins) spares reading them again."""
        if not changes:
            return 0
        now = time.time()
        created = int(now)
        with self.db.write() as connection:
            inserted: set[str] = set()
            if current is not None:
                old = dict(current)
            elif all(text is not None for _, text, _ in changes):
                inserted = self._insert_new(changes, connection)
                old = self._items([key for key, _, _ in changes if key not in inserted], connection)
            else:
                old = self._items([key for key, _, _ in changes], connection)
            seq = connection.execute(_LATEST).fetchone()[0]
            inserts, updates, deletes, records = [], [], [], []
            event_ids = os.urandom(16 * len(changes)).hex()
            for position, (key, text, size) in enumerate(changes):
                old_text = old.get(key)
                if text is None:
                    if old_text is None:
                        continue
                    deletes.append((key,))
                    old[key] = None
                    body = ',"OldImage":' + old_text
                    name, size = "REMOVE", item_size(json.loads(old_text))
                else:
                    old[key] = text
                    if old_text is None:
                        if key not in inserted:
                            inserts.append((key, text))
                        name, body = "INSERT", ',"NewImage":' + text
                    else:
                        updates.append((text, key))
                        name, body = "MODIFY", ',"NewImage":' + text + ',"OldImage":' + old_text
                        size += item_size(json.loads(old_text))
                seq += 1
                event_id = event_ids[32 * position : 32 * position + 32]
                record = (
                    self._record_head % (event_id, name, created, _quote(key))
                    + body
                    + self._record_tail % (SEQUENCE_BASE + seq, size)
                )
                records.append((seq, key, record, now))
            if inserts:
                connection.executemany("INSERT INTO items VALUES (?, ?)", inserts)
            if updates:
                connection.executemany("UPDATE items SET item = ? WHERE order_id = ?", updates)
            if deletes:
                connection.executemany("DELETE FROM items WHERE order_id = ?", deletes)
            connection.executemany("INSERT INTO stream VALUES (?, ?, ?, ?)", records)
        return len(records)

    def _insert_new(self, changes: Sequence[tuple[str, str, int]], connection) -> set[str]:
        """Insert each put whose key is new (its first put, when a key comes twice) and return
        those keys.

        Most puts of a backfill are new orders: inserting first, then reading back the rows
        this insert added, costs less than looking every key up in the random-key index
        beforehand. SQLite gives each inserted row the rowid after the table's largest.
        """
        top = connection.execute("SELECT coalesce(max(rowid), 0) FROM items").fetchone()[0]
        connection.executemany(
            "INSERT OR IGNORE INTO items VALUES (?, ?)", [(key, text) for key, text, _ in changes]
        )
        added = connection.execute("SELECT order_id FROM items WHERE rowid > ?", (top,))
        return {key for (key,) in added}

    # reads --------------------------------------------------------------------------------

    def _items(self, keys: Sequence[str], connection=None) -> dict[str, str]:
        connection = connection or self.db.connection
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 900):
            chunk = unique[start : start + 900]
            marks = ",".join("?" * len(chunk))
            found.update(
                connection.execute(
                    f"SELECT order_id, item FROM items WHERE order_id IN ({marks})", chunk
                ).fetchall()
            )
        return found

    def get_item(self, key: str) -> dict | None:
        """GetItem: the item as AttributeValue JSON, or None."""
        text = self.db.scalar("SELECT item FROM items WHERE order_id = ?", (key,))
        return None if text is None else json.loads(text)

    def count(self) -> int:
        """Number of items."""
        return self.db.scalar("SELECT count(*) FROM items")

    def scan(self) -> list[dict]:
        """Every item, as AttributeValue JSON (for checks and small tables)."""
        return [json.loads(text) for (text,) in self.db.read("SELECT item FROM items")]

    # the stream ---------------------------------------------------------------------------

    def latest_sequence(self) -> int:
        """The position of the newest stream record (0 when empty), or of the last one given
        out if retention trimmed it."""
        return self.db.scalar(_LATEST)

    def read_stream(self, after: int, limit: int) -> list[tuple[int, str, bytes, float]]:
        """Stream records after a position (0 = from the trim horizon): (position, order_id,
        record JSON in UTF-8, created). Bytes, as GetRecords sends them: the pipe passes them
        on as they are. A position that retention trimmed raises
        :class:`~helpers.exceptions.TrimmedDataAccessError`."""
        rows = self.db.read(
            "SELECT seq, order_id, CAST(record AS BLOB), created FROM stream "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        if after and (not rows or rows[0][0] != after + 1):  # a gap: trimmed, or a floor
            horizon = self.trim_horizon()
            if after < horizon:
                raise TrimmedDataAccessError(
                    "TrimmedDataAccessException",
                    f"sequence number {SEQUENCE_BASE + after + 1} of {self.stream_arn} is past"
                    f" the 24-hour retention: records up to {SEQUENCE_BASE + horizon} were"
                    " trimmed; read again from the trim horizon (after 0)",
                )
        return rows

    def trim_horizon(self) -> int:
        """The newest position retention trimmed (0 if none): reads after it are served."""
        value = self.db.scalar("SELECT value FROM meta WHERE name = 'trimmed_through'")
        return int(value or 0)

    def continue_above(self, position: int) -> bool:
        """Give out positions above ``position`` from the next write on (a reader's checkpoint
        there must not see new records under it); True if it was not already so."""
        with self.db.write() as connection:
            if connection.execute(_LATEST).fetchone()[0] >= position:
                return False
            connection.execute(
                "INSERT OR REPLACE INTO meta VALUES ('seq_floor', ?)", (str(position),)
            )
            return True

    def trim_stream(
        self, upto: int, now: float | None = None, retention_s: float = STREAM_RETENTION_S
    ) -> int:
        """Remove the oldest stream records, as long as each is older than ``retention_s``
        and at or before ``upto`` (the pipe's checkpoint); returns how many.

        It removes a prefix of the stream, ``TRIM_CHUNK`` records per transaction, each
        recording how far it went (``trimmed_through``, and the floor that keeps positions
        from being given out again) with the deletion: a kill at any moment leaves either
        state whole. New records reuse the freed pages; free pages beyond ``FREE_SHARE`` of
        the file (as after the write rate fell) go back to the file system.
        """
        removed = self._trim_prefix(upto, (time.time() if now is None else now) - retention_s)
        if removed:
            self.db.release_free_pages(FREE_SHARE)
        return removed

    def _trim_prefix(self, upto: int, cutoff: float) -> int:
        """Remove the stream records created before ``cutoff`` up to ``upto``, oldest first."""
        removed = 0
        while True:
            with self.db.write() as connection:
                rows = connection.execute(
                    "SELECT seq, created FROM stream WHERE seq <= ? ORDER BY seq LIMIT ?",
                    (upto, TRIM_CHUNK),
                ).fetchall()
                through = None
                for seq, created in rows:
                    if created >= cutoff:
                        break
                    through = seq
                if through is None:
                    return removed
                removed += connection.execute(
                    "DELETE FROM stream WHERE seq <= ?", (through,)
                ).rowcount
                floor = connection.execute(_LATEST).fetchone()[0]
                connection.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("trimmed_through", str(through)), ("seq_floor", str(max(floor, through)))],
                )
            if through != rows[-1][0] or len(rows) < TRIM_CHUNK:
                return removed

    def stream_retained(self) -> int:
        """Stream records kept (from the span of positions; exact unless a floor was raised)."""
        low, high = self.db.read("SELECT min(seq), max(seq) FROM stream")[0]
        return 0 if low is None else high - low + 1

    def close(self) -> None:
        self.db.close()
