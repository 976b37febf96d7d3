"""The Data Catalog and its crawler (AWS Glue), in SQLite.

The catalog keeps databases, tables (columns with Glue types, partition keys, location,
format, parameters), partitions and views durably, in the shapes Glue's API uses
(``TableInput``, ``PartitionInput``), so the SQL engine and the notebooks see what Athena sees.
The crawler walks a table's S3 location as Glue's does: it infers the schema from the Parquet
footers, creates the table the first time, adds partitions it has not seen (``year=/month=/day=``
folders), and applies the schema change policy when new columns appear, in a new partition or
in an object written since the last run into a known one (Glue's default recrawl policy,
``CRAWL_EVERYTHING``, looks at every folder; this reads the footers new since). Each run is
recorded.

Not emulated: classifiers other than Parquet, crawling JDBC or DynamoDB targets, table
versions (a table is updated in place, its ``VersionId`` counted), partition indexes, column
statistics, Lake Formation permissions, and deleting partitions whose folders are gone
(``DeleteBehavior`` is always LOG).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from helpers.local.s3 import Bucket
from helpers.local.sqlite import Database

PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
UPDATE_IN_DATABASE, LOG = "UPDATE_IN_DATABASE", "LOG"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS databases (name TEXT PRIMARY KEY, description TEXT, created REAL);
CREATE TABLE IF NOT EXISTS tables (
    database TEXT NOT NULL, name TEXT NOT NULL, definition TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (database, name)
);
CREATE TABLE IF NOT EXISTS partitions (
    database TEXT NOT NULL, table_name TEXT NOT NULL, partition_values TEXT NOT NULL,
    location TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (database, table_name, partition_values)
);
CREATE TABLE IF NOT EXISTS crawls (
    crawler TEXT NOT NULL, started REAL NOT NULL, finished REAL NOT NULL, summary TEXT NOT NULL
);
"""


class EntityNotFoundError(KeyError):
    """A database or table the catalog does not have (Glue's EntityNotFoundException)."""

    def __str__(self) -> str:
        return str(self.args[0])


_GLUE_TYPES = (
    (pa.types.is_string, "string"),
    (pa.types.is_large_string, "string"),
    (pa.types.is_timestamp, "timestamp"),
    (pa.types.is_date, "date"),
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_int8, "tinyint"),
    (pa.types.is_int16, "smallint"),
    (pa.types.is_int32, "int"),
    (pa.types.is_integer, "bigint"),
    (pa.types.is_float32, "float"),
    (pa.types.is_floating, "double"),
    (pa.types.is_binary, "binary"),
)


def glue_type(arrow_type: pa.DataType) -> str:
    """The Glue (Hive) type name of an Arrow type, as the crawler writes it."""
    for matches, name in _GLUE_TYPES:
        if matches(arrow_type):
            return name
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_list(arrow_type):
        return f"array<{glue_type(arrow_type.value_type)}>"
    if pa.types.is_struct(arrow_type):
        fields = ",".join(f"{f.name}:{glue_type(f.type)}" for f in arrow_type)
        return f"struct<{fields}>"
    raise ValueError(f"no Glue type for Arrow type {arrow_type}")


def dataset_table_input(
    name: str, columns: list[dict[str, str]], partition_names: list[str], location: str
) -> dict[str, Any]:
    """The ``TableInput`` of a Parquet dataset with string partition keys."""
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "parquet",
            "compressionType": "none",
            "typeOfData": "file",
        },
        "PartitionKeys": [{"Name": key, "Type": "string"} for key in partition_names],
        "StorageDescriptor": {
            "Columns": columns,
            "Location": location,
            "InputFormat": PARQUET_INPUT_FORMAT,
            "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": {"serialization.format": "1"},
            },
        },
    }


class Catalog:
    """A Glue Data Catalog: databases, tables and views, and partitions."""

    def __init__(self, path: Path, region: str, account_id: str):
        self.db = Database(path, _SCHEMA)
        self.region, self.account_id = region, account_id

    # databases ----------------------------------------------------------------------------

    def create_database(self, name: str, description: str = "") -> bool:
        """CreateDatabase; returns False if it already exists."""
        with self.db.write() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO databases VALUES (?, ?, ?)", (name, description, time.time())
            )
        return cursor.rowcount == 1

    def databases(self) -> list[str]:
        """Database names."""
        return [name for (name,) in self.db.read("SELECT name FROM databases ORDER BY name")]

    def _require_database(self, name: str) -> None:
        if not self.db.scalar("SELECT 1 FROM databases WHERE name = ?", (name,)):
            raise EntityNotFoundError(f"Database {name} not found.")

    # tables and views ---------------------------------------------------------------------

    def create_table(
        self, database: str, table_input: dict[str, Any], replace: bool = False
    ) -> None:
        """CreateTable (or UpdateTable with ``replace``) from a Glue ``TableInput``."""
        self._require_database(database)
        name = table_input["Name"]
        now = time.time()
        with self.db.write() as connection:
            row = connection.execute(
                "SELECT version, created FROM tables WHERE database = ? AND name = ?",
                (database, name),
            ).fetchone()
            if row and not replace:
                raise ValueError(f"Table {database}.{name} already exists")
            version, created = (row[0] + 1, row[1]) if row else (1, now)
            connection.execute(
                "INSERT OR REPLACE INTO tables VALUES (?, ?, ?, ?, ?, ?)",
                (database, name, json.dumps(table_input), created, now, version),
            )

    def get_table(self, database: str, name: str) -> dict[str, Any]:
        """GetTable: the ``TableInput`` with ``DatabaseName``, times and ``VersionId``."""
        row = self.db.connection.execute(
            "SELECT definition, created, updated, version FROM tables "
            "WHERE database = ? AND name = ?",
            (database, name),
        ).fetchone()
        if row is None:
            raise EntityNotFoundError(f"Table {name} not found in database {database}.")
        table = json.loads(row[0])
        table.update(
            DatabaseName=database,
            CreateTime=datetime.fromtimestamp(row[1], UTC),
            UpdateTime=datetime.fromtimestamp(row[2], UTC),
            VersionId=str(row[3]),
        )
        return table

    def tables(self, database: str) -> list[dict[str, Any]]:
        """GetTables: every table and view of a database."""
        self._require_database(database)
        names = self.db.read(
            "SELECT name FROM tables WHERE database = ? ORDER BY name", (database,)
        )
        return [self.get_table(database, name) for (name,) in names]

    def create_view(self, database: str, name: str, sql: str, columns: Sequence[dict]) -> None:
        """Create or replace a view (a ``VIRTUAL_VIEW`` table holding its Athena SQL)."""
        self.create_table(
            database,
            {
                "Name": name,
                "TableType": "VIRTUAL_VIEW",
                "ViewOriginalText": sql,
                "ViewExpandedText": sql,
                "StorageDescriptor": {"Columns": list(columns)},
                "PartitionKeys": [],
                "Parameters": {"presto_view": "true", "comment": "Presto View"},
            },
            replace=True,
        )

    # partitions ---------------------------------------------------------------------------

    def batch_create_partition(
        self, database: str, table: str, partitions: Sequence[dict[str, Any]]
    ) -> int:
        """BatchCreatePartition from ``PartitionInput``s; existing ones are kept. Returns how
        many were new."""
        self.get_table(database, table)
        now = time.time()
        rows = [
            (database, table, json.dumps(p["Values"]), p["StorageDescriptor"]["Location"], now)
            for p in partitions
        ]
        with self.db.write() as connection:
            before = connection.total_changes
            connection.executemany("INSERT OR IGNORE INTO partitions VALUES (?, ?, ?, ?, ?)", rows)
            return connection.total_changes - before

    def partitions(self, database: str, table: str) -> list[dict[str, Any]]:
        """GetPartitions: ``Values`` and ``StorageDescriptor.Location`` of each, in order."""
        rows = self.db.read(
            "SELECT partition_values, location FROM partitions "
            "WHERE database = ? AND table_name = ? ORDER BY partition_values",
            (database, table),
        )
        return [
            {"Values": json.loads(values), "StorageDescriptor": {"Location": location}}
            for values, location in rows
        ]

    def close(self) -> None:
        self.db.close()


@dataclass
class CrawlResult:
    """What one crawler run did, as its CloudWatch log and ``LastCrawl`` report it."""

    crawler: str
    started: datetime
    finished: datetime
    tables_created: list[str] = field(default_factory=list)
    tables_updated: list[str] = field(default_factory=list)
    partitions_added: int = 0
    messages: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view of the run."""
        return {
            "crawler": self.crawler,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "tables_created": self.tables_created,
            "tables_updated": self.tables_updated,
            "partitions_added": self.partitions_added,
            "messages": self.messages,
        }


class Crawler:
    """A crawler over one table's S3 location, with a schema change policy.

    Parameters
    ----------
    catalog, bucket
        Where tables are recorded, and the bucket the location points into.
    name, database, table, prefix
        The crawler's name, and the table it keeps (created the first time) over
        ``s3://<bucket>/<prefix>``.
    update_behavior
        ``UPDATE_IN_DATABASE`` adds new columns to the table; ``LOG`` only reports them.
    """

    def __init__(
        self,
        catalog: Catalog,
        bucket: Bucket,
        name: str,
        database: str,
        table: str,
        prefix: str,
        update_behavior: str = UPDATE_IN_DATABASE,
    ):
        if update_behavior not in (UPDATE_IN_DATABASE, LOG):
            raise ValueError(f"update behavior must be {UPDATE_IN_DATABASE} or {LOG}")
        self.catalog, self.bucket = catalog, bucket
        self.name, self.database, self.table, self.prefix = name, database, table, prefix
        self.update_behavior = update_behavior

    def run(self) -> CrawlResult:
        """Crawl once: create or update the table, add new partitions; returns what it did."""
        result = CrawlResult(self.name, datetime.now(UTC), datetime.now(UTC))
        self.catalog.create_database(self.database)
        since = self._last_started()
        folders, written = self._partition_folders(since)
        try:
            table = self.catalog.get_table(self.database, self.table)
        except EntityNotFoundError:
            table = None
        known = {tuple(p["Values"]) for p in self.catalog.partitions(self.database, self.table)}
        new = {values: keys for values, keys in folders.items() if values not in known}
        if table is None and not folders:
            result.messages.append(f"no data under {self.bucket.uri(self.prefix)}; nothing created")
        elif table is None:
            schema, partition_names = self._schema(folders, result)
            if schema is not None:
                self.catalog.create_table(self.database, self._table_input(schema, partition_names))
                result.tables_created.append(self.table)
        else:  # new partitions, and objects written since the last crawl into known ones
            schemas = [self._schema(new, result)[0]] if new else []
            schemas += self._footers([key for values, key in written if values in known], result)
            schemas = [schema for schema in schemas if schema is not None]
            if schemas:
                unified = pa.unify_schemas(schemas, promote_options="permissive")
                self._apply_schema_change(table, unified, result)
        unreadable = {values for values, keys in folders.items() if len(keys) == 1}
        folders = {values: keys for values, keys in folders.items() if values not in unreadable}
        new = {values: keys for values, keys in new.items() if values not in unreadable}
        if table is None and not result.tables_created:
            folders = {}
        if folders:
            added = self.catalog.batch_create_partition(
                self.database,
                self.table,
                [
                    {
                        "Values": list(values),
                        "StorageDescriptor": {"Location": self.bucket.uri(keys[0])},
                    }
                    for values, keys in sorted(new.items())
                ],
            )
            result.partitions_added = added
        result.finished = datetime.now(UTC)
        with self.catalog.db.write() as connection:
            connection.execute(
                "INSERT INTO crawls VALUES (?, ?, ?, ?)",
                (
                    self.name,
                    result.started.timestamp(),
                    result.finished.timestamp(),
                    json.dumps(result.summary()),
                ),
            )
        return result

    def _partition_folders(
        self, since: float | None
    ) -> tuple[dict[tuple[str, ...], list[str]], list[tuple[tuple[str, ...], str]]]:
        """Partition values -> [the partition's folder key, its object keys...], and the
        partition values and key of each object written at or after ``since`` (epoch seconds;
        none when None)."""
        folders: dict[tuple[str, ...], list[str]] = {}
        written = []
        for info in self.bucket.list_objects(self.prefix):
            relative = info.key[len(self.prefix) :].split("/")[:-1]
            if not relative or not all("=" in part for part in relative):
                continue
            values = tuple(part.split("=", 1)[1] for part in relative)
            folder = self.prefix + "/".join(relative) + "/"
            folders.setdefault(values, [folder]).append(info.key)
            if since is not None and info.last_modified.timestamp() >= since:
                written.append((values, info.key))
        return folders, written

    def _last_started(self) -> float | None:
        """When this crawler's last recorded run started (epoch seconds), None before one."""
        return self.catalog.db.scalar(
            "SELECT max(started) FROM crawls WHERE crawler = ?", (self.name,)
        )

    def _footers(self, keys: list[str], result: CrawlResult) -> list[pa.Schema]:
        """The schemas of objects written into known partitions since the last crawl (each
        footer read: a new column can come with any object, as with Glue's default
        ``CRAWL_EVERYTHING``); unreadable ones are reported in ``result`` by their key."""
        schemas = []
        for key in keys:
            try:
                schemas.append(pq.read_schema(self.bucket.local_path(key)))
            except (pa.ArrowInvalid, OSError) as error:
                result.messages.append(f"unreadable object {self.bucket.uri(key)}: {error}")
        return schemas

    def _schema(
        self, folders: dict[tuple[str, ...], list[str]], result: CrawlResult
    ) -> tuple[pa.Schema | None, list[str]]:
        """The union of the footers' schemas (the first readable object of each partition),
        and the partition names. An object that is not Parquet (empty, foreign, corrupt) is
        reported in ``result`` by its key and left out, as Glue's crawler logs and skips it;
        a partition left with no readable object is not registered (see ``run``)."""
        schemas = []
        for keys in folders.values():
            for key in keys[1:]:
                try:
                    schemas.append(pq.read_schema(self.bucket.local_path(key)))
                    break
                except (pa.ArrowInvalid, OSError) as error:
                    result.messages.append(f"unreadable object {self.bucket.uri(key)}: {error}")
                    keys.remove(key)
            else:
                result.messages.append(
                    f"partition {self.bucket.uri(keys[0])} has no readable object; not added"
                )
        first_folder = next(iter(folders.values()))[0][len(self.prefix) :]
        names = [part.split("=", 1)[0] for part in first_folder.strip("/").split("/")]
        if not schemas:
            return None, names
        return pa.unify_schemas(schemas, promote_options="permissive"), names

    def _table_input(self, schema: pa.Schema, partition_names: list[str]) -> dict[str, Any]:
        table = dataset_table_input(
            self.table,
            [{"Name": f.name, "Type": glue_type(f.type)} for f in schema],
            partition_names,
            self.bucket.uri(self.prefix),
        )
        table["Parameters"]["UPDATED_BY_CRAWLER"] = self.name
        return table

    def _apply_schema_change(self, table: dict, schema: pa.Schema, result: CrawlResult) -> None:
        columns = table["StorageDescriptor"]["Columns"]
        known = {column["Name"] for column in columns}
        added = [f for f in schema if f.name not in known]
        if not added:
            return
        names = ", ".join(f"{f.name} ({glue_type(f.type)})" for f in added)
        if self.update_behavior == LOG:
            result.messages.append(f"new columns not added (schema change policy LOG): {names}")
            return
        columns.extend({"Name": f.name, "Type": glue_type(f.type)} for f in added)
        definition = {
            key: value
            for key, value in table.items()
            if key not in ("DatabaseName", "CreateTime", "UpdateTime", "VersionId")
        }
        self.catalog.create_table(self.database, definition, replace=True)
        result.tables_updated.append(self.table)
        result.messages.append(f"columns added: {names}")
