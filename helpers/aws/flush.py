"""How ``flush`` knows that the changes written through a platform are in the lake.

Neither the pipe nor Firehose exposes a checkpoint to compare with, so the platform remembers
what it wrote: for every order it changed since the last successful flush, the order as it
left it (or that it deleted it) and the day of its ``order_ts`` (the partition its events land
in). ``flush`` then reads the lake objects of those partitions (each object once per flush,
only the needed columns) and waits until, for every remembered order, the latest event by
``event_seq`` shows that state. Duplicate deliveries and writes that changed nothing (which
DynamoDB Streams does not record) both pass, because the state, not a count, is compared.

When time runs out, it reads the Kinesis stream from the first unconfirmed write on (every
shard, ``AT_TIMESTAMP``) to name the stage: changes missing from the stream are the pipe's,
the rest the delivery stream's.

The lake's latest event of each order also gives its ``SequenceNumber``: with ``realtime``,
``AwsPlatform.flush`` then waits until the real-time consumer's contribution item of each
order of the days it keeps carries that number or a later one.

Limits: it assumes this platform is the only writer of the orders it wrote until the flush
(another writer's later change to the same order makes it wait for a state that never comes);
Kinesis keeps records 24 hours, so the stage of older writes cannot be named; the memory held
grows with the orders written between flushes; and each poll lists the partitions involved
(a backfill of 90 days lists 90 prefixes and reads every object once).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from helpers.schema import KEY, ORDER_FIELDS, item_to_order

STATE_FIELDS = tuple(name for name in ORDER_FIELDS if name != KEY)
LAKE_COLUMNS = [KEY, "event_name", "event_seq", *STATE_FIELDS]
DAY_MS = 86_400_000

State = int | None
"""The hash of an order's fields after ``order_id`` (``order_ts`` in epoch milliseconds), so
that a backfill of a million orders is remembered in tens of megabytes; None: deleted."""


class Expectations:
    """What the writes through one platform expect the lake to show, per order (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._states: dict[str, tuple[int, State]] = {}  # key -> (day number, state)
        self.since: float | None = None
        """Wall time of the first write not yet confirmed in the lake."""

    def __len__(self) -> int:
        return len(self._states)

    def record(self, orders: pa.Table | None, removed: list[dict] | None) -> None:
        """Remember written orders (validated Arrow) or deleted ones (their old items)."""
        entries: dict[str, tuple[int, State]] = {}
        if orders is not None and orders.num_rows:
            for key, fields in zip(orders[KEY].to_pylist(), table_fields(orders), strict=True):
                entries[key] = (fields[0] // DAY_MS, hash(fields))
        for item in removed or []:
            fields = order_fields(item_to_order(item))
            entries[item[KEY]["S"]] = (fields[0] // DAY_MS, None)
        with self._lock:
            if self.since is None and entries:
                self.since = time.time()
            self._states.update(entries)

    def snapshot(self) -> dict[str, tuple[int, State]]:
        """The orders waiting for confirmation: key -> (day number, state)."""
        with self._lock:
            return dict(self._states)

    def confirm(self, confirmed: dict[str, tuple[int, State]]) -> None:
        """Forget orders whose state was seen in the lake (unless written again since)."""
        with self._lock:
            for key, entry in confirmed.items():
                if self._states.get(key) == entry:
                    del self._states[key]
            if not self._states:
                self.since = None


def table_fields(orders: pa.Table) -> list[tuple]:
    """The fields of each validated order (after ``order_id``, ``order_ts`` in ms)."""
    columns = [
        orders[name].cast(pa.int64()).to_pylist()
        if name == "order_ts"
        else orders[name].to_pylist()
        for name in STATE_FIELDS
    ]
    return list(zip(*columns, strict=True))


def order_fields(order: dict[str, Any]) -> tuple:
    """The fields of an order dict (:func:`~helpers.schema.item_to_order`)."""
    ts = order["order_ts"]
    millis = int(ts.replace(tzinfo=UTC).timestamp()) * 1000 + ts.microsecond // 1000
    return tuple(millis if name == "order_ts" else order[name] for name in STATE_FIELDS)


def frame_states(frame: pd.DataFrame) -> list[State]:
    """The state each lake event leaves its order in (None after a REMOVE)."""
    ts = pd.to_datetime(frame["order_ts"])
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    columns = [
        ts.astype("datetime64[ms]").astype("int64").tolist()
        if name == "order_ts"
        else frame[name]
        .astype(int if name == "quantity" else float if name == "unit_price" else object)
        .tolist()
        for name in STATE_FIELDS
    ]
    removed = (frame["event_name"] == "REMOVE").tolist()
    return [
        None if gone else hash(fields)
        for gone, fields in zip(removed, zip(*columns, strict=True), strict=True)
    ]


def partition_prefix(lake_prefix: str, day: int) -> str:
    """The lake prefix of a day number (days since 1970-01-01, UTC)."""
    date = datetime.fromtimestamp(day * 86_400, UTC)
    return f"{lake_prefix}year={date:%Y}/month={date:%m}/day={date:%d}/"


class LakeView:
    """The latest event of the watched orders, from the lake objects read so far.

    Parameters
    ----------
    list_keys
        Object keys under a prefix.
    read_objects
        The ``LAKE_COLUMNS`` of the given object keys, as one frame.
    lake_prefix
        Where the partitions are.
    """

    def __init__(
        self,
        list_keys: Callable[[str], Iterable[str]],
        read_objects: Callable[[list[str]], pd.DataFrame],
        lake_prefix: str,
    ):
        self._list, self._read, self.lake_prefix = list_keys, read_objects, lake_prefix
        self._seen: set[str] = set()
        self.latest: dict[str, tuple[str, State]] = {}

    def refresh(self, expected: dict[str, tuple[int, State]]) -> None:
        """Read the objects not read yet in the partitions of the expected orders."""
        days = {day for day, _ in expected.values()}
        new = [
            key
            for day in sorted(days)
            for key in self._list(partition_prefix(self.lake_prefix, day))
            if key not in self._seen
        ]
        if not new:
            return
        frame = self._read(new)
        self._seen.update(new)
        frame = frame[frame[KEY].isin(expected.keys())]
        for key, seq, state in zip(
            frame[KEY].tolist(), frame["event_seq"].tolist(), frame_states(frame), strict=True
        ):
            known = self.latest.get(key)
            if known is None or seq > known[0]:
                self.latest[key] = (seq, state)

    def matched(self, expected: dict[str, tuple[int, State]]) -> dict[str, tuple[int, State]]:
        """The expected orders whose latest event shows the expected state."""
        return {
            key: entry
            for key, entry in expected.items()
            if key in self.latest and self.latest[key][1] == entry[1]
        }


def stream_states(records: Iterable[bytes]) -> dict[str, State]:
    """The latest state per order in Kinesis records holding DynamoDB Streams records (JSON)."""
    latest: dict[str, tuple[int, State]] = {}
    for data in records:
        try:
            record = json.loads(data)
            change = record["dynamodb"]
            key = change["Keys"][KEY]["S"]
            seq = int(change["SequenceNumber"])
            if record["eventName"] == "REMOVE":
                state = None
            else:
                state = hash(order_fields(item_to_order(change["NewImage"])))
        except (ValueError, KeyError, TypeError):
            continue  # not a stream record of an order: not ours to judge
        if key not in latest or seq > latest[key][0]:
            latest[key] = (seq, state)
    return {key: state for key, (_, state) in latest.items()}
