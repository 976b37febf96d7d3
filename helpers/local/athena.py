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

Not emulated: DDL and DML (CREATE TABLE AS, INSERT, MSCK REPAIR: the crawler keeps partitions),
bytes-scanned accounting (the sum of the objects read is reported), workgroup limits,
federated catalogs, and Trino functions that neither sqlglot nor DuckDB know.
"""

from __future__ import annotations

import hashlib
import io
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
    """

    def __init__(
        self,
        catalog: Catalog,
        bucket: Bucket,
        state_path: Path,
        output_prefix: str = "athena-results/",
        workgroup: str = "primary",
        threads: int = 2,
    ):
        self.catalog, self.bucket = catalog, bucket
        self.output_prefix, self.workgroup, self.threads = output_prefix, workgroup, threads
        self.db = Database(state_path, _SCHEMA)
        self._local = threading.local()

    def _connection(self) -> tuple[duckdb.DuckDBPyConnection, dict]:
        """This thread's DuckDB connection and what is registered in it (kept warm, so
        Parquet footers are read once, not at every query)."""
        if getattr(self._local, "connection", None) is None:
            self._local.connection = duckdb.connect(
                config={"threads": self.threads, "enable_object_cache": True}
            )
            self._local.registered = {}
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
        """
        scanned, signatures = 0, []
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier) or (table.name in ctes and not table.db):
                continue  # a CTE, or a table function such as UNNEST
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
            if is_view:
                view_sql = definition["ViewOriginalText"]
                view_tree = _parse(view_sql)
                size, below = self._register(
                    connection, registered, view_tree, target.database, view_sql, done, materialize
                )
                body = self._translate(view_tree, target.database)
            else:
                body, size, below = self._table_source(definition)
            signature = hashlib.sha256(f"{body}\n{below}".encode()).hexdigest()
            done[target] = signature
            scanned += size
            signatures.append(signature)
            state = (signature, materialize and is_view)
            if registered.get(target) == state:
                continue
            name = f'"{target.database}"."{target.name}"'
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{target.database}"')
            if materialize and is_view:
                kept = f'"{_RESULTS}"."{target.database}__{target.name}"'
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{_RESULTS}"')
                connection.execute(f"CREATE OR REPLACE TABLE {kept} AS {body}")
                body = f"SELECT * FROM {kept}"
            connection.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
            registered[target] = state
        return scanned, "\n".join(signatures)

    def _table_source(self, definition: dict[str, Any]) -> tuple[str, int, str]:
        """SQL reading a table's registered partitions, with the catalog's columns; the bytes
        of its objects; and their signature (keys, sizes, times)."""
        columns = definition["StorageDescriptor"]["Columns"]
        partition_keys = [key["Name"] for key in definition.get("PartitionKeys", [])]
        registered_prefixes = {
            _key(partition["StorageDescriptor"]["Location"], self.bucket.name)
            for partition in self.catalog.partitions(definition["DatabaseName"], definition["Name"])
        }
        location = _key(definition["StorageDescriptor"]["Location"], self.bucket.name)
        files, size, stamps = [], 0, []
        for info in self.bucket.list_objects(location):
            if info.key[: info.key.rfind("/") + 1] in registered_prefixes:
                files.append(str(self.bucket.local_path(info.key)))
                size += info.size
                stamps.append(f"{info.key} {info.size} {info.last_modified.timestamp()}")
        typed = [
            f"CAST({'NULL' if not files else _quote(c['Name'])} AS {_duckdb_type(c['Type'])})"
            f" AS {_quote(c['Name'])}"
            for c in columns
        ] + [
            f"CAST({'NULL' if not files else _quote(name)} AS VARCHAR) AS {_quote(name)}"
            for name in partition_keys
        ]
        if not files:
            return f"SELECT {', '.join(typed)} WHERE false", 0, ""
        listing = ", ".join(sql_literal(path) for path in files)
        source = (
            f"read_parquet([{listing}], hive_partitioning = true, "
            f"hive_types_autocast = false, union_by_name = true)"
        )
        return f"SELECT {', '.join(typed)} FROM {source}", size, "\n".join(stamps)

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
