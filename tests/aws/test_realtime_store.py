"""The real-time consumer's DynamoDB store and SNS alerts (helpers/realtime.py), on moto."""

from __future__ import annotations

import json

import boto3
import pandas as pd
import pytest

from helpers import realtime as rt
from helpers.aws.realtime import publish_expectations
from helpers.config import Settings
from helpers.local.dynamodb import Table
from helpers.schema import item_to_order, validated_table
from tests.aws.test_realtime import create_tables_of_the_template
from tests.test_realtime import (
    FUTURE,
    expectation,
    expected_totals,
    kinesis_event,
    order,
    steady_orders,
    stream_texts,
)

SETTINGS = Settings()


@pytest.fixture
def tables(aws, monkeypatch):
    """The stack's expectations and nowcast tables and the alert topic (with a queue on it),
    named in the handler's environment."""
    create_tables_of_the_template(SETTINGS)  # keys and indexes as the stack makes them
    topic = boto3.client("sns").create_topic(Name="alerts")["TopicArn"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    boto3.client("sns").subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"]
    )
    monkeypatch.delenv("REALTIME_DB", raising=False)
    monkeypatch.setenv("EXPECTATIONS_TABLE", SETTINGS.expectations_table_name)
    monkeypatch.setenv("NOWCAST_TABLE", SETTINGS.nowcast_table_name)
    monkeypatch.setenv("ALERT_TOPIC_ARN", topic)
    rt._stores.clear()
    yield queue
    rt._stores.clear()


@pytest.fixture
def table(tmp_path):
    table = Table(tmp_path / "dynamodb.sqlite", "orders", "us-east-1", "000000000000")
    yield table
    table.close()


def assert_totals(store, orders) -> None:
    totals = store.totals(str(FUTURE))
    for series_id, (units, revenue, count) in expected_totals(orders).items():
        assert (totals[series_id]["units"], totals[series_id]["orders"]) == (units, count)
        assert totals[series_id]["revenue"] == pytest.approx(revenue, rel=1e-12)


def test_totals_are_exact_in_dynamodb_through_changes_and_redeliveries(tables, table):
    table.put_items(validated_table([order(n) for n in range(30)]))
    table.update_items([{"order_id": "o-00003", "quantity": 9}])
    table.delete_items(["o-00006"])
    texts = stream_texts(table)
    assert rt.lambda_handler(kinesis_event(texts), None) == {"batchItemFailures": []}
    rt.lambda_handler(kinesis_event(texts), None)  # redelivered whole
    store = rt.open_store()
    assert isinstance(store, rt.DynamoStore)
    assert_totals(store, [item_to_order(item) for item in table.scan()])
    item = boto3.client("dynamodb").get_item(
        TableName=SETTINGS.nowcast_table_name,
        Key={"pk": {"S": "ORDER#o-00006"}, "sk": {"S": "ORDER"}},
    )["Item"]
    assert item["units"] == {"N": "0"}  # the tombstone keeps the cancellation's seq
    assert len(item["seq"]["S"]) == rt.EVENT_SEQ_DIGITS
    assert int(item["expires_at"]["N"]) == rt.expires_at(str(FUTURE))


def test_a_crash_between_transactions_leaves_exact_totals_after_redelivery(
    tables, table, monkeypatch
):
    monkeypatch.setattr(rt.DynamoStore, "MAX_TRANSACTION_ITEMS", 12)  # several per batch
    table.put_items(validated_table([order(n) for n in range(40)]))
    event = kinesis_event(stream_texts(table))
    store = rt.open_store()
    real, calls = store.dynamodb.transact_write_items, []

    def crash_on_third(**request):
        calls.append(len(request["TransactItems"]))
        if len(calls) == 3:
            raise RuntimeError("killed between transactions")
        return real(**request)

    monkeypatch.setattr(store.dynamodb, "transact_write_items", crash_on_third)
    with pytest.raises(RuntimeError):
        rt.lambda_handler(event, None)
    assert all(count <= 12 for count in calls)
    monkeypatch.setattr(store.dynamodb, "transact_write_items", real)
    rt.lambda_handler(event, None)  # Lambda retries the batch
    assert_totals(store, [order(n) for n in range(40)])


def test_a_stall_is_written_and_published_once(tables, monkeypatch):
    day = "2030-01-02"
    store = rt.open_store()
    publish_expectations(
        store.dynamodb,
        SETTINGS.expectations_table_name,
        pd.DataFrame([expectation("product#p-1", day, 2400.0, relative=1e-3)]),
    )
    store.apply(steady_orders(day, "p-1", 100, 9.5, 10), rt.Config(), 0)
    now = store.latest_order_ms() + 20 * 60_000
    monkeypatch.setattr(rt, "wall_ms", lambda: now)
    tick = {"source": "aws.events", "detail-type": "Scheduled Event"}
    rt.lambda_handler(tick, None)
    rt.lambda_handler(tick, None)
    (alert,) = store.alerts()
    assert (alert["kind"], alert["state"], alert["day"]) == ("stalled", "open", day)
    messages = boto3.client("sqs").receive_message(QueueUrl=tables, MaxNumberOfMessages=10)
    (message,) = messages["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["Subject"] == "salescast alert: stalled p-1"
    assert json.loads(envelope["Message"])["kind"] == "stalled"
    nowcasts = {row["series_id"]: row for row in store.nowcasts(day)}
    assert set(nowcasts) == {"total", "category#home", "product#p-1"}
    assert nowcasts["product#p-1"]["orders"] == 50
    assert nowcasts["product#p-1"]["expected_units"] == 2400.0
