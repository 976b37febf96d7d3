"""The delivery stream from Kinesis to the lake (Amazon Data Firehose), with its Lambda.

It reads every shard of its source stream, buffers by size and interval (the buffering hints),
calls the transformation Lambda with Firehose's event, honours each record's result (Ok,
Dropped, ProcessingFailed), partitions Ok records by the Lambda's ``metadata.partitionKeys``,
converts them to Parquet (Snappy) with the lake's schema, and writes objects with Firehose's
key naming. Failed records go under the error prefix as the JSON documents Firehose writes.
Its position in each shard is checkpointed only after the objects are in place, so a crash
re-delivers a buffer (duplicates) and never loses one.

Not emulated: destinations other than S3, backup of source records, Lambda retries with
back-off (retries are immediate), the 6 MB invocation payload check (invocations are sized
from the processor's buffer hint), record format conversion of JSON shapes other than one
object per record, and CloudWatch metrics (the delivery log in the state file stands for them).
"""

from __future__ import annotations

import binascii
import gc
import importlib
import json
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq
import pybase64

from helpers.exceptions import DiskFullError
from helpers.local.awslambda import Context, Function, FunctionError
from helpers.local.kinesis import Record, Stream
from helpers.local.s3 import Bucket
from helpers.local.sqlite import Database
from helpers.schema import LAKE_SCHEMA, PARTITION_KEYS

LAMBDA_RETRIES = 3
DATA_PLANES = 2
"""Buffers delivered at the same time, each in a runtime process of its own."""
FILE_EXTENSION = ".parquet"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (shard INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, records INTEGER NOT NULL, bytes INTEGER NOT NULL,
    first_arrival REAL NOT NULL, delivered REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
COUNTERS = ("received", "ok", "dropped", "failed")
_OBJECT_COUNTERS = {"data": "objects", "error": "error_objects"}
"""Objects written, by kind, counted apart from the delivery records (which retention trims)."""
log = logging.getLogger(__name__)
_JSON_OPTIONS = pj.ParseOptions(explicit_schema=LAKE_SCHEMA, unexpected_field_behavior="ignore")
_JSON_READ = pj.ReadOptions(use_threads=False)  # the data planes already use every core


@dataclass
class _Accepted:
    """The Ok records of a delivery: their base64 and decoded JSON lines, the positions of
    each partition's records, and whether every line starts with ``{`` (see :func:`_read_rows`)."""

    records: list[Record] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    positions: defaultdict[tuple[str, ...], list[int]] = field(
        default_factory=lambda: defaultdict(list)
    )
    objects: bool = True


@dataclass
class _Failure:
    record: Record
    output_type: str
    code: str
    message: str
    data: str


class DeliveryStream:
    """A Firehose delivery stream: Kinesis source, Lambda processor, S3 Parquet destination.

    This object is the control plane (reading shards, buffering, checkpoints, counters) and
    lives in the caller's process; the data plane (invoking the Lambda, converting, writing
    objects) runs in runtime processes of its own, so it uses other cores: while one buffer
    is delivered the next is read, and up to ``DATA_PLANES`` buffers are delivered at once,
    as Firehose processes buffers concurrently. Buffers are checkpointed in order.
    """

    def __init__(
        self,
        state_path: Path,
        name: str,
        source: Stream,
        function: Function,
        bucket: Bucket,
        prefix: str,
        error_prefix: str,
        buffer_size_mb: float,
        buffer_interval_s: float,
        lambda_buffer_size_mb: float,
        region: str,
        account_id: str,
    ):
        self.name = name
        self.arn = f"arn:aws:firehose:{region}:{account_id}:deliverystream/{name}"
        self.source, self.function, self.bucket = source, function, bucket
        self.plane = DataPlane(
            name=name,
            arn=self.arn,
            region=region,
            source_arn=source.arn,
            source_path=str(source.path),
            source_name=source.name,
            shard_count=len(source.shards),
            account_id=account_id,
            handler=function.handler,
            function_arn=function.arn,
            bucket_root=str(bucket.path.parent),
            bucket_name=bucket.name,
            prefix=prefix,
            error_prefix=error_prefix,
            lambda_bytes_limit=int(lambda_buffer_size_mb * 1024 * 1024),
            function_name=function.name,
            function_memory_mb=function.memory_mb,
            timeout_s=function.timeout_s,
            logger_name=function.logger_name,
        )
        self.runtime = Function(
            f"{name}-data-plane",
            f"{__name__}.deliver_in_runtime",
            self.arn,
            function.log_path.parent,
            function.logger_name,
            timeout_s=900,
            concurrency=DATA_PLANES,
            log_name=function.name,
        )
        self.buffer_bytes_limit = int(buffer_size_mb * 1024 * 1024)
        self.buffer_interval_s = buffer_interval_s
        self.db = Database(state_path, _SCHEMA)
        with self.db.write() as connection:  # roots from before objects were counted
            for kind, counter in _OBJECT_COUNTERS.items():
                connection.execute(
                    "INSERT OR IGNORE INTO counters SELECT ?, count(*) FROM deliveries"
                    " WHERE kind = ?",
                    (counter, kind),
                )
        self._check_checkpoints()
        self.positions = self.checkpoints()
        self._delivered = dict(self.positions)  # where the buffer starts, per shard
        self._buffered = 0
        self._buffer_bytes = 0
        self._buffer_started = 0.0
        self._flush_requested = False
        self._in_flight: deque[tuple[Future, dict[int, int]]] = deque()

    # state --------------------------------------------------------------------------------

    def _check_checkpoints(self) -> None:
        """Bring the checkpoints and the source's shards into agreement, on open.

        A checkpoint ahead of its shard (the stream's folder restored from an older copy than
        this file) would make new records, numbered from the shard's end, fall under it and be
        skipped: the shard is made to go on above it. A checkpoint behind the trim horizon
        (this file restored from an older copy) would read trimmed positions: retention trims
        only what this stream had delivered, so it moves up to the horizon.
        """
        stored = self.checkpoints()
        tops = self.source.latest_sequences()
        for shard, seq in stored.items():
            if self.source.continue_above(shard, seq):
                log.warning(
                    "%s: the checkpoint of %s is at position %d but the shard ends at %d (%s"
                    " was restored from an older copy, or lost its tail): new records continue"
                    " above the checkpoint, so none is skipped",
                    self.db.path,
                    self.source.shards[shard].shard_id,
                    seq,
                    tops[shard],
                    self.source.path,
                )
            horizon = self.source.trim_horizon(shard)
            if 0 < seq < horizon:
                log.warning(
                    "%s: the checkpoint of %s is at position %d, under the trim horizon %d"
                    " (the file was restored from an older copy): retention trimmed only"
                    " delivered records, so delivery goes on from the horizon",
                    self.db.path,
                    self.source.shards[shard].shard_id,
                    seq,
                    horizon,
                )
                with self.db.write() as connection:
                    connection.execute(
                        "INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (shard, horizon)
                    )

    def checkpoints(self) -> dict[int, int]:
        """The committed position in every shard of the source."""
        stored = dict(self.db.read("SELECT shard, seq FROM checkpoints"))
        return {shard.index: stored.get(shard.index, 0) for shard in self.source.shards}

    def counters(self) -> dict[str, int]:
        """Records received, Ok, Dropped and failed, over the stream's life."""
        stored = dict(self.db.read("SELECT name, value FROM counters"))
        return {name: stored.get(name, 0) for name in COUNTERS}

    def delivered_objects(self, kind: str) -> tuple[int, float | None]:
        """How many objects of a kind (``data`` or ``error``) were written, and when the last."""
        count = self.db.scalar(
            "SELECT value FROM counters WHERE name = ?", (_OBJECT_COUNTERS[kind],)
        )
        last = self.db.scalar("SELECT max(delivered) FROM deliveries WHERE kind = ?", (kind,))
        return count or 0, last

    def trim(self, days: float, now: float | None = None) -> int:
        """Forget the delivery records (the stand-in for CloudWatch's delivery log) older than
        ``days``, but the newest of each kind; returns how many. Counters are kept."""
        cutoff = (time.time() if now is None else now) - days * 86400
        with self.db.write() as connection:
            return connection.execute(
                "DELETE FROM deliveries WHERE delivered < ? AND delivered <"
                " (SELECT max(delivered) FROM deliveries newest WHERE newest.kind = deliveries.kind)",
                (cutoff,),
            ).rowcount

    def delivery_count(self) -> int:
        """Delivery records kept."""
        return self.db.scalar("SELECT count(*) FROM deliveries")

    def deliveries(self, kind: str | None = None) -> list[tuple]:
        """(key, kind, records, bytes, first_arrival, delivered) of every object written."""
        where, args = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        return self.db.read(f"SELECT * FROM deliveries {where} ORDER BY delivered", args)

    # the loop -----------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Records read but not yet delivered."""
        return self._buffered

    def request_flush(self) -> None:
        """Deliver what is buffered at the next step, without waiting for the interval."""
        self._flush_requested = True

    def step(self, now: float | None = None) -> int:
        """Read what is new, and deliver the buffer if a hint is reached; returns records read."""
        read = 0
        for shard in self.source.shards:
            room = max(1, (self.buffer_bytes_limit - self._buffer_bytes) // 512)
            last, count, size = self.source.extent(shard.index, self.positions[shard.index], room)
            if count:
                if not self._buffered:
                    self._buffer_started = time.monotonic()
                self._buffered += count
                self._buffer_bytes += size
                self.positions[shard.index] = last
                read += count
        now = time.monotonic() if now is None else now
        due = self._buffer_bytes >= self.buffer_bytes_limit or (
            now - self._buffer_started >= self.buffer_interval_s
        )
        flushing = self._flush_requested and not read
        if self._buffered and (due or flushing):
            self._hand_over()
        if flushing:
            self.deliver()  # a flush waits for every buffer handed over
        else:
            self._checkpoint(wait=False)
        return read

    def deliver(self) -> None:
        """Have the data plane write the buffer, and wait until every buffer handed over is
        written and checkpointed."""
        self._hand_over()
        self._checkpoint(wait=True)
        self._flush_requested = False

    def _hand_over(self) -> None:
        """Start the data plane on the buffer (``DATA_PLANES`` buffers at most at a time)."""
        if not self._buffered:
            return
        while len(self._in_flight) >= DATA_PLANES:
            self._checkpoint(wait=True, at_most=1)
        ranges = {shard: (self._delivered[shard], seq) for shard, seq in self.positions.items()}
        future = self.runtime.invoke_async((self.plane, ranges))
        self._in_flight.append((future, dict(self.positions)))
        self._delivered = dict(self.positions)
        self._buffered, self._buffer_bytes = 0, 0

    def _checkpoint(self, wait: bool, at_most: int | None = None) -> None:
        """Record the buffers the data plane finished, oldest first, and checkpoint the
        positions they cover; a later buffer is never checkpointed before an earlier one."""
        while self._in_flight and (wait or self._in_flight[0][0].done()) and at_most != 0:
            future, positions = self._in_flight.popleft()
            try:
                written, counts = self.runtime.result(future)
            except FunctionError as error:
                for later, _ in self._in_flight:  # let them finish; their buffers are read again
                    later.exception()
                self._in_flight.clear()
                self.positions = self.checkpoints()  # read again from here: at-least-once
                self._delivered = dict(self.positions)
                self._buffered, self._buffer_bytes = 0, 0
                if error.error_type == DiskFullError.__name__:  # the lake's disk: say so
                    raise DiskFullError(error.message) from None
                raise
            with self.db.write() as connection:
                connection.executemany(
                    "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?)", written
                )
                objects = {counter: 0 for counter in _OBJECT_COUNTERS.values()}
                for row in written:
                    objects[_OBJECT_COUNTERS[row[1]]] += 1
                connection.executemany(
                    "INSERT INTO counters VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    [*counts.items(), *objects.items()],
                )
                connection.executemany(
                    "INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", list(positions.items())
                )
            if at_most is not None:
                at_most -= 1

    def close(self) -> None:
        """Wait for the buffers handed over (and checkpoint them), then stop the runtimes."""
        try:
            self._checkpoint(wait=True)
        finally:
            self.runtime.close()
            self.db.close()


@dataclass
class DataPlane:
    """What the data plane needs to deliver a buffer; small and picklable."""

    name: str
    arn: str
    region: str
    source_arn: str
    source_path: str
    source_name: str
    shard_count: int
    account_id: str
    handler: str
    function_arn: str
    bucket_root: str
    bucket_name: str
    prefix: str
    error_prefix: str
    lambda_bytes_limit: int
    function_name: str
    function_memory_mb: int
    timeout_s: float
    logger_name: str
    version: int = 1

    def deliver(self, ranges: dict[int, tuple[int, int]]) -> tuple[list[tuple], dict[str, int]]:
        """Transform, convert and write the source's records in ``(after, upto]`` per shard;
        returns the delivery rows and counts."""
        if not hasattr(self, "_handler"):  # once per runtime process
            module_name, _, attribute = self.handler.rpartition(".")
            self._handler = getattr(importlib.import_module(module_name), attribute)
            self._bucket = Bucket(Path(self.bucket_root), self.bucket_name)
            self._source = Stream(
                Path(self.source_path),
                self.source_name,
                self.shard_count,
                self.region,
                self.account_id,
            )
        buffer = [
            record
            for shard, (after, upto) in ranges.items()
            if upto > after
            for record in self._source.get_records(shard, after, upto - after, upto=upto)
        ]
        accepted, failures = _Accepted(), []
        counts = {"received": len(buffer), "ok": 0, "dropped": 0, "failed": 0}
        for batch in self._invocation_batches(buffer):
            event = self._event(batch)
            response, error = self._invoke(event)
            if error is None:
                counts["dropped"] += self._accept(
                    batch, event["records"], response, accepted, failures
                )
                continue
            message = (
                "The Lambda function was successfully invoked but it returned an error "
                f"result. {error.error_type}: {error.message}"
            )
            failures += [
                _Failure(record, "processing-failed", "Lambda.FunctionError", message, sent["data"])
                for record, sent in zip(batch, event["records"], strict=True)
            ]
        written = []
        for partition, table, records in self._tables(accepted, failures):
            key = self._object_key(self._render(partition), _oldest(records), FILE_EXTENSION)
            written.append(self._put_parquet(key, table, records))
            counts["ok"] += table.num_rows
        if failures:
            counts["failed"] += len(failures)
            written.extend(self._put_failures(failures))
        return written, counts

    # transformation -----------------------------------------------------------------------

    def _invocation_batches(self, buffer: Sequence[Record]) -> list[list[Record]]:
        batches, batch, size = [], [], 0
        for record in buffer:
            encoded = (len(record.data) + 2) // 3 * 4 + 300
            if batch and size + encoded > self.lambda_bytes_limit:
                batches.append(batch)
                batch, size = [], 0
            batch.append(record)
            size += encoded
        if batch:
            batches.append(batch)
        return batches

    def _event(self, batch: Sequence[Record]) -> dict[str, Any]:
        records, encode = [], pybase64.b64encode_as_string
        for index, (shard_id, _, number, partition_key, data, arrival) in enumerate(batch):
            arrival = int(arrival * 1000)
            records.append(
                {
                    "recordId": number + "%08d" % index,
                    "approximateArrivalTimestamp": arrival,
                    "data": encode(data),
                    "kinesisRecordMetadata": {
                        "sequenceNumber": number,
                        "subsequenceNumber": 0,
                        "partitionKey": partition_key,
                        "shardId": shard_id,
                        "approximateArrivalTimestamp": arrival,
                    },
                }
            )
        return {
            "invocationId": str(uuid.uuid4()),
            "deliveryStreamArn": self.arn,
            "sourceKinesisStreamArn": self.source_arn,
            "region": self.region,
            "records": records,
        }

    def _invoke(self, event: dict[str, Any]) -> tuple[Any, FunctionError | None]:
        """Call the handler, retrying as Firehose does; (response, None) or (None, the error)."""
        error = None
        for _ in range(LAMBDA_RETRIES + 1):
            context = Context(
                self.function_name, self.function_arn, self.function_memory_mb, self.timeout_s
            )
            try:
                response = self._handler(event, context)
            except Exception as caught:
                logging.getLogger(self.logger_name).error("invocation failed", exc_info=True)
                error = FunctionError(type(caught).__name__, str(caught))
                continue
            if context.get_remaining_time_in_millis() > 0:
                return response, None
            # the handler cannot be stopped in-process; its late answer is discarded, as
            # Lambda would have ended it
            error = FunctionError(
                "Sandbox.Timedout", f"Task timed out after {self.timeout_s:.2f} seconds"
            )
        return None, error

    def _accept(
        self,
        batch: Sequence[Record],
        sent: list[dict],
        response: Any,
        accepted: _Accepted,
        failures: list[_Failure],
    ) -> int:
        """File each record by its result: Ok ones into ``accepted`` by partition, failed ones
        into ``failures``; returns how many were Dropped."""
        dropped = 0
        partitions: dict[int, tuple[str, ...]] = {}  # by metadata object, alive for the batch
        returned = _response_entries(response, sent)
        records, texts, lines, positions = (
            accepted.records,
            accepted.data,
            accepted.lines,
            accepted.positions,
        )
        objects = accepted.objects
        for record, payload, original in zip(batch, returned, sent, strict=True):
            data = None if payload is None else payload.get("data")
            if isinstance(data, str) and payload.get("result") == "Ok":
                metadata = payload.get("metadata")
                partition = partitions.get(id(metadata))
                if partition is None:
                    keys = ((metadata or {}).get("partitionKeys")) or {}
                    missing = [name for name in PARTITION_KEYS if not keys.get(name)]
                    if missing:
                        failures.append(
                            _Failure(
                                record,
                                "partitioning-failed",
                                "DynamicPartitioning.MetadataExtractionFailed",
                                f"partition keys {missing} missing from the Lambda's metadata",
                                data,
                            )
                        )
                        continue
                    partition = tuple(str(keys[name]) for name in PARTITION_KEYS)
                    if metadata is not None:
                        partitions[id(metadata)] = partition
                try:
                    line = _strict_b64decode(data)
                except (ValueError, binascii.Error) as error:
                    failures.append(self._conversion_failure(record, data, f"not base64: {error}"))
                    continue
                positions[partition].append(len(records))
                records.append(record)
                texts.append(data)
                lines.append(line)
                objects = objects and line[:1] == b"{"
                continue
            problem = _response_problem(payload)
            if problem is None:
                if payload["result"] == "Dropped":
                    dropped += 1
                    continue
                problem = (
                    "Lambda.ProcessingFailedStatus",
                    "ProcessingFailed status set for record",
                )
            failures.append(_Failure(record, "processing-failed", *problem, original["data"]))
        accepted.objects = objects
        return dropped

    # conversion and writing ---------------------------------------------------------------

    def _tables(self, accepted: _Accepted, failures: list[_Failure]):
        """Yield (partition, table, records) of each partition's Ok records in the lake schema,
        as Firehose's record format conversion makes them; a record that does not fit goes to
        the errors."""
        partitions = sorted(accepted.positions.items())
        # one parse for all, when every line is one row
        whole = _read_rows(accepted.lines) if accepted.objects and accepted.lines else None
        if whole is not None:  # one take puts the partitions in order; each is then a slice
            whole = whole.take([position for _, positions in partitions for position in positions])
        start = 0
        for partition, positions in partitions:
            records = [accepted.records[position] for position in positions]
            if whole is not None:
                yield partition, whole.slice(start, len(positions)), records
                start += len(positions)
                continue
            table, records = self._to_arrow(
                records,
                [accepted.data[position] for position in positions],
                [accepted.lines[position] for position in positions],
                failures,
            )
            if table.num_rows:
                yield partition, table, records

    def _to_arrow(
        self,
        records: Sequence[Record],
        data: Sequence[str],
        lines: Sequence[bytes],
        failures: list[_Failure],
    ) -> tuple[pa.Table, list[Record]]:
        """The lines of one partition as a table, record by record when they do not parse
        together."""
        try:
            table = _read_json(b"\n".join(lines))
            if table.num_rows == len(lines):
                return table, list(records)
        except pa.ArrowInvalid:
            pass
        tables, kept = [], []
        for record, encoded, line in zip(records, data, lines, strict=True):
            try:
                table = _read_json(line)
                if table.num_rows != 1:
                    raise pa.ArrowInvalid(f"expected one JSON object, found {table.num_rows}")
            except pa.ArrowInvalid as error:
                failures.append(self._conversion_failure(record, encoded, str(error)))
                continue
            tables.append(table)
            kept.append(record)
        return (pa.concat_tables(tables) if tables else LAKE_SCHEMA.empty_table()), kept

    def _conversion_failure(self, record: Record, data: str, reason: str) -> _Failure:
        return _Failure(
            record,
            "format-conversion-failed",
            "DataFormatConversion.MalformedData",
            f"The record does not match the lake schema: {reason}",
            data,
        )

    def _render(self, partition: tuple[str, ...]) -> str:
        rendered = self.prefix
        for name, value in zip(PARTITION_KEYS, partition, strict=True):
            rendered = rendered.replace(f"!{{partitionKeyFromLambda:{name}}}", value)
        return rendered

    def _object_key(self, prefix: str, when: datetime, extension: str = "") -> str:
        stamp = when.strftime("%Y-%m-%d-%H-%M-%S")
        return f"{prefix}{self.name}-{self.version}-{stamp}-{uuid.uuid4()}{extension}"

    def _put_parquet(self, key: str, table: pa.Table, records: Sequence[Record]) -> tuple:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="snappy")
        body = sink.getvalue().to_pybytes()
        self._bucket.put_object(key, body)
        first = min(record.approximate_arrival_timestamp for record in records)
        return (key, "data", table.num_rows, len(body), first, time.time())

    def _put_failures(self, failures: Sequence[_Failure]) -> list[tuple]:
        by_type: dict[str, list[_Failure]] = defaultdict(list)
        for failure in failures:
            by_type[failure.output_type].append(failure)
        written = []
        ending = int(time.time() * 1000)
        for output_type, group in sorted(by_type.items()):
            when = _oldest([failure.record for failure in group])
            prefix = self.error_prefix.replace("!{firehose:error-output-type}", output_type)
            prefix = when.strftime(
                prefix.replace("!{timestamp:yyyy}", "%Y")
                .replace("!{timestamp:MM}", "%m")
                .replace("!{timestamp:dd}", "%d")
                .replace("!{timestamp:HH}", "%H")
            )
            lines = []
            for failure in group:
                # format conversion documents its own names (ErrorCode, the Kinesis position)
                conversion = output_type == "format-conversion-failed"
                code, message = (
                    ("ErrorCode", "ErrorMessage") if conversion else ("errorCode", "errorMessage")
                )
                document = {
                    "attemptsMade": LAMBDA_RETRIES + 1
                    if failure.code == "Lambda.FunctionError"
                    else 1,
                    "arrivalTimestamp": int(failure.record.approximate_arrival_timestamp * 1000),
                    code: failure.code,
                    message: failure.message,
                    "attemptEndingTimestamp": ending,
                    "rawData": failure.data,
                }
                if conversion:
                    document["sequenceNumber"] = failure.record.sequence_number
                    document["subSequenceNumber"] = 0
                if output_type == "processing-failed":
                    document["lambdaArn"] = self.function_arn
                lines.append(json.dumps(document))
            key = self._object_key(prefix, when)
            body = ("\n".join(lines) + "\n").encode()
            self._bucket.put_object(key, body)
            first = min(failure.record.approximate_arrival_timestamp for failure in group)
            written.append((key, "error", len(group), len(body), first, time.time()))
        return written


_planes: dict[str, DataPlane] = {}


def deliver_in_runtime(event: tuple[DataPlane, dict], context: Any) -> tuple:
    """The data plane's entry point in its runtime process (one plane per stream, kept warm).

    A delivery allocates many small containers and frees them by reference counting; the
    cyclic GC would only rescan them, so it is paused for the delivery (about 10% faster).
    """
    plane, ranges = event
    plane = _planes.setdefault(plane.arn, plane)
    gc.disable()
    try:
        return plane.deliver(ranges)
    finally:
        gc.enable()


def _oldest(records: Sequence[Record]) -> datetime:
    """The arrival time of the oldest record, which names Firehose's objects and prefixes."""
    return datetime.fromtimestamp(
        min(record.approximate_arrival_timestamp for record in records), UTC
    )


def _response_entries(response: Any, sent: list[dict]) -> list[Any]:
    """The response record of each sent record, in order (None where it is missing)."""
    returned = response.get("records") if isinstance(response, dict) else None
    if not isinstance(returned, list):
        return [None] * len(sent)
    ids = [record["recordId"] for record in sent]
    if len(returned) == len(sent) and ids == [
        entry.get("recordId") if isinstance(entry, dict) else None for entry in returned
    ]:
        return returned
    by_id = {entry.get("recordId"): entry for entry in returned if isinstance(entry, dict)}
    return [by_id.get(record_id) for record_id in ids]


def _response_problem(payload: Any) -> tuple[str, str] | None:
    """Why Firehose would reject a response record, or None when it is well formed."""
    if payload is None:
        return (
            "Lambda.MissingRecordId",
            "One or more record Ids were not returned. Ensure that the Lambda function returns "
            "all received record Ids.",
        )
    if payload.get("result") not in ("Ok", "Dropped", "ProcessingFailed"):
        return (
            "Lambda.InvalidRecordResult",
            f"The Lambda returned an invalid result {payload.get('result')!r}.",
        )
    if payload["result"] == "Ok" and not isinstance(payload.get("data"), str):
        return "Lambda.MissingData", "The Lambda returned an Ok record without data."
    return None


def _read_rows(lines: Sequence[bytes]) -> pa.Table | None:
    """Lines that each start with ``{`` as one table, or None unless each is one JSON object
    of the lake schema. Such a line parses into at least one row or fails (a blank line, which
    parses into none, cannot start with ``{``), so as many rows as lines means one each."""
    try:
        table = _read_json(b"\n".join(lines))
    except pa.ArrowInvalid:
        return None
    return table if table.num_rows == len(lines) else None


def _read_json(lines: bytes) -> pa.Table:
    """Newline-delimited JSON objects as a table of the lake schema (unknown keys ignored)."""
    if not lines or lines.isspace():
        return LAKE_SCHEMA.empty_table()
    return pj.read_json(
        pa.BufferReader(lines), read_options=_JSON_READ, parse_options=_JSON_OPTIONS
    )


def _strict_b64decode(text: str) -> bytes:
    """Base64 text as Firehose decodes a Lambda's ``data``: the SIMD codec, and binascii's
    strict mode (slower, a little laxer about excess padding) where pybase64 refuses."""
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError:
        return binascii.a2b_base64(text, strict_mode=True)
