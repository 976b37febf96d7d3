"""The local backend: the services wired together, with their pollers in background threads.

One process at a time consumes a root (runs the pipe and the delivery stream); it holds an
exclusive lock on ``<root>/consumer.lock`` while it lives, and the operating system releases
the lock when it dies, even by SIGKILL. Other processes may write orders and wait in
``flush``; one of them takes over consuming as soon as the lock is free.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from helpers import queries
from helpers.config import Settings
from helpers.exceptions import BackendError, PipelineStuckError
from helpers.local.athena import Athena
from helpers.local.awslambda import Function, trim_logs
from helpers.local.compaction import Compactor, visible_objects
from helpers.local.dynamodb import Table
from helpers.local.event_source import (
    EventSourceMapping,
    EventSourceRunner,
    MappingConfig,
    MappingSpec,
)
from helpers.local.firehose import DeliveryStream
from helpers.local.glue import (
    Catalog,
    Crawler,
    EntityNotFoundError,
    dataset_table_input,
    glue_type,
)
from helpers.local.kinesis import Stream
from helpers.local.pipes import DEAD_LETTER_RETENTION_S, Pipe, PipeRunner
from helpers.local.s3 import Bucket
from helpers.platform import (
    CATALOG_COLUMNS,
    RESOURCE_COLUMNS,
    Orders,
    Platform,
    catalog_row,
    empty_lake,
    failure_summary,
    failures_frame,
    objects_frame,
    realtime_frame,
)
from helpers.progress import waiting_bar
from helpers.realtime import ALERT_FIELDS, NOWCAST_FIELDS, SqliteStore
from helpers.schema import PARTITION_KEYS

log = logging.getLogger(__name__)
STATE_MARKER = "dynamodb.sqlite"
"""A file every local root has; a non-empty folder without it is not opened as a root."""

REALTIME_STATE = "realtime.sqlite"
"""The real-time consumer's store (expectations, running totals, alerts) under the root."""

TRANSFORM_HANDLER = "helpers.transform.lambda_handler"
TRANSFORM_LOGGER = "salescast.transform"
REALTIME_HANDLER = "helpers.realtime.lambda_handler"
REALTIME_LOGGER = "salescast.realtime"
CONSUMER_STATE = "event_source.sqlite"
"""The real-time consumer's event source mapping: checkpoints and its on-failure list."""


def lake_prefix_template(lake_prefix: str) -> str:
    """The delivery stream's S3 prefix with dynamic partitioning by the Lambda's keys."""
    keys = "".join(f"{name}=!{{partitionKeyFromLambda:{name}}}/" for name in PARTITION_KEYS)
    return f"{lake_prefix}{keys}"


def error_prefix_template(error_prefix: str) -> str:
    """The delivery stream's error prefix, as the CloudFormation template sets it."""
    return f"{error_prefix}!{{firehose:error-output-type}}/!{{timestamp:yyyy}}/!{{timestamp:MM}}/!{{timestamp:dd}}/"


class _Poller(threading.Thread):
    """Calls ``step`` until stopped, sleeping when there is nothing to do; keeps the last error."""

    def __init__(self, name: str, step: Callable[[], int], idle_s: float, stop: threading.Event):
        super().__init__(name=f"salescast-{name}", daemon=True)
        self.stage, self.step, self.idle_s, self.stop = name, step, idle_s, stop
        self.error: Exception | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                moved = self.step()
                self.error = None
            except Exception as error:  # keep running: the stage retries from its checkpoint
                log.exception("%s failed; retrying", self.stage)
                self.error, moved = error, 0
                self.stop.wait(1.0)
            if not moved:
                self.stop.wait(self.idle_s)


_retention_clock = time.time
"""The clock of scheduled trims (a test moves it forward to make records expire)."""


def _mib(path: Path) -> str:
    """The disk use of a SQLite file with its WAL, in MiB."""
    used = 0
    for candidate in (path, path.with_name(path.name + "-wal")):
        if candidate.exists():
            used += candidate.stat().st_blocks * 512
    return f"{used / 2**20:,.1f} MiB"


class LocalPlatform(Platform):
    """The embedded engine under ``settings.root``.

    Parameters
    ----------
    settings
        Names and tuning; ``settings.root`` holds every service's state and the lake.
    consume
        Run the pipe and the delivery stream in this process (if no other process does).
    """

    def __init__(self, settings: Settings, consume: bool = True):
        self.settings = s = settings
        root = Path(s.root)
        if root.exists() and any(root.iterdir()) and not (root / STATE_MARKER).exists():
            raise BackendError(
                f"root {root} holds files but no salescast state ({STATE_MARKER}); point it at "
                f"a salescast folder or an empty one (teardown removes a root whole)"
            )
        if (root / "kinesis.sqlite").exists():  # the stream was a SQLite file before shard logs
            raise BackendError(
                f"root {root} was made by an older salescast whose stream format this one does "
                "not read; flush and tear it down with that version, or use a new root"
            )
        root.mkdir(parents=True, exist_ok=True)
        self.table = Table(root / "dynamodb.sqlite", s.table_name, s.region, s.account_id)
        self.stream = Stream(
            root / "kinesis",
            s.stream_name,
            s.shard_count,
            s.region,
            s.account_id,
            retention_hours=s.stream_retention_hours,
        )
        self.bucket = Bucket(root / "s3", s.bucket)
        self.function = Function(
            s.function_name,
            TRANSFORM_HANDLER,
            s.arn("lambda", f"function:{s.function_name}"),
            root / "logs",
            TRANSFORM_LOGGER,
        )
        self.pipe = Pipe(
            root / "pipes.sqlite",
            s.pipe_name,
            self.table,
            self.stream,
            s.pipe_batch_size,
            s.pipe_batching_window_s,
            s.region,
            s.account_id,
        )
        self.delivery = DeliveryStream(
            root / "firehose.sqlite",
            s.delivery_stream_name,
            self.stream,
            self.function,
            self.bucket,
            lake_prefix_template(s.lake_prefix),
            error_prefix_template(s.error_prefix),
            s.buffer_size_mb,
            s.buffer_interval_s,
            s.lambda_buffer_size_mb,
            s.region,
            s.account_id,
        )
        self.consumer_spec = MappingSpec(
            state_path=root / CONSUMER_STATE,
            stream_path=self.stream.path,
            stream_name=s.stream_name,
            shard_count=s.shard_count,
            function_name=s.consumer_function_name,
            function_arn=s.arn("lambda", f"function:{s.consumer_function_name}"),
            handler=REALTIME_HANDLER,
            timeout_s=60.0,
            memory_mb=256,
            config=MappingConfig(
                batch_size=s.consumer_batch_size, batching_window_s=s.consumer_batching_window_s
            ),
            region=s.region,
            account_id=s.account_id,
            logger_name=REALTIME_LOGGER,
            environment=(
                ("REALTIME_DB", str(root / REALTIME_STATE)),
                ("ALERT_MARGIN", f"{s.alert_margin:g}"),
                ("STALL_MINUTES", f"{s.stall_minutes:g}"),
                ("STALL_MIN_EXPECTED", f"{s.stall_min_expected:g}"),
            ),
        )
        # the mapping's state, read here (the runner steps it in its runtime process)
        self.consumer = EventSourceMapping(
            self.consumer_spec.state_path,
            self.stream,
            self.consumer_spec.function_arn,
            None,
            self.consumer_spec.config,
            s.region,
            s.account_id,
        )
        self.orders = Orders(self.table)
        self.catalog = Catalog(root / "glue.sqlite", s.region, s.account_id)
        self.crawler = Crawler(
            self.catalog,
            self.bucket,
            s.crawler_name,
            s.database,
            s.changes_table,
            s.lake_prefix,
        )
        self.athena = Athena(self.catalog, self.bucket, root / "athena.sqlite", s.athena_prefix)
        self.compactor = Compactor(self.bucket, s.lake_prefix, root / "compaction.lock")
        self._lock_path = root / "consumer.lock"
        self._lock_handle = None
        self._stop = threading.Event()
        self._pollers: list[_Poller] = []
        self._pipe_runner: PipeRunner | None = None
        self._consumer_runner: EventSourceRunner | None = None
        self._consume = consume
        if consume:
            self._try_consume()

    # consuming ----------------------------------------------------------------------------

    @property
    def consuming(self) -> bool:
        """Whether this process runs the pollers."""
        return bool(self._pollers)

    def _try_consume(self) -> bool:
        """Take the consumer lock if it is free and start the pollers."""
        if self._pollers or not self._consume:
            return bool(self._pollers)
        handle = open(self._lock_path, "a+")  # noqa: SIM115 (held while consuming)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_handle = handle
        self.bucket.clear_staging()
        # what the stream lost before it was delivered (a lost tail, an older copy) is sent
        # again; then resume from the committed checkpoints, whoever consumed before
        self.pipe.resend_lost(self.delivery.checkpoints())
        self._pipe_runner = PipeRunner(self.pipe, self.function.log_path.parent)
        self.delivery.positions = self.delivery.checkpoints()
        idle = self.settings.poll_interval_s
        self._pollers = [
            _Poller("pipe", self._pipe_runner.step, idle, self._stop),
            _Poller("delivery", self.delivery.step, idle, self._stop),
        ]
        # the real-time consumer: its event source mapping and the schedule rule's ticks
        self._consumer_runner = EventSourceRunner(self.consumer_spec, self.function.log_path.parent)
        self._pollers.append(_Poller("realtime", self._consumer_runner.step, idle, self._stop))
        if self.settings.consumer_schedule_s > 0:
            self._pollers.append(
                _Poller(
                    "realtime schedule",
                    self._consumer_runner.tick,
                    self.settings.consumer_schedule_s,
                    self._stop,
                )
            )
        if self.settings.crawl_interval_s > 0:  # the crawler's schedule
            self._pollers.append(
                _Poller(
                    "crawler", self._scheduled_crawl, self.settings.crawl_interval_s, self._stop
                )
            )
        if self.settings.retention_interval_s > 0:  # retention, as each service applies it
            self._pollers.append(
                _Poller(
                    "retention",
                    self._scheduled_trim,
                    self.settings.retention_interval_s,
                    self._stop,
                )
            )
        for poller in self._pollers:
            poller.start()
        return True

    def _scheduled_trim(self) -> int:
        """One scheduled trim; returns 0 so that the poller waits a full interval."""
        result = self.trim(now=_retention_clock())
        if any(result.values()):
            log.info("retention: %s", result)
        return 0

    def _consumer_pid(self) -> str | None:
        """The pid of another process holding the consumer lock, or None if it is free."""
        if not self._lock_path.exists():
            return None
        with open(self._lock_path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return handle.read().strip() or "unknown"
            fcntl.flock(handle, fcntl.LOCK_UN)
        return None

    def flush(self, timeout: float = 60.0, progress: bool = False, realtime: bool = True) -> None:
        deadline = time.monotonic() + timeout
        target = self.table.latest_sequence()
        dead_before = self.pipe.dead_letter_count()
        self._wait(
            "pipe",
            lambda: target - self.pipe.checkpoint(),
            lambda: self._pipe_runner.request_flush(),
            deadline,
            timeout,
            progress,
        )
        dead = max(0, self.pipe.dead_letter_count() - dead_before)
        if dead:  # the pipe went on without them: say so, as flush does on aws
            raise PipelineStuckError(
                "pipe",
                dead,
                None,
                f"The stream refused {dead} change(s) and the pipe put them in its dead-letter"
                f" queue ({self.pipe.dead_letters()[-1]['responseContext']['errorMessage']});"
                " they are not in the lake. platform.dead_letters() lists them.",
            )
        targets = self.stream.latest_sequences()
        self._wait(
            "delivery stream",
            lambda: sum(
                max(0, targets[shard] - seq) for shard, seq in self.delivery.checkpoints().items()
            ),
            self.delivery.request_flush,
            deadline,
            timeout,
            progress,
        )
        if not realtime:
            return
        self._wait(
            "realtime consumer",
            lambda: self._consumer_pending(targets),
            lambda: self._consumer_runner and self._consumer_runner.request_flush(),
            deadline,
            timeout,
            progress,
        )

    def _consumer_pending(self, targets: dict[int, int]) -> int:
        """Records up to ``targets`` the real-time consumer has not checkpointed past."""
        done = self.consumer.checkpoints()
        return sum(max(0, top - done[shard]) for shard, top in targets.items())

    def _wait(self, stage, pending, nudge, deadline, timeout, progress) -> None:
        left = pending()
        with waiting_bar(stage, left, progress) as bar:
            while left > 0:
                if self._try_consume():
                    nudge()
                self._check_deadline(stage, left, deadline, timeout)
                time.sleep(0.01)
                now_left = pending()
                bar.update(left - now_left)
                left = now_left

    def _check_deadline(self, stage, left, deadline, timeout) -> None:
        """Raise :class:`PipelineStuckError` past the deadline, with the likeliest cause."""
        if time.monotonic() <= deadline:
            return
        poller = next((p for p in self._pollers if stage.startswith(p.stage)), None)
        if poller and poller.error:
            hint = f"It keeps failing with: {poller.error!r} (see the log)."
        elif not self._pollers and self._consumer_pid():
            hint = f"Process {self._consumer_pid()} consumes this root and is behind."
        elif not self._pollers:
            hint = (
                "Nothing consumes this root: connect with consume=True "
                "(the default) or run `salescast stream`."
            )
        else:
            hint = "It is running but slow; flush again with a longer timeout."
        raise PipelineStuckError(stage, left, timeout, hint)

    # reading ------------------------------------------------------------------------------

    def status(self) -> pd.DataFrame:
        now = time.time()
        table_seq = self.table.latest_sequence()
        pipe_seq = self.pipe.checkpoint()
        dead_letters = self.pipe.dead_letter_count()
        stream_tops = self.stream.latest_sequences()
        kept = self.stream.retained()
        delivered = self.delivery.checkpoints()
        counters = self.delivery.counters()
        objects, last = self.delivery.delivered_objects("data")
        error_objects, _ = self.delivery.delivered_objects("error")
        # as text: pandas copies a frame's attrs deeply, and an error may hold what cannot be
        # copied (a connection), which made printing the frame fail while a stage was failing
        errors_by_poller = {
            p.stage: f"{type(p.error).__name__}: {p.error}" for p in self._pollers if p.error
        }
        rows = [
            ("table", self.table.count(), 0, 0, None, "items"),
            (
                "change stream",
                table_seq,
                table_seq - pipe_seq,
                dead_letters,
                None,
                f"stream records, {self.table.stream_retained():,} kept"
                f" ({_mib(self.table.db.path)} with the table);"
                " failed = in the pipe's dead-letter queue (dead_letters())",
            ),
            (
                "kinesis stream",
                sum(stream_tops.values()),
                sum(max(0, stream_tops[s] - delivered[s]) for s in stream_tops),
                0,
                None,
                f"{len(stream_tops)} shards, {sum(k['records'] for k in kept.values()):,}"
                f" records kept ({sum(k['bytes'] for k in kept.values()) / 2**20:,.1f} MiB,"
                f" {self.settings.stream_retention_hours:g} h retention)",
            ),
            (
                "lake",
                counters["ok"],
                0,
                counters["failed"],
                None if last is None else round(now - last, 3),
                f"{objects} objects, {error_objects} error objects, {counters['dropped']} dropped"
                + (f" ({failure_summary(self.read_errors())})" if error_objects else ""),
            ),
        ]
        consumed = self.consumer.counters()
        rows.append(
            (
                "realtime consumer",
                consumed["records"],
                self._consumer_pending(stream_tops),
                self.consumer.dead_letter_count(),
                None,
                f"batch {self.settings.consumer_batch_size},"
                f" window {self.settings.consumer_batching_window_s:g}s;"
                f" {consumed['invocations']:,} invocations,"
                f" {consumed['function_errors']:,} function errors,"
                f" {consumed['partial_failures']:,} partial failures;"
                f" {len(self.alerts(open_only=True))} open alerts;"
                " failed = records discarded to the on-failure list (consumer_dead_letters())",
            )
        )
        frame = pd.DataFrame(
            rows,
            columns=["stage", "records", "pending", "failed", "seconds_since_delivery", "detail"],
        )
        frame.attrs["consuming"] = self.consuming
        frame.attrs["errors"] = errors_by_poller
        return frame

    def trim(self, now: float | None = None) -> dict[str, int]:
        """Apply every retention period now; returns what each let go.

        The change stream keeps 24 hours and the Kinesis stream ``stream_retention_hours``,
        but each only what its consumers (the pipe; the delivery stream and the real-time
        consumer) have committed past, so nothing accepted is lost before it is in the lake
        and the running totals; Athena's results and the failed records expire by the
        bucket's lifecycle rules (``athena_results_retention_days``, ``error_retention_days``),
        query executions after Athena's 45 days, delivery records and the functions' logs
        (``<root>/logs``, by whole files) after ``log_retention_days``, dead letters after the
        queues' 14 days and the real-time store's rows at their ``expires_at`` (DynamoDB's TTL).
        Each removal
        is its own transaction or unlink, so a kill at any moment loses nothing else.
        """
        s = self.settings
        now = time.time() if now is None else now
        delivered, consumed = self.delivery.checkpoints(), self.consumer.checkpoints()
        stream = self.stream.trim(
            {shard: min(seq, consumed[shard]) for shard, seq in delivered.items()}, now
        )
        return {
            "change_stream_records": self.table.trim_stream(self.pipe.checkpoint(), now),
            "kinesis_records": stream["records"],
            "kinesis_bytes": stream["bytes"],
            "delivery_records": self.delivery.trim(s.log_retention_days, now),
            "athena_results": self.bucket.expire(
                s.athena_prefix, s.athena_results_retention_days, now
            ),
            "athena_executions": self.athena.trim_executions(now),
            "error_objects": self.bucket.expire(s.error_prefix, s.error_retention_days, now),
            "dead_letters": self.pipe.trim_dead_letters(now),
            "consumer_dead_letters": self.consumer.trim_dead_letters(DEAD_LETTER_RETENTION_S, now),
            "realtime_rows": self._trim_realtime(now),
            "pipe_batches": self.pipe.trim_sent(self.delivery.checkpoints()),
            "log_files": trim_logs(self.function.log_path.parent, s.log_retention_days, now),
        }

    def publish_expectations(self, frame: pd.DataFrame) -> int:
        store = SqliteStore(Path(self.settings.root) / REALTIME_STATE)
        try:
            return store.put_expectations(frame.to_dict("records"))
        finally:
            store.close()

    def _realtime(self) -> SqliteStore:
        return SqliteStore(Path(self.settings.root) / REALTIME_STATE)

    def _trim_realtime(self, now: float) -> int:
        store = self._realtime()
        try:
            return store.trim(now)
        finally:
            store.close()

    def nowcasts(self, day: str | None = None) -> pd.DataFrame:
        store = self._realtime()
        try:
            return realtime_frame(store.nowcasts(day), NOWCAST_FIELDS)
        finally:
            store.close()

    def alerts(self, open_only: bool = False) -> pd.DataFrame:
        store = self._realtime()
        try:
            return realtime_frame(store.alerts(open_only), ALERT_FIELDS)
        finally:
            store.close()

    def consumer_dead_letters(self) -> pd.DataFrame:
        """The real-time consumer's on-failure list: one row per discarded batch, oldest
        first (its shard, sequence numbers and why)."""
        rows = [
            {
                "sent": message["timestamp"],
                "shard_id": message["KinesisBatchInfo"]["shardId"],
                "start_sequence_number": message["KinesisBatchInfo"]["startSequenceNumber"],
                "end_sequence_number": message["KinesisBatchInfo"]["endSequenceNumber"],
                "condition": message["requestContext"]["condition"],
                "message": message,
            }
            for message in self.consumer.dead_letters()
        ]
        return pd.DataFrame(
            rows,
            columns=[
                "sent",
                "shard_id",
                "start_sequence_number",
                "end_sequence_number",
                "condition",
                "message",
            ],
        )

    def dead_letters(self) -> pd.DataFrame:
        """The pipe's dead-letter queue: one row per message, oldest first (what the stream
        refused, with the sequence numbers to replay it from and the reason)."""
        rows = [
            {
                "sent": message["timestamp"],
                "sequence_number": message["DDBStreamBatchInfo"]["startSequenceNumber"],
                "attempts": message["requestContext"]["approximateInvokeCount"],
                "reason": message["responseContext"]["errorMessage"],
                "message": message,
            }
            for message in self.pipe.dead_letters()
        ]
        return pd.DataFrame(
            rows, columns=["sent", "sequence_number", "attempts", "reason", "message"]
        )

    def lake_objects(self, prefix: str | None = None) -> pd.DataFrame:
        objects = self.bucket.list_objects(self.settings.lake_prefix if prefix is None else prefix)
        return objects_frame((o.key, o.size, o.last_modified) for o in objects)

    def crawl(self) -> dict:
        """Run the crawler, then make sure the views exist; returns what the run did."""
        result = self.crawler.run().summary()
        result["views_created"] = self.create_views()
        self.athena.refresh(self.settings.database)  # the views' maintained state, if any
        return result

    def _scheduled_crawl(self) -> int:
        """One scheduled crawl, then the compaction of the partitions that need it (see
        ``Compactor``): only objects the crawl's refresh of the views has seen, so that the
        views move their rows instead of reading the lake again. Returns 0 so that the
        poller waits a full interval."""
        started = time.time()
        result = self.crawl()
        if result["tables_created"] or result["partitions_added"]:
            log.info("scheduled crawl: %s", result)
        compacted = self.compactor.run(before=started)
        if compacted.outputs:
            self.athena.refresh(self.settings.database)
            log.info("scheduled compaction: %s", compacted.summary())
        return 0

    def compact(self, force: bool = True, grace_s: float | None = None) -> dict:
        """Compact the lake's small objects (see ``helpers.local.compaction``): with
        ``force`` every partition with two small objects or more, else those that are no
        longer written or have too many. Sources are deleted ``grace_s`` after their output
        is committed (default the compactor's; hidden from queries meanwhile), by this run
        or a later one. The views' maintained state is brought up to date after it.
        Returns what the run did."""
        if grace_s is not None and grace_s < 0:
            raise ValueError(f"grace_s must be 0 or more, not {grace_s}")
        compactor = self.compactor
        if grace_s is not None:
            compactor = Compactor(
                self.bucket,
                compactor.prefix,
                compactor.lock_path,
                compactor.small_bytes,
                compactor.max_small,
                compactor.quiet_s,
                grace_s,
                compactor.target_bytes,
            )
        result = compactor.run(force=force).summary()
        result["views_refreshed"] = self.athena.refresh(self.settings.database)
        return result

    def create_views(self) -> list[str]:
        """Create (or refresh) the catalog views of ``helpers/queries`` once their table exists."""
        database = self.settings.database
        if not any(t["Name"] == self.settings.changes_table for t in self.catalog.tables(database)):
            return []
        created = []
        for name in queries.VIEWS:
            sql = queries.load(name)
            try:
                current = self.catalog.get_table(database, name).get("ViewOriginalText")
            except EntityNotFoundError:
                current = None
            if current != sql:
                self.catalog.create_view(database, name, sql, self.athena.describe(sql, database))
                created.append(name)
        return created

    def query(self, sql: str, database: str | None = None, params=None) -> pd.DataFrame:
        return self.athena.read_sql_query(sql, database or self.settings.database, params)

    def write_dataset(self, table: str, frame: pd.DataFrame, partition: dict[str, str]) -> str:
        database = self.settings.database
        prefix = f"{table}/" + "".join(f"{key}={value}/" for key, value in partition.items())
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        sink = pa.BufferOutputStream()
        pq.write_table(arrow, sink, compression="snappy")
        self.bucket.put_object(f"{prefix}part-00000.snappy.parquet", sink.getvalue().to_pybytes())
        columns = [{"Name": f.name, "Type": glue_type(f.type)} for f in arrow.schema]
        self.catalog.create_database(database)
        try:
            current = self.catalog.get_table(database, table)
        except EntityNotFoundError:
            current = None
        known = [] if current is None else current["StorageDescriptor"]["Columns"]
        if current is None or any(c["Name"] not in {k["Name"] for k in known} for c in columns):
            merged = known + [c for c in columns if c["Name"] not in {k["Name"] for k in known}]
            self.catalog.create_table(
                database,
                dataset_table_input(table, merged, list(partition), self.bucket.uri(f"{table}/")),
                replace=current is not None,
            )
        self.catalog.batch_create_partition(
            database,
            table,
            [
                {
                    "Values": list(partition.values()),
                    "StorageDescriptor": {"Location": self.bucket.uri(prefix)},
                }
            ],
        )
        return self.bucket.uri(prefix)

    def read_lake(self, limit: int | None = None) -> pd.DataFrame:
        base = self.bucket.local_path(self.settings.lake_prefix)
        partitioning = ds.partitioning(
            pa.schema([(name, pa.string()) for name in PARTITION_KEYS]), flavor="hive"
        )
        if not base.exists():
            return empty_lake()
        # the objects a reader sees: no compaction records, no sources of a compacted object
        objects, _ = visible_objects(
            self.bucket, self.bucket.list_objects(self.settings.lake_prefix)
        )
        paths = [str(self.bucket.local_path(info.key)) for info in objects]
        if not paths:
            return empty_lake()
        dataset = ds.dataset(
            paths, format="parquet", partitioning=partitioning, partition_base_dir=str(base)
        )
        table = dataset.head(limit) if limit else dataset.to_table()
        return table.to_pandas()

    def read_errors(self, limit: int | None = None) -> pd.DataFrame:
        documents = []
        for listed in self.bucket.list_objects(self.settings.error_prefix):
            for line in self.bucket.get_object(listed.key).decode().splitlines():
                documents.append({"key": listed.key, **json.loads(line)})
                if limit is not None and len(documents) >= limit:
                    return failures_frame(documents)
        return failures_frame(documents)

    # provisioning -------------------------------------------------------------------------

    def provision(self) -> pd.DataFrame:
        """Every service's state is made when the platform opens; this adds the catalog's
        database, so that the catalog shows it before the first crawl."""
        self.catalog.create_database(self.settings.database)
        return self.resources()

    def resources(self) -> pd.DataFrame:
        s = self.settings
        rows = [
            ("DynamoDB", "table", s.table_name, self.table.arn, f"{self.table.count():,} items"),
            (
                "DynamoDB Streams",
                "stream",
                s.table_name,
                self.table.stream_arn,
                "NEW_AND_OLD_IMAGES",
            ),
            (
                "EventBridge Pipes",
                "pipe",
                s.pipe_name,
                s.arn("pipes", f"pipe/{s.pipe_name}"),
                f"batch {s.pipe_batch_size}, window {s.pipe_batching_window_s:g}s",
            ),
            ("Kinesis", "stream", s.stream_name, self.stream.arn, f"{s.shard_count} shards"),
            ("Lambda", "function", s.function_name, self.function.arn, TRANSFORM_HANDLER),
            (
                "Lambda",
                "function",
                s.consumer_function_name,
                self.consumer_spec.function_arn,
                f"{REALTIME_HANDLER}, on {s.stream_name} (batch {s.consumer_batch_size},"
                f" window {s.consumer_batching_window_s:g}s)",
            ),
            (
                "DynamoDB",
                "table",
                f"{s.expectations_table_name}, {s.nowcast_table_name}",
                str(Path(s.root) / REALTIME_STATE),
                "expectations, running totals and alerts",
            ),
            (
                "Firehose",
                "delivery stream",
                s.delivery_stream_name,
                self.delivery.arn,
                f"buffer {s.buffer_size_mb} MB / {s.buffer_interval_s:g}s",
            ),
            ("S3", "bucket", s.bucket, self.bucket.uri(), str(self.bucket.local_path(""))),
            (
                "Glue",
                "crawler",
                s.crawler_name,
                self.bucket.uri(s.lake_prefix),
                f"every {s.crawl_interval_s:g}s" if s.crawl_interval_s else "on demand",
            ),
            ("Athena", "workgroup", "primary", self.bucket.uri(s.athena_prefix), "results as CSV"),
        ]
        for database in self.catalog.databases():
            tables = self.catalog.tables(database)
            rows.append(
                (
                    "Glue",
                    "database",
                    database,
                    s.arn("glue", f"database/{database}"),
                    f"{len(tables)} tables and views",
                )
            )
        return pd.DataFrame(rows, columns=RESOURCE_COLUMNS)

    def catalog_tables(self) -> pd.DataFrame:
        rows = []
        for database in self.catalog.databases():
            for table in self.catalog.tables(database):
                rows.append(catalog_row(table, self.catalog.partitions(database, table["Name"])))
        return pd.DataFrame(rows, columns=CATALOG_COLUMNS)

    # lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop consuming, deliver what was read, and close every service. A delivery that
        fails here (a full disk) is raised after everything is closed; what it held is read
        again by the next consumer, from the checkpoints."""
        self._stop.set()
        for poller in self._pollers:
            poller.join(timeout=30)
        try:
            if self._pollers and self.delivery.buffered:
                self.delivery.deliver()  # what was read is written, not left for the next start
        finally:
            self._pollers = []
            if self._pipe_runner is not None:
                self._pipe_runner.close()
                self._pipe_runner = None
            if self._consumer_runner is not None:
                self._consumer_runner.close()
                self._consumer_runner = None
            if self._lock_handle is not None:
                fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
                self._lock_handle.close()
                self._lock_handle = None
            for service in (
                self.pipe,
                self.consumer,
                self.delivery,
                self.stream,
                self.table,
                self.function,
                self.athena,
                self.catalog,
            ):
                service.close()

    def teardown(self) -> None:
        """Remove every service's state and the lake under the root."""
        self.close()
        shutil.rmtree(self.settings.root, ignore_errors=True)

    def __repr__(self) -> str:
        return f"LocalPlatform(root={str(self.settings.root)!r}, consuming={self.consuming})"
