"""The real-time consumer Lambda: today's running totals, end-of-day nowcasts and alerts.

A second consumer of the Kinesis stream, beside Firehose: each record is the DynamoDB Streams
record that the pipe forwarded. The same file runs on both backends; for AWS it is zipped alone,
unchanged, as ``realtime.py``, so it uses the standard library only (on AWS the Lambda runtime's
boto3, imported when the DynamoDB store is used).

State lives in a store: locally the SQLite file named by ``REALTIME_DB``
(:class:`SqliteStore`), on AWS the stack's expectations and nowcast DynamoDB tables.

Expectations (written by each forecast run, read here) are one row per series and upcoming day:
``series_id`` (``"total"``, ``"category#<name>"``, ``"product#<product_id>"``), ``day``
(``YYYY-MM-DD``, UTC), ``level``, ``name``, ``units`` with ``units_lo_80``, ``units_hi_80``,
``units_lo_90``, ``units_hi_90``, ``revenue`` with ``revenue_lo_90``, ``revenue_hi_90``,
``profile`` (JSON list of 24 cumulative shares of the day's units by the end of each UTC hour),
``run_id`` and ``expires_at`` (epoch seconds, DynamoDB's TTL attribute).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

EXPECTATION_FIELDS = (
    "series_id",
    "day",
    "level",
    "name",
    "units",
    "units_lo_80",
    "units_hi_80",
    "units_lo_90",
    "units_hi_90",
    "revenue",
    "revenue_lo_90",
    "revenue_hi_90",
    "profile",
    "run_id",
    "expires_at",
)
"""The fields of an expectation, in the order the local table keeps them."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS expectations (
    series_id TEXT NOT NULL, day TEXT NOT NULL, level TEXT NOT NULL, name TEXT NOT NULL,
    units REAL NOT NULL, units_lo_80 REAL NOT NULL, units_hi_80 REAL NOT NULL,
    units_lo_90 REAL NOT NULL, units_hi_90 REAL NOT NULL,
    revenue REAL NOT NULL, revenue_lo_90 REAL NOT NULL, revenue_hi_90 REAL NOT NULL,
    profile TEXT NOT NULL, run_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (series_id, day)
) WITHOUT ROWID;
"""


class SqliteStore:
    """The consumer's state in one SQLite file (the local stand-in for its DynamoDB tables)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.executescript(_SCHEMA)

    def put_expectations(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Write expectations, replacing those of the same series and day; returns the count."""
        values = [_expectation_values(row) for row in rows]
        marks = ", ".join("?" * len(EXPECTATION_FIELDS))
        with self._transaction() as connection:
            connection.executemany(
                f"INSERT OR REPLACE INTO expectations ({', '.join(EXPECTATION_FIELDS)}) "
                f"VALUES ({marks})",
                values,
            )
        return len(values)

    def expectations(self, day: str) -> dict[str, dict[str, Any]]:
        """The day's expectations by ``series_id``, ``profile`` as a list."""
        cursor = self._connection.execute(
            f"SELECT {', '.join(EXPECTATION_FIELDS)} FROM expectations WHERE day = ?", (day,)
        )
        found = {}
        for values in cursor:
            row = dict(zip(EXPECTATION_FIELDS, values, strict=True))
            row["profile"] = json.loads(row["profile"])
            found[row["series_id"]] = row
        return found

    def _transaction(self):
        return _Transaction(self._connection)

    def close(self) -> None:
        self._connection.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on an error."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, error, trace) -> None:
        self.connection.execute("ROLLBACK" if kind else "COMMIT")


def _expectation_values(row: Mapping[str, Any]) -> tuple:
    missing = [name for name in EXPECTATION_FIELDS if name not in row]
    if missing:
        raise ValueError(f"expectation {row.get('series_id')!r} lacks {', '.join(missing)}")
    profile = row["profile"]
    if not isinstance(profile, str):
        profile = json.dumps([float(share) for share in profile])
    return tuple(profile if name == "profile" else row[name] for name in EXPECTATION_FIELDS)
