"""The incrementally kept views of the local Athena (see ``helpers.local.athena``).

"Latest row per key" subqueries over an external table (``SELECT *, row_number() OVER
(PARTITION BY k ORDER BY s) AS n FROM t`` filtered on ``n = 1`` outside, as ``orders_current``
does) are maintained incrementally, like a materialized view (``_LatestRows``), and so are
SUM/COUNT aggregates over a row-wise view of them, catalog views (``daily_sales``) and queries
alike (``SELECT count(*), sum(quantity) FROM orders_current``), as partial results added
and subtracted per merge (``_AggregatePattern``): such a query reads its partial results,
not the latest rows, once it has run (the first run computes them over all the rows). Both
are kept on disk under the engine's state, so a new process finds them; each query keeps
its own, and the least recently used are forgotten past ``_MAX_AGGREGATES``. The SQL text is
unchanged; only how DuckDB runs it changes, and the answer is the plain SQL's (sums of
doubles may differ in the last digits, as they do between runs of a parallel sum).

``MaintainedViews`` is the part of the engine that points queries at this state; the engine
(``Athena``) gives it the catalog, the lake objects and the translation to DuckDB.
Not emulated: a maintained state is refreshed by one thread or process at a time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from helpers.local.durable import sync_directory
from helpers.local.glue import EntityNotFoundError
from helpers.queries import sql_literal

_LATEST = "__latest"  # DuckDB schema of the maintained latest-row relations
_POSITION, _KEY_HASH = "__pos", "__h"
_HIGH = 0xFFFFFFFF00000000  # a position: the high half of its object path's hash | row number
_LOW = 0xFFFFFFFF
_INDEXED_ROWS = 1_000_000  # state files of this many rows are looked up in sorted copies
_VIRTUAL_COLUMNS = {"filename", "file_row_number"}
_MAX_BATCHES = 64
_MAX_AGGREGATES = 64  # aggregates whose partial results a latest-row state keeps
_AGGREGATE_GRACE_S = 300.0  # partial results used this recently are kept whatever their rank
_SNAPSHOT_BYTES = 32 << 20  # merged objects of a partition outside its snapshot (about a
# million changes) that make the crawl's refresh write its latest rows again (take_snapshots)
_SNAPSHOT_GROUP_ROWS = 131_072  # rows per row group of a snapshot


@dataclass(frozen=True)
class _Object:
    database: str
    name: str


class MaintainedViews:
    """What ``Athena`` does for the maintained views: point latest-row subqueries at their
    kept state, and aggregate views over them at their kept partial results. Expects of the
    engine ``catalog``, ``state_root``, ``_local`` (per thread: ``latest``, ``rows``),
    ``_table_listing``, ``_typed_source`` and ``_translate``."""

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
            objects, compactions = self._table_listing(definition)
            if not objects or not set(pattern.columns) <= names or names & _VIRTUAL_COLUMNS:
                continue
            state = _LatestRows(
                self.state_root,
                definition,
                pattern,
                lambda paths, by_name=True, rows=None, d=definition: self._typed_source(
                    d, paths, position=True, by_name=by_name, rows=rows
                ),
            )
            superseded = state.refresh(
                connection, {path: stamp for path, _, stamp in objects}, compactions
            )
            if superseded is None:
                continue
            body = state.latest_body()
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
        """SQL combining the maintained partial results of an aggregate (a catalog view or a
        query) over a row-wise view of latest rows (see ``_AggregatePattern``), or None if
        ``tree`` is not one. The view must have been registered for this query."""
        pattern = _aggregate_pattern(tree)
        if pattern is None:
            return None
        chain = self._local.rows.get(_Object(pattern.table.db or database, pattern.table.name))
        if chain is None:
            return None
        name, rows_tree = chain
        delta = exp.table_(f"{name}__delta", db=_LATEST, quoted=True)
        partial = self._translate(pattern.partial(rows_tree, delta), database)
        identity, combined = self._local.latest[name].aggregate(
            connection, partial, f'"{_LATEST}"."{name}__delta"', pattern
        )
        result = exp.table_(f"{name}__{identity}", db=_LATEST, quoted=True)
        arranged = pattern.arranged(result)
        if arranged is None:
            return combined
        connection.execute(f'CREATE OR REPLACE VIEW "{_LATEST}"."{result.name}" AS {combined}')
        return self._translate(arranged, database)


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
    """``SELECT g.., sum(x).., count(..).. FROM v [WHERE ..] [GROUP BY g..] [ORDER BY o..
    [LIMIT n]]`` over one view: its result over a union of rows is the combination of its
    results over the parts (sums and counts add up), and over rows taken away it is
    subtracted. Every grouping expression is an output; the other outputs are whole SUM or
    COUNT calls, not DISTINCT. Without GROUP BY it is one row (a global aggregate); ORDER
    BY names outputs and applies, with LIMIT, to the combined result."""

    tree: exp.Select  # without its ORDER BY and LIMIT
    table: exp.Table
    outputs: list[tuple[str, str]]  # (name, "group" | "sum" | "count")
    order: exp.Order | None = None
    limit: exp.Limit | None = None

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
        combined = f"SELECT {', '.join(columns)} FROM {_parquet(files)}"
        if not groups:
            return combined  # one row, as over no rows at all (each partial has one)
        return f"{combined} GROUP BY {groups} HAVING sum(__rows) > 0"

    def arranged(self, table: exp.Table) -> exp.Select | None:
        """The query's ORDER BY and LIMIT over the combined result in ``table``, or None
        if it has neither."""
        if self.order is None and self.limit is None:
            return None
        tree = exp.select("*").from_(table)
        tree.set("order", self.order.copy() if self.order else None)
        tree.set("limit", self.limit.copy() if self.limit else None)
        return tree


def _aggregate_pattern(tree: exp.Expression) -> _AggregatePattern | None:
    """``tree`` as an _AggregatePattern, if it is one. A query with parameters (``?``) is
    not: its partial results are computed apart from its execution."""
    if not isinstance(tree, exp.Select) or tree.find(exp.Window, exp.Placeholder):
        return None
    source, group = tree.args.get("from_"), tree.args.get("group")
    clauses = ("joins", "having", "qualify", "offset", "distinct", "with_")
    if source is None or any(tree.args.get(clause) for clause in clauses):
        return None
    if not isinstance(source.this, exp.Table) or not isinstance(source.this.this, exp.Identifier):
        return None
    if group is not None and any(
        value for key, value in group.args.items() if key != "expressions"
    ):
        return None  # ALL, ROLLUP, CUBE, GROUPING SETS
    order, limit = tree.args.get("order"), tree.args.get("limit")
    if limit is not None and (order is None or not _is_count(limit.expression)):
        return None  # LIMIT without ORDER BY picks rows at random
    grouped = {expression.sql() for expression in group.expressions} if group else set()
    outputs, seen = [], set()
    for index, expression in enumerate(tree.expressions):
        call, name = expression.unalias(), expression.alias_or_name
        if not isinstance(expression, exp.Alias | exp.Column):
            name = f"_col{index}"  # Athena's name of an unnamed column (trino.name_columns)
        argument = call.this if isinstance(call, exp.Sum | exp.Count) else None
        if isinstance(argument, exp.Expression) and not argument.find(exp.AggFunc, exp.Distinct):
            outputs.append((name, "sum" if isinstance(call, exp.Sum) else "count"))
        elif call.sql() in grouped and not call.find(exp.AggFunc):
            outputs.append((name, "group"))
            seen.add(call.sql())
        else:
            return None
    names = [name for name, _ in outputs]
    if seen != grouped or len(set(names)) != len(names) or any(n.startswith("__") for n in names):
        return None
    if order is not None and not all(_names_an_output(o.this, names) for o in order.expressions):
        return None
    body = tree.copy()
    body.set("order", None)
    body.set("limit", None)
    return _AggregatePattern(body, body.args["from_"].this, outputs, order, limit)


def _names_an_output(expression: exp.Expression, names: list[str]) -> bool:
    """Whether an ORDER BY expression is an unqualified column naming an output."""
    return isinstance(expression, exp.Column) and not expression.table and expression.name in names


def _is_count(expression: exp.Expression | None) -> bool:
    """Whether ``expression`` is a literal row count."""
    return isinstance(expression, exp.Literal) and not expression.is_string


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
    positions, read straight from the lake, or, for a partition the crawl has taken a
    snapshot of (``take_snapshots``), its latest rows sorted by key minus the positions
    superseded since. When an object that was merged changes or is no
    longer visible (its partition left the catalog), the state starts again from nothing.

    Several threads or processes may refresh the same state: a file lock makes them take
    turns. Files replaced by a compaction or a new start are deleted one round later, so a
    query reading them at that moment still finds them.
    """

    def __init__(self, root: Path, definition: dict[str, Any], pattern: _LatestPattern, source):
        self.keys, self.ranking = pattern.keys, pattern.ranking()
        self.source = source  # (paths, by_name, rows) -> typed SQL with positions
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

    def refresh(
        self, connection, objects: dict[str, str], compactions: dict | None = None
    ) -> list[str] | None:
        """Merge the objects not merged yet (``objects``: path -> signature). Objects that
        were merged and are now compacted (``compactions``: output path -> [(source path,
        rows), ...]) are moved to their output (``_move``) instead. Returns the superseded
        files, or None if two objects' positions could meet."""
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
            manifest = before = self._manifest()
            if any(objects.get(path) != stamp for path, stamp in manifest["objects"].items()):
                manifest = self._move(connection, manifest, objects, compactions or {})
            if any(objects.get(path) != stamp for path, stamp in manifest["objects"].items()):
                manifest = self._replace(manifest, [])
            new = [path for path in paths if path not in manifest["objects"]]
            if manifest is not before and not new:
                self._save(manifest)  # moved (with nothing new) or started again
            if new:
                manifest["schemas"].update((path, _schema_fingerprint(path)) for path in new)
                if len(manifest["batches"]) >= _MAX_BATCHES:  # before the merge, so that an
                    manifest = self._compact(connection, manifest)  # aggregate goes on from it
                self._merge(connection, manifest, new)
                manifest["objects"].update((path, objects[path]) for path in new)
                self._save(manifest)
            for kind, columns in (("keys", ("h", "pos")), ("superseded", ("pos",))):
                for path in self._files(manifest, kind):  # built here (the crawl's refresh)
                    self._sorted(connection, path, columns)
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

    def latest_body(self) -> str:
        """SQL of the latest rows as the last refresh left them: each partition's valid
        snapshot (``take_snapshots``) and the objects merged outside one, but the rows
        superseded since (only the batches after the oldest snapshot or outside object are
        read: a row is superseded by its own merge or a later one)."""
        manifest = self.manifest
        snapshots = _valid_snapshots(manifest)
        if not snapshots:
            return self.body(self.paths, self.superseded)
        covered = {path for snapshot in snapshots for path in snapshot["objects"]}
        outside = [path for path in self.paths if path not in covered]
        merged_by = {path: i for i, b in enumerate(manifest["batches"]) for path in b["objects"]}
        start = min(
            [len(snapshot["batches"]) for snapshot in snapshots]
            + [merged_by.get(path, 0) for path in outside]
        )
        files = [str(self.directory / snapshot["file"]) for snapshot in snapshots]
        parts = [f"SELECT * FROM {_parquet(files)}"]
        if outside:
            parts.append(self.source(outside, not self._one_schema(manifest, outside)))
        source = " UNION ALL ".join(f"({part})" for part in parts)
        source = f"SELECT * EXCLUDE ({_POSITION}) FROM ({source})"
        recent = [
            str(self.directory / f"superseded-{b['id']}.parquet")
            for b in manifest["batches"][start:]
            if b["superseded"]
        ]
        if not recent:
            return source
        return f"{source} WHERE {_POSITION} NOT IN (SELECT pos FROM {_parquet(recent)})"

    def take_snapshots(self, connection) -> list[str]:
        """Write the latest rows of each partition whose merged objects outside a valid
        snapshot take ``_SNAPSHOT_BYTES`` or more as one Parquet file sorted by key (row
        groups whose statistics let DuckDB skip all but a key's, and a day's by time), so
        that a query reads those rows without the history's superseded positions. A
        snapshot stays valid while the batches it saw are the first of the state's (a
        compaction of the lake or of the state, or a new start, ends it; the next crawl
        takes it again). Returns the partitions (folders) taken."""
        taken = []
        with open(self.directory / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            manifest = self._manifest()
            before = manifest.get("snapshots", [])
            snapshots = _valid_snapshots(manifest)
            covered = {path for snapshot in snapshots for path in snapshot["objects"]}
            folders: dict[str, list[str]] = {}
            for path in sorted(manifest["objects"]):
                folders.setdefault(path[: path.rfind("/") + 1], []).append(path)
            ids = [batch["id"] for batch in manifest["batches"]]
            superseded = self._files(manifest, "superseded")
            keys = ", ".join(_quote(key) for key in self.keys)
            for folder, paths in folders.items():
                outside = [path for path in paths if path not in covered]
                if not outside or sum(map(os.path.getsize, outside)) < _SNAPSHOT_BYTES:
                    continue
                name = f"latest-{uuid.uuid4().hex[:12]}.parquet"
                rows = self.source(paths, not self._one_schema(manifest, paths))
                if superseded:
                    rows = (
                        f"{rows} WHERE {_POSITION} NOT IN (SELECT pos FROM {_parquet(superseded)})"
                    )
                connection.execute(
                    f"COPY (SELECT * FROM ({rows}) ORDER BY {keys}, {_POSITION}) TO "
                    f"{sql_literal(str(self.directory / name))} "
                    f"(FORMAT parquet, ROW_GROUP_SIZE {_SNAPSHOT_GROUP_ROWS})"
                )
                snapshots = [s for s in snapshots if s["partition"] != folder]
                snapshots.append(
                    {"file": name, "partition": folder, "objects": paths, "batches": ids}
                )
                taken.append(folder)
            if snapshots != before:
                self._save({**manifest, "snapshots": snapshots})
            kept = {snapshot["file"] for snapshot in snapshots + before}
            for path in self.directory.glob("latest-*.parquet"):  # one round later, and
                if path.name not in kept:  # what a killed write left
                    path.unlink(missing_ok=True)
        return taken

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
            ranked = " UNION ALL ".join(
                f"({source})"
                for source in [new_rows, *self._rows_at(connection, manifest["objects"], positions)]
            )
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

    def _move(self, connection, manifest: dict, objects: dict, compactions: dict) -> dict:
        """The state with the rows of merged objects that a compaction merged into a new
        object moved there: each position of a source becomes the output's high half with
        the row's number in the output, in one new batch that replaces every earlier one
        (an aggregate that had applied them all goes on from it). ``manifest`` unchanged
        if an output holds rows of objects not merged (the state then starts again)."""
        moves = []  # (source, output, offset of the source's first row in the output)
        for output, sources in compactions.items():
            if output not in objects or output in manifest["objects"]:
                continue
            merged = [source in manifest["objects"] for source, _ in sources]
            if not any(merged):
                continue  # rows never merged: the output is merged as a new object
            if not all(merged) or any(source in objects for source, _ in sources):
                return manifest
            offset = 0
            for source, rows in sources:
                moves.append((source, output, offset))
                offset += rows
        if not moves:
            return manifest
        batch = uuid.uuid4().hex[:12]
        moved = f"__moves_{batch}"
        connection.execute(
            f"CREATE TEMP TABLE {moved} AS SELECT hash(s) & {_HIGH}::UBIGINT AS old, "
            f"hash(o) & {_HIGH}::UBIGINT AS new, f AS offset FROM (SELECT "
            "unnest(?::VARCHAR[]) AS s, unnest(?::VARCHAR[]) AS o, unnest(?::UBIGINT[]) AS f)",
            [[m[0] for m in moves], [m[1] for m in moves], [m[2] for m in moves]],
        )
        position = (
            "CASE WHEN m.old IS NULL THEN t.pos "
            "ELSE m.new | (m.offset + (t.pos & 4294967295::UBIGINT)) END AS pos"
        )
        join = f"LEFT JOIN {moved} AS m ON t.pos & {_HIGH}::UBIGINT = m.old"
        try:
            for kind, columns in (("keys", "t.h, "), ("superseded", "")):
                files = self._files(manifest, kind)
                if files:
                    target = str(self.directory / f"{kind}-{batch}.parquet")
                    connection.execute(
                        f"COPY (SELECT {columns}{position} FROM {_parquet(files)} AS t {join}) "
                        f"TO {sql_literal(target)} (FORMAT parquet)"
                    )
        finally:
            connection.execute(f"DROP TABLE IF EXISTS {moved}")
        gone = {source for source, _, _ in moves}
        outputs = {output for _, output, _ in moves}
        kept = {
            "objects": {p: s for p, s in manifest["objects"].items() if p not in gone},
            "schemas": {p: s for p, s in manifest["schemas"].items() if p not in gone},
            "batches": manifest["batches"],
            "snapshots": manifest.get("snapshots", []),  # their files go one round later
        }
        kept["objects"].update((output, objects[output]) for output in outputs)
        kept["schemas"].update((output, _schema_fingerprint(output)) for output in outputs)
        replaced = [b["id"] for b in manifest["batches"]]
        superseded = bool(self._files(manifest, "superseded"))
        one = {"id": batch, "superseded": superseded, "objects": [], "replaces": replaced}
        return self._replace(kept, [one])

    def _rows_at(self, connection, paths, positions: list[int]) -> list[str]:
        """SQL of the rows (with positions) of those of ``paths`` that hold ``positions``,
        one per object, each reading only the row numbers its positions span (a large
        object's other row groups are skipped by their statistics, unread)."""
        spans: dict[int, tuple[int, int]] = {}
        for position in positions:
            prefix, row = position & _HIGH, position & _LOW
            first, last = spans.get(prefix, (row, row))
            spans[prefix] = (min(first, row), max(last, row))
        holding = connection.execute(
            f"SELECT p, hash(p) & {_HIGH}::UBIGINT FROM unnest(?::VARCHAR[]) t(p)", [list(paths)]
        ).fetchall()
        return [
            self.source([path], False, spans[prefix]) for path, prefix in holding if prefix in spans
        ]

    def aggregate(self, connection, partial: str, delta: str, pattern) -> tuple[str, str]:
        """The identity of an aggregate over all the latest rows (``partial``, reading the
        view ``delta``) and SQL of its result, combined from partial results kept under this
        state and brought up to its last refresh: one for the whole, then for each later
        merge one for the rows it added and one, negated, for the rows it took away (added
        up into one file past ``_MAX_BATCHES``). A new start of the state starts them again
        from the whole; a compaction of the lake or of the state goes on from them."""
        identity = hashlib.sha256(partial.encode()).hexdigest()[:16]
        directory = self.directory / "aggregates" / identity
        groups = {name for name, kind in pattern.outputs if kind == "group"}
        with open(self.directory / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / "manifest.json"
            before = _read_json(path, {"applied": []})
            kept = before
            batches = self.manifest["batches"]
            ids = [batch["id"] for batch in batches]
            if batches and kept["applied"] and batches[0].get("replaces") == kept["applied"]:
                kept = {**kept, "applied": [batches[0]["id"]]}  # the same rows, moved
            if not kept["applied"] or ids[: len(kept["applied"])] != kept["applied"]:
                kept = {"applied": ids, "files": [], "types": {}}
                leaf = self.latest_body()
                self._partial(connection, directory, kept, partial, delta, leaf, groups, 1)
            pending = batches[len(kept["applied"]) :]
            for batch in pending:
                added, removed = self._changes(connection, batch)
                self._partial(connection, directory, kept, partial, delta, added, groups, 1)
                if removed:
                    self._partial(connection, directory, kept, partial, delta, removed, groups, -1)
                kept["applied"].append(batch["id"])
            if len(kept["files"]) > _MAX_BATCHES:
                kept = {**kept, "files": [self._fold(connection, directory, kept, groups)]}
            if kept is not before:
                referenced = set(kept["files"]) | set(before.get("files", []))
                for old in directory.glob("partial-*.parquet"):
                    if old.name not in referenced:
                        old.unlink(missing_ok=True)
            if kept is not before or pending:
                _write_json(path, kept)
            else:
                os.utime(path)  # used: the least recently used are forgotten first
            self._forget_aggregates(directory.parent)
        files = [str(directory / name) for name in kept["files"]]
        return identity, pattern.combine(files, kept["types"])

    @staticmethod
    def _forget_aggregates(folder: Path) -> None:
        """Remove the partial results of the least recently used aggregates beyond
        ``_MAX_AGGREGATES`` (each distinct query over the view keeps its own), but none used
        in the last ``_AGGREGATE_GRACE_S`` (a query may be reading them)."""
        kept = []
        for directory in folder.iterdir():
            try:
                kept.append(((directory / "manifest.json").stat().st_mtime, directory))
            except FileNotFoundError:  # killed before its manifest was written
                kept.append((0.0, directory))
        kept.sort(reverse=True)
        cutoff = time.time() - _AGGREGATE_GRACE_S
        for used, directory in kept[_MAX_AGGREGATES:]:
            if used < cutoff:
                shutil.rmtree(directory, ignore_errors=True)

    @staticmethod
    def _fold(connection, directory: Path, kept: dict, groups: set[str]) -> str:
        """One file of partial results adding up those of ``kept`` (what combining reads
        stays bounded however many merges there were); returns its name."""
        files = _parquet([str(directory / name) for name in kept["files"]])
        relation = connection.sql(f"SELECT * FROM {files}")
        columns = [
            _quote(column)
            if column in groups
            else f"CAST(sum({_quote(column)}) AS {kind}) AS {_quote(column)}"
            for column, kind in zip(relation.columns, relation.types, strict=True)
        ]
        grouping = f" GROUP BY {', '.join(_quote(name) for name in groups)}" if groups else ""
        name = f"partial-{uuid.uuid4().hex[:12]}.parquet"
        connection.execute(
            f"COPY (SELECT {', '.join(columns)} FROM {files}{grouping}) "
            f"TO {sql_literal(str(directory / name))} (FORMAT parquet)"
        )
        return name

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
        sources = self._rows_at(connection, older, positions)
        if not sources:
            return added, None
        source = " UNION ALL ".join(f"({source})" for source in sources)
        return added, (
            f"SELECT * EXCLUDE ({_POSITION}) FROM ({source}) "
            f"WHERE {_POSITION} IN (SELECT pos FROM {_parquet(own)})"
        )

    def _live_rows_sharing_a_key(self, connection, manifest, rows) -> list[tuple[int, int]]:
        """Positions and key hashes of merged rows, not superseded, whose key hash a new row
        has. Large keys and superseded files are looked up in their sorted copies
        (``_sorted``), small ones read: the work follows the new rows, not the history."""
        wanted = connection.execute(f"SELECT DISTINCT {_KEY_HASH} AS h FROM {rows}").fetchnumpy()
        wanted = np.sort(np.asarray(wanted["h"], dtype=np.uint64))
        sharing, small = [], []
        for path in self._files(manifest, "keys"):
            index = self._sorted(connection, path, ("h", "pos"))
            if index is None:
                small.append(path)
                continue
            hashes, positions = index
            first = np.searchsorted(hashes, wanted, "left")
            counts = np.searchsorted(hashes, wanted, "right") - first
            at = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            sharing.extend(zip(positions[at].tolist(), hashes[at].tolist(), strict=True))
        if small:
            sharing += connection.execute(
                f"SELECT pos, h FROM {_parquet(small)} WHERE h IN (SELECT {_KEY_HASH} FROM {rows})"
            ).fetchall()
        candidates = np.array([position for position, _ in sharing], dtype=np.uint64)
        superseded, small = set(), []
        for path in self._files(manifest, "superseded"):
            index = self._sorted(connection, path, ("pos",))
            if index is None:
                small.append(path)
                continue
            superseded.update(_among(index[0], candidates))
        if small and sharing:
            positions = connection.execute(f"SELECT pos FROM {_parquet(small)}").fetchnumpy()
            superseded.update(_among(np.sort(np.asarray(positions["pos"], np.uint64)), candidates))
        return [(position, key) for position, key in sharing if position not in superseded]

    @staticmethod
    def _sorted(connection, path: str, columns: tuple[str, ...]) -> list[np.ndarray] | None:
        """``columns`` of a state file of ``_INDEXED_ROWS`` or more, sorted by the first,
        memory-mapped from a copy beside it (``<file>.npy``, built if missing or
        unreadable), for lookups by binary search. None for a smaller file."""
        if pq.read_metadata(path).num_rows < _INDEXED_ROWS:
            return None
        target = Path(path).with_suffix(".npy")
        try:
            joined = np.load(target, mmap_mode="r")
        except (OSError, ValueError):  # not built yet, or a foreign or truncated file
            names = ", ".join(columns)
            found = connection.execute(
                f"SELECT {names} FROM read_parquet({sql_literal(path)}) ORDER BY {columns[0]}"
            ).fetchnumpy()
            joined = np.concatenate([np.asarray(found[c], dtype=np.uint64) for c in columns])
            temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.tmp")
            with open(temporary, "wb") as handle:
                np.save(handle, joined)
            os.replace(temporary, target)
        rows = len(joined) // len(columns)
        return [joined[i * rows : (i + 1) * rows] for i in range(len(columns))]

    def _compact(self, connection, manifest: dict) -> dict:
        """One file of each kind instead of one per merge, in a batch that replaces them all
        (an aggregate that had applied them all goes on from it)."""
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
        replaced = [b["id"] for b in manifest["batches"]]
        one = {"id": batch, "superseded": superseded, "objects": [], "replaces": replaced}
        return self._replace(manifest, [one])

    def _replace(self, manifest: dict, batches: list[dict]) -> dict:
        """A manifest of ``batches`` (and of the objects if any are kept); deletes the files
        that the manifest before ``manifest`` left behind."""
        kept = {
            f"{kind}-{b['id']}.{suffix}"
            for b in manifest["batches"] + batches
            for kind in ("keys", "superseded")
            for suffix in ("parquet", "npy")
        } | {snapshot["file"] for snapshot in manifest.get("snapshots", [])}
        for pattern in ("*.parquet", "*.npy", "*.npy.*.tmp"):  # a killed index write's too
            for path in self.directory.glob(pattern):
                if path.name not in kept:
                    path.unlink(missing_ok=True)
        if not batches:
            return {"objects": {}, "schemas": {}, "batches": []}
        return {**manifest, "batches": batches, "snapshots": []}

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
        """The manifest the last refresh saved; an unreadable one (a truncated file) is
        started again from the lake, its state files removed, instead of failing every query."""
        empty = {"objects": {}, "schemas": {}, "batches": []}
        manifest = _read_json(self.directory / "manifest.json", empty)
        if manifest is empty:
            return self._replace(empty, [])  # and the state files the old one named
        return manifest

    def _save(self, manifest: dict) -> None:
        _write_json(self.directory / "manifest.json", manifest)


def _valid_snapshots(manifest: dict) -> list[dict]:
    """The snapshots of a latest-row state that still hold its latest rows but those
    superseded since: the batches each saw are still the first of the state's."""
    ids = [batch["id"] for batch in manifest["batches"]]
    return [
        snapshot
        for snapshot in manifest.get("snapshots", [])
        if ids[: len(snapshot["batches"])] == snapshot["batches"]
        and all(path in manifest["objects"] for path in snapshot["objects"])
    ]


def _among(ordered: np.ndarray, values: np.ndarray) -> list[int]:
    """Those of ``values`` that the sorted array ``ordered`` holds (a binary search each:
    numpy's ``isin`` hashes the whole of ``ordered`` instead)."""
    if not len(ordered):
        return []
    at = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    return values[ordered[at] == values].tolist()


def _read_json(path: Path, empty: dict) -> dict:
    """A state file ``_write_json`` wrote, or ``empty`` (that very object) where there is
    none or it cannot be read (a truncated or foreign file): the state then starts again
    from the lake instead of failing every query."""
    if not path.exists():
        return empty
    try:
        value = json.loads(path.read_text())
        if not isinstance(value, dict) or not set(empty) <= set(value):
            raise ValueError("not the state's keys")
    except (ValueError, UnicodeDecodeError) as error:
        logging.getLogger(__name__).warning(
            "%s is unreadable (%s): rebuilding this state from the lake", path, error
        )
        return empty
    return value


def _write_json(path: Path, value: Any) -> None:
    """Replace ``path`` with ``value`` at once and durably (readers, and a restart after a
    crash, see the old file or the new one, never a truncated one)."""
    temporary = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    with open(temporary, "w") as handle:  # durable before it replaces the old one
        handle.write(json.dumps(value))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    sync_directory(path.parent)  # the rename itself, too


class UnreadableObject(Exception):
    """A lake object that is not valid Parquet (empty, foreign, corrupt); names its path."""

    def __init__(self, path: str, reason: str):
        self.path = path
        super().__init__(f"{path}: {reason}")


def _schema_fingerprint(path: str) -> str:
    """The columns and types of a Parquet object, as a short hash."""
    try:
        schema = pq.read_schema(path).remove_metadata().to_string()
    except (pa.ArrowInvalid, OSError) as error:
        raise UnreadableObject(path, str(error)) from None
    return hashlib.sha256(schema.encode()).hexdigest()[:16]


def _parquet(paths: list[str]) -> str:
    return f"read_parquet([{', '.join(sql_literal(path) for path in paths)}])"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
