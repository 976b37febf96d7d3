"""The delivery stream from Kinesis to the Parquet lake (helpers/local/firehose.py)."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from helpers.local.awslambda import Function, FunctionError
from helpers.local.firehose import DeliveryStream
from helpers.local.pipes import Pipe
from helpers.schema import LAKE_SCHEMA

from .conftest import ACCOUNT, REGION, orders

NAME = "lake-delivery"
PREFIX = (
    "sales/year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/"
    "day=!{partitionKeyFromLambda:day}/"
)
ERROR_PREFIX = (
    "errors/!{firehose:error-output-type}/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/"
)
DATA_KEY = re.compile(
    r"sales/year=(\d{4})/month=(\d{2})/day=(\d{2})/"
    rf"{NAME}-1-(\d{{4}}-\d{{2}}-\d{{2}}-\d{{2}}-\d{{2}}-\d{{2}})-"
    r"([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})\.parquet"
)
ERROR_DOCUMENT_KEYS = [
    "attemptsMade",
    "arrivalTimestamp",
    "errorCode",
    "errorMessage",
    "attemptEndingTimestamp",
    "rawData",
    "lambdaArn",
]


@pytest.fixture
def make_delivery():
    """``make_delivery(tmp_path, stream, function, bucket, ...)``; closed after the test."""
    made = []

    def make(tmp_path, stream, function, bucket, interval=0.2, size_mb=64.0, lambda_mb=1.0):
        delivery = _delivery(tmp_path, stream, function, bucket, interval, size_mb, lambda_mb)
        made.append(delivery)
        return delivery

    yield make
    for delivery in made:
        delivery.close()


def _delivery(tmp_path, stream, function, bucket, interval, size_mb, lambda_mb):
    return DeliveryStream(
        tmp_path / "firehose.sqlite",
        NAME,
        stream,
        function,
        bucket,
        PREFIX,
        ERROR_PREFIX,
        size_mb,
        interval,
        lambda_mb,
        REGION,
        ACCOUNT,
    )


def handler_function(tmp_path, handler: str) -> Function:
    return Function(
        handler,
        f"tests.local.handlers.{handler}",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{handler}",
        tmp_path / "logs",
        "salescast.transform",
        timeout_s=30,
    )


@pytest.fixture
def pump(tmp_path, table, stream):
    """``pump()`` moves every new change of the table into the Kinesis stream (a real Pipe)."""
    pipe = Pipe(tmp_path / "pipes.sqlite", "pipe", table, stream, 10_000, 0.0, REGION, ACCOUNT)

    def run() -> int:
        moved = pipe.step()
        assert pipe.checkpoint() == table.latest_sequence()
        return moved

    yield run
    pipe.close()


@pytest.fixture
def deliver_with(tmp_path, make_delivery, table, stream, bucket, pump):
    """``deliver_with(orders, handler)``: write, pipe and deliver them with a test handler."""
    functions = []

    def run(batch, handler: str) -> DeliveryStream:
        table.put_items(batch)
        pump()
        functions.append(handler_function(tmp_path, handler))
        delivery = make_delivery(tmp_path, stream, functions[-1], bucket)
        drain(delivery)
        return delivery

    yield run
    for function in functions:
        function.close()


def drain(delivery: DeliveryStream) -> None:
    """Read what is in the stream and deliver it now (what platform.flush asks for)."""
    delivery.request_flush()
    for _ in range(10):
        delivery.step()
        if not delivery.buffered and delivery.checkpoints() == delivery.source.latest_sequences():
            return
    raise AssertionError("the delivery stream did not catch up")


def expected_rows(table) -> list[dict]:
    """The lake rows of the table's stream records, computed here from the records."""
    rows = []
    for _, _, text, _ in table.read_stream(0, 1_000_000):
        record = json.loads(text)
        change = record["dynamodb"]
        image = change["OldImage" if record["eventName"] == "REMOVE" else "NewImage"]
        rows.append(
            {
                "order_id": image["order_id"]["S"],
                "order_ts": datetime.fromisoformat(image["order_ts"]["S"].replace("Z", "")),
                "customer_id": image["customer_id"]["S"],
                "product_id": image["product_id"]["S"],
                "product_name": image["product_name"]["S"],
                "category": image["category"]["S"],
                "channel": image["channel"]["S"],
                "quantity": int(image["quantity"]["N"]),
                "unit_price": float(image["unit_price"]["N"]),
                "event_name": record["eventName"],
                "event_seq": change["SequenceNumber"].zfill(40),
                "event_ts": datetime.fromtimestamp(
                    change["ApproximateCreationDateTime"], UTC
                ).replace(tzinfo=None),
                "attributes": None,  # orders with no other attributes
            }
        )
    return rows


def lake(bucket) -> tuple[list[dict], list[str]]:
    """Every row of the lake's Parquet objects, and the objects' keys; checks each object."""
    rows, keys = [], []
    for info in bucket.list_objects("sales/"):
        match = DATA_KEY.fullmatch(info.key)
        assert match, info.key
        path = bucket.local_path(info.key)
        parquet = pq.ParquetFile(path)
        assert parquet.schema_arrow.equals(LAKE_SCHEMA), parquet.schema_arrow
        meta = parquet.metadata
        assert meta.num_rows > 0
        for group in range(meta.num_row_groups):
            for column in range(meta.num_columns):
                assert meta.row_group(group).column(column).compression == "SNAPPY"
        table = pq.read_table(path)
        for row in table.to_pylist():
            year, month, day = match.group(1, 2, 3)
            assert row["order_ts"].strftime("%Y-%m-%d") == f"{year}-{month}-{day}"
            rows.append(row)
        keys.append(info.key)
    return rows, keys


def errors(bucket, output_type: str) -> list[tuple[str, dict]]:
    """(key, document) of every error record of one output type."""
    found = []
    for info in bucket.list_objects(f"errors/{output_type}/"):
        text = bucket.get_object(info.key).decode()
        assert text.endswith("\n")
        found += [(info.key, json.loads(line)) for line in text.splitlines()]
    return found


def by_seq(rows):
    return sorted(rows, key=lambda row: row["event_seq"])


def test_delivers_snappy_parquet_with_firehose_naming_and_the_right_rows(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    before = datetime.now(UTC).replace(microsecond=0)  # objects are named by records' arrival
    table.put_items(orders(*range(30)))
    table.put_items(orders(3, 4, 5, quantity=5, channel="store"))
    table.delete_items(["o-00004", "o-00029"])
    pump()
    delivery = make_delivery(tmp_path, stream, transform_function, bucket)
    drain(delivery)
    after = datetime.now(UTC)

    rows, keys = lake(bucket)
    assert by_seq(rows) == by_seq(expected_rows(table))
    assert len(rows) == 35
    assert {r["event_name"] for r in rows} == {"INSERT", "MODIFY", "REMOVE"}
    removed = [r for r in rows if r["event_name"] == "REMOVE" and r["order_id"] == "o-00004"]
    assert removed[0]["quantity"] == 5 and removed[0]["channel"] == "store"  # the old image
    # one object per order day (28 days in the orders), named as Firehose names them
    days = sorted({DATA_KEY.fullmatch(key).group(1, 2, 3) for key in keys})
    assert len(keys) == len(days) == 28
    for key in keys:
        stamp = datetime.strptime(DATA_KEY.fullmatch(key).group(4), "%Y-%m-%d-%H-%M-%S")
        assert before <= stamp.replace(tzinfo=UTC) <= after
    assert delivery.counters() == {"received": 35, "ok": 35, "dropped": 0, "failed": 0}
    assert delivery.checkpoints() == stream.latest_sequences()
    logged = delivery.deliveries("data")
    assert sorted(row[0] for row in logged) == keys
    assert sum(row[2] for row in logged) == 35
    assert errors(bucket, "processing-failed") == []


def test_event_seq_orders_each_key_changes(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    table.put_items(orders(7))
    for quantity in (2, 3, 4):
        table.put_items(orders(7, quantity=quantity))
    table.delete_items(["o-00007"])
    pump()
    delivery = make_delivery(tmp_path, stream, transform_function, bucket)
    drain(delivery)
    rows, _ = lake(bucket)
    ordered = by_seq(rows)
    assert [r["event_name"] for r in ordered] == ["INSERT", "MODIFY", "MODIFY", "MODIFY", "REMOVE"]
    assert [r["quantity"] for r in ordered] == [3, 2, 3, 4, 4]
    assert all(len(r["event_seq"]) == 40 for r in rows)


def test_buffers_until_the_interval(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    table.put_items(orders(1, 2, 3))
    pump()
    delivery = make_delivery(tmp_path, stream, transform_function, bucket, interval=0.5)
    started = time.monotonic()
    assert delivery.step() == 3
    assert delivery.step() == 0
    if time.monotonic() - started < 0.5:
        assert delivery.buffered == 3
        assert bucket.list_objects() == []
        assert delivery.checkpoints() == {0: 0, 1: 0}
    delivery.step(now=started + 0.6)  # the interval has passed: handed to the data plane
    assert delivery.buffered == 0
    delivery.deliver()  # wait for it
    rows, _ = lake(bucket)
    assert len(rows) == 3
    assert delivery.checkpoints() == stream.latest_sequences()


def test_request_flush_delivers_before_the_interval(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    table.put_items(orders(1, 2))
    pump()
    delivery = make_delivery(tmp_path, stream, transform_function, bucket, interval=600)
    delivery.step()
    delivery.step()
    assert delivery.buffered == 2 and bucket.list_objects() == []
    delivery.request_flush()
    delivery.step()
    assert delivery.buffered == 0
    assert len(lake(bucket)[0]) == 2
    # the flush applied to that buffer only: the next one waits for the interval again
    table.put_items(orders(3))
    pump()
    delivery.step()
    delivery.step()
    assert delivery.buffered == 1
    assert len(lake(bucket)[0]) == 2


def test_size_hint_delivers_without_waiting(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    table.put_items(orders(*range(10)))
    pump()
    delivery = make_delivery(
        tmp_path, stream, transform_function, bucket, interval=600, size_mb=1000 / 2**20
    )
    for _ in range(20):
        delivery.step()
    assert delivery.buffered == 0  # handed to the data plane
    delivery.deliver()  # wait for it
    assert len(lake(bucket)[0]) == 10


def test_small_lambda_buffer_splits_invocations(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    table.put_items(orders(*range(40)))
    pump()
    delivery = make_delivery(tmp_path, stream, transform_function, bucket, lambda_mb=3000 / 2**20)
    drain(delivery)
    rows, _ = lake(bucket)
    assert by_seq(rows) == by_seq(expected_rows(table))


def test_buffers_are_delivered_concurrently_and_checkpointed_in_order(
    tmp_path, make_delivery, table, stream, bucket, pump, monkeypatch
):
    release = tmp_path / "release"
    monkeypatch.setenv("SALESCAST_TEST_RELEASE", str(release))
    function = handler_function(tmp_path, "firehose_held_for_order_0")
    delivery = make_delivery(tmp_path, stream, function, bucket, interval=0)
    table.put_items(orders(0))
    pump()
    delivery.step()  # the first buffer, held in its data plane
    table.put_items(orders(1))
    pump()
    delivery.step()  # the second, in another data plane
    deadline = time.monotonic() + 60
    while not bucket.list_objects("sales/") and time.monotonic() < deadline:
        time.sleep(0.05)
    (second,) = bucket.list_objects("sales/")  # the second buffer is written ...
    assert "day=02" in second.key
    delivery.step()
    assert delivery.checkpoints() == {0: 0, 1: 0}  # ... but not checkpointed before the first
    release.touch()
    delivery.deliver()
    assert delivery.checkpoints() == stream.latest_sequences()
    assert by_seq(lake(bucket)[0]) == by_seq(expected_rows(table))
    assert delivery.counters() == {"received": 2, "ok": 2, "dropped": 0, "failed": 0}
    function.close()


def test_corrupt_record_goes_to_processing_failed_and_the_rest_is_delivered(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    table.put_items(orders(*range(6)))
    pump()
    corrupt = b"\x00not json {"
    stream.put_records([("o-00002", corrupt)])
    (arrived,) = [
        r for r in stream.get_records(stream.shard_for("o-00002"), 0) if r.data == corrupt
    ]
    delivery = make_delivery(tmp_path, stream, transform_function, bucket)
    drain(delivery)
    ended = time.time() * 1000

    rows, _ = lake(bucket)
    assert by_seq(rows) == by_seq(expected_rows(table))
    ((key, document),) = errors(bucket, "processing-failed")
    today = datetime.now(UTC)
    assert re.fullmatch(
        rf"errors/processing-failed/{today:%Y/%m/%d}/{NAME}-1-\d{{4}}(-\d\d){{5}}-[0-9a-f-]{{36}}",
        key,
    ), key
    assert list(document) == ERROR_DOCUMENT_KEYS
    assert document["attemptsMade"] == 1
    assert document["arrivalTimestamp"] == int(arrived.approximate_arrival_timestamp * 1000)
    assert document["errorCode"] == "Lambda.ProcessingFailedStatus"
    assert document["errorMessage"] == "ProcessingFailed status set for record"
    assert document["arrivalTimestamp"] <= document["attemptEndingTimestamp"] <= ended
    assert base64.b64decode(document["rawData"]) == corrupt
    assert document["lambdaArn"] == transform_function.arn
    assert delivery.counters() == {"received": 7, "ok": 6, "dropped": 0, "failed": 1}
    assert delivery.checkpoints() == stream.latest_sequences()
    assert [row[2] for row in delivery.deliveries("error")] == [1]
    # the transform's WARNING about the record lands in the function's log file
    warnings = [
        json.loads(line.split(" WARNING ", 1)[1])
        for line in transform_function.log_path.read_text().splitlines()
        if " WARNING " in line
    ]
    (warning,) = [w for w in warnings if w["recordId"].startswith(arrived.sequence_number)]
    assert warning["reason"].startswith("data: is not")


def test_record_of_another_event_source_is_dropped(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    table.put_items(orders(1, 2))
    _, _, text, _ = table.read_stream(0, 1)[0]
    foreign = json.loads(text)
    foreign["eventSource"] = "aws:kinesis"
    foreign["dynamodb"]["NewImage"]["order_id"] = {"S": "o-foreign"}
    pump()
    stream.put_records([("o-foreign", json.dumps(foreign).encode())])
    delivery = make_delivery(tmp_path, stream, transform_function, bucket)
    drain(delivery)
    rows, _ = lake(bucket)
    assert sorted(r["order_id"] for r in rows) == ["o-00001", "o-00002"]
    assert delivery.counters() == {"received": 3, "ok": 2, "dropped": 1, "failed": 0}
    assert bucket.list_objects("errors/") == []


def test_lambda_that_raises_fails_every_record_after_retries(
    tmp_path, make_delivery, table, stream, bucket, pump
):
    table.put_items(orders(1, 2, 3))
    pump()
    function = handler_function(tmp_path, "firehose_raising")
    try:
        delivery = make_delivery(tmp_path, stream, function, bucket)
        drain(delivery)
    finally:
        function.close()
    assert bucket.list_objects("sales/") == []
    found = errors(bucket, "processing-failed")
    originals = sorted(
        base64.b64encode(r.data).decode()
        for s in stream.shards
        for r in stream.get_records(s.index, 0)
    )
    assert sorted(document["rawData"] for _, document in found) == originals
    for _, document in found:
        assert list(document) == ERROR_DOCUMENT_KEYS
        assert document["errorCode"] == "Lambda.FunctionError"
        assert "RuntimeError: transform exploded" in document["errorMessage"]
        assert document["attemptsMade"] == 4  # the first call and 3 retries
        assert document["lambdaArn"] == function.arn
    log = function.log_path.read_text()
    assert log.count("RuntimeError: transform exploded") == 4
    assert delivery.counters()["failed"] == 3
    assert delivery.checkpoints() == stream.latest_sequences()


def test_lambda_that_omits_a_record_id(bucket, table, deliver_with):
    deliver_with(orders(*range(5)), "firehose_omitting_first")
    ((_, document),) = errors(bucket, "processing-failed")
    assert document["errorCode"] == "Lambda.MissingRecordId"
    assert "record Ids were not returned" in document["errorMessage"]
    missing = json.loads(base64.b64decode(document["rawData"]))
    rows, _ = lake(bucket)
    expected = [
        r
        for r in expected_rows(table)
        if r["event_seq"] != missing["dynamodb"]["SequenceNumber"].zfill(40)
    ]
    assert len(expected) == 4
    assert by_seq(rows) == by_seq(expected)


def test_ok_json_that_does_not_fit_the_schema_fails_format_conversion(bucket, table, deliver_with):
    delivery = deliver_with(orders(*range(4)), "firehose_bad_quantity")
    rows, _ = lake(bucket)
    assert sorted(r["order_id"] for r in rows) == ["o-00000", "o-00002", "o-00003"]
    ((key, document),) = errors(bucket, "format-conversion-failed")
    assert re.fullmatch(rf"errors/format-conversion-failed/\d{{4}}/\d\d/\d\d/{NAME}-1-.+", key)
    assert '"quantity":"abc"' in base64.b64decode(document["rawData"]).decode()
    assert '"order_id":"o-00001"' in base64.b64decode(document["rawData"]).decode()
    assert set(document) == {  # the documented shape of format conversion failures
        "attemptsMade",
        "arrivalTimestamp",
        "ErrorCode",
        "ErrorMessage",
        "attemptEndingTimestamp",
        "rawData",
        "sequenceNumber",
        "subSequenceNumber",
    }
    assert document["ErrorCode"] == "DataFormatConversion.MalformedData"
    assert errors(bucket, "processing-failed") == []
    assert delivery.counters() == {"received": 4, "ok": 3, "dropped": 0, "failed": 1}


def test_ok_data_of_two_rows_or_none_fails_format_conversion(bucket, table, deliver_with):
    delivery = deliver_with(orders(*range(4)), "firehose_two_rows_and_none")
    rows, _ = lake(bucket)
    assert sorted(r["order_id"] for r in rows) == ["o-00000", "o-00003"]
    expected = [r for r in expected_rows(table) if r["order_id"] in ("o-00000", "o-00003")]
    assert by_seq(rows) == by_seq(expected)
    failed = errors(bucket, "format-conversion-failed")
    raw = sorted(base64.b64decode(document["rawData"]) for _, document in failed)
    assert raw[0] == b" \n" and raw[1].count(b'"order_id":"o-00001"') == 2
    assert delivery.counters() == {"received": 4, "ok": 2, "dropped": 0, "failed": 2}


def test_missing_partition_keys_go_to_the_error_prefix(bucket, table, deliver_with):
    delivery = deliver_with(orders(*range(4)), "firehose_no_partition_keys")
    rows, _ = lake(bucket)
    assert sorted(r["order_id"] for r in rows) == ["o-00000", "o-00002", "o-00003"]
    error_objects = bucket.list_objects("errors/")
    assert len(error_objects) == 1
    (line,) = bucket.get_object(error_objects[0].key).decode().splitlines()
    document = json.loads(line)
    assert document["errorCode"].startswith("DynamicPartitioning.")
    assert "day" in document["errorMessage"]
    assert '"order_id":"o-00001"' in base64.b64decode(document["rawData"]).decode()
    assert not any("None" in info.key or "!{" in info.key for info in bucket.list_objects())
    assert delivery.counters()["failed"] == 1


def test_processing_failed_raw_data_is_the_original_record(
    tmp_path, make_delivery, table, stream, bucket, pump
):
    table.put_items(orders(1))
    pump()
    function = handler_function(tmp_path, "firehose_failing_with_new_data")
    try:
        delivery = make_delivery(tmp_path, stream, function, bucket)
        drain(delivery)
    finally:
        function.close()
    ((_, document),) = errors(bucket, "processing-failed")
    assert document["errorCode"] == "Lambda.ProcessingFailedStatus"
    (_, _, original, _) = table.read_stream(0, 1)[0]
    assert base64.b64decode(document["rawData"]) == original


def block_lake(bucket) -> None:
    """Make every write under ``sales/`` fail in the data plane (a file where a folder goes)."""
    bucket.local_path("sales").write_bytes(b"")


def unblock_lake(bucket) -> None:
    bucket.local_path("sales").unlink()


def test_checkpoints_advance_only_after_delivery(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    table.put_items(orders(*range(8)))
    pump()
    delivery = make_delivery(tmp_path, stream, transform_function, bucket)
    block_lake(bucket)
    delivery.request_flush()
    delivery.step()
    with pytest.raises(FunctionError) as caught:
        delivery.step()
    assert caught.value.error_type == "ValueError"
    assert delivery.checkpoints() == {0: 0, 1: 0}
    assert delivery.counters() == {"received": 0, "ok": 0, "dropped": 0, "failed": 0}
    assert delivery.deliveries() == []
    delivery.close()

    unblock_lake(bucket)
    restarted = make_delivery(tmp_path, stream, transform_function, bucket)
    assert restarted.checkpoints() == {0: 0, 1: 0}
    drain(restarted)
    rows, _ = lake(bucket)
    assert by_seq(rows) == by_seq(expected_rows(table))  # every row, once
    assert restarted.checkpoints() == stream.latest_sequences()


def test_failed_delivery_is_retried_in_process_without_loss(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    table.put_items(orders(*range(5)))
    pump()
    delivery = make_delivery(tmp_path, stream, transform_function, bucket)
    block_lake(bucket)
    delivery.request_flush()
    delivery.step()
    with pytest.raises(FunctionError):
        delivery.step()
    assert delivery.buffered == 0 and delivery.checkpoints() == {0: 0, 1: 0}
    unblock_lake(bucket)
    # the platform's poller keeps calling step(); later changes arrive meanwhile
    table.put_items(orders(5, 6))
    pump()
    drain(delivery)
    rows, _ = lake(bucket)
    assert by_seq(rows) == by_seq(expected_rows(table))
    assert {r["order_id"] for r in rows} == {f"o-{i:05d}" for i in range(7)}


def test_crash_after_writing_before_checkpoint_redelivers(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function, monkeypatch
):
    table.put_items(orders(*range(6)))
    pump()
    delivery = make_delivery(tmp_path, stream, transform_function, bucket)

    def crash():
        raise OSError("killed before the checkpoint")

    monkeypatch.setattr(delivery.db, "write", crash)
    delivery.request_flush()
    delivery.step()
    with pytest.raises(OSError, match="killed"):
        delivery.step()
    monkeypatch.undo()
    written, _ = lake(bucket)
    assert by_seq(written) == by_seq(expected_rows(table))  # the objects are in place ...
    assert delivery.checkpoints() == {0: 0, 1: 0}  # ... their checkpoints are not
    delivery.close()

    restarted = make_delivery(tmp_path, stream, transform_function, bucket)
    drain(restarted)
    rows, _ = lake(bucket)
    assert by_seq(rows) == by_seq(expected_rows(table) * 2)  # duplicates, no loss
    assert restarted.checkpoints() == stream.latest_sequences()


def test_checkpoints_survive_reopen_and_nothing_is_delivered_twice(
    tmp_path, make_delivery, table, stream, bucket, pump, transform_function
):
    table.put_items(orders(1, 2))
    pump()
    first = make_delivery(tmp_path, stream, transform_function, bucket)
    drain(first)
    first.close()
    table.put_items(orders(3))
    pump()
    second = make_delivery(tmp_path, stream, transform_function, bucket)
    assert second.counters()["ok"] == 2
    drain(second)
    rows, _ = lake(bucket)
    assert by_seq(rows) == by_seq(expected_rows(table))
    assert second.counters() == {"received": 3, "ok": 3, "dropped": 0, "failed": 0}


def test_transform_handler_receives_a_lambda_context(
    tmp_path, make_delivery, table, stream, bucket, pump
):
    table.put_items(orders(1, 2))
    pump()
    function = handler_function(tmp_path, "firehose_using_context")
    delivery = make_delivery(tmp_path, stream, function, bucket)
    drain(delivery)
    assert errors(bucket, "processing-failed") == []
    assert by_seq(lake(bucket)[0]) == by_seq(expected_rows(table))


def test_transform_slower_than_its_timeout_fails_the_records(
    tmp_path, make_delivery, table, stream, bucket, pump
):
    table.put_items(orders(1))
    pump()
    function = Function(
        "slow",
        "tests.local.handlers.firehose_slow",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:slow",
        tmp_path / "logs",
        "salescast.transform",
        timeout_s=0.5,
    )
    delivery = make_delivery(tmp_path, stream, function, bucket)
    drain(delivery)
    assert bucket.list_objects("sales/") == []
    ((_, document),) = errors(bucket, "processing-failed")
    assert document["errorCode"].startswith("Lambda.")
