"""Kinesis reads: ListShards paged by NextToken alone, as the API requires."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from helpers.aws import kinesis


def shard(number: int) -> dict:
    return {
        "ShardId": f"shardId-{number:012d}",
        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"},
        "SequenceNumberRange": {"StartingSequenceNumber": "1"},
    }


def test_list_shards_sends_the_stream_name_only_on_the_first_page():
    """ListShards rejects StreamName with NextToken (InvalidArgumentException); the stub
    fails on any call whose parameters differ from these."""
    client = boto3.client("kinesis", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response(
            "list_shards", {"Shards": [shard(0)], "NextToken": "a"}, {"StreamName": "s"}
        )
        stub.add_response(
            "list_shards", {"Shards": [shard(1)], "NextToken": "b"}, {"NextToken": "a"}
        )
        stub.add_response("list_shards", {"Shards": [shard(2)]}, {"NextToken": "b"})
        shards = kinesis.list_shards(client, "s")
        stub.assert_no_pending_responses()
    assert [s["ShardId"] for s in shards] == [shard(n)["ShardId"] for n in range(3)]
