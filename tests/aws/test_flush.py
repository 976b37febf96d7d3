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


def test_flush_waits_for_the_consumer_on_the_days_it_keeps(platform, make_orders):
    """With ``realtime``, flush returns once the consumer's contribution of every delivered
    change of today or yesterday carries its SequenceNumber; older days are not waited for."""
    from helpers import realtime as rt
    from tests.aws.test_realtime import create_tables_of_the_template
    from tests.test_realtime import kinesis_event

    create_tables_of_the_template(platform.settings)
    orders = make_orders(12)  # in 2025, but for the first 8: today or yesterday
    now = pd.Timestamp.now(tz="UTC").floor("s")
    orders.loc[:7, "order_ts"] = [now - pd.Timedelta(hours=2 * i) for i in range(8)]
    platform.orders.put(orders)
    platform.orders.update(orders.order_id[0], quantity=9)
    platform.orders.delete([orders.order_id[1]])
    records = pipe(platform)
    deliver(platform, records)
    platform.flush(timeout=0.5, realtime=False)  # the lake has them all

    store = rt.DynamoStore(
        platform.settings.expectations_table_name,
        platform.settings.nowcast_table_name,
        dynamodb=boto3.client("dynamodb"),
    )
    event = kinesis_event([json.dumps(record) for record in records])
    changes = [rt.read_record(record) for record in event["Records"]]
    assert [c.event_name for c in changes[-2:]] == ["MODIFY", "REMOVE"]
    store.apply(changes[:-1], rt.Config(), rt.wall_ms())  # all but the delete
    with pytest.raises(PipelineStuckError, match="realtime consumer did not catch up") as stuck:
        platform.flush(timeout=0.5)
    assert stuck.value.pending == 1 and platform.names.consumer_function_name in str(stuck.value)

    store.apply(changes[-1:], rt.Config(), rt.wall_ms())
    platform.flush(timeout=0.5)

    platform.orders.update(orders.order_id[10], quantity=7)  # of 2025: not the consumer's
    deliver(platform, pipe(platform)[-1:])
    platform.flush(timeout=0.5)


def test_a_stack_without_the_consumer_has_none_to_wait_for(platform, make_orders):
    orders = make_orders(3).assign(order_ts=pd.Timestamp.now(tz="UTC").floor("s"))
    platform.orders.put(orders)
    deliver(platform, pipe(platform))
    platform.flush(timeout=0.5)  # the lake alone: the stack has no nowcast table
    assert platform.status().set_index("stage").loc["change stream", "pending"] == 0
