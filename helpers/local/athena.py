"""SQL over the lake (Amazon Athena): Athena (Trino) SQL, run by DuckDB through sqlglot.

A query names catalog tables as ``database.table`` (or plain ``table`` in the query's
database). Each external table becomes a DuckDB view over the Parquet objects of the
partitions the catalog knows (only those, as on Athena), with the catalog's columns and the
partition keys as strings; each catalog view is transpiled and created after what it reads.
Every query gets an execution id and states (QUEUED, RUNNING, SUCCEEDED, FAILED) and leaves
its result as CSV at the workgroup's output location, as Athena does.

Errors carry Athena's error names and the position in the query text where it is known:
``SYNTAX_ERROR``, ``TABLE_NOT_FOUND``, ``COLUMN_NOT_FOUND``, ``FUNCTION_NOT_FOUND`` (a function
with no local equivalent), and ``GENERIC_USER_ERROR`` for the rest.

A catalog view's result is kept in the warm connection and reused until an object it reads
changes (Athena's query result reuse, keyed on the objects instead of an age).

"Latest row per key" subqueries over an external table (``SELECT *, row_number() OVER
(PARTITION BY k ORDER BY s) AS n FROM t`` filtered on ``n = 1`` outside, as ``orders_current``
does) are maintained incrementally, like a materialized view (``_LatestRows``), and so are
SUM/COUNT ... GROUP BY views over a view of them (``daily_sales``), as partial results added
and subtracted per merge (``_AggregatePattern``). Both are kept on disk under the engine's
state, so a new process finds them. The SQL text is unchanged; only how DuckDB runs it
changes, and the answer is the plain SQL's (sums of doubles may differ in the last digits, as
they do between runs of a parallel sum).

Not emulated: DDL and DML (CREATE TABLE AS, INSERT, MSCK REPAIR: the crawler keeps partitions),
bytes-scanned accounting (the sum of the objects read is reported), workgroup limits,
federated catalogs, and Trino functions that neither sqlglot nor DuckDB know. Queries run
concurrently from several threads, but a maintained state is refreshed by one at a time.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from helpers.exceptions import QueryError
from helpers.local.glue import Catalog, EntityNotFoundError
from helpers.local.s3 import Bucket
from helpers.local.sqlite import Database
from helpers.queries import sql_literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, query TEXT NOT NULL, database TEXT NOT NULL, workgroup TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT, output_location TEXT NOT NULL,
    submitted REAL NOT NULL, completed REAL, rows INTEGER, data_scanned INTEGER
);
"""
_RESULTS = "__reused_results"
_LATEST = "__latest"  # DuckDB schema of the maintained latest-row relations
_POSITION, _KEY_HASH = "__pos", "__h"
_HIGH = 0xFFFFFFFF00000000  # a position: the high half of its object path's hash | row number
_VIRTUAL_COLUMNS = {"filename", "file_row_number"}
_MAX_BATCHES = 64
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


@dataclass(frozen=True)
class _Object:
    database: str
    name: str


class Athena:
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
            self._local.connection = duckdb.connect(
                config={"threads": self.threads, "enable_object_cache": True}
            )
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
        self.bucket.put_object(f"{self.output_prefix}{execution_id}.csv", csv_text)
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
        sql = _bind_named(sql, params) if isinstance(params, dict) else sql
        tree = _parse(sql)
        connection, registered = self._connection()
        scanned, _ = self._register(connection, registered, tree, database, sql, {})
        try:
            relation = connection.sql(
                self._translate(tree, database), params=params if isinstance(params, list) else None
            )
            table = relation.to_arrow_table()
        except duckdb.Error as error:
            raise _query_error(error, sql) from None
        for index, kind in enumerate(relation.types):
            if str(kind) == "HUGEINT":  # DuckDB widens sums of integers; Athena's are bigint
                table = table.set_column(
                    index, table.field(index).name, table[index].cast(pa.int64())
                )
        sink = io.BytesIO()
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(quoting_style="all_valid"))
        return table.to_pandas(), scanned, sink.getvalue()

    def _translate(self, tree: exp.Expression, database: str) -> str:
        tree = tree.copy()
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if table.name in ctes and not table.db:
                continue
            if isinstance(table.this, exp.Identifier) and not table.db:
                table.set("db", exp.to_identifier(database))
        return tree.sql(dialect="duckdb")

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
            if target in done:
                signatures.append(done[target])
                continue
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
                objects = self._table_objects(definition)
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

    def _use_latest_rows(self, connection, registered, tree, database) -> list[tuple[int, str]]:
        """Point every latest-row subquery of ``tree`` (see ``_latest_pattern``) at a DuckDB
        view of its maintained state, refreshed first. Returns the bytes and signature of each.
        A subquery whose table is not an external table with objects is left as it is."""
        used = []
        for pattern in [_latest_pattern(select) for select in tree.find_all(exp.Select)]:
            if pattern is None:
                continue
            try:
                definition = self.catalog.get_table(
                    pattern.table.db or database, pattern.table.name
                )
            except EntityNotFoundError:
                continue  # the plain path reports it
            if definition.get("TableType") == "VIRTUAL_VIEW":
                continue
            names = {c["Name"] for c in definition["StorageDescriptor"]["Columns"]} | {
                key["Name"] for key in definition.get("PartitionKeys", [])
            }
            objects = self._table_objects(definition)
            if not objects or not set(pattern.columns) <= names or names & _VIRTUAL_COLUMNS:
                continue
            state = _LatestRows(
                self.state_root,
                definition,
                pattern,
                lambda paths, by_name=True, d=definition: self._typed_source(
                    d, paths, position=True, by_name=by_name
                ),
            )
            superseded = state.refresh(connection, {path: stamp for path, _, stamp in objects})
            if superseded is None:
                continue
            body = state.body([path for path, _, _ in objects], superseded)
            signature = hashlib.sha256(body.encode()).hexdigest()
            target = _Object(_LATEST, state.directory.name)
            if registered.get(target) != (signature, False):
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{_LATEST}"')
                connection.execute(f'CREATE OR REPLACE VIEW "{_LATEST}"."{target.name}" AS {body}')
                registered[target] = (signature, False)
            pattern.rewrite(exp.table_(target.name, db=_LATEST, quoted=True))
            self._local.latest[target.name] = state
            used.append((sum(size for _, size, _ in objects), signature))
        return used

    def _maintained_aggregate(self, connection, tree: exp.Select, database: str) -> str | None:
        """SQL combining the maintained partial results of an aggregate view over a row-wise
        view of latest rows (see ``_AggregatePattern``), or None if ``tree`` is not one."""
        pattern = _aggregate_pattern(tree)
        if pattern is None:
            return None
        chain = self._local.rows.get(_Object(pattern.table.db or database, pattern.table.name))
        if chain is None:
            return None
        name, rows_tree = chain
        delta = exp.table_(f"{name}__delta", db=_LATEST, quoted=True)
        partial = self._translate(pattern.partial(rows_tree, delta), database)
        return self._local.latest[name].aggregate(
            connection, partial, f'"{_LATEST}"."{name}__delta"', pattern
        )

    def _table_objects(self, definition: dict[str, Any]) -> list[tuple[str, int, str]]:
        """The local path, size and signature (key, size, time) of every object of the
        table's registered partitions (only those are visible, as on Athena)."""
        registered_prefixes = {
            _key(partition["StorageDescriptor"]["Location"], self.bucket.name)
            for partition in self.catalog.partitions(definition["DatabaseName"], definition["Name"])
        }
        location = _key(definition["StorageDescriptor"]["Location"], self.bucket.name)
        return [
            (
                str(self.bucket.local_path(info.key)),
                info.size,
                f"{info.key} {info.size} {info.last_modified.timestamp()}",
            )
            for info in self.bucket.list_objects(location)
            if info.key[: info.key.rfind("/") + 1] in registered_prefixes
        ]

    def _typed_source(
        self,
        definition: dict[str, Any],
        paths: list[str],
        position: bool = False,
        by_name: bool = True,
    ) -> str:
        """SQL reading these objects of a table with the catalog's columns and the partition
        keys as strings; with ``position``, also each row's ``_LatestRows`` position.
        ``by_name`` unifies the objects' columns by name, which reads every footer when
        the query is bound; without it the objects must share one schema."""
        columns = definition["StorageDescriptor"]["Columns"]
        partition_keys = [key["Name"] for key in definition.get("PartitionKeys", [])]
        typed = [
            f"CAST({'NULL' if not paths else _quote(c['Name'])} AS {_duckdb_type(c['Type'])})"
            f" AS {_quote(c['Name'])}"
            for c in columns
        ] + [
            f"CAST({'NULL' if not paths else _quote(name)} AS VARCHAR) AS {_quote(name)}"
            for name in partition_keys
        ]
        if not paths:
            return f"SELECT {', '.join(typed)} WHERE false"
        listing = ", ".join(sql_literal(path) for path in paths)
        extra = ""
        if position:
            typed.append(
                f"(hash(filename) & {_HIGH}::UBIGINT) | file_row_number::UBIGINT AS {_POSITION}"
            )
            extra = ", filename = true, file_row_number = true"
        source = (
            f"read_parquet([{listing}], hive_partitioning = true, "
            f"hive_types_autocast = false, union_by_name = {str(by_name).lower()}{extra})"
        )
        return f"SELECT {', '.join(typed)} FROM {source}"

    def refresh(self, database: str) -> list[str]:
        """Bring what is maintained under every view of ``database`` up to date, as their
        first query would (the crawler's run calls this, so that a query after it finds
        little left to merge). Returns the views; one that fails is left to its query."""
        views = [
            table["Name"]
            for table in self.catalog.tables(database)
            if table.get("TableType") == "VIRTUAL_VIEW"
        ]
        connection, registered = self._connection()
        done: dict = {}
        for name in views:
            sql = f"SELECT * FROM {_quote(database)}.{_quote(name)}"
            try:
                self._register(connection, registered, _parse(sql), database, sql, done)
            except (QueryError, duckdb.Error):
                continue
        return views

    def describe(self, sql: str, database: str) -> list[dict[str, str]]:
        """The Glue columns (``Name``, ``Type``) a query returns, without running it fully."""
        tree = _parse(sql)
        connection, registered = self._connection()
        self._register(connection, registered, tree, database, sql, {}, materialize=False)
        try:
            relation = connection.sql(self._translate(tree, database))
        except duckdb.Error as error:
            raise _query_error(error, sql) from None
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


@dataclass
class _LatestPattern:
    """``SELECT *, row_number() OVER (PARTITION BY k.. ORDER BY s..) AS n FROM t`` as the only
    source of a SELECT whose WHERE requires ``n = 1`` (a conjunct): that SELECT only ever sees
    the latest row of each key, so the subquery may yield just those rows, with ``n`` = 1."""

    inner: exp.Select
    table: exp.Table
    keys: list[str]
    ordering: list[exp.Ordered]
    window_index: int

    @property
    def columns(self) -> list[str]:
        """The key and ordering columns, each once."""
        names = self.keys + [ordered.this.name for ordered in self.ordering]
        return list(dict.fromkeys(names))

    def ranking(self) -> str:
        """The window in DuckDB's SQL, over unqualified columns."""
        order = []
        for ordered in self.ordering:
            ordered = ordered.copy()
            ordered.set("this", exp.column(ordered.this.name, quoted=True))
            order.append(ordered.sql(dialect="duckdb"))
        keys = ", ".join(_quote(key) for key in self.keys)
        return f"row_number() OVER (PARTITION BY {keys} ORDER BY {', '.join(order)})"

    def rewrite(self, table: exp.Table) -> None:
        """Read the latest rows from ``table``; the row number becomes 1."""
        alias = self.inner.expressions[self.window_index].alias
        self.inner.expressions[self.window_index] = exp.alias_(
            exp.cast(exp.Literal.number(1), "BIGINT"), alias
        )
        self.inner.set("from_", exp.From(this=table))


def _latest_pattern(outer: exp.Select) -> _LatestPattern | None:
    """The latest-row subquery that ``outer`` reads from, if it is one (see _LatestPattern)."""
    source, where = outer.args.get("from_"), outer.args.get("where")
    if source is None or where is None or outer.args.get("joins"):
        return None
    if not isinstance(source.this, exp.Subquery) or not isinstance(source.this.this, exp.Select):
        return None
    inner = source.this.this
    clauses = ("joins", "where", "group", "having", "qualify", "order", "limit", "offset")
    if any(inner.args.get(clause) for clause in (*clauses, "distinct", "with_", "laterals")):
        return None
    inner_from = inner.args.get("from_")
    if inner_from is None or not isinstance(inner_from.this, exp.Table):
        return None
    table = inner_from.this
    kinds = [type(e.this if isinstance(e, exp.Alias) else e) for e in inner.expressions]
    if len(kinds) != 2 or set(kinds) != {exp.Star, exp.Window}:
        return None
    index = kinds.index(exp.Window)
    window = inner.expressions[index].this
    order = window.args.get("order")
    partition = window.args.get("partition_by") or []
    if not isinstance(window.this, exp.RowNumber) or window.args.get("spec") or not partition:
        return None
    ordering = list(order.expressions) if order else []
    columns = partition + [ordered.this for ordered in ordering]
    if not ordering or not all(
        isinstance(c, exp.Column) and c.table in ("", table.alias_or_name) for c in columns
    ):
        return None
    alias = inner.expressions[index].alias
    conditions = where.this.flatten() if isinstance(where.this, exp.And) else [where.this]
    if not any(_is_first(condition, alias) for condition in conditions):
        return None
    return _LatestPattern(inner, table, [c.name for c in partition], ordering, index)


def _row_wise(tree: exp.Expression) -> bool:
    """Whether a query maps each row it reads to at most one row (filters, projections)."""
    clauses = ("joins", "group", "having", "qualify", "limit", "offset", "distinct", "with_")
    return (
        isinstance(tree, exp.Select)
        and not any(tree.args.get(clause) for clause in clauses)
        and not tree.find(exp.AggFunc, exp.Window)
    )


@dataclass
class _AggregatePattern:
    """``SELECT g.., sum(x).., count(..).. FROM v [WHERE ..] GROUP BY g..`` over one view:
    its result over a union of rows is the combination of its results over the parts
    (sums and counts add up), and over rows taken away it is subtracted. Every grouping
    expression is an output; the other outputs are whole SUM or COUNT calls, not DISTINCT."""

    tree: exp.Select
    table: exp.Table
    outputs: list[tuple[str, str]]  # (name, "group" | "sum" | "count")

    def partial(self, rows_tree: exp.Select, delta: exp.Table) -> exp.Select:
        """This aggregate over ``rows_tree`` reading ``delta`` instead of its latest rows,
        with the counts that combining needs: ``__n<i>`` non-null inputs of the i-th output
        (a sum), and ``__rows``."""
        rows = rows_tree.copy()
        for table in list(rows.find_all(exp.Table)):
            if table.db == _LATEST:
                table.replace(delta.copy())
        tree = self.tree.copy()
        source = tree.args["from_"].this
        alias = exp.TableAlias(this=exp.to_identifier(source.alias_or_name))
        source.replace(exp.Subquery(this=rows, alias=alias))
        for index, expression in enumerate(list(tree.expressions)):
            call = expression.unalias()
            if isinstance(call, exp.Sum):
                tree.select(exp.alias_(exp.Count(this=call.this.copy()), f"__n{index}"), copy=False)
        tree.select(exp.alias_(exp.Count(this=exp.Star()), "__rows"), copy=False)
        return tree

    def combine(self, files: list[str], types: dict[str, str]) -> str:
        """SQL adding up partial results into the aggregate's result, with its types."""
        columns = []
        for index, (name, kind) in enumerate(self.outputs):
            column = _quote(name)
            if kind == "sum":
                column = f"CASE WHEN sum(__n{index}) > 0 THEN sum({column}) END"
            elif kind == "count":
                column = f"sum({column})"
            columns.append(
                column if kind == "group" else f"CAST({column} AS {types[name]}) AS {_quote(name)}"
            )
        groups = ", ".join(_quote(name) for name, kind in self.outputs if kind == "group")
        return (
            f"SELECT {', '.join(columns)} FROM {_parquet(files)} GROUP BY {groups} "
            "HAVING sum(__rows) > 0"
        )


def _aggregate_pattern(tree: exp.Expression) -> _AggregatePattern | None:
    """``tree`` as an _AggregatePattern, if it is one."""
    if not isinstance(tree, exp.Select) or tree.find(exp.Window):
        return None
    source, group = tree.args.get("from_"), tree.args.get("group")
    clauses = ("joins", "having", "qualify", "order", "limit", "offset", "distinct", "with_")
    if source is None or group is None or any(tree.args.get(clause) for clause in clauses):
        return None
    if not isinstance(source.this, exp.Table) or not isinstance(source.this.this, exp.Identifier):
        return None
    if any(value for key, value in group.args.items() if key != "expressions"):
        return None  # ALL, ROLLUP, CUBE, GROUPING SETS
    grouped = {expression.sql() for expression in group.expressions}
    outputs, seen = [], set()
    for expression in tree.expressions:
        call, name = expression.unalias(), expression.alias_or_name
        plain = call.this is not None and not call.this.find(exp.AggFunc, exp.Distinct)
        if isinstance(call, exp.Sum | exp.Count) and plain:
            outputs.append((name, "sum" if isinstance(call, exp.Sum) else "count"))
        elif call.sql() in grouped and not call.find(exp.AggFunc):
            outputs.append((name, "group"))
            seen.add(call.sql())
        else:
            return None
    names = [name for name, _ in outputs]
    if seen != grouped or len(set(names)) != len(names) or any(n.startswith("__") for n in names):
        return None
    return _AggregatePattern(tree, source.this, outputs)


def _is_first(condition: exp.Expression, alias: str) -> bool:
    """Whether ``condition`` is ``alias = 1``."""
    if not isinstance(condition, exp.EQ):
        return False
    sides = [condition.this, condition.expression]
    return any(
        isinstance(column, exp.Column)
        and column.name.lower() == alias.lower()
        and isinstance(one, exp.Literal)
        and not one.is_string
        and one.this == "1"
        for column, one in (sides, sides[::-1])
    )


class _LatestRows:
    """The latest row per key of an external table, kept up to date by merging new objects.

    Lake objects are immutable, so the state is what was learnt from each object, in Parquet
    under ``root``: a hash of the key and the position of every row (``keys-*``), and the
    positions of the rows that are not their key's latest (``superseded-*``). A position is
    the high half of the object path's hash with the row number in the low half (positions
    are only used while the visible objects' high halves differ). New objects are merged by
    their keys alone: the older rows whose key hash they share, wherever they are, and the
    new rows are ranked together with the query's own window, and the losers are added to
    ``superseded``. The latest rows are then the visible objects minus the superseded
    positions, read straight from the lake. When an object that was merged changes or is no
    longer visible (its partition left the catalog), the state starts again from nothing.

    Several threads or processes may refresh the same state: a file lock makes them take
    turns. Files replaced by a compaction or a new start are deleted one round later, so a
    query reading them at that moment still finds them.
    """

    def __init__(self, root: Path, definition: dict[str, Any], pattern: _LatestPattern, source):
        self.keys, self.ranking = pattern.keys, pattern.ranking()
        self.source = source  # (paths, by_name) -> typed SQL with positions
        self.manifest: dict = {}  # as the last refresh left it, with its paths and files
        self.paths: list[str] = []
        self.superseded: list[str] = []
        identity = json.dumps(
            [
                definition["DatabaseName"],
                definition["Name"],
                definition["StorageDescriptor"],
                definition.get("PartitionKeys", []),
                self.ranking,
                duckdb.__version__,  # hash() may change between versions
            ],
            sort_keys=True,
        )
        self.directory = root / hashlib.sha256(identity.encode()).hexdigest()[:16]

    def refresh(self, connection, objects: dict[str, str]) -> list[str] | None:
        """Merge the objects not merged yet (``objects``: path -> signature). Returns the
        superseded files, or None if two objects' positions could meet."""
        paths = sorted(objects)
        prefixes = connection.execute(
            f"SELECT count(DISTINCT hash(p) & {_HIGH}::UBIGINT) FROM unnest(?::VARCHAR[]) t(p)",
            [paths],
        ).fetchall()[0][0]
        if prefixes != len(paths):
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            manifest = self._manifest()
            if any(objects.get(path) != stamp for path, stamp in manifest["objects"].items()):
                manifest = self._replace(manifest, [])
            new = [path for path in paths if path not in manifest["objects"]]
            if new:
                manifest["schemas"].update((path, _schema_fingerprint(path)) for path in new)
                self._merge(connection, manifest, new)
                manifest["objects"].update((path, objects[path]) for path in new)
                if len(manifest["batches"]) > _MAX_BATCHES:
                    manifest = self._compact(connection, manifest)
                self._save(manifest)
        self.manifest, self.paths = manifest, paths
        self.superseded = self._files(manifest, "superseded")
        return self.superseded

    def body(self, paths: list[str], superseded: list[str]) -> str:
        """SQL of the latest rows: the objects' rows but the superseded ones. Objects that
        share one schema are read without unifying columns by name (binding is cheaper)."""
        source = self.source(paths, not self._one_schema(self.manifest, paths))
        source = f"SELECT * EXCLUDE ({_POSITION}) FROM ({source})"
        if not superseded:
            return source
        return f"{source} WHERE {_POSITION} NOT IN (SELECT pos FROM {_parquet(superseded)})"

    def _merge(self, connection, manifest: dict, new: list[str]) -> None:
        """Merge the objects ``new``: first by key hashes and positions alone (cheap), then
        the rows whose key hash is not unique are ranked with their key and order columns."""
        batch = uuid.uuid4().hex[:12]
        rows, repeated, losers = f"__rows_{batch}", f"__repeated_{batch}", f"__losers_{batch}"
        keys = ", ".join(_quote(key) for key in self.keys)
        new_rows = self.source(new, not self._one_schema(manifest, new))
        connection.execute(
            f"CREATE TEMP TABLE {rows} AS "
            f"SELECT {_POSITION}, hash({keys}) AS {_KEY_HASH} FROM ({new_rows})"
        )
        try:
            connection.execute(
                f"COPY (SELECT {_KEY_HASH} AS h, {_POSITION} AS pos FROM {rows}) "
                f"TO {sql_literal(str(self.directory / f'keys-{batch}.parquet'))} "
                "(FORMAT parquet, COMPRESSION uncompressed)"  # hashes and positions do not shrink
            )
            older = self._live_rows_sharing_a_key(connection, manifest, rows)
            positions = [position for position, _ in older]
            connection.execute(
                f"INSERT INTO {rows} SELECT unnest(?::UBIGINT[]), unnest(?::UBIGINT[])",
                [positions, [key for _, key in older]],
            )
            connection.execute(
                f"CREATE TEMP TABLE {repeated} AS SELECT {_POSITION} FROM {rows} WHERE {_KEY_HASH} "
                f"IN (SELECT {_KEY_HASH} FROM {rows} GROUP BY {_KEY_HASH} HAVING count(*) > 1)"
            )
            files = new + self._files_holding(connection, manifest["objects"], positions)
            ranked = self.source(files, not self._one_schema(manifest, files))
            connection.execute(
                f"CREATE TEMP TABLE {losers} AS SELECT {_POSITION} AS pos FROM ({ranked}) "
                f"WHERE {_POSITION} IN (SELECT {_POSITION} FROM {repeated}) "
                f"QUALIFY {self.ranking} > 1"
            )
            lost = connection.execute(f"SELECT count(*) FROM {losers}").fetchall()[0][0]
            if lost:
                target = str(self.directory / f"superseded-{batch}.parquet")
                connection.execute(f"COPY {losers} TO {sql_literal(target)} (FORMAT parquet)")
        finally:
            for table in (rows, repeated, losers):
                connection.execute(f"DROP TABLE IF EXISTS {table}")
        manifest["batches"].append({"id": batch, "superseded": bool(lost), "objects": new})

    def _files_holding(self, connection, paths, positions: list[int]) -> list[str]:
        """Which of ``paths`` hold rows at ``positions``."""
        prefixes = {position & _HIGH for position in positions}
        return [
            path
            for path, prefix in connection.execute(
                f"SELECT p, hash(p) & {_HIGH}::UBIGINT FROM unnest(?::VARCHAR[]) t(p)",
                [list(paths)],
            ).fetchall()
            if prefix in prefixes
        ]

    def aggregate(self, connection, partial: str, delta: str, pattern) -> str:
        """SQL of an aggregate over all the latest rows (``partial``, reading the view
        ``delta``), combined from partial results kept under this state and brought up to
        its last refresh: one for the whole, then for each later merge one for the rows it
        added and one, negated, for the rows it took away. A compaction or a new start of
        the state starts the partial results again from the whole."""
        identity = hashlib.sha256(partial.encode()).hexdigest()[:16]
        directory = self.directory / "aggregates" / identity
        directory.mkdir(parents=True, exist_ok=True)
        groups = {name for name, kind in pattern.outputs if kind == "group"}
        with open(self.directory / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = directory / "manifest.json"
            before = json.loads(path.read_text()) if path.exists() else {"applied": []}
            kept = before
            batches = self.manifest["batches"]
            ids = [batch["id"] for batch in batches]
            if not kept["applied"] or ids[: len(kept["applied"])] != kept["applied"]:
                kept = {"applied": ids, "files": [], "types": {}}
                leaf = self.body(self.paths, self.superseded)
                self._partial(connection, directory, kept, partial, delta, leaf, groups, 1)
            pending = batches[len(kept["applied"]) :]
            for batch in pending:
                added, removed = self._changes(connection, batch)
                self._partial(connection, directory, kept, partial, delta, added, groups, 1)
                if removed:
                    self._partial(connection, directory, kept, partial, delta, removed, groups, -1)
                kept["applied"].append(batch["id"])
            if kept is not before:
                referenced = set(kept["files"]) | set(before.get("files", []))
                for old in directory.glob("partial-*.parquet"):
                    if old.name not in referenced:
                        old.unlink(missing_ok=True)
            if kept is not before or pending:
                _write_json(path, kept)
        return pattern.combine([str(directory / name) for name in kept["files"]], kept["types"])

    def _partial(self, connection, directory, kept, partial, delta, leaf, groups, sign) -> None:
        """Write ``partial`` over the rows of ``leaf`` (negated if ``sign`` < 0) as a file of
        ``kept``; the first one also records the result's types."""
        connection.execute(f"CREATE OR REPLACE VIEW {delta} AS {leaf}")
        relation = connection.sql(partial)
        types = dict(zip(relation.columns, (str(kind) for kind in relation.types), strict=True))
        kept["types"] = kept["types"] or types
        columns = []
        for name, kind in types.items():
            value = _quote(name) if name in groups or sign > 0 else f"-{_quote(name)}"
            if kind == "HUGEINT":  # Parquet has no 128-bit integers
                value = f"CAST({value} AS DECIMAL(38, 0))"
            columns.append(f"{value} AS {_quote(name)}")
        name = f"partial-{uuid.uuid4().hex[:12]}.parquet"
        connection.execute(
            f"COPY (SELECT {', '.join(columns)} FROM ({partial})) "
            f"TO {sql_literal(str(directory / name))} (FORMAT parquet)"
        )
        kept["files"].append(name)

    def _changes(self, connection, batch: dict) -> tuple[str, str | None]:
        """SQL of the latest rows a merge added, and of those it took away (None if none)."""
        own = []
        if batch["superseded"]:
            own = [str(self.directory / f"superseded-{batch['id']}.parquet")]
        added = self.body(batch["objects"], own)
        if not own:
            return added, None
        positions = [
            pos for (pos,) in connection.execute(f"SELECT pos FROM {_parquet(own)}").fetchall()
        ]
        older = [path for path in self.manifest["objects"] if path not in set(batch["objects"])]
        files = self._files_holding(connection, older, positions)
        if not files:
            return added, None
        source = self.source(files, not self._one_schema(self.manifest, files))
        return added, (
            f"SELECT * EXCLUDE ({_POSITION}) FROM ({source}) "
            f"WHERE {_POSITION} IN (SELECT pos FROM {_parquet(own)})"
        )

    def _live_rows_sharing_a_key(self, connection, manifest, rows) -> list[tuple[int, int]]:
        """Positions and key hashes of merged rows, not superseded, whose key hash a new row
        has."""
        known = self._files(manifest, "keys")
        if not known:
            return []
        live = f"SELECT pos, h FROM {_parquet(known)} WHERE h IN (SELECT {_KEY_HASH} FROM {rows})"
        superseded = self._files(manifest, "superseded")
        if superseded:
            live += f" AND pos NOT IN (SELECT pos FROM {_parquet(superseded)})"
        return connection.execute(live).fetchall()

    def _compact(self, connection, manifest: dict) -> dict:
        """One file of each kind instead of one per merge."""
        batch = uuid.uuid4().hex[:12]
        for kind in ("keys", "superseded"):
            files = self._files(manifest, kind)
            if files:
                target = str(self.directory / f"{kind}-{batch}.parquet")
                connection.execute(
                    f"COPY (SELECT * FROM {_parquet(files)}) TO {sql_literal(target)} "
                    "(FORMAT parquet)"
                )
        superseded = bool(self._files(manifest, "superseded"))
        return self._replace(manifest, [{"id": batch, "superseded": superseded, "objects": []}])

    def _replace(self, manifest: dict, batches: list[dict]) -> dict:
        """A manifest of ``batches`` (and of the objects if any are kept); deletes the files
        that the manifest before ``manifest`` left behind."""
        kept = {
            f"{kind}-{b['id']}.parquet"
            for b in manifest["batches"] + batches
            for kind in ("keys", "superseded")
        }
        for path in self.directory.glob("*.parquet"):
            if path.name not in kept:
                path.unlink(missing_ok=True)
        if not batches:
            return {"objects": {}, "schemas": {}, "batches": []}
        return {**manifest, "batches": batches}

    @staticmethod
    def _one_schema(manifest: dict, paths: list[str]) -> bool:
        return len({manifest["schemas"][path] for path in paths}) == 1

    def _files(self, manifest: dict, kind: str) -> list[str]:
        return [
            str(self.directory / f"{kind}-{b['id']}.parquet")
            for b in manifest["batches"]
            if kind == "keys" or b["superseded"]
        ]

    def _manifest(self) -> dict:
        path = self.directory / "manifest.json"
        if path.exists():
            return json.loads(path.read_text())
        return {"objects": {}, "schemas": {}, "batches": []}

    def _save(self, manifest: dict) -> None:
        _write_json(self.directory / "manifest.json", manifest)


def _write_json(path: Path, value: Any) -> None:
    """Replace ``path`` with ``value`` at once (readers see the old file or the new one)."""
    temporary = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(json.dumps(value))
    os.replace(temporary, path)


def _schema_fingerprint(path: str) -> str:
    """The columns and types of a Parquet object, as a short hash."""
    schema = pq.read_schema(path).remove_metadata().to_string()
    return hashlib.sha256(schema.encode()).hexdigest()[:16]


def _parquet(paths: list[str]) -> str:
    return f"read_parquet([{', '.join(sql_literal(path) for path in paths)}])"


def _glue_type(duckdb_type: str) -> str:
    reverse = {value: key for key, value in _DUCKDB_TYPES.items()}
    if duckdb_type.startswith("DECIMAL"):
        return duckdb_type.lower().replace(" ", "")
    return {"HUGEINT": "bigint", "TIMESTAMP WITH TIME ZONE": "timestamp"}.get(
        duckdb_type, reverse.get(duckdb_type, "string")
    )


def _parse(sql: str) -> exp.Expression:
    try:
        statements = sqlglot.parse(sql, read="athena")
    except sqlglot.errors.ParseError as error:
        detail = error.errors[0] if error.errors else {}
        raise QueryError(
            "SYNTAX_ERROR",
            detail.get("description", str(error)).split("\n")[0],
            detail.get("line"),
            detail.get("col"),
        ) from None
    statements = [statement for statement in statements if statement is not None]
    if len(statements) != 1:
        raise QueryError("SYNTAX_ERROR", "give exactly one statement per query")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise QueryError(
            "NOT_SUPPORTED",
            f"only queries run locally, not {statement.key.upper()}; "
            "the crawler keeps tables and partitions",
        )
    return statement


def _query_error(error: duckdb.Error, sql: str) -> QueryError:
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
    return QueryError("GENERIC_USER_ERROR", message.replace("Error: ", ": ", 1))


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


def _bind_named(sql: str, params: dict[str, Any]) -> str:
    """awswrangler's named parameters: ``:name`` becomes the value as an SQL literal."""

    def literal(match: re.Match) -> str:
        name = match.group(1)
        if name not in params:
            raise QueryError("INVALID_PARAMETER", f"no value given for parameter :{name}")
        return sql_literal(params[name])

    return re.sub(r"(?<!:):(\w+)", literal, sql)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_type(glue: str) -> str:
    if glue.startswith("decimal"):
        return glue.upper()
    return _DUCKDB_TYPES.get(glue, "VARCHAR")


def _key(location: str, bucket: str) -> str:
    prefix = f"s3://{bucket}/"
    if not location.startswith(prefix):
        raise QueryError("GENERIC_USER_ERROR", f"location {location} is outside bucket {bucket}")
    return location[len(prefix) :]
