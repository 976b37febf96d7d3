"""A Lambda event source mapping on the local Kinesis stream (Lambda's Kinesis poller).

It reads each shard in order, gathers a batch (``BatchSize`` records, or what came within
``MaximumBatchingWindowInSeconds``), invokes the function with Kinesis's Lambda event, and
checkpoints the shard durably after the function succeeded, as Lambda does:

- the event is ``{"Records": [...]}``, each record ``eventSource`` ``aws:kinesis``,
  ``eventVersion`` ``1.0``, ``eventID`` ``shardId-...:<sequenceNumber>``, ``eventName``
  ``aws:kinesis:record``, ``invokeIdentityArn``, ``awsRegion``, ``eventSourceARN`` and
  ``kinesis`` with ``kinesisSchemaVersion`` ``1.0``, ``partitionKey``, ``sequenceNumber``,
  ``data`` (base64) and ``approximateArrivalTimestamp`` (epoch seconds);
- ``ReportBatchItemFailures``: an empty or null ``batchItemFailures`` (or response) is a
  success; otherwise Lambda checkpoints before the lowest ``itemIdentifier`` and retries from
  it; an identifier that is empty, null or not in the batch fails the whole batch;
- ``BisectBatchOnFunctionError``: a failed batch is split in two and each half retried, which
  does not count as a retry; a partial failure at the batch's first record is split likewise
  (the batch "is bisected at the returned sequence number");
- ``MaximumRetryAttempts``: a batch (of one record, once bisected) that failed that many
  retries is discarded: its description goes to the on-failure destination and the shard
  goes on; ``MaximumRecordAgeInSeconds``: records older than that are discarded the same way.

The on-failure destination (an SQS queue on AWS) is a durable list beside the checkpoints,
written in the same transaction; its messages are Lambda's invocation records for Kinesis
(``requestContext``, ``responseContext``, ``version``, ``timestamp``, ``KinesisBatchInfo``).

Sources: AWS Lambda Developer Guide, "Configuring partial batch response with Kinesis Data
Streams and Lambda" and "Retain discarded batch records for a Kinesis Data Streams event
source"; the Kinesis event example of the Lambda guide (and Powertools' KinesisDataStream
schema).

The mapping runs where Lambda's pollers run, apart from the consuming process:
:class:`EventSourceRunner` steps it in a runtime process of its own, which also runs the
function's handler (so a batch travels no pipe). A handler that raises fails the invocation;
one that kills its process fails it too, and the mapping resumes from its checkpoints.

Not emulated: ``ParallelizationFactor`` (one batch per shard at a time), tumbling windows,
filters, enhanced fan-out, the 6 MB payload limit, ``StartingPosition`` ``AT_TIMESTAMP``, and
retries with back-off (a failed batch is retried at the next step).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pybase64

from helpers.local.awslambda import Context, Function, FunctionError
from helpers.local.kinesis import Record, Stream
from helpers.local.sqlite import Database

COUNTERS = ("invocations", "function_errors", "partial_failures", "records", "discarded")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS checkpoints (shard INTEGER PRIMARY KEY, seq INTEGER NOT NULL"
    + "".join(f", {name} INTEGER NOT NULL DEFAULT 0" for name in COUNTERS)
    + ");"
    "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, sent REAL, body TEXT);"
)
_CHECKPOINT = (  # a shard's position and counters, one statement per batch
    f"INSERT INTO checkpoints (shard, seq, {', '.join(COUNTERS)})"
    f" VALUES (?, ?{', ?' * len(COUNTERS)}) ON CONFLICT(shard) DO UPDATE SET seq = excluded.seq"
    + "".join(f", {name} = {name} + excluded.{name}" for name in COUNTERS)
)
RUN_SECONDS = 0.5
"""How long one call of the runtime keeps stepping before it reports back."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MappingConfig:
    """An event source mapping's settings, with CreateEventSourceMapping's ranges for Kinesis."""

    batch_size: int = 100
    batching_window_s: float = 1.0
    bisect_on_function_error: bool = True
    report_batch_item_failures: bool = True
    maximum_retry_attempts: int = 3
    maximum_record_age_s: int = 3600
    starting_position: str = "LATEST"

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.batch_size <= 10_000:
            problems.append(f"BatchSize {self.batch_size} is outside 1..10000")
        if not 0 <= self.batching_window_s <= 300:
            problems.append(
                f"MaximumBatchingWindowInSeconds {self.batching_window_s:g} is outside 0..300"
            )
        if not (self.maximum_retry_attempts == -1 or 0 <= self.maximum_retry_attempts <= 10_000):
            problems.append(
                f"MaximumRetryAttempts {self.maximum_retry_attempts} is not -1 (infinite) or"
                " in 0..10000"
            )
        if not (self.maximum_record_age_s == -1 or 60 <= self.maximum_record_age_s <= 604_800):
            problems.append(
                f"MaximumRecordAgeInSeconds {self.maximum_record_age_s} is not -1 (infinite)"
                " or in 60..604800"
            )
        if self.starting_position not in ("LATEST", "TRIM_HORIZON"):
            problems.append(
                f"StartingPosition {self.starting_position!r} is not LATEST or TRIM_HORIZON"
            )
        if problems:
            raise ValueError("; ".join(problems) + " (Lambda's limits for a Kinesis source)")


@dataclass
class _ShardState:
    """Where a shard's retries stand: the batch cap after bisecting, and failed attempts of
    the batch at the checkpoint."""

    limit: int
    attempts: int = 0
    waiting_since: float | None = None


@dataclass
class _Outcome:
    """What an invocation did: the position processed up to, and whether it failed."""

    done: int
    failed: bool
    function_error: str | None = None


class EventSourceMapping:
    """A Kinesis event source mapping of a function; ``invoke(event)`` runs the function and
    raises :class:`~helpers.local.awslambda.FunctionError` when it fails. Without ``invoke``
    it is a handle that reads the mapping's state (checkpoints, counters, dead letters)."""

    def __init__(
        self,
        state_path: Path,
        source: Stream,
        function_arn: str,
        invoke: Callable[[dict[str, Any]], Any] | None,
        config: MappingConfig,
        region: str,
        account_id: str,
        clock: Callable[[], float] = time.time,
    ):
        self.source, self.function_arn, self.invoke = source, function_arn, invoke
        self.config, self.region, self.clock = config, region, clock
        self.role_arn = f"arn:aws:iam::{account_id}:role/{function_arn.rsplit(':', 1)[-1]}-role"
        self.db = Database(state_path, _SCHEMA)
        # a checkpoint lost at a crash of the machine only redelivers (the function skips what
        # it applied), so commits need not wait for the disk
        self.db.connection.execute("PRAGMA synchronous=NORMAL")
        self._start()
        self.positions = self.checkpoints()
        self._shards = {shard.index: _ShardState(config.batch_size) for shard in source.shards}
        self._flush_requested = False

    def _start(self) -> None:
        """Checkpoints at the starting position on first use; afterwards, checkpoints brought
        into agreement with the stream (see ``DeliveryStream._check_checkpoints``)."""
        stored = dict(self.db.read("SELECT shard, seq FROM checkpoints"))
        tops = self.source.latest_sequences()
        with self.db.write() as connection:
            for shard in self.source.shards:
                if shard.index not in stored:
                    start = tops[shard.index] if self.config.starting_position == "LATEST" else 0
                    connection.execute(
                        "INSERT INTO checkpoints (shard, seq) VALUES (?, ?)", (shard.index, start)
                    )
                    continue
                seq = stored[shard.index]
                self.source.continue_above(shard.index, seq)
                horizon = self.source.trim_horizon(shard.index)
                if 0 < seq < horizon:
                    log.warning(
                        "%s: the checkpoint of %s is under the trim horizon %d; it goes on"
                        " from there",
                        self.db.path,
                        shard.shard_id,
                        horizon,
                    )
                    connection.execute(
                        "UPDATE checkpoints SET seq = ? WHERE shard = ?", (horizon, shard.index)
                    )

    def checkpoints(self) -> dict[int, int]:
        """The committed position in every shard."""
        stored = dict(self.db.read("SELECT shard, seq FROM checkpoints"))
        return {shard.index: stored.get(shard.index, 0) for shard in self.source.shards}

    def counters(self) -> dict[str, int]:
        """Invocations, function errors, partial failures, records processed and discarded."""
        sums = self.db.read(f"SELECT {', '.join(f'sum({n})' for n in COUNTERS)} FROM checkpoints")
        return {name: value or 0 for name, value in zip(COUNTERS, sums[0], strict=True)}

    def dead_letters(self) -> list[dict[str, Any]]:
        """The on-failure destination's messages, oldest first."""
        return [json.loads(body) for (body,) in self.db.read("SELECT body FROM dead_letters")]

    def dead_letter_count(self) -> int:
        return self.db.scalar("SELECT count(*) FROM dead_letters") or 0

    def request_flush(self) -> None:
        """Invoke with a partial batch at the next step, without waiting for the window."""
        self._flush_requested = True

    # the loop -----------------------------------------------------------------------------

    def step(self) -> int:
        """One batch per shard that has one due; returns the records checkpointed past."""
        if self.invoke is None:
            raise RuntimeError("this handle of the mapping only reads its state; step its runner")
        moved = 0
        for shard in self.source.shards:
            moved += self._step_shard(shard.index)
        if not moved:
            self._flush_requested = False
        return moved

    def _step_shard(self, shard: int) -> int:
        state = self._shards[shard]
        after = self.positions[shard]
        records = self.source.get_records(shard, after, state.limit)
        if not records:
            state.waiting_since = None
            return 0
        now = time.monotonic()
        if state.waiting_since is None:
            state.waiting_since = now
        if (
            state.limit == self.config.batch_size  # not while bisecting
            and len(records) < self.config.batch_size
            and not self._flush_requested
            and now - state.waiting_since < self.config.batching_window_s
        ):
            return 0
        state.waiting_since = None
        expired = self._expired(records)
        if expired:
            self._discard(shard, records[:expired], "RecordAgeExceeded", 0, None)
            return expired
        outcome = self._invoke(records)
        counts = {"invocations": 1, "records": outcome.done - after}
        if outcome.function_error:
            counts["function_errors"] = 1
        elif outcome.failed:
            counts["partial_failures"] = 1
        if outcome.done > after:  # progress: the failed record (if any) starts the next batch
            state.limit, state.attempts = self.config.batch_size, int(outcome.failed)
            self._commit(shard, outcome.done, counts)
            return outcome.done - after
        if self.config.bisect_on_function_error and len(records) > 1:
            state.limit = len(records) // 2  # a split is not a retry
        else:
            state.attempts += 1
            if 0 <= self.config.maximum_retry_attempts < state.attempts:
                self._discard(
                    shard, records, "RetryAttemptsExhausted", state.attempts, outcome, counts
                )
                return len(records)
        self._commit(shard, after, counts)
        return 0

    def _expired(self, records: list[Record]) -> int:
        """How many records at the head of a batch are past ``MaximumRecordAgeInSeconds``."""
        if self.config.maximum_record_age_s < 0:
            return 0
        cutoff = self.clock() - self.config.maximum_record_age_s
        count = 0
        while count < len(records) and records[count].approximate_arrival_timestamp < cutoff:
            count += 1
        return count

    def _invoke(self, records: list[Record]) -> _Outcome:
        """Invoke the function with a batch; where it got to and whether it failed."""
        after = records[0].seq - 1
        try:
            response = self.invoke(self.event(records))
        except FunctionError as error:
            return _Outcome(after, True, f"{error.error_type}: {error.message}")
        if not self.config.report_batch_item_failures:
            return _Outcome(records[-1].seq, False)
        failures = response.get("batchItemFailures") if isinstance(response, dict) else None
        if not failures:
            return _Outcome(records[-1].seq, False)
        positions = {record.sequence_number: record.seq for record in records}
        failed = []
        for item in failures if isinstance(failures, list) else [None]:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if identifier not in positions:  # empty, null or unknown: the whole batch failed
                return _Outcome(after, True)
            failed.append(positions[identifier])
        return _Outcome(min(failed) - 1, True)

    def event(self, records: list[Record]) -> dict[str, Any]:
        """Kinesis's Lambda event for a batch of one shard's records."""
        shard_id = records[0].shard_id
        role, region, arn = self.role_arn, self.region, self.source.arn
        encode = pybase64.b64encode_as_string
        return {
            "Records": [
                {
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": record.partition_key,
                        "sequenceNumber": record.sequence_number,
                        "data": encode(record.data),
                        # milliseconds, as Kinesis keeps them (round(x, 3) costs 3 times more)
                        "approximateArrivalTimestamp": round(
                            record.approximate_arrival_timestamp * 1000
                        )
                        / 1000,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": f"{shard_id}:{record.sequence_number}",
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": role,
                    "awsRegion": region,
                    "eventSourceARN": arn,
                }
                for record in records
            ]
        }

    def _commit(self, shard: int, position: int, counts: dict[str, int], body=None) -> None:
        """Checkpoint a shard with the counters (and a dead letter) in one transaction."""
        with self.db.write() as connection:
            if body is not None:
                connection.execute(
                    "INSERT INTO dead_letters (sent, body) VALUES (?, ?)",
                    (self.clock(), json.dumps(body)),
                )
            connection.execute(
                _CHECKPOINT, (shard, position, *(counts.get(name, 0) for name in COUNTERS))
            )
        self.positions[shard] = position

    def _discard(
        self,
        shard: int,
        records: list[Record],
        condition: str,
        attempts: int,
        outcome: _Outcome | None,
        counts: dict[str, int] | None = None,
    ) -> None:
        """Send a batch's description to the on-failure destination and go on past it."""
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if outcome is not None and outcome.function_error:
            response["functionError"] = "Unhandled"
        body = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(self.clock()),
            "KinesisBatchInfo": {
                "shardId": records[0].shard_id,
                "startSequenceNumber": records[0].sequence_number,
                "endSequenceNumber": records[-1].sequence_number,
                "approximateArrivalOfFirstRecord": _iso(records[0].approximate_arrival_timestamp),
                "approximateArrivalOfLastRecord": _iso(records[-1].approximate_arrival_timestamp),
                "batchSize": len(records),
                "streamArn": self.source.arn,
            },
        }
        log.warning(
            "%s: discarded %d record(s) of %s (%s)",
            self.function_arn,
            len(records),
            records[0].shard_id,
            condition,
        )
        self._shards[shard] = _ShardState(self.config.batch_size)
        self._commit(
            shard, records[-1].seq, {**(counts or {}), "discarded": len(records)}, body=body
        )

    def trim_dead_letters(self, retention_s: float, now: float | None = None) -> int:
        """Drop dead letters older than the queue's retention; returns how many."""
        cutoff = (self.clock() if now is None else now) - retention_s
        with self.db.write() as connection:
            return connection.execute("DELETE FROM dead_letters WHERE sent < ?", (cutoff,)).rowcount

    def close(self) -> None:
        self.db.close()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass(frozen=True)
class MappingSpec:
    """What the runtime process needs to open a mapping and its function; picklable."""

    state_path: Path
    stream_path: Path
    stream_name: str
    shard_count: int
    function_name: str
    function_arn: str
    handler: str
    timeout_s: float
    memory_mb: int
    config: MappingConfig
    region: str
    account_id: str
    logger_name: str
    environment: tuple[tuple[str, str], ...] = field(default=())

    def open(self) -> EventSourceMapping:
        """The mapping on its stream, invoking the handler in this process."""
        module_name, _, attribute = self.handler.rpartition(".")
        handler = getattr(importlib.import_module(module_name), attribute)

        def invoke(event: dict[str, Any]) -> Any:
            context = Context(self.function_name, self.function_arn, self.memory_mb, self.timeout_s)
            try:
                return handler(event, context)
            except Exception as error:
                logging.getLogger(self.logger_name).exception("the invocation failed")
                raise FunctionError(type(error).__name__, str(error)) from None

        stream = Stream(
            self.stream_path, self.stream_name, self.shard_count, self.region, self.account_id
        )
        return EventSourceMapping(
            self.state_path,
            stream,
            self.function_arn,
            invoke,
            self.config,
            self.region,
            self.account_id,
        )


class EventSourceRunner:
    """Steps a mapping in a runtime process of its own (which runs the handler too); the
    caller keeps only this handle, as :class:`~helpers.local.pipes.PipeRunner` does."""

    def __init__(self, spec: MappingSpec, log_dir: Path):
        self.spec = spec
        self.function = Function(
            f"{spec.function_name}-poller",
            f"{__name__}.step_in_runtime",
            spec.function_arn,
            log_dir,
            spec.logger_name,
            log_name=spec.function_name,
            environment=dict(spec.environment),
        )
        self._flush_requested = False

    def request_flush(self) -> None:
        self._flush_requested = True

    def step(self) -> int:
        flush, self._flush_requested = self._flush_requested, False
        return self.function.invoke((self.spec, flush, None))

    def tick(self) -> int:
        """Invoke the function with a scheduled EventBridge event (the stack's schedule rule);
        returns 0 so that a poller waits a full interval."""
        self.function.invoke((self.spec, False, scheduled_event(self.spec)))
        return 0

    def close(self) -> None:
        self.function.close()


def scheduled_event(spec: MappingSpec) -> dict[str, Any]:
    """The event an EventBridge schedule rule sends."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": spec.account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": spec.region,
        "resources": [f"arn:aws:events:{spec.region}:{spec.account_id}:rule/{spec.function_name}"],
        "detail": {},
    }


_opened: dict[MappingSpec, tuple[EventSourceMapping, int]] = {}


def step_in_runtime(event: tuple[MappingSpec, bool, dict | None], context: Any) -> int:
    """The runtime's entry point: invoke the handler with a scheduled event if one is given,
    else step the mapping (opened once per process) until it is idle or ``RUN_SECONDS``
    passed. It stops early once the process that started it is gone."""
    spec, flush, scheduled = event
    if spec not in _opened:
        _opened[spec] = (spec.open(), os.getppid())
    mapping, parent = _opened[spec]
    if scheduled is not None:
        mapping.invoke(scheduled)
        return 0
    if flush:
        mapping.request_flush()
    moved, deadline = 0, time.monotonic() + RUN_SECONDS
    while os.getppid() == parent and time.monotonic() < deadline:
        count = mapping.step()
        if not count:
            break
        moved += count
    return moved
