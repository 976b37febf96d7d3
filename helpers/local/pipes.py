"""The pipe from the table's change stream to the Kinesis stream (EventBridge Pipes).

It reads stream records in batches (batch size, batching window), puts each one as the JSON
that Pipes sends (the stream record itself) into the Kinesis stream with partition key
``$.dynamodb.Keys.order_id.S``, and checkpoints its position only after the put succeeded.
A crash between the put and the checkpoint re-sends the batch: at-least-once, as Pipes is.

The pipe runs where Pipes runs, apart from the table's writers: :class:`PipeRunner` steps it
in a runtime process of its own (as the delivery stream's data plane runs), so its reads and
puts use another core than the process that writes orders, and neither waits on the other's
interpreter lock.

A record the stream refuses (a partition key over 256 characters, a record over 1 MiB) is
handled as the template configures the pipe: ``OnPartialBatchItemFailure: AUTOMATIC_BISECT``
halves the batch until the refused record stands alone (the others are put, in order), it is
retried ``MaximumRetryAttempts`` (10) times, then recorded in the dead-letter queue and the
pipe goes on. The queue is durable (a table beside the checkpoint, written in the same
transaction), :meth:`Pipe.dead_letters` reads it and ``status`` counts it. Its messages have
the shape of Lambda's on-failure records for DynamoDB streams (``DDBStreamBatchInfo`` with the
sequence numbers to replay from; Pipes' guide does not spell its own out), plus the reason.
Anything else that fails a put (a full disk) is retried until it succeeds, as Pipes retries
its internal errors.

Not emulated: filtering, enrichment, input transformers, ``MaximumRecordAgeInSeconds``,
parallelization factor (one batch at a time keeps per-key order), and the 500-record limit
of PutRecords (a batch goes to the stream in one local call).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpers.local.awslambda import Function
from helpers.local.dynamodb import Table
from helpers.local.kinesis import Stream
from helpers.local.sqlite import Database

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER);"
    "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, sent REAL, body TEXT);"
    # where each batch went: its source positions, and the newest stream position per shard
    "CREATE TABLE IF NOT EXISTS sent (first INTEGER, last INTEGER, shard INTEGER,"
    " position INTEGER, PRIMARY KEY (shard, position)) WITHOUT ROWID;"
)
MAX_RETRY_ATTEMPTS = 10
"""The template's ``MaximumRetryAttempts``: retries of a refused record before its dead letter."""
log = logging.getLogger(__name__)
DEAD_LETTER_RETENTION_S = 14 * 86400
"""The dead-letter queue's ``MessageRetentionPeriod`` in the template (1209600 s)."""
RUN_SECONDS = 0.5
"""How long one call of the runtime keeps stepping before it reports back."""


class Pipe:
    """A pipe with a DynamoDB stream source and a Kinesis stream target."""

    def __init__(
        self,
        state_path: Path,
        name: str,
        source: Table,
        target: Stream,
        batch_size: int,
        batching_window_s: float,
        region: str,
        account_id: str,
    ):
        if not 1 <= batch_size <= 10_000:
            raise ValueError(f"batch size {batch_size} is outside 1..10000, Pipes' range")
        self.name, self.region, self.account_id = name, region, account_id
        self.arn = f"arn:aws:pipes:{region}:{account_id}:pipe/{name}"
        self.source, self.target = source, target
        self.batch_size, self.batching_window_s = batch_size, batching_window_s
        self.db = Database(state_path, _SCHEMA)
        self.position = self._checked_checkpoint()
        self._waiting_since: float | None = None
        self._flush_requested = False

    def request_flush(self) -> None:
        """Send a partial batch at the next step, without waiting for the batching window."""
        self._flush_requested = True

    def checkpoint(self) -> int:
        """The committed position in the source stream."""
        return self.db.scalar("SELECT seq FROM checkpoint WHERE id = 1") or 0

    def _checked_checkpoint(self) -> int:
        """The checkpoint, brought into agreement with the source stream on open.

        A checkpoint ahead of the stream (the table's file restored from an older copy than
        this one) would make new changes, numbered from the stream's end, fall under it and
        be skipped: the stream is made to go on above it. A checkpoint behind the trim
        horizon (this file restored from an older copy) would read trimmed records:
        retention trims only what the pipe had passed, so it moves up to the horizon.
        """
        position = self.checkpoint()
        latest = self.source.latest_sequence()
        if self.source.continue_above(position):
            log.warning(
                "%s: the pipe's checkpoint is at position %d but the change stream in %s ends"
                " at %d (restored from an older copy?): new changes continue above the"
                " checkpoint, so none is skipped",
                self.db.path,
                position,
                self.source.db.path,
                latest,
            )
        horizon = self.source.trim_horizon()
        if 0 < position < horizon:
            log.warning(
                "%s: the pipe's checkpoint is at position %d, under the change stream's trim"
                " horizon %d (the file was restored from an older copy): retention trimmed"
                " only what the pipe had passed, so it goes on from the horizon",
                self.db.path,
                position,
                horizon,
            )
            with self.db.write() as connection:
                connection.execute("INSERT OR REPLACE INTO checkpoint VALUES (1, ?)", (horizon,))
            position = horizon
        return position

    def step(self) -> int:
        """Move one batch if it is full or its window has passed; returns records moved."""
        rows = self.source.read_stream(self.position, self.batch_size)
        if not rows:
            self._waiting_since, self._flush_requested = None, False
            return 0
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        if (
            len(rows) < self.batch_size
            and not self._flush_requested
            and now - self._waiting_since < self.batching_window_s
        ):
            return 0
        placed: dict[int, int] = {}
        refused = self._put(rows, placed)
        self.position = rows[-1][0]
        with self.db.write() as connection:  # the dead letters and the checkpoint together
            connection.executemany(
                "INSERT OR REPLACE INTO sent VALUES (?, ?, ?, ?)",
                [(rows[0][0], rows[-1][0], shard, top) for shard, top in placed.items()],
            )
            for row, reason, attempts in refused:
                body = json.dumps(self._dead_letter(row, reason, attempts))
                connection.execute(
                    "INSERT INTO dead_letters (sent, body) VALUES (?, ?)", (time.time(), body)
                )
            connection.execute("INSERT OR REPLACE INTO checkpoint VALUES (1, ?)", (self.position,))
        self._waiting_since, self._flush_requested = None, False
        return len(rows)

    def _put(self, rows: list, placed: dict[int, int]) -> list[tuple[Any, str, int]]:
        """Put the rows' records; the ones the stream refuses, with the reason and the
        attempts made, after bisecting and retrying them (the others are put, in order).
        ``placed`` gets the newest position the records took in each shard."""
        records = [(key, record) for _, key, record, _ in rows]
        attempts = 0
        while attempts <= MAX_RETRY_ATTEMPTS:  # the first put, then the retries
            attempts += 1
            try:
                for shard_id, number in self.target.put_records(records):
                    shard, position = int(shard_id[8:]), int(number[8:])
                    placed[shard] = max(placed.get(shard, 0), position)
                return []
            except ValueError as error:  # the stream refused a record; nothing was written
                if len(rows) > 1:  # AUTOMATIC_BISECT: each half on its own
                    half = len(rows) // 2
                    return self._put(rows[:half], placed) + self._put(rows[half:], placed)
                reason = str(error)
        return [(rows[0], reason, attempts)]

    def resend_lost(self, delivered: dict[int, int]) -> int:
        """Send again what the stream lost before it was delivered; returns from how many
        source positions back the pipe starts again (0 when nothing was lost).

        A shard log that lost its tail, or a stream folder restored from an older copy, may
        have lost records the pipe put and the delivery stream (at ``delivered``) had not
        read yet. The pipe knows where each of its batches went: it moves its checkpoint back
        to the first batch with a record past both the shard's end and the delivery
        checkpoint, and sends from there again (duplicates are removed in SQL). Call it with
        the consumer's lock held, before the pipe runs.
        """
        tops = self.target.latest_sequences()
        firsts = [
            self.db.scalar(
                "SELECT min(first) FROM sent WHERE shard = ? AND position > ?",
                (shard, max(top, delivered.get(shard, 0))),
            )
            for shard, top in tops.items()
        ]
        lost = [first for first in firsts if first is not None]
        if not lost:
            return 0
        start = min(lost) - 1
        position = self.checkpoint()
        horizon = self.source.trim_horizon()
        if start < horizon:
            log.error(
                "%s: the stream in %s lost records the pipe put from change %d on, before"
                " they were delivered, and the change stream in %s has trimmed them up to %d:"
                " changes %d..%d are not in the lake. Restore the stream's folder from a newer"
                " copy to deliver them",
                self.db.path,
                self.target.path,
                start + 1,
                self.source.db.path,
                horizon,
                start + 1,
                horizon,
            )
            start = horizon
        if start >= position:
            return 0
        log.warning(
            "%s: the stream in %s lost records the pipe put (its tail was lost, or it was"
            " restored from an older copy) before they were delivered: the pipe sends again"
            " from change %d",
            self.db.path,
            self.target.path,
            start + 1,
        )
        with self.db.write() as connection:
            connection.execute("INSERT OR REPLACE INTO checkpoint VALUES (1, ?)", (start,))
            connection.execute("DELETE FROM sent WHERE last > ?", (start,))
        self.position = start
        return position - start

    def trim_sent(self, delivered: dict[int, int]) -> int:
        """Forget where batches went once the delivery stream has read past them."""
        with self.db.write() as connection:
            return sum(
                connection.execute(
                    "DELETE FROM sent WHERE shard = ? AND position <= ?", (shard, seq)
                ).rowcount
                for shard, seq in delivered.items()
            )

    def _dead_letter(self, row, reason: str, attempts: int) -> dict[str, Any]:
        """The dead-letter message of a refused stream record."""
        _, _, record, created = row
        sequence = json.loads(record)["dynamodb"]["SequenceNumber"]
        arrival = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        return {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "pipeArn": self.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {"errorMessage": reason},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "DDBStreamBatchInfo": {
                "shardId": f"shardId-{self.source.stream_arn.rsplit('/', 1)[-1]}",
                "startSequenceNumber": sequence,
                "endSequenceNumber": sequence,
                "approximateArrivalOfFirstRecord": arrival,
                "approximateArrivalOfLastRecord": arrival,
                "batchSize": 1,
                "streamArn": self.source.stream_arn,
            },
        }

    def dead_letters(self) -> list[dict[str, Any]]:
        """The dead-letter queue's messages, oldest first."""
        rows = self.db.read("SELECT body FROM dead_letters ORDER BY id")
        return [json.loads(body) for (body,) in rows]

    def trim_dead_letters(self, now: float | None = None) -> int:
        """Drop dead letters older than the queue's ``MessageRetentionPeriod`` (14 days in the
        template, the most SQS keeps a message); returns how many."""
        cutoff = (time.time() if now is None else now) - DEAD_LETTER_RETENTION_S
        with self.db.write() as connection:
            return connection.execute("DELETE FROM dead_letters WHERE sent < ?", (cutoff,)).rowcount

    def dead_letter_count(self) -> int:
        return self.db.scalar("SELECT count(*) FROM dead_letters") or 0

    def spec(self) -> PipeSpec:
        """What another process needs to open this pipe."""
        return PipeSpec(
            state_path=self.db.path,
            name=self.name,
            source_path=self.source.db.path,
            source_name=self.source.name,
            target_path=self.target.path,
            target_name=self.target.name,
            shard_count=len(self.target.shards),
            batch_size=self.batch_size,
            batching_window_s=self.batching_window_s,
            region=self.region,
            account_id=self.account_id,
        )

    def close(self) -> None:
        self.db.close()


@dataclass(frozen=True)
class PipeSpec:
    """A pipe's files and settings; small and picklable."""

    state_path: Path
    name: str
    source_path: Path
    source_name: str
    target_path: Path
    target_name: str
    shard_count: int
    batch_size: int
    batching_window_s: float
    region: str
    account_id: str

    def open(self) -> Pipe:
        """The pipe, with its source and target, resuming from its checkpoint."""
        source = Table(self.source_path, self.source_name, self.region, self.account_id)
        target = Stream(
            self.target_path, self.target_name, self.shard_count, self.region, self.account_id
        )
        return Pipe(
            self.state_path,
            self.name,
            source,
            target,
            self.batch_size,
            self.batching_window_s,
            self.region,
            self.account_id,
        )


class PipeRunner:
    """Steps a pipe in a runtime process of its own; the caller keeps only this handle.

    Each :meth:`step` has the runtime step the pipe until it is idle (or ``RUN_SECONDS``
    passed) and returns the records moved. The runtime's pipe keeps its batching window
    between calls, and checkpoints after every put, as the pipe does in process.
    """

    def __init__(self, pipe: Pipe, log_dir: Path):
        self.spec = pipe.spec()
        self.function = Function(
            f"{pipe.name}-runtime",
            f"{__name__}.step_in_runtime",
            pipe.arn,
            log_dir,
            "salescast.pipes",
            log_name=pipe.name,
        )
        self._flush_requested = False

    def request_flush(self) -> None:
        """Send a partial batch at the next step, without waiting for the batching window."""
        self._flush_requested = True

    def step(self) -> int:
        flush, self._flush_requested = self._flush_requested, False
        return self.function.invoke((self.spec, flush))

    def close(self) -> None:
        self.function.close()


_opened: dict[PipeSpec, tuple[Pipe, int]] = {}


def step_in_runtime(event: tuple[PipeSpec, bool], context: Any) -> int:
    """The runtime's entry point: step the pipe (opened once per process) until it is idle.

    It stops early once the process that started it is gone, so a consumer that was killed
    leaves no orphan moving records beside its successor for more than one batch.
    """
    spec, flush = event
    if spec not in _opened:
        _opened[spec] = (spec.open(), os.getppid())
    pipe, parent = _opened[spec]
    if flush:
        pipe.request_flush()
    moved, deadline = 0, time.monotonic() + RUN_SECONDS
    while os.getppid() == parent and time.monotonic() < deadline:
        count = pipe.step()
        if not count:
            break
        moved += count
    return moved
