"""Kinesis: reading the change stream from a point in time (to tell where changes stopped).

Reads are GetRecords calls shared with Firehose's own reads of the stream (five a second per
shard), so they are made only when a flush times out, and paced.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

PACE_S = 0.25


def read_since(client: Any, stream: str, since: float) -> Iterator[bytes]:
    """Every record's data put on the stream since ``since`` (epoch seconds), shard by shard."""
    shards = []
    for page in client.get_paginator("list_shards").paginate(StreamName=stream):
        shards.extend(page["Shards"])
    start = datetime.fromtimestamp(since, UTC)
    for shard in shards:
        iterator = client.get_shard_iterator(
            StreamName=stream,
            ShardId=shard["ShardId"],
            ShardIteratorType="AT_TIMESTAMP",
            Timestamp=start,
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10_000)
            for record in response["Records"]:
                yield record["Data"]
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
            time.sleep(PACE_S)
