"""The moto peer: the same orders through moto's in-process AWS services, with the same transform.

This is what a user would otherwise reach for to run the pipeline without an account: boto3
clients against ``moto.mock_aws()``. :func:`run_moto_pipeline` writes the orders to a DynamoDB
table with streams on, plays the EventBridge Pipe by reading DynamoDB Streams into a Kinesis
stream, plays Firehose's source reader by reading Kinesis into Firehose transformation events
for ``helpers.transform.lambda_handler``, and puts the ``Ok`` rows into a Firehose delivery
stream that moto writes to S3. It measures orders per second from the first table write to the
last object delivered, and checks that S3 holds exactly the ``Ok`` rows.

Everything runs in one process, synchronously: each API call goes through botocore's
serialiser and moto's parser, model and response serialiser, so the figure is the cost of that
round trip (most of it moto serialising DynamoDB Streams records), not of any network.

What moto (5.2) does not do, so this script does it or goes without:

- DynamoDB Streams: one shard per table; records lack ``eventSourceARN``, ``awsRegion`` is
  always ``us-east-1``, ``SizeBytes`` is an overestimate. The script adds the ARN and region and
  turns ``ApproximateCreationDateTime`` back into epoch seconds, as Pipes would deliver it.
  botocore sends calls with a ``StreamArn`` to ``<account>.streams-ddb.<region>`` endpoints,
  which moto does not route, so the Streams client is pinned to ``streams.dynamodb.<region>``.
- EventBridge Pipes: a pipe from a stream to Kinesis is not run; the script is the pipe.
- Firehose: a ``KinesisStreamAsSource`` delivery stream is accepted but never reads its stream,
  and the transformation Lambda (``ProcessingConfiguration``) is never called, so the stream is
  ``DirectPut`` and the script reads Kinesis and calls the transform itself. Each
  ``PutRecordBatch`` becomes one S3 object at once: no buffering by size or time, no
  record-format conversion (``DataFormatConversionConfiguration`` is dropped; the lake stays
  JSON lines, not Parquet), no dynamic partitioning (``partitionKeys`` are ignored; keys are
  ``<prefix>YYYY/MM/DD/HH/`` of arrival time, not ``sales/year=/month=/day=`` of order date),
  no ``errors/processing-failed/`` output.
- Limits and throttling (Kinesis shard write rates, DynamoDB capacity, Firehose quotas) are
  not enforced.

Examples
--------
>>> result = run_moto_pipeline(orders, progress=False)  # doctest: +SKIP
>>> result["lake_records"] == result["orders"]  # doctest: +SKIP
True
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import moto
import pandas as pd
from tqdm.auto import tqdm

from helpers.schema import KEY, items_json, validated_table
from helpers.transform import lambda_handler

TABLE = "orders"
KINESIS_STREAM = "orders-changes"
BUCKET = "sales-lake"
DELIVERY_STREAM = "orders-lake"
SHARDS = 2
DYNAMODB_BATCH = 25
KINESIS_BATCH = 500
FIREHOSE_BATCH = 500
STREAMS_LIMIT = 1000
KINESIS_LIMIT = 10000
EVENT_BYTES = 1_000_000  # Firehose's default Lambda buffer is 1 MB
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}


def run_moto_pipeline(
    orders: pd.DataFrame, region: str = "us-east-1", progress: bool = True
) -> dict:
    """Push orders through moto's DynamoDB, Streams, Kinesis, Firehose and S3; time it.

    Parameters
    ----------
    orders : pandas.DataFrame
        Orders with the columns of ``helpers.schema.ORDER_FIELDS`` (``order_ts`` UTC).
    region : str
        The AWS region the mocked resources live in.
    progress : bool
        Show a tqdm progress bar per stage.

    Returns
    -------
    dict
        ``orders``, ``seconds`` (first table write to last delivery), ``orders_per_s``,
        ``s3_objects``, ``lake_records`` and ``stages``: seconds per stage (``setup`` and
        ``count`` are outside ``seconds``; ``table``, ``pipe`` and ``firehose`` add up to it).

    Raises
    ------
    RuntimeError
        If S3 does not hold exactly the transform's ``Ok`` records.
    """
    items = [json.loads(text) for text in items_json(validated_table(orders))[0]]
    for name, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    stages: dict[str, float] = {}
    with moto.mock_aws():
        started = time.perf_counter()
        clients = _clients(region)
        arns = _provision(clients, region)
        stages["setup"] = time.perf_counter() - started

        began = time.perf_counter()
        _write_table(clients["dynamodb"], items, progress)
        stages["table"] = time.perf_counter() - began

        began = time.perf_counter()
        changes = _pipe(clients, arns, region, len(items), progress)
        stages["pipe"] = time.perf_counter() - began

        began = time.perf_counter()
        ok = _deliver(clients, arns, region, changes, progress)
        stages["firehose"] = time.perf_counter() - began
        seconds = time.perf_counter() - started - stages["setup"]

        began = time.perf_counter()
        objects, records = _count_lake(clients["s3"])
        stages["count"] = time.perf_counter() - began
    if records != ok:
        raise RuntimeError(f"S3 holds {records} records; the transform returned {ok} Ok records")
    return {
        "orders": len(items),
        "seconds": seconds,
        "orders_per_s": len(items) / seconds if seconds else float("inf"),
        "s3_objects": objects,
        "lake_records": records,
        "stages": stages,
    }


def _clients(region: str) -> dict[str, Any]:
    names = ("dynamodb", "kinesis", "firehose", "s3")
    clients = {name: boto3.client(name, region_name=region) for name in names}
    # botocore resolves a StreamArn to <account>.streams-ddb.<region>.amazonaws.com,
    # which moto 5.2 does not route; the classic endpoint works on both.
    clients["dynamodbstreams"] = boto3.client(
        "dynamodbstreams",
        region_name=region,
        endpoint_url=f"https://streams.dynamodb.{region}.amazonaws.com",
    )
    return clients


def _provision(clients: dict[str, Any], region: str) -> dict[str, str]:
    """Create the table, the Kinesis stream, the bucket and the delivery stream; their ARNs."""
    table = clients["dynamodb"].create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    kinesis = clients["kinesis"]
    kinesis.create_stream(StreamName=KINESIS_STREAM, ShardCount=SHARDS)
    kinesis.get_waiter("stream_exists").wait(StreamName=KINESIS_STREAM)
    kinesis_arn = kinesis.describe_stream_summary(StreamName=KINESIS_STREAM)[
        "StreamDescriptionSummary"
    ]["StreamARN"]
    if region == "us-east-1":
        clients["s3"].create_bucket(Bucket=BUCKET)
    else:
        clients["s3"].create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": region}
        )
    firehose_arn = clients["firehose"].create_delivery_stream(
        DeliveryStreamName=DELIVERY_STREAM,
        DeliveryStreamType="DirectPut",  # moto never reads a KinesisStreamAsSource stream
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": "sales/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
        },
    )["DeliveryStreamARN"]
    return {
        "stream": table["LatestStreamArn"],
        "kinesis": kinesis_arn,
        "firehose": firehose_arn,
    }


def _bar(total: int, stage: str, progress: bool) -> tqdm:
    return tqdm(total=total, desc=stage, unit="rec", disable=not progress, leave=False)


def _write_table(dynamodb: Any, items: list[dict], progress: bool) -> None:
    """``batch_write_item`` 25 items a call (no key twice in one call); retry unprocessed."""
    with _bar(len(items), "table", progress) as bar:
        for batch in _key_batches(items):
            requests = {TABLE: [{"PutRequest": {"Item": item}} for item in batch]}
            delay = 0.01
            while requests:
                response = dynamodb.batch_write_item(RequestItems=requests)
                requests = response.get("UnprocessedItems") or {}
                if requests:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
            bar.update(len(batch))


def _key_batches(items: list[dict]) -> Iterator[list[dict]]:
    batch: list[dict] = []
    keys: set[str] = set()
    for item in items:
        key = item[KEY]["S"]
        if len(batch) == DYNAMODB_BATCH or key in keys:
            yield batch
            batch, keys = [], set()
        batch.append(item)
        keys.add(key)
    if batch:
        yield batch


def _pipe(
    clients: dict[str, Any], arns: dict[str, str], region: str, expected: int, progress: bool
) -> int:
    """Read every DynamoDB Streams shard and put its records, as JSON, into Kinesis."""
    streams = clients["dynamodbstreams"]
    shards = _stream_shards(streams, arns["stream"])
    count = 0
    with _bar(expected, "pipe", progress) as bar:
        for shard_id in shards:
            iterator = streams.get_shard_iterator(
                StreamArn=arns["stream"], ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                response = streams.get_records(ShardIterator=iterator, Limit=STREAMS_LIMIT)
                records = response["Records"]
                if not records:  # caught up (moto's shards stay open)
                    break
                entries = [_kinesis_entry(record, arns["stream"], region) for record in records]
                for start in range(0, len(entries), KINESIS_BATCH):
                    _put_kinesis(clients["kinesis"], entries[start : start + KINESIS_BATCH])
                count += len(records)
                bar.update(len(records))
                iterator = response.get("NextShardIterator")
    return count


def _stream_shards(streams: Any, arn: str) -> list[str]:
    shards: list[str] = []
    kwargs: dict[str, str] = {"StreamArn": arn}
    while True:
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        shards += [shard["ShardId"] for shard in description["Shards"]]
        last = description.get("LastEvaluatedShardId")
        if not last:
            return shards
        kwargs["ExclusiveStartShardId"] = last


def _kinesis_entry(record: dict, stream_arn: str, region: str) -> dict:
    """A Streams record as Pipes forwards it (Lambda event shape) in a Kinesis entry."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):  # botocore parsed it; the event carries epoch seconds
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    shaped = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": region,
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }
    key = change["Keys"][KEY]["S"]
    return {"Data": json.dumps(shaped, separators=(",", ":")).encode(), "PartitionKey": key}


def _put_until_accepted(send, entries: list[dict], failed: str, answers: str) -> None:
    """Send a batch (PutRecords, PutRecordBatch); send again the entries that failed."""
    delay = 0.01
    while entries:
        response = send(entries)
        if not response.get(failed):
            return
        entries = [
            entry
            for entry, answer in zip(entries, response[answers], strict=True)
            if "ErrorCode" in answer
        ]
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _put_kinesis(kinesis: Any, entries: list[dict]) -> None:
    """``put_records`` one batch until every entry is accepted."""
    _put_until_accepted(
        lambda batch: kinesis.put_records(StreamName=KINESIS_STREAM, Records=batch),
        entries,
        "FailedRecordCount",
        "Records",
    )


def _deliver(
    clients: dict[str, Any], arns: dict[str, str], region: str, expected: int, progress: bool
) -> int:
    """Read Kinesis, transform ~1 MB events with the Lambda, put Ok rows into Firehose."""
    kinesis = clients["kinesis"]
    shards = [
        shard["ShardId"] for shard in kinesis.list_shards(StreamName=KINESIS_STREAM)["Shards"]
    ]
    ok = 0
    with _bar(expected, "firehose", progress) as bar:
        for shard_id in shards:
            iterator = kinesis.get_shard_iterator(
                StreamName=KINESIS_STREAM, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                response = kinesis.get_records(ShardIterator=iterator, Limit=KINESIS_LIMIT)
                records = response["Records"]
                for event in _events(records, shard_id, arns, region):
                    ok += _transform_and_put(clients["firehose"], event)
                bar.update(len(records))
                if not records and not response.get("MillisBehindLatest"):
                    break  # caught up
                iterator = response.get("NextShardIterator")
    return ok


def _events(
    records: list[dict], shard_id: str, arns: dict[str, str], region: str
) -> Iterator[dict]:
    """Firehose transformation events of at most ``EVENT_BYTES`` of base64 data each."""
    batch: list[dict] = []
    size = 0
    for record in records:
        arrival = int(record["ApproximateArrivalTimestamp"].timestamp() * 1000)
        data = base64.b64encode(record["Data"]).decode("ascii")
        if batch and size + len(data) > EVENT_BYTES:
            yield _event(batch, arns, region)
            batch, size = [], 0
        batch.append(
            {
                "recordId": f"{record['SequenceNumber']}{len(batch):06d}",
                "approximateArrivalTimestamp": arrival,
                "data": data,
                "kinesisRecordMetadata": {
                    "sequenceNumber": record["SequenceNumber"],
                    "subsequenceNumber": 0,
                    "partitionKey": record["PartitionKey"],
                    "shardId": shard_id,
                    "approximateArrivalTimestamp": arrival,
                },
            }
        )
        size += len(data)
    if batch:
        yield _event(batch, arns, region)


def _event(records: list[dict], arns: dict[str, str], region: str) -> dict:
    return {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": arns["firehose"],
        "sourceKinesisStreamArn": arns["kinesis"],
        "region": region,
        "records": records,
    }


def _transform_and_put(firehose: Any, event: dict) -> int:
    """Call the transform on one event; ``put_record_batch`` its Ok rows; their count."""
    response = lambda_handler(event, None)
    rows = [
        {"Data": base64.b64decode(record["data"])}
        for record in response["records"]
        if record["result"] == "Ok"
    ]
    for start in range(0, len(rows), FIREHOSE_BATCH):
        _put_until_accepted(
            lambda batch: firehose.put_record_batch(
                DeliveryStreamName=DELIVERY_STREAM, Records=batch
            ),
            rows[start : start + FIREHOSE_BATCH],
            "FailedPutCount",
            "RequestResponses",
        )
    return len(rows)


def _count_lake(s3: Any) -> tuple[int, int]:
    """Objects in the bucket and the JSON lines they hold."""
    objects = records = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
            objects += 1
            records += sum(1 for line in body.splitlines() if line.strip())
    return objects, records
