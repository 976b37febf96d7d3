"""SQL over the lake (Amazon Athena): Athena (Trino) SQL, run by DuckDB through sqlglot.

A query names catalog tables as ``database.table`` (or plain ``table`` in the query's
database). Each external table becomes a DuckDB view over the Parquet objects of the
partitions the catalog knows (only those, as on Athena), with the catalog's columns and the
partition keys as strings; each catalog view is transpiled and created after what it reads.
Every query gets an execution id and states (QUEUED, RUNNING, SUCCEEDED, FAILED) and leaves
its result as CSV at the workgroup's output location, as Athena does.

Errors carry Athena's error names and the position in the query text where it is known:
``SYNTAX_ERROR``, ``TABLE_NOT_FOUND``, ``COLUMN_NOT_FOUND``, ``FUNCTION_NOT_FOUND`` (a function
with no local equivalent), ``DIVISION_BY_ZERO``, ``INVALID_FUNCTION_ARGUMENT``, ``NOT_SUPPORTED``
(a construct the local engine cannot say with Trino's meaning, refused before it runs), and
``GENERIC_USER_ERROR`` for the rest. Arrays, maps and rows come back as Python lists, dicts
and tuples in the frame, and in Athena's text (``[1, 2]``, ``{a=1, b=2}``) in the CSV.

The objects of a table are those its listing shows but the sources of a committed
compaction (``helpers.local.compaction``), hidden from the commit until they are deleted.

A catalog view's result is kept in the warm connection and reused until an object it reads
changes (Athena's query result reuse, keyed on the objects instead of an age).

The module is one room of three: this one runs queries (executions, result CSVs, errors);
``helpers.local.trino`` says Athena's SQL to DuckDB with Trino's meaning; and
``helpers.local.athena_views`` keeps the latest-row and aggregate views incrementally.

Not emulated: DDL and DML (CREATE TABLE AS, INSERT, MSCK REPAIR: the crawler keeps partitions),
bytes-scanned accounting (the sum of the objects read is reported), workgroup limits,
federated catalogs, and Trino functions that neither sqlglot nor DuckDB know. Queries run
concurrently from several threads, but a maintained state is refreshed by one at a time.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from helpers.exceptions import QueryError
from helpers.local import compaction, trino, trino_zones
from helpers.local.athena_views import (
    _HIGH,
    _LATEST,
    _MAX_BATCHES,
    _POSITION,
    MaintainedViews,
    UnreadableObject,
    _aggregate_pattern,
    _AggregatePattern,
    _latest_pattern,
    _LatestPattern,
    _LatestRows,
    _Object,
    _quote,
    _row_wise,
)
from helpers.local.glue import Catalog, EntityNotFoundError
from helpers.local.s3 import Bucket
from helpers.local.sqlite import Database
from helpers.queries import sql_literal

_parse = trino.parse  # importable here as before
__all__ = [
    "_MAX_BATCHES",
    "Athena",
    "QueryError",
    "_AggregatePattern",
    "_LatestPattern",
    "_LatestRows",
    "_aggregate_pattern",
    "_latest_pattern",
    "_parse",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, query TEXT NOT NULL, database TEXT NOT NULL, workgroup TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT, output_location TEXT NOT NULL,
    submitted REAL NOT NULL, completed REAL, rows INTEGER, data_scanned INTEGER
);
"""
log = logging.getLogger(__name__)
_RESULTS = "__reused_results"
HISTORY_DAYS = 45
"""Days Athena keeps a workgroup's query history (executions)."""
_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "binary": "BLOB",
}


class Athena(MaintainedViews):
    """An Athena workgroup over a Glue catalog and an S3 bucket.

    Parameters
    ----------
    catalog, bucket
        The catalog that names the tables, and the bucket their locations point into.
    state_path
        SQLite file of query executions.
    output_prefix
        Where results go in the bucket (the workgroup's enforced result location).
    maintain_latest
        Keep latest-row subqueries incrementally (see ``_LatestRows``) under
        ``<state_path stem>-latest/``; False runs them as written, for comparison.
    """

    def __init__(
        self,
        catalog: Catalog,
        bucket: Bucket,
        state_path: Path,
        output_prefix: str = "athena-results/",
        workgroup: str = "primary",
        threads: int = 2,
        maintain_latest: bool = True,
    ):
        self.catalog, self.bucket = catalog, bucket
        self.output_prefix, self.workgroup, self.threads = output_prefix, workgroup, threads
        self.db = Database(state_path, _SCHEMA)
        self.state_root = Path(state_path).with_name(f"{Path(state_path).stem}-latest")
        self.maintain_latest = maintain_latest
        self._local = threading.local()

    def _connection(self) -> tuple[duckdb.DuckDBPyConnection, dict]:
        """This thread's DuckDB connection and what is registered in it (kept warm, so
        Parquet footers are read once, not at every query)."""
        if getattr(self._local, "connection", None) is None:
            connection = duckdb.connect(
                config={"threads": self.threads, "enable_object_cache": True}
            )
            self._local.functions = set()  # the Trino functions created in it (trino.install)
            # the sandbox: DuckDB reads the bucket and writes the views' state, nothing else
            # (no other file, no environment variables, no extensions), as Athena can read
            # only the catalog's tables
            self.state_root.mkdir(parents=True, exist_ok=True)
            allowed = [str(self.bucket.path.resolve()), str(self.state_root.resolve())]
            connection.execute("SET TimeZone = 'UTC'")  # Athena's session zone
            connection.execute("SET allowed_directories = ?", [allowed])
            connection.execute("SET enable_external_access = false")
            self._local.connection = connection
            self._local.registered = {}
            self._local.latest = {}  # __latest view name -> its _LatestRows
            self._local.rows = {}  # catalog view -> (__latest view name, its rewritten tree)
        return self._local.connection, self._local.registered

    # the API ------------------------------------------------------------------------------

    def start_query_execution(
        self, sql: str, database: str, params: list | dict | None = None
    ) -> str:
        """Run a query to completion and return its execution id (see get_query_execution)."""
        return self._run(sql, database, params)[0]

    def read_sql_query(
        self, sql: str, database: str, params: list | dict | None = None
    ) -> pd.DataFrame:
        """The query's result as a DataFrame (what ``awswrangler.athena.read_sql_query`` does);
        its ``attrs`` hold ``query_execution_id`` and ``output_location``."""
        execution_id, frame = self._run(sql, database, params)
        frame.attrs["query_execution_id"] = execution_id
        frame.attrs["output_location"] = self.bucket.uri(f"{self.output_prefix}{execution_id}.csv")
        return frame

    def _run(self, sql: str, database: str, params) -> tuple[str, pd.DataFrame]:
        execution_id = str(uuid.uuid4())
        output = self.bucket.uri(f"{self.output_prefix}{execution_id}.csv")
        with self.db.write() as connection:
            connection.execute(
                "INSERT INTO executions (id, query, database, workgroup, state, output_location,"
                " submitted) VALUES (?, ?, ?, ?, 'QUEUED', ?, ?)",
                (execution_id, sql, database, self.workgroup, output, time.time()),
            )
        self._set_state(execution_id, "RUNNING")
        try:
            frame, scanned, csv_text = self._execute(sql, database, params)
        except QueryError as error:
            self._set_state(execution_id, "FAILED", reason=str(error))
            raise
        # results may hold anything the tables do: readable by their owner only
        self.bucket.put_object(f"{self.output_prefix}{execution_id}.csv", csv_text, private=True)
        self._set_state(execution_id, "SUCCEEDED", rows=len(frame), scanned=scanned)
        return execution_id, frame

    def get_query_execution(self, execution_id: str) -> dict[str, Any]:
        """The execution as GetQueryExecution shows it."""
        row = self.db.connection.execute(
            "SELECT query, database, workgroup, state, reason, output_location, submitted,"
            " completed, rows, data_scanned FROM executions WHERE id = ?",
            (execution_id,),
        ).fetchone()
        if row is None:
            raise QueryError("INVALID_REQUEST", f"QueryExecution {execution_id} was not found")
        query, database, workgroup, state, reason, output, submitted, completed, _, scanned = row
        status: dict[str, Any] = {
            "State": state,
            "SubmissionDateTime": datetime.fromtimestamp(submitted, UTC),
        }
        if completed:
            status["CompletionDateTime"] = datetime.fromtimestamp(completed, UTC)
        if reason:
            status["StateChangeReason"] = reason
        return {
            "QueryExecutionId": execution_id,
            "Query": query,
            "StatementType": "DML",
            "ResultConfiguration": {"OutputLocation": output},
            "QueryExecutionContext": {"Database": database, "Catalog": "awsdatacatalog"},
            "Status": status,
            "Statistics": {
                "EngineExecutionTimeInMillis": int(1000 * ((completed or submitted) - submitted)),
                "DataScannedInBytes": scanned or 0,
            },
            "WorkGroup": workgroup,
        }

    def trim_executions(self, now: float | None = None, days: float = HISTORY_DAYS) -> int:
        """Forget executions submitted more than ``days`` ago (Athena keeps its query history
        45 days; GetQueryExecution then answers that it is not found); returns how many."""
        cutoff = (time.time() if now is None else now) - days * 86400
        with self.db.write() as connection:
            return connection.execute(
                "DELETE FROM executions WHERE submitted < ?", (cutoff,)
            ).rowcount

    def execution_count(self) -> int:
        return self.db.scalar("SELECT count(*) FROM executions")

    # execution ----------------------------------------------------------------------------

    def _set_state(self, execution_id, state, reason=None, rows=None, scanned=None) -> None:
        completed = time.time() if state in ("SUCCEEDED", "FAILED") else None
        with self.db.write() as connection:
            connection.execute(
                "UPDATE executions SET state = ?, reason = ?, completed = ?, rows = ?,"
                " data_scanned = ? WHERE id = ?",
                (state, reason, completed, rows, scanned, execution_id),
            )

    def _execute(self, sql: str, database: str, params) -> tuple[pd.DataFrame, int, bytes]:
        """The result as a frame, the bytes scanned, and the result as Athena's CSV."""
        tree = _parse(sql)
        if isinstance(params, dict):
            _bind_named(tree, params)
        connection, registered = self._connection()
        try:
            scanned, _ = self._register(connection, registered, tree, database, sql, {})
            _compare_timestamps_by_day(connection, tree, database)
            # an aggregate over orders_current (or any row-wise view of latest rows) is
            # combined from its kept partial results, as daily_sales is
            maintained = self.maintain_latest and self._maintained_aggregate(
                connection, tree, database
            )
        except UnreadableObject as error:
            raise _bad_object(self.bucket, error.path, str(error)) from None
        except duckdb.Error as error:
            raise _query_error(error, sql, self.bucket) from None
        try:
            relation = connection.sql(
                maintained or self._translate(tree, database),
                params=params if isinstance(params, list) else None,
            )
            table = relation.to_arrow_table()
        except duckdb.Error as error:
            raise _query_error(error, sql, self.bucket) from None
        for index, kind in enumerate(relation.types):
            if str(kind) == "HUGEINT":  # DuckDB widens sums of integers; Athena's are bigint
                table = table.set_column(
                    index, table.field(index).name, table[index].cast(pa.int64())
                )
        sink = io.BytesIO()
        pa_csv.write_csv(_as_text(table), sink, pa_csv.WriteOptions(quoting_style="all_valid"))
        return _as_frame(table), scanned, sink.getvalue()

    def _translate(self, tree: exp.Expression, database: str) -> str:
        tree = tree.copy()
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if table.name in ctes and not table.db:
                continue
            if isinstance(table.this, exp.Identifier) and not table.db:
                table.set("db", exp.to_identifier(database))
        sql = trino.to_duckdb(tree, copy=False)  # copied above
        connection, _ = self._connection()
        trino.install(connection, sql, self._local.functions)
        return sql

    def _register(
        self, connection, registered, tree, database, sql, done, materialize=True
    ) -> tuple[int, str]:
        """Create (or refresh) the DuckDB views of every catalog table or view the query
        reads. Returns the bytes the query scans and a signature of every object it reads.

        ``registered`` remembers what each view was made from. A catalog view is kept as a
        result (``materialize``) until an object under it changes, which is Athena's query
        result reuse: lake objects are immutable, so names, sizes and times tell a change.
        With ``materialize``, latest-row subqueries read their maintained state instead
        (``_use_latest_rows``); such a view is not kept, as its rows already are.
        """
        scanned, signatures = 0, []
        if materialize and self.maintain_latest:
            for size, signature in self._use_latest_rows(connection, registered, tree, database):
                scanned += size
                signatures.append(signature)
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier) or (table.name in ctes and not table.db):
                continue  # a CTE, or a table function such as UNNEST
            if table.db == _LATEST:
                continue  # registered by _use_latest_rows
            target = _Object(table.db or database, table.name)
            try:
                definition = self.catalog.get_table(target.database, target.name)
            except EntityNotFoundError:
                line, column = _offset_position(sql, (table.args.get("db") or table.this).meta)
                raise QueryError(
                    "TABLE_NOT_FOUND",
                    f"Table 'awsdatacatalog.{target.database}.{target.name}' does not exist",
                    line,
                    column,
                ) from None
            is_view = definition.get("TableType") == "VIRTUAL_VIEW"
            locations = None if is_view else self._pruned(connection, table, definition)
            if locations is not None:  # this reference reads its own view of some partitions
                digest = hashlib.sha256("\n".join(sorted(locations)).encode()).hexdigest()[:12]
                target = _Object(target.database, f"{target.name}__partitions_{digest}")
                if not table.alias:  # columns qualified by the table's name still resolve
                    table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
                table.set("this", exp.to_identifier(target.name, quoted=True))
            if target in done:
                signatures.append(done[target])
                continue
            keep = materialize and is_view
            if is_view:
                view_sql = definition["ViewOriginalText"]
                view_tree = _parse(view_sql)
                size, below = self._register(
                    connection, registered, view_tree, target.database, view_sql, done, materialize
                )
                body = self._translate(view_tree, target.database)
                latest = [t.name for t in view_tree.find_all(exp.Table) if t.db == _LATEST]
                self._local.rows.pop(target, None)
                if latest:
                    keep = False  # its rows are maintained already
                    if len(latest) == 1 and _row_wise(view_tree):
                        self._local.rows[target] = (latest[0], view_tree)
                elif keep:
                    body = (
                        self._maintained_aggregate(connection, view_tree, target.database) or body
                    )
            else:
                objects = self._table_objects(definition, locations)
                body = self._typed_source(definition, [path for path, _, _ in objects])
                size = sum(object_size for _, object_size, _ in objects)
                below = "\n".join(stamp for _, _, stamp in objects)
            signature = hashlib.sha256(f"{body}\n{below}".encode()).hexdigest()
            done[target] = signature
            scanned += size
            signatures.append(signature)
            state = (signature, keep)
            if registered.get(target) == state:
                continue
            name = f'"{target.database}"."{target.name}"'
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{target.database}"')
            if keep:
                kept = f'"{_RESULTS}"."{target.database}__{target.name}"'
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{_RESULTS}"')
                connection.execute(f"CREATE OR REPLACE TABLE {kept} AS {body}")
                body = f"SELECT * FROM {kept}"
            connection.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
            registered[target] = state
        return scanned, "\n".join(signatures)

    def _pruned(self, connection, table: exp.Table, definition: dict[str, Any]) -> set | None:
        """The locations of the partitions a reference to an external table reads, as
        Athena prunes them: those whose values satisfy the conjuncts of the WHERE that name
        only partition keys (``_partition_conjuncts``). None if it reads every partition,
        and where a conjunct cannot be evaluated on the values alone (the query reports it)."""
        keys = [key["Name"] for key in definition.get("PartitionKeys", [])]
        conjuncts = _partition_conjuncts(table, set(keys))
        if not conjuncts:
            return None
        partitions = self.catalog.partitions(definition["DatabaseName"], definition["Name"])
        if not partitions:
            return None
        rows = [
            exp.Tuple(
                expressions=[exp.Literal.number(index)]
                + [exp.Literal.string(value) for value in partition["Values"]]
            )
            for index, partition in enumerate(partitions)
        ]
        columns = [exp.to_identifier("__index"), *(exp.to_identifier(k, quoted=True) for k in keys)]
        values = exp.Values(
            expressions=rows, alias=exp.TableAlias(this=exp.to_identifier("p"), columns=columns)
        )
        condition = exp.and_(*conjuncts)
        for column in condition.find_all(exp.Column):
            column.set("table", None)
        query = exp.select("__index").from_(values).where(condition)
        try:
            found = connection.execute(self._translate(query, definition["DatabaseName"]))
            indexes = [index for (index,) in found.fetchall()]
        except (duckdb.Error, QueryError):
            return None
        return {partitions[index]["StorageDescriptor"]["Location"] for index in indexes}

    def _table_objects(
        self, definition: dict[str, Any], locations: set[str] | None = None
    ) -> list[tuple[str, int, str]]:
        """The local path, size and signature (key, size, time) of every object of the
        table's registered partitions (only those are visible, as on Athena), or of those of
        them at ``locations``."""
        return self._table_listing(definition, locations)[0]

    def _table_listing(
        self, definition: dict[str, Any], locations: set[str] | None = None
    ) -> tuple[list[tuple[str, int, str]], dict[str, list[tuple[str, int]]]]:
        """``_table_objects``, and the compactions behind them: the local path of each
        compacted object -> [(local path of a source, its rows), ...] in row order. The
        sources of a committed compaction are not among the objects, even before they are
        deleted (see ``helpers.local.compaction``)."""
        registered_prefixes = {
            _key(partition["StorageDescriptor"]["Location"], self.bucket.name)
            for partition in self.catalog.partitions(definition["DatabaseName"], definition["Name"])
            if locations is None or partition["StorageDescriptor"]["Location"] in locations
        }
        location = _key(definition["StorageDescriptor"]["Location"], self.bucket.name)
        listing, compacted = compaction.visible_objects(
            self.bucket, self.bucket.list_objects(location)
        )
        objects = [
            (
                str(self.bucket.local_path(info.key)),
                info.size,
                f"{info.key} {info.size} {info.last_modified.timestamp()}",
            )
            for info in listing
            if info.key[: info.key.rfind("/") + 1] in registered_prefixes
        ]
        path = self.bucket.local_path
        compactions = {
            str(path(output)): [(str(path(source)), rows) for source, rows in sources]
            for output, sources in compacted.items()
        }
        return objects, compactions

    def _typed_source(
        self,
        definition: dict[str, Any],
        paths: list[str],
        position: bool = False,
        by_name: bool = True,
        rows: tuple[int, int] | None = None,
    ) -> str:
        """SQL reading these objects of a table with the catalog's columns and the partition
        keys as strings; with ``position``, also each row's ``_LatestRows`` position.
        ``by_name`` unifies the objects' columns by name, which reads every footer when
        the query is bound; without it the objects must share one schema. ``rows`` (first,
        last) reads only those row numbers of each object."""
        columns = definition["StorageDescriptor"]["Columns"]
        partition_keys = [key["Name"] for key in definition.get("PartitionKeys", [])]
        # a column the crawler added after these objects were written is NULL in them (as
        # Athena reads it); objects of one schema are asked by one footer, the others by name
        present = _columns_of(paths[0]) if paths and not by_name else None
        typed = [
            f"CAST({_quote(c['Name']) if paths and (present is None or c['Name'] in present) else 'NULL'}"
            f" AS {_duckdb_type(c['Type'])}) AS {_quote(c['Name'])}"
            for c in columns
        ] + [
            f"CAST({'NULL' if not paths else _quote(name)} AS VARCHAR) AS {_quote(name)}"
            for name in partition_keys
        ]
        if not paths:
            return f"SELECT {', '.join(typed)} WHERE false"
        listing = ", ".join(sql_literal(path) for path in paths)
        extra, where = "", ""
        if rows is not None:
            extra = ", file_row_number = true"
            where = f" WHERE file_row_number BETWEEN {int(rows[0])} AND {int(rows[1])}"
        if position:
            typed.append(
                f"(hash(filename) & {_HIGH}::UBIGINT) | file_row_number::UBIGINT AS {_POSITION}"
            )
            extra = ", filename = true, file_row_number = true"
        source = (
            f"read_parquet([{listing}], hive_partitioning = true, "
            f"hive_types_autocast = false, union_by_name = {str(by_name).lower()}{extra})"
        )
        return f"SELECT {', '.join(typed)} FROM {source}{where}"

    def refresh(self, database: str) -> list[str]:
        """Bring what is maintained under every view of ``database`` up to date, as their
        first query would (the crawler's run calls this, so that a query after it finds
        little left to merge), and take the snapshots of the latest rows that are due
        (``_LatestRows.take_snapshots``). Returns the views; one that fails is left to its
        query."""
        views = [
            table["Name"]
            for table in self.catalog.tables(database)
            if table.get("TableType") == "VIRTUAL_VIEW"
        ]
        connection, registered = self._connection()
        done: dict = {}
        self._local.latest.clear()  # the states of this refresh only, not an older schema's
        for name in views:
            sql = f"SELECT * FROM {_quote(database)}.{_quote(name)}"
            try:
                self._register(connection, registered, _parse(sql), database, sql, done)
            except (QueryError, duckdb.Error, UnreadableObject):
                continue
        for state in self._local.latest.values():  # here, not in queries: it takes seconds
            try:
                state.take_snapshots(connection)
            except (duckdb.Error, OSError) as error:  # an object compacted away meanwhile
                log.warning("snapshot of %s left to the next crawl: %s", state.directory, error)
        return views

    def describe(self, sql: str, database: str) -> list[dict[str, str]]:
        """The Glue columns (``Name``, ``Type``) a query returns, without running it fully."""
        tree = _parse(sql)
        connection, registered = self._connection()
        self._register(connection, registered, tree, database, sql, {}, materialize=False)
        try:
            relation = connection.sql(self._translate(tree, database))
        except duckdb.Error as error:
            raise _query_error(error, sql, self.bucket) from None
        return [
            {"Name": name, "Type": _glue_type(str(kind))}
            for name, kind in zip(relation.columns, relation.types, strict=True)
        ]

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
        self.db.close()


def _partition_conjuncts(table: exp.Table, keys: set[str]) -> list[exp.Expression]:
    """The conjuncts of the WHERE of the SELECT that reads ``table`` as its only source
    which name partition keys of it and nothing else (no other column, subquery, parameter,
    aggregate or window): what Athena prunes the table's partitions by. A conjunct of a
    query over a view or a subquery of the table is not pushed down here (nor, for a
    window over other keys such as orders_current's, by Trino)."""
    select = table.parent.parent if isinstance(table.parent, exp.From) else None
    if not isinstance(select, exp.Select) or select.args.get("joins") or not keys:
        return []
    where = select.args.get("where")
    if where is None:
        return []
    conjuncts = where.this.flatten() if isinstance(where.this, exp.And) else [where.this]
    names = {"", table.alias_or_name}
    return [
        conjunct.copy()
        for conjunct in conjuncts
        if conjunct.find(exp.Column)
        and all(c.name in keys and c.table in names for c in conjunct.find_all(exp.Column))
        and not conjunct.find(exp.Subquery, exp.Placeholder, exp.AggFunc, exp.Window)
    ]


_BY_DAY = {exp.GTE: (exp.GTE, 0), exp.GT: (exp.GTE, 1), exp.LT: (exp.LT, 0), exp.LTE: (exp.LT, 1)}
_FLIPPED = {exp.GTE: exp.LTE, exp.GT: exp.LT, exp.LT: exp.GT, exp.LTE: exp.GTE}


def _compare_timestamps_by_day(connection, tree: exp.Expression, database: str) -> None:
    """``CAST(t AS DATE) >= d`` (or ``>``, ``<``, ``<=``, either way round; ``d`` a date)
    where ``t`` is a timestamp column of the SELECT's only source becomes ``t >= CAST(d AS TIMESTAMP)``
    (``+ INTERVAL '1' DAY`` for ``>`` and ``<=``): the same truth, NULLs included, but a
    filter DuckDB checks against row-group statistics (``hourly_profile`` then reads only
    the days it asks for). The sources must be registered in ``connection``."""
    for select in list(tree.find_all(exp.Select)):
        source, where = select.args.get("from_"), select.args.get("where")
        if where is None or source is None or select.args.get("joins"):
            continue
        if not isinstance(source.this, exp.Table) or not isinstance(
            source.this.this, exp.Identifier
        ):
            continue
        table, types = source.this, None
        for comparison in list(where.find_all(*_BY_DAY)):
            if comparison.find_ancestor(exp.Select) is not select:
                continue  # a subquery's
            kind, left, right = type(comparison), comparison.this, comparison.expression
            if _day_of(right, table) is not None:
                kind, left, right = _FLIPPED[kind], right, left
            column = _day_of(left, table)
            if column is None or not _is_date(right) or right.find(exp.Column, exp.Select):
                continue  # a varchar would be cast to a date, which may fail
            if types is None:
                name = f"{_quote(table.db or database)}.{_quote(table.name)}"
                try:
                    relation = connection.sql(f"SELECT * FROM {name}")
                except duckdb.Error:  # a CTE's name
                    break
                types = {
                    c.lower(): str(t) for c, t in zip(relation.columns, relation.types, strict=True)
                }
            if types.get(column.name.lower()) != "TIMESTAMP":
                continue
            operator, days = _BY_DAY[kind]
            bound = exp.cast(right.copy(), "TIMESTAMP")
            if days:
                bound = exp.Add(
                    this=bound,
                    expression=exp.Interval(this=exp.Literal.string("1"), unit=exp.var("DAY")),
                )
            comparison.replace(operator(this=column.copy(), expression=bound))


def _is_date(expression: exp.Expression) -> bool:
    """Whether ``expression`` is a ``CAST(.. AS DATE)``, a ``DATE '..'`` or ``current_date``."""
    if isinstance(expression, exp.CurrentDate):
        return True
    return type(expression) is exp.Cast and expression.to.is_type(exp.DataType.Type.DATE)


def _day_of(expression: exp.Expression, table: exp.Table) -> exp.Column | None:
    """The column of ``CAST(column AS DATE)`` over ``table``, else None."""
    if not _is_date(expression) or isinstance(expression, exp.CurrentDate):
        return None
    column = expression.this
    if isinstance(column, exp.Column) and column.table in ("", table.alias_or_name):
        return column
    return None


def _is_composite(kind: pa.DataType) -> bool:
    """Whether a result column holds arrays, maps, rows or intervals (which CSV cannot)."""
    return pa.types.is_nested(kind) or pa.types.is_interval(kind)


def _is_zoned(kind: pa.DataType) -> bool:
    """Whether a result column holds Trino's timestamps with time zone in zones of their own
    (:mod:`helpers.local.trino_zones`)."""
    return pa.types.is_struct(kind) and tuple(f.name for f in kind) == trino_zones.FIELDS


def _zoned(value: dict | None) -> datetime | None:
    """A zoned value of the result as an aware datetime in its own zone."""
    if value is None or value["__instant"] is None:
        return None
    zone = value["__zone"]
    offset = trino_zones.utc_offset(zone)
    tzinfo = timezone(offset) if offset is not None else ZoneInfo(zone)
    return value["__instant"].astimezone(tzinfo)


def _zoned_text(value: dict | None) -> str | None:
    """Athena's text of a zoned value: ``2001-08-22 03:04:05.321 Asia/Tokyo``."""
    stamp = _zoned(value)
    if stamp is None:
        return None
    millis = stamp.microsecond // 1000
    return f"{stamp.replace(tzinfo=None):%Y-%m-%d %H:%M:%S}.{millis:03d} {value['__zone']}"


def _as_frame(table: pa.Table) -> pd.DataFrame:
    """The result as a frame; arrays are lists, maps dicts and rows tuples in it, and
    intervals pyarrow's ``MonthDayNano`` (months, days, nanoseconds); timestamps with time
    zone are aware timestamps in their zones."""
    frame = table.to_pandas()
    for index, field in enumerate(table.schema):
        if _is_zoned(field.type):
            stamps = [_zoned(value) for value in table[index].to_pylist()]
            frame.isetitem(index, pd.Series(stamps, index=frame.index))
        elif _is_composite(field.type):
            values = [_python(value, field.type) for value in table[index].to_pylist()]
            frame.isetitem(index, pd.Series(values, index=frame.index, dtype=object))
    return frame


def _python(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_map(kind):
        return {_python(k, kind.key_type): _python(v, kind.item_type) for k, v in value}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return [_python(item, kind.value_type) for item in value]
    if pa.types.is_struct(kind):
        return tuple(_python(value[f.name], f.type) for f in kind)
    return value


def _as_text(table: pa.Table) -> pa.Table:
    """The result with its composite columns in Athena's text (see ``_text``), for CSV."""
    for index, field in enumerate(table.schema):
        if _is_zoned(field.type):
            texts = [_zoned_text(value) for value in table[index].to_pylist()]
            table = table.set_column(index, field.name, pa.array(texts, pa.string()))
        elif _is_composite(field.type):
            texts = [
                None if value is None else _text(value, field.type)
                for value in table[index].to_pylist()
            ]
            table = table.set_column(index, field.name, pa.array(texts, pa.string()))
    return table


def _text(value: Any, kind: pa.DataType) -> str:
    """A value as Athena writes it in a result CSV: ``[1, 2]``, ``{a=1, b=2}`` for a map or
    a row, ``null`` inside them, an interval as ``1 02:03:04.000`` or ``1-2``."""
    if value is None:
        return "null"
    if pa.types.is_map(kind):
        items = (f"{_text(k, kind.key_type)}={_text(v, kind.item_type)}" for k, v in value)
        return "{" + ", ".join(items) + "}"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return "[" + ", ".join(_text(item, kind.value_type) for item in value) + "]"
    if pa.types.is_struct(kind):
        return "{" + ", ".join(f"{f.name}={_text(value[f.name], f.type)}" for f in kind) + "}"
    if pa.types.is_interval(kind):
        months, days, nanoseconds = value.months, value.days, value.nanoseconds
        if days == 0 and nanoseconds == 0:
            sign = "-" if months < 0 else ""
            return f"{sign}{abs(months) // 12}-{abs(months) % 12}"
        total = days * 86_400_000 + nanoseconds // 1_000_000  # milliseconds
        sign, total = ("-" if total < 0 else ""), abs(total)
        seconds, millis = divmod(total, 1000)
        minutes, second = divmod(seconds, 60)
        hours, minute = divmod(minutes, 60)
        day, hour = divmod(hours, 24)
        return f"{sign}{day} {hour:02d}:{minute:02d}:{second:02d}.{millis:03d}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, bytes):
        return value.hex(" ")
    return str(value)


def _glue_type(duckdb_type: str) -> str:
    reverse = {value: key for key, value in _DUCKDB_TYPES.items()}
    if duckdb_type.startswith("DECIMAL"):
        return duckdb_type.lower().replace(" ", "")
    return {"HUGEINT": "bigint", "TIMESTAMP WITH TIME ZONE": "timestamp"}.get(
        duckdb_type, reverse.get(duckdb_type, "string")
    )


def _query_error(error: duckdb.Error, sql: str, bucket: Bucket | None = None) -> QueryError:
    """DuckDB's error in Athena's terms, located in the original query text."""
    message = str(error).split("\n")[0]
    for pattern, code, template in (
        (
            r'Referenced column "([^"]+)" not found',
            "COLUMN_NOT_FOUND",
            "Column '{}' cannot be resolved",
        ),
        (
            r"Function with name (\w+) does not exist",
            "FUNCTION_NOT_FOUND",
            "Function '{}' not registered (it has no local equivalent)",
        ),
        (r"Table with name (\w+) does not exist", "TABLE_NOT_FOUND", "Table '{}' does not exist"),
    ):
        match = re.search(pattern, message)
        if match:
            name = match.group(1)
            line, column = _position(sql, name)
            return QueryError(code, template.format(name), line, column)
    bad = re.search(r"""['"](/[^'"]+)['"]""", message)
    if bad and bucket is not None and Path(bad.group(1)).is_relative_to(bucket.path):
        return _bad_object(bucket, bad.group(1), message.split("Error: ", 1)[-1])
    if "Division by zero" in message:  # of integers or decimals; doubles give Infinity
        return QueryError("DIVISION_BY_ZERO", "Division by zero")
    raised = re.search(
        r"Error: (INVALID_FUNCTION_ARGUMENT|INVALID_CAST_ARGUMENT|NOT_SUPPORTED|FUNCTION_NOT_FOUND)"
        r": (.*)",
        message,
    )
    if raised:  # raised by a macro or function of helpers.local.trino(_functions)
        return QueryError(raised.group(1), raised.group(2))
    for pattern, code in _ERROR_CLASSES:
        if re.search(pattern, message):
            return QueryError(code, message.split("Error: ", 1)[-1])
    return QueryError("GENERIC_USER_ERROR", message.replace("Error: ", ": ", 1))


# DuckDB's classes of error that Trino names otherwise (Trino's StandardErrorCode)
_ERROR_CLASSES = (
    (r"^Out of Range Error: Overflow", "NUMERIC_VALUE_OUT_OF_RANGE"),
    (r"^Conversion Error: .*(convert|cast|date field|time field)", "INVALID_CAST_ARGUMENT"),
    (r"^Invalid Input Error: ", "INVALID_FUNCTION_ARGUMENT"),  # a function's argument
)


def _columns_of(path: str) -> frozenset[str]:
    """The column names of a lake object, from its footer (read once per version of it)."""
    stat = os.stat(path)
    return _footer_columns(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=65_536)
def _footer_columns(path: str, modified: int, size: int) -> frozenset[str]:
    try:
        return frozenset(pq.read_schema(path).names)
    except (pa.ArrowInvalid, OSError) as error:
        raise UnreadableObject(path, str(error)) from None


def _bad_object(bucket: Bucket, path: str, reason: str) -> QueryError:
    """Athena's HIVE_BAD_DATA for a lake object the query read that is not valid Parquet,
    named by its key."""
    key = Path(path).relative_to(bucket.path).as_posix()
    return QueryError(
        "HIVE_BAD_DATA",
        f"Error reading {bucket.uri(key)}: {reason.replace(path, bucket.uri(key))}"
        " (remove or replace the object: it is not valid Parquet)",
    )


def _position(sql: str, name: str) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the first whole-word ``name`` in the query text."""
    match = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", sql, flags=re.IGNORECASE)
    return _offset_position(sql, {"start": match.start()} if match else {})


def _offset_position(sql: str, meta: dict) -> tuple[int | None, int | None]:
    """Line and column (1-based) of a character offset (sqlglot's ``meta["start"]``)."""
    if meta.get("start") is None:
        return None, None
    before = sql[: meta["start"]]
    return before.count("\n") + 1, meta["start"] - (before.rfind("\n") + 1) + 1


def _bind_named(tree: exp.Expression, params: dict[str, Any]) -> None:
    """awswrangler's named parameters: each ``:name`` of the parsed query becomes the value as
    an SQL literal (never text inside a string literal or a comment)."""
    for placeholder in list(tree.find_all(exp.Placeholder)):
        name = placeholder.name
        if not name:
            continue  # a ``?``, bound by DuckDB from a list
        if name not in params:
            raise QueryError("INVALID_PARAMETER", f"no value given for parameter :{name}")
        placeholder.replace(sqlglot.parse_one(sql_literal(params[name]), read=trino.READ))


def _duckdb_type(glue: str) -> str:
    if glue.startswith("decimal"):
        return glue.upper()
    return _DUCKDB_TYPES.get(glue, "VARCHAR")


def _key(location: str, bucket: str) -> str:
    prefix = f"s3://{bucket}/"
    if not location.startswith(prefix):
        raise QueryError("GENERIC_USER_ERROR", f"location {location} is outside bucket {bucket}")
    return location[len(prefix) :]
