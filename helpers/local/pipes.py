"""The pipe from the table's change stream to the Kinesis stream (EventBridge Pipes).

It reads stream records in batches (batch size, batching window), puts each one as the JSON
that Pipes sends (the stream record itself) into the Kinesis stream with partition key
``$.dynamodb.Keys.order_id.S``, and checkpoints its position only after the put succeeded.
A crash between the put and the checkpoint re-sends the batch: at-least-once, as Pipes is.

Not emulated: filtering, enrichment, input transformers, the dead-letter queue (a put that
fails is retried until it succeeds, since the local stream only fails on a full disk), and
parallelization factor (one batch at a time keeps per-key order), and the 500-record limit
of PutRecords (a batch goes to the stream in one local call).
"""

from __future__ import annotations

import time
from pathlib import Path

from helpers.local.dynamodb import Table
from helpers.local.kinesis import Stream
from helpers.local.sqlite import Database

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER);"
)


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
        self.name = name
        self.arn = f"arn:aws:pipes:{region}:{account_id}:pipe/{name}"
        self.source, self.target = source, target
        self.batch_size, self.batching_window_s = batch_size, batching_window_s
        self.db = Database(state_path, _SCHEMA)
        self.position = self.checkpoint()
        self._waiting_since: float | None = None
        self._flush_requested = False

    def request_flush(self) -> None:
        """Send a partial batch at the next step, without waiting for the batching window."""
        self._flush_requested = True

    def checkpoint(self) -> int:
        """The committed position in the source stream."""
        return self.db.scalar("SELECT seq FROM checkpoint WHERE id = 1") or 0

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
        self.target.put_records([(key, record.encode()) for _, key, record, _ in rows])
        self.position = rows[-1][0]
        with self.db.write() as connection:
            connection.execute("INSERT OR REPLACE INTO checkpoint VALUES (1, ?)", (self.position,))
        self._waiting_since, self._flush_requested = None, False
        return len(rows)

    def close(self) -> None:
        self.db.close()
