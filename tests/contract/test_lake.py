"""The lake and the catalog on every backend: objects with their partitions, reads of the
change log, and write_dataset registering a partitioned table."""

from __future__ import annotations

import base64
import io
import json
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers.schema import LAKE_FIELDS, LAKE_SCHEMA, PARTITION_KEYS


def lake_rows(n: int, day: str, seq0: int) -> pd.DataFrame:
    """n change-log rows of one order day, as Firehose writes them."""
    ts = pd.Timestamp(day) + pd.to_timedelta(range(n), unit="min")
    return pd.DataFrame(
        {
            "order_id": [f"o-{day}-{i}" for i in range(n)],
            "order_ts": ts,
            "customer_id": "c-1",
            "product_id": [f"p-{i % 3}" for i in range(n)],
            "product_name": 'Teal "Lamp"',
            "category": "home",
            "channel": "web",
            "quantity": range(1, n + 1),
            "unit_price": 9.5,
            "event_name": "INSERT",
            "event_seq": [str(seq0 + i).zfill(40) for i in range(n)],
            "event_ts": ts,
            "attributes": None,
        }
    )


def parquet(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    table = pa.Table.from_pandas(frame, schema=LAKE_SCHEMA, preserve_index=False)
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


def object_key(prefix: str, day: str) -> str:
    year, month, date = day.split("-")
    return (
        f"{prefix}year={year}/month={month}/day={date}/"
        f"salescast-lake-delivery-1-{day}-10-00-00-{uuid.uuid4()}.parquet"
    )


def test_an_empty_lake(platform):
    assert list(platform.read_lake().columns) == [*LAKE_FIELDS, *PARTITION_KEYS]
    assert len(platform.read_lake()) == 0
    objects = platform.lake_objects()
    assert list(objects.columns) == ["key", "size", "last_modified", *PARTITION_KEYS]
    assert len(objects) == 0


def test_lake_objects_and_reads(platform, probe):
    prefix = platform.settings.lake_prefix
    days = {
        "2025-01-05": lake_rows(3, "2025-01-05", 100),
        "2025-02-10": lake_rows(2, "2025-02-10", 200),
    }
    keys = {day: object_key(prefix, day) for day in days}
    for day, rows in days.items():
        probe.put_object(keys[day], parquet(rows))
    error_key = (
        f"{platform.settings.error_prefix}processing-failed/2025/01/05/failed-{uuid.uuid4()}"
    )
    failed = {
        "attemptsMade": 1,
        "arrivalTimestamp": 1767607201500,
        "errorCode": "Lambda.ProcessingFailedStatus",
        "errorMessage": "ProcessingFailed status returned from Lambda",
        "attemptEndingTimestamp": 1767607262000,
        "rawData": base64.b64encode(b'{"eventName":"INSERT"}').decode(),
        "lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:salescast-transform:$LATEST",
    }
    probe.put_object(error_key, (json.dumps(failed) + "\n" + json.dumps(failed) + "\n").encode())

    objects = platform.lake_objects().sort_values("key").reset_index(drop=True)
    assert objects.key.tolist() == sorted(keys.values())
    assert objects[["year", "month", "day"]].values.tolist() == [
        ["2025", "01", "05"],
        ["2025", "02", "10"],
    ]
    assert (objects["size"] == [len(probe.get_object(k)) for k in objects.key]).all()
    assert pd.to_datetime(objects.last_modified, utc=True).notna().all()
    errors = platform.lake_objects(platform.settings.error_prefix)
    assert errors.key.tolist() == [error_key]
    documents = platform.read_errors()
    assert len(documents) == 2 and len(platform.read_errors(limit=1)) == 1
    assert documents.errorCode.tolist() == ["Lambda.ProcessingFailedStatus"] * 2
    assert documents.record[0] == '{"eventName":"INSERT"}'
    assert documents.arrivalTimestamp[0] == pd.Timestamp(1767607201500, unit="ms", tz="UTC")

    lake = platform.read_lake().sort_values("event_seq").reset_index(drop=True)
    assert len(lake) == 5
    assert lake.order_id.tolist() == [*days["2025-01-05"].order_id, *days["2025-02-10"].order_id]
    assert lake.quantity.tolist() == [1, 2, 3, 1, 2]
    assert lake.product_name.iloc[0] == 'Teal "Lamp"'
    assert lake.year.tolist() == ["2025"] * 5 and lake.month.tolist() == ["01"] * 3 + ["02"] * 2
    assert (pd.to_datetime(lake.order_ts) == pd.concat(days.values()).order_ts.values).all()
    assert len(platform.read_lake(limit=2)) == 2


def test_write_dataset_registers_a_partitioned_table(platform, probe):
    database = platform.settings.database
    first = pd.DataFrame(
        {"unique_id": ["p-1", "p-2"], "ds": pd.to_datetime(["2026-01-01"] * 2), "yhat": [1.5, 2.5]}
    )
    location = platform.write_dataset("forecasts", first, {"run_id": "r1"})
    assert location.endswith("/forecasts/run_id=r1/")
    table = probe.table(database, "forecasts")
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert columns == ["unique_id", "ds", "yhat"]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["run_id"]
    assert probe.partitions(database, "forecasts") == [["r1"]]

    second = first.assign(yhat_lower=[1.0, 2.0])  # a new column widens the table
    platform.write_dataset("forecasts", second, {"run_id": "r2"})
    table = probe.table(database, "forecasts")
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == [*columns, "yhat_lower"]
    assert probe.partitions(database, "forecasts") == [["r1"], ["r2"]]
    catalog = platform.catalog_tables().set_index("name")
    assert catalog.loc[
        "forecasts", ["database", "type", "columns", "partition_keys", "partitions"]
    ].tolist() == [database, "table", 4, "run_id", 2]

    platform.write_dataset("forecasts", first.head(1), {"run_id": "r1"})  # overwrites its partition
    written = platform.lake_objects("forecasts/run_id=r1/")
    assert len(written) == 1
    body = probe.get_object(written.key[0])
    assert pq.read_table(io.BytesIO(body)).num_rows == 1


ERROR_DOCUMENTS = {
    "processing-failed": {"errorCode": "Lambda.ProcessingFailedStatus", "errorMessage": "failed"},
    "format-conversion-failed": {
        "ErrorCode": "DataFormatConversion.MalformedData",
        "ErrorMessage": "now",
    },
    "format-conversion-failed/old": {
        "lastErrorCode": "DataFormatConversion.Old",
        "lastErrorMessage": "before",
    },
}
"""Error document shapes by Firehose's documentation: processing failures, then format
conversion failures as documented today and as documented (and written) before."""


def test_every_documented_error_shape_is_read(platform, probe):
    for folder, fields in ERROR_DOCUMENTS.items():
        document = {
            "attemptsMade": 1,
            "arrivalTimestamp": 1767607201500,
            **fields,
            "attemptEndingTimestamp": 1767607262000,
            "rawData": base64.b64encode(b"{}").decode(),
        }
        key = f"{platform.settings.error_prefix}{folder}/2026/01/05/failed-{uuid.uuid4()}"
        probe.put_object(key, (json.dumps(document) + "\n").encode())
    documents = platform.read_errors().sort_values("errorCode")
    assert documents[["errorCode", "errorMessage"]].values.tolist() == [
        ["DataFormatConversion.MalformedData", "now"],
        ["DataFormatConversion.Old", "before"],
        ["Lambda.ProcessingFailedStatus", "failed"],
    ]


def test_status_shows_the_same_stages(platform):
    status = platform.status()
    assert list(status.columns) == [
        "stage",
        "records",
        "pending",
        "failed",
        "seconds_since_delivery",
        "detail",
    ]
    assert status.stage.tolist() == [
        "table",
        "change stream",
        "kinesis stream",
        "lake",
        "realtime consumer",
    ]
