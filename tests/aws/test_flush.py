"""flush on aws, against moto: it names the stage that holds the changes (pipe, delivery
stream) and returns once the lake shows them. moto runs neither the pipe nor Firehose, so the
tests do their work: stream records into Kinesis, the transform's rows into the lake."""

from __future__ import annotations

import base64
import io
import json
import uuid

import boto3
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import transform
from helpers.aws import kinesis
from helpers.exceptions import PipelineStuckError
from helpers.schema import LAKE_SCHEMA
from tests.contract.conftest import AwsProbe


@pytest.fixture
def platform(aws_platform, monkeypatch):
    monkeypatch.setattr(kinesis, "PACE_S", 0.0)
    return aws_platform


def pipe(platform) -> list[dict]:
    """Do the pipe's work: every stream record, as JSON, into the Kinesis stream."""
    records = AwsProbe(platform).stream_records()
    client = boto3.client("kinesis")
    for record in records:
        client.put_record(
            StreamName=platform.names.stream_name,
            Data=json.dumps(record).encode(),
            PartitionKey=record["dynamodb"]["Keys"]["order_id"]["S"],
        )
    return records


def deliver(platform, records: list[dict]) -> None:
    """Do Firehose's work: transform the records and write each partition's rows as Parquet."""
    event = {
        "records": [
            {"recordId": str(i), "data": base64.b64encode(json.dumps(r).encode()).decode()}
            for i, r in enumerate(records)
        ]
    }
    partitions: dict[tuple, list[dict]] = {}
    for result in transform.lambda_handler(event, None)["records"]:
        keys = result["metadata"]["partitionKeys"]
        row = json.loads(base64.b64decode(result["data"]))
        partitions.setdefault((keys["year"], keys["month"], keys["day"]), []).append(row)
    for (year, month, day), rows in partitions.items():
        frame = pd.DataFrame(rows)
        for column in ("order_ts", "event_ts"):
            frame[column] = pd.to_datetime(frame[column])
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, schema=LAKE_SCHEMA, preserve_index=False), sink)
        key = (
            f"{platform.names.lake_prefix}year={year}/month={month}/day={day}/"
            f"salescast-lake-delivery-1-{uuid.uuid4()}.parquet"
        )
        AwsProbe(platform).put_object(key, sink.getvalue())


def test_flush_names_the_pipe_then_the_delivery_stream_then_returns(platform, make_orders):
    orders = make_orders(20)
    platform.orders.put(orders)
    platform.orders.update(orders.order_id[0], quantity=9)
    platform.orders.delete([orders.order_id[1]])

    with pytest.raises(PipelineStuckError, match="pipe did not catch up") as stuck:
        platform.flush(timeout=0.5)
    assert stuck.value.pending == 20
    assert platform.status().set_index("stage").loc["change stream", "pending"] == 20

    records = pipe(platform)
    with pytest.raises(PipelineStuckError, match="delivery stream did not catch up") as stuck:
        platform.flush(timeout=0.5)
    assert stuck.value.pending == 20
    assert "still be buffering" in str(stuck.value)

    deliver(platform, records[:-1])  # all but the delete
    with pytest.raises(PipelineStuckError) as stuck:
        platform.flush(timeout=0.5)
    assert stuck.value.pending == 1

    deliver(platform, records[-1:])
    platform.flush(timeout=0.5)
    assert len(platform.expectations) == 0
    assert platform.status().set_index("stage").loc["change stream", "pending"] == 0
    platform.flush(timeout=0.5)  # nothing written since: returns at once


def test_a_write_that_changes_nothing_is_confirmed_by_the_earlier_event(platform, make_orders):
    orders = make_orders(5)
    platform.orders.put(orders)
    deliver(platform, pipe(platform))
    platform.flush(timeout=0.5)
    platform.orders.put(orders.head(2))  # DynamoDB Streams records nothing for this
    platform.flush(timeout=0.5)


def test_failed_records_are_named_in_the_hint(platform, make_orders):
    platform.orders.put(make_orders(3))
    pipe(platform)
    AwsProbe(platform).put_object(
        f"{platform.names.error_prefix}processing-failed/2026/01/05/x", b"{}"
    )
    with pytest.raises(PipelineStuckError, match=r"1 object\(s\) of failed records"):
        platform.flush(timeout=0.5)
