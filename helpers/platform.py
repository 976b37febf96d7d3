"""The platform the notebooks use, whatever the backend: orders in, changes flowing, lake out.

A backend supplies an :class:`OrdersTable` (the raw item writes) and implements
:class:`Platform`'s abstract methods; this module holds what every backend shares: turning
user input (dicts or DataFrames) into validated orders, and replaying generated changes.
"""

from __future__ import annotations

import abc
import base64
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa

from helpers.config import Settings
from helpers.exceptions import BackendError, InvalidOrderError, OrderNotFoundError
from helpers.progress import tqdm
from helpers.schema import (
    KEY,
    LAKE_SCHEMA,
    ORDER_FIELDS,
    PARTITION_KEYS,
    is_missing,
    item_to_order,
    validated_table,
)

WRITE_CHUNK = 20_000
_ACTION_RANK = {"put": 0, "update": 1, "delete": 2}


class OrdersTable(Protocol):
    """What a backend's table offers: validated writes and item reads."""

    def put_items(self, orders: pa.Table) -> None: ...
    def update_items(self, changes: list[dict[str, Any]]) -> pa.Table: ...
    def delete_items(self, keys: list[str]) -> int: ...
    def get_item(self, key: str) -> dict | None: ...
    def count(self) -> int: ...
    def scan(self) -> list[dict]: ...
    def batch(self) -> AbstractContextManager: ...


def merge_updates(
    changes: Sequence[Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]]
) -> pa.Table:
    """The orders that UpdateItem ``changes`` make of the ``current`` items (by key), validated.

    A key's changes apply in the order given, each on top of the one before; the result has
    one row per change. Raises OrderNotFoundError for a key not in ``current`` and
    InvalidOrderError for a bad result, before anything is written.
    """
    merged: dict[str, dict[str, Any]] = {}
    staged = []
    for change in changes:
        key = change[KEY]
        if key not in merged:
            if key not in current:
                raise OrderNotFoundError(key)
            merged[key] = item_to_order(current[key])
        merged[key] = {**merged[key], **change}
        staged.append(merged[key])
    return validated_table(staged)


def objects_frame(rows: Iterable[tuple[str, int, Any]]) -> pd.DataFrame:
    """Lake object listing rows (key, size, last_modified) with the hive partition of each key."""
    frame = pd.DataFrame(list(rows), columns=["key", "size", "last_modified"])
    parts = (
        frame["key"].str.extract("/".join(f"{name}=(?P<{name}>[^/]+)" for name in PARTITION_KEYS))
        if len(frame)
        else pd.DataFrame(columns=list(PARTITION_KEYS))
    )
    return pd.concat([frame, parts], axis=1)


def empty_lake() -> pd.DataFrame:
    """The change log with no rows: the lake's columns, then the partition keys as strings."""
    partitions = pa.schema([(name, pa.string()) for name in PARTITION_KEYS])
    return pa.unify_schemas([LAKE_SCHEMA, partitions]).empty_table().to_pandas()


RESOURCE_COLUMNS = ["service", "kind", "name", "arn", "detail"]
_REALTIME_COUNTS = ("orders", "expires_at")
_REALTIME_TEXT = (
    "day",
    "series_id",
    "level",
    "name",
    "last_order",
    "kind",
    "since",
    "state",
    "cleared_at",
)


def realtime_frame(rows: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> pd.DataFrame:
    """Nowcasts or alerts as a frame with the same columns and types on both backends: counts
    (``orders``, ``expires_at``) as nullable integers, text as objects, every other field as
    floats (DynamoDB gives whole numbers back as integers, SQLite as they were stored)."""
    frame = pd.DataFrame(list(rows), columns=list(fields))
    for name in fields:
        if name in _REALTIME_COUNTS:
            frame[name] = frame[name].astype("Int64")
        elif name not in _REALTIME_TEXT:
            frame[name] = frame[name].astype("float64")
    return frame


CATALOG_COLUMNS = [
    "database",
    "name",
    "type",
    "columns",
    "partition_keys",
    "partitions",
    "location",
]


def catalog_row(table: Mapping[str, Any], partitions: Sequence[Any]) -> dict[str, Any]:
    """One Glue table (GetTable's shape, on both backends) as a row of ``catalog_tables``."""
    storage = table.get("StorageDescriptor", {})
    return {
        "database": table.get("DatabaseName"),
        "name": table["Name"],
        "type": "view" if table.get("TableType") == "VIRTUAL_VIEW" else "table",
        "columns": len(storage.get("Columns", [])),
        "partition_keys": ", ".join(key["Name"] for key in table.get("PartitionKeys", [])),
        "partitions": len(partitions),
        "location": storage.get("Location", ""),
    }


ERROR_FIELDS = {
    "errorCode": ("errorCode", "ErrorCode", "lastErrorCode"),
    "errorMessage": ("errorMessage", "ErrorMessage", "lastErrorMessage"),
}
"""Column -> the names Firehose's error documents give it: processing and partitioning failures
use ``errorCode``; format conversion failures ``ErrorCode`` (documented today) or
``lastErrorCode`` (documented before, and written by older delivery streams)."""


def failures_frame(documents: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Firehose's error documents (one per failed record, of any documented shape) with the
    code and message under one name and the record decoded for reading."""
    rows = [
        {
            **document,
            **{
                column: next((document[n] for n in names if document.get(n) is not None), None)
                for column, names in ERROR_FIELDS.items()
            },
        }
        for document in documents
    ]
    frame = pd.DataFrame(
        rows,
        columns=["key", "errorCode", "errorMessage", "attemptsMade", "arrivalTimestamp", "rawData"],
    )
    frame["arrivalTimestamp"] = pd.to_datetime(frame["arrivalTimestamp"], unit="ms", utc=True)
    frame["record"] = [
        base64.b64decode(raw).decode("utf-8", "replace") if isinstance(raw, str) else None
        for raw in frame["rawData"]
    ]
    return frame


def failure_summary(failures: pd.DataFrame) -> str:
    """The failed records by error code, most frequent first (for ``status``)."""
    counts = failures["errorCode"].fillna("no code").value_counts()
    return ", ".join(f"{count} {code}" for code, count in counts.items())


class Orders:
    """The orders table as the notebooks see it (``platform.orders``).

    Examples
    --------
    >>> platform.orders.put(frame)                       # doctest: +SKIP
    >>> platform.orders.update("o-1", quantity=3)        # doctest: +SKIP
    >>> platform.orders.delete(["o-1"])                  # doctest: +SKIP
    """

    def __init__(self, table: OrdersTable):
        self._table = table

    def put(self, records: Any) -> int:
        """Write orders (PutItem): new ones are inserted, an existing ``order_id`` overwritten.

        Every order is checked before any is written; a bad one raises
        :class:`~helpers.exceptions.InvalidOrderError` naming the order and field.
        Fields beyond the order's are stored as other attributes of the item
        (:mod:`helpers.schema` says how). Returns the number of orders written.
        """
        orders = validated_table(records)
        for start in range(0, orders.num_rows, WRITE_CHUNK):
            self._table.put_items(orders.slice(start, WRITE_CHUNK))
        return orders.num_rows

    def update(self, records: Any = None, /, **changes: Any) -> pd.DataFrame:
        """Change fields of existing orders (UpdateItem); returns the new orders, one row per
        change.

        Either ``update("o-1", quantity=3)`` or ``update(frame_or_dicts)`` whose rows hold
        ``order_id`` and the fields to change. An unknown order raises OrderNotFoundError.
        Other attributes (:mod:`helpers.schema`) are set like fields, and those a change
        does not name are kept.
        """
        if isinstance(records, str):
            rows = [{KEY: records, **changes}]
        elif isinstance(records, pd.DataFrame):
            rows = records.to_dict("records")
        else:
            rows = [records] if isinstance(records, Mapping) else list(records)
        for position, row in enumerate(rows):
            if not isinstance(row.get(KEY), str):
                raise InvalidOrderError(
                    KEY, "is missing", "name the order to update", f"row {position}"
                )
            removed = [name for name, value in row.items() if is_missing(value)]
            if removed:  # UpdateItem's SET cannot remove an attribute
                raise InvalidOrderError(
                    removed[0],
                    "is missing (None or NaN)",
                    "give a value; to remove an attribute, put the whole order without it",
                    f"order {row[KEY]!r}",
                )
        return self._table.update_items(rows).to_pandas()

    def delete(self, order_ids: str | Iterable[str]) -> int:
        """Delete orders by id (DeleteItem); unknown ids are ignored. Returns how many existed."""
        keys = [order_ids] if isinstance(order_ids, str) else _order_ids(order_ids)
        return self._table.delete_items(keys)

    def batch(self) -> AbstractContextManager:
        """Writes made inside commit together where the backend can: one SQLite transaction
        locally (all of them or none survive a crash); on aws each write stands alone, as
        DynamoDB has no transaction across calls."""
        return self._table.batch()

    def get(self, order_id: str) -> dict[str, Any] | None:
        """One order as a dict, or None."""
        (key,) = _order_ids([order_id])
        item = self._table.get_item(key)
        return None if item is None else item_to_order(item)

    def scan(self) -> pd.DataFrame:
        """Every order in the table (Scan), one row each; for checks, not for big tables.

        The order's fields come first, then any other attribute an order has (missing where
        an order lacks it)."""
        orders = [item_to_order(item) for item in self._table.scan()]
        names = dict.fromkeys([*ORDER_FIELDS, *(name for order in orders for name in order)])
        return pd.DataFrame(orders, columns=list(names))

    def count(self) -> int:
        """Number of orders in the table."""
        return self._table.count()


def _order_ids(order_ids: Any) -> list[str]:
    """Order ids as given to ``delete`` or ``get``: non-empty strings, checked before any
    is used."""
    if order_ids is None or isinstance(order_ids, bytes | int | float):
        order_ids = [order_ids]
    keys = list(order_ids)
    for position, key in enumerate(keys):
        if not isinstance(key, str) or not key:
            problem = "is empty" if key == "" else f"is {key!r} ({type(key).__name__})"
            raise InvalidOrderError(
                KEY, problem, "give order ids as non-empty strings", f"order id {position}"
            )
    return keys


class Platform(abc.ABC):
    """One backend's platform: ``orders``, ``flush``, ``status``, and the lake."""

    settings: Settings
    orders: Orders

    @abc.abstractmethod
    def flush(self, timeout: float = 60.0, progress: bool = False, realtime: bool = True) -> None:
        """Return once every change accepted so far is in the lake; raise naming a stuck stage.

        ``progress`` shows a bar of the changes still on their way. ``realtime`` also waits for
        the real-time consumer to have applied them (its nowcasts and alerts then count every
        change of the days it keeps), including changes an earlier ``realtime=False`` flush
        saw reach the lake.
        """

    @abc.abstractmethod
    def status(self) -> pd.DataFrame:
        """Records per stage, pending (lag) and failures."""

    def trim(self, now: float | None = None) -> dict[str, int]:
        """Apply retention now: what each service would have let go by ``now``, as AWS
        does on its own (on aws this does nothing and returns ``{}``)."""
        return {}

    @abc.abstractmethod
    def publish_expectations(self, frame: pd.DataFrame) -> int:
        """Write a forecast run's expectations (one row per series and upcoming day, the fields
        of :data:`helpers.realtime.EXPECTATION_FIELDS`) where the real-time consumer reads them;
        returns the rows written."""

    def nowcasts(self, day: str | None = None) -> pd.DataFrame:
        """The real-time consumer's nowcast of every series for ``day`` (``YYYY-MM-DD``, UTC;
        today by the consumer's clock when None): running totals, the expected day and the
        end-of-day nowcast with its 90 % interval, columns
        :data:`helpers.realtime.NOWCAST_FIELDS`."""
        raise NotImplementedError(f"{type(self).__name__} does not read nowcasts yet")

    def alerts(self, open_only: bool = False) -> pd.DataFrame:
        """The real-time consumer's alerts, oldest first (only the open ones with
        ``open_only``), columns :data:`helpers.realtime.ALERT_FIELDS`."""
        raise NotImplementedError(f"{type(self).__name__} does not read alerts yet")

    @abc.abstractmethod
    def lake_objects(self, prefix: str | None = None) -> pd.DataFrame:
        """The lake's objects: key, size, last_modified, and the partition they belong to."""

    @abc.abstractmethod
    def read_lake(self, limit: int | None = None) -> pd.DataFrame:
        """The change log in the lake, with its partition columns."""

    @abc.abstractmethod
    def crawl(self) -> dict:
        """Run the crawler over the lake (tables, partitions, views); returns what it did."""

    @abc.abstractmethod
    def query(
        self, sql: str, database: str | None = None, params: list | dict | None = None
    ) -> pd.DataFrame:
        """Run Athena SQL and return the result, like ``awswrangler.athena.read_sql_query``.

        ``params`` is a list for ``?`` placeholders, or a dict for ``:name`` placeholders.
        The frame's ``attrs`` hold ``query_execution_id`` and ``output_location``.
        """

    @abc.abstractmethod
    def write_dataset(self, table: str, frame: pd.DataFrame, partition: dict[str, str]) -> str:
        """Write a frame as one Parquet partition of a catalog table, creating the table (or
        adding new columns) as needed, like ``awswrangler.s3.to_parquet(dataset=True,
        database=..., table=..., partition_cols=...)``; returns the partition's location."""

    @abc.abstractmethod
    def read_errors(self, limit: int | None = None) -> pd.DataFrame:
        """The records delivery could not write, from the error prefix (:func:`failures_frame`)."""

    @abc.abstractmethod
    def provision(self) -> pd.DataFrame:
        """Create what the backend needs, if missing, and return :meth:`resources`."""

    @abc.abstractmethod
    def resources(self) -> pd.DataFrame:
        """What exists: service, kind, name, ARN and a detail, one row per resource."""

    @abc.abstractmethod
    def catalog_tables(self) -> pd.DataFrame:
        """The catalog's tables and views (:func:`catalog_row`), every database."""

    @abc.abstractmethod
    def teardown(self) -> None:
        """Remove what :meth:`provision` created, the lake included."""

    def compact(self, force: bool = True, grace_s: float | None = None) -> dict:
        """Merge the lake's small objects into larger ones (the local backend; on aws a Glue
        job or Athena statements do it, see the README's "Compaction")."""
        raise BackendError(
            f"compact() runs on the local backend only; on {self.settings.backend}, compact "
            "a partition with a Glue job or Athena CTAS/INSERT (see the README)"
        )

    def named_query(self, name: str, params: list | dict | None = None) -> pd.DataFrame:
        """Run one of the named queries of ``helpers/queries``."""
        from helpers import queries

        return self.query(queries.load(name), params=params)

    @abc.abstractmethod
    def close(self) -> None:
        """Stop background work and release resources."""

    def apply(
        self,
        changes: Iterable[Any],
        total: int | None = None,
        progress: bool = True,
        batch_rows: int = 0,
    ) -> dict[str, int]:
        """Replay changes (``helpers.generate`` output: ``action`` and ``frame``) on the table.

        Each change is written as it comes. For history, pass ``batch_rows`` (e.g. 20,000):
        consecutive changes are then written together, about that many orders a batch, puts
        before updates before deletes, as long as that keeps each order's own changes in the
        order given (an order deleted and then put again starts a new batch). Do not batch a
        live stream: a batch waits for its rows. Returns the counts of orders put, updated
        and deleted. ``total``, when known, is the number of changes (not orders) the bar
        counts to.
        """
        counts = {action: 0 for action in _ACTION_RANK}
        batch: dict[str, list[pd.DataFrame]] = {action: [] for action in _ACTION_RANK}
        keys_in_batch: set[str] = set()
        # by rank: the batch's keys that have an action written after that rank's
        later = {rank: set() for rank in _ACTION_RANK.values()}
        with tqdm(total=total, unit="change", disable=not progress, desc="changes") as bar:

            def write_batch() -> None:
                self._write_batch(batch, counts, bar)
                keys_in_batch.clear()
                for held in later.values():
                    held.clear()

            for change in changes:
                rank = _ACTION_RANK[change.action]
                keys = change.frame[KEY].tolist()
                if not later[rank].isdisjoint(keys):
                    write_batch()
                batch[change.action].append(change.frame)
                keys_in_batch.update(keys)
                for lower in range(rank):
                    later[lower].update(keys)
                if len(keys_in_batch) >= batch_rows:
                    write_batch()
            write_batch()
        return counts

    def _write_batch(self, batch: dict[str, list[pd.DataFrame]], counts: dict, bar) -> None:
        with self.orders.batch():
            for action, frames in batch.items():
                if not frames:
                    continue
                frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
                if action == "put":
                    self.orders.put(frame)
                elif action == "update":
                    self.orders.update(frame)
                else:
                    self.orders.delete(frame[KEY].tolist())
                counts[action] += len(frame)
                bar.update(len(frame))
                frames.clear()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
