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


def list_shards(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard of the stream. Paged by hand: ListShards refuses ``StreamName`` together
    with ``NextToken``, which botocore's paginator sends (boto/botocore#2009)."""
    response = client.list_shards(StreamName=stream)
    shards = response["Shards"]
    while response.get("NextToken"):
        response = client.list_shards(NextToken=response["NextToken"])
        shards.extend(response["Shards"])
    return shards


def read_since(client: Any, stream: str, since: float) -> Iterator[bytes]:
    """Every record's data put on the stream since ``since`` (epoch seconds), shard by shard."""
    shards = list_shards(client, stream)
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
