"""The real-time consumer on aws (moto): the stack's consumer resources as deployed, the
expectations a forecast run publishes, the running totals and alerts read back, and teardown.

moto's CloudFormation builds every resource of the consumer (function, event source mapping,
tables and their indexes, topic, queue, schedule rule, permission) but not the tables' TTL,
which tests/test_cloudformation.py checks in the template. moto never throttles, so the
unprocessed-items branch of the batch writes runs against a client that holds items back the
way DynamoDB documents (UnprocessedItems, same shape).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from decimal import Decimal

import boto3
import numpy as np
import pandas as pd
import pytest

import helpers
from helpers import realtime as rt
from helpers.aws import cloudformation, dynamodb
from helpers.aws.awslambda import CONSUMER_HANDLER, CONSUMER_SOURCE
from helpers.aws.realtime import expectation_item
from helpers.config import load_template
from helpers.exceptions import DeployError, SalescastError
from helpers.platform import realtime_frame
from helpers.realtime import EXPECTATION_FIELDS
from tests.test_realtime import expectation as expectation_row
from tests.test_realtime import steady_orders

MAPPING = {
    "BatchSize": 100,
    "MaximumBatchingWindowInSeconds": 1,
    "StartingPosition": "LATEST",
    "BisectBatchOnFunctionError": True,
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "MaximumRetryAttempts": 3,
    "MaximumRecordAgeInSeconds": 3600,
}
"""The event source mapping's settings of the shared contract (/work/rt_spec.md)."""


def create_tables_of_the_template(settings) -> None:
    """The expectations and nowcast tables as the template defines them (keys, indexes)."""
    resources = load_template()["Resources"]
    client = boto3.client("dynamodb")
    for logical_id, name in (
        ("ExpectationsTable", settings.expectations_table_name),
        ("NowcastTable", settings.nowcast_table_name),
    ):
        properties = resources[logical_id]["Properties"]
        client.create_table(
            TableName=name,
            **{
                key: properties[key]
                for key in (
                    "AttributeDefinitions",
                    "KeySchema",
                    "GlobalSecondaryIndexes",
                    "BillingMode",
                )
            },
        )


@pytest.fixture
def platform(aws_platform):
    create_tables_of_the_template(aws_platform.settings)
    return aws_platform


def expectations(count: int, day: str = "2026-12-08", seed: int = 3) -> pd.DataFrame:
    """``count`` expectations of one day, reproducible: the total and products."""
    rng = np.random.default_rng(seed)
    units = np.round(rng.uniform(0, 500, count), 3)
    profile = np.cumsum(rng.uniform(0.5, 1.5, 24))
    return pd.DataFrame(
        {
            "series_id": ["total"] + [f"product#p-{i:03d}" for i in range(1, count)],
            "day": day,
            "level": ["total"] + ["product"] * (count - 1),
            "name": ["total"] + [f"Lamp {i}" for i in range(1, count)],
            "units": units,
            "units_lo_80": units * 0.8,
            "units_hi_80": units * 1.2,
            "units_lo_90": units * 0.7,
            "units_hi_90": units * 1.3,
            "revenue": units * 19.99,
            "revenue_lo_90": units * 0.7 * 19.99,
            "revenue_hi_90": units * 1.3 * 19.99,
            "profile": [list(profile / profile[-1])] * count,
            "run_id": "run-1",
            "expires_at": int(dt.datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp())
            + 8 * 86400,
        }
    )


def stored(settings) -> dict[tuple[str, str], dict]:
    """The expectations table's items as boto3's resource reads them (numbers as Decimal)."""
    table = boto3.resource("dynamodb").Table(settings.expectations_table_name)
    return {(item["series_id"], item["day"]): item for item in table.scan()["Items"]}


class Recording:
    """The moto client, counting BatchWriteItem requests; the first ``hold`` of them leave
    their last ``held`` items unprocessed, as a throttled DynamoDB does."""

    def __init__(self, client, hold: int = 0, held: int = 5):
        self.client, self.hold, self.held, self.requests = client, hold, held, []

    def batch_write_item(self, RequestItems):  # boto3 names the parameter
        ((table, requests),) = RequestItems.items()
        self.requests.append(len(requests))
        if len(self.requests) <= self.hold:
            kept, back = requests[: -self.held], requests[-self.held :]
            if kept:
                self.client.batch_write_item(RequestItems={table: kept})
            return {"UnprocessedItems": {table: back}}
        return self.client.batch_write_item(RequestItems=RequestItems)

    def __getattr__(self, name):
        return getattr(self.client, name)


# expectations ------------------------------------------------------------------------------


def test_expectations_round_trip_in_batches_of_25_with_decimals_and_the_profile(platform):
    frame = expectations(60)
    frame.loc[1, "units"] = 0.1  # a float with no exact binary form
    frame.loc[2, "units"] = np.float32(2.5)
    assert platform.publish_expectations(frame) == 60
    items = stored(platform.settings)
    assert len(items) == 60
    first = items[("total", "2026-12-08")]
    assert set(first) == set(EXPECTATION_FIELDS)
    assert first["units"] == Decimal(str(frame.loc[0, "units"]))
    assert items[("product#p-001", "2026-12-08")]["units"] == Decimal("0.1")
    assert items[("product#p-002", "2026-12-08")]["units"] == Decimal("2.5")
    assert first["expires_at"] == Decimal(int(frame.loc[0, "expires_at"]))
    profile = json.loads(first["profile"])  # a JSON string, per the spec
    assert len(profile) == 24 and profile[-1] == 1.0 and profile == sorted(profile)
    assert profile == pytest.approx(frame.loc[0, "profile"])
    assert (first["level"], first["name"], first["run_id"]) == ("total", "total", "run-1")

    client = boto3.client("dynamodb")
    day = dynamodb.query(  # the consumer's read: one day of every series, by the index
        client,
        platform.settings.expectations_table_name,
        IndexName="by-day",
        KeyConditionExpression="#day = :day",
        ExpressionAttributeNames={"#day": "day"},
        ExpressionAttributeValues={":day": {"S": "2026-12-08"}},
    )
    assert len(day) == 60


@pytest.mark.parametrize(("rows", "requests"), [(25, [25]), (26, [25, 1]), (50, [25, 25])])
def test_batches_hold_at_most_25_items(platform, rows, requests):
    client = Recording(boto3.client("dynamodb"))
    written = dynamodb.batch_put(
        client,
        platform.settings.expectations_table_name,
        [expectation_item(row) for row in expectations(rows).to_dict("records")],
    )
    assert (written, client.requests) == (rows, requests)
    assert len(stored(platform.settings)) == rows


def test_unprocessed_items_are_sent_again_until_written(platform, monkeypatch):
    pauses = []
    monkeypatch.setattr(dynamodb.time, "sleep", pauses.append)
    client = Recording(boto3.client("dynamodb"), hold=2, held=5)
    items = [expectation_item(row) for row in expectations(30).to_dict("records")]
    table = platform.settings.expectations_table_name
    assert dynamodb.batch_put(client, table, items, attempts=3, pause=0.1) == 30
    assert client.requests == [25, 5, 5, 5]  # 5 held back twice, then written; then the last 5
    assert pauses == [0.1, 0.2]
    assert len(stored(platform.settings)) == 30


def test_items_still_unprocessed_after_the_last_attempt_are_an_error(platform, monkeypatch):
    monkeypatch.setattr(dynamodb.time, "sleep", lambda seconds: None)
    client = Recording(boto3.client("dynamodb"), hold=3, held=5)
    items = [expectation_item(row) for row in expectations(30).to_dict("records")]
    table = platform.settings.expectations_table_name
    with pytest.raises(SalescastError) as failed:
        dynamodb.batch_put(client, table, items, attempts=3)
    assert str(failed.value).startswith(
        "5 item(s) still unprocessed by salescast-expectations after 3 BatchWriteItem requests"
    )
    assert "0 of 30 were written" in str(failed.value)
    assert client.requests == [25, 5, 5]
    assert len(stored(platform.settings)) == 20


def test_publishing_again_replaces_and_a_repeated_key_keeps_the_last(platform):
    platform.publish_expectations(expectations(3))
    again = expectations(3, seed=4).assign(run_id="run-2")
    twice = pd.concat([again, again.head(1).assign(units=7.0)], ignore_index=True)
    assert platform.publish_expectations(twice) == 4
    items = stored(platform.settings)
    assert len(items) == 3
    assert {item["run_id"] for item in items.values()} == {"run-2"}
    assert items[("total", "2026-12-08")]["units"] == Decimal("7.0")


def test_a_profile_given_as_json_text_is_stored_as_given(platform):
    frame = expectations(1)
    text = json.dumps([round((hour + 1) / 24, 4) for hour in range(24)])
    platform.publish_expectations(frame.assign(profile=[text]))
    assert stored(platform.settings)[("total", "2026-12-08")]["profile"] == text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["profile", "run_id"]), "lacks profile, run_id"),
        (lambda f: f.assign(units=[1.0, float("nan")]), "units is nan"),
        (lambda f: f.assign(revenue_hi_90=[np.inf, 1.0]), "revenue_hi_90 is inf"),
    ],
)
def test_an_invalid_expectation_writes_nothing(platform, change, message):
    with pytest.raises(ValueError, match=message):
        platform.publish_expectations(change(expectations(2)))
    assert stored(platform.settings) == {}


# running totals and alerts ---------------------------------------------------------------------


def put(settings, items: list[dict]) -> None:
    table = boto3.resource("dynamodb").Table(settings.nowcast_table_name)
    for item in items:
        table.put_item(Item=item)


def total(day: str, series_id: str, units: int, revenue: str, orders: int) -> dict:
    return {
        "pk": f"TOTAL#{day}",
        "sk": series_id,
        "units": units,
        "revenue": Decimal(revenue),
        "orders": orders,
        "last_order_ms": 1_765_000_000_000 + orders,
        "updated_ms": 1_765_000_100_000,
        "expires_at": 1_765_300_000,
    }


def alert(day: str, series_id: str, kind: str, since: str, state: str, **more) -> dict:
    return {
        "pk": f"ALERT#{day}",
        "sk": f"{series_id}#{kind}#{since}",
        "series_id": series_id,
        "name": series_id.rpartition("#")[2],
        "kind": kind,
        "state": state,
        "expected": Decimal("40.5"),
        "actual": 3,
        "low": Decimal("30"),
        "high": Decimal("52.25"),
        "since": since,
        "expires_at": 1_765_300_000,
        **more,
    }


def test_nowcasts_are_the_consumers_as_on_the_local_backend(platform, tmp_path):
    """Orders applied by the consumer's DynamoDB store read back as the same nowcasts that
    the local store gives for the same orders and expectations; other days stay out."""
    day = "2030-01-02"
    rows = [expectation_row("product#p-1", day, 240.0), expectation_row("total", day, 480.0)]
    platform.publish_expectations(pd.DataFrame(rows))
    changes = steady_orders(day, "p-1", 10, 9.5, 12)
    settings = platform.settings
    remote = rt.DynamoStore(
        settings.expectations_table_name,
        settings.nowcast_table_name,
        dynamodb=boto3.client("dynamodb"),
    )
    local = rt.SqliteStore(tmp_path / "realtime.sqlite")
    local.put_expectations(rows)
    for store in (remote, local):
        store.apply(changes, rt.Config(), 0)
    frame = platform.nowcasts(day)
    assert list(frame.columns) == list(rt.NOWCAST_FIELDS)
    assert frame.series_id.tolist() == ["category#home", "product#p-1", "total"]
    expected = realtime_frame(local.nowcasts(day), rt.NOWCAST_FIELDS)
    pd.testing.assert_frame_equal(frame, expected.sort_values("series_id", ignore_index=True))
    product = frame.set_index("series_id").loc["product#p-1"]
    assert product["orders"] == len(changes) == 25 and product["expected_units"] == 240.0
    assert platform.nowcasts("2030-01-01").empty


def test_alerts_read_every_episode_or_the_open_ones_oldest_first(platform):
    put(
        platform.settings,
        [
            total("2026-12-07", "total", 120, "2399.50", 80),
            alert("2026-12-07", "product#p-002", "stalled", "2026-12-07T14:05:00Z", "open"),
            alert(
                "2026-12-07",
                "product#p-002",
                "high",
                "2026-12-07T10:00:00Z",
                "cleared",
                cleared_at="2026-12-07T11:30:00Z",
            ),
            alert("2026-12-06", "category#home", "low", "2026-12-06T23:50:00Z", "open"),
        ],
    )
    every = platform.alerts()
    assert list(every.columns) == list(rt.ALERT_FIELDS)
    assert every.since.tolist() == [
        "2026-12-06T23:50:00Z",
        "2026-12-07T10:00:00Z",
        "2026-12-07T14:05:00Z",
    ]
    assert every.day.tolist() == ["2026-12-06", "2026-12-07", "2026-12-07"]
    assert every.kind.tolist() == ["low", "high", "stalled"]
    assert every.state.tolist() == ["open", "cleared", "open"]
    assert every.cleared_at.tolist()[1] == "2026-12-07T11:30:00Z"
    assert every.cleared_at.isna().tolist() == [True, False, True]
    assert every.loc[0, ["expected", "actual", "low", "high"]].tolist() == [40.5, 3.0, 30.0, 52.25]
    assert every.loc[0, "name"] == "home"

    opened = platform.alerts(open_only=True)
    assert opened.kind.tolist() == ["low", "stalled"]
    assert set(opened.state) == {"open"}


def test_no_totals_or_alerts_are_empty_frames_with_the_columns(platform):
    assert list(platform.nowcasts("2026-12-07").columns) == list(rt.NOWCAST_FIELDS)
    assert platform.nowcasts("2026-12-07").empty
    assert list(platform.alerts().columns) == list(rt.ALERT_FIELDS) and platform.alerts().empty


# the deployed stack -----------------------------------------------------------------------------


def test_the_stack_deploys_the_consumer_and_teardown_removes_it(session):
    cloudformation.provision(session, progress=False)
    with helpers.connect(backend="aws") as platform:
        names = platform.names
        assert (names.expectations_table_name, names.nowcast_table_name) == (
            "salescast-expectations",
            "salescast-nowcast",
        )
        assert names.alert_topic_arn == "arn:aws:sns:us-east-1:123456789012:salescast-alerts"
        assert names.consumer_function_arn.endswith(":function:salescast-realtime")
        assert names.consumer_dead_letter_queue_url.endswith("/salescast-realtime-dlq")
        stream_arn, topic = names.stream_arn, names.alert_topic_arn

        awslambda = boto3.client("lambda")
        (mapping,) = awslambda.list_event_source_mappings(FunctionName="salescast-realtime")[
            "EventSourceMappings"
        ]
        assert {key: mapping[key] for key in MAPPING} == MAPPING
        assert mapping["EventSourceArn"] == stream_arn
        queue = boto3.client("sqs").get_queue_attributes(
            QueueUrl=names.consumer_dead_letter_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": queue}}

        function = awslambda.get_function_configuration(FunctionName="salescast-realtime")
        assert function["Handler"] == CONSUMER_HANDLER
        assert {
            name: str(value) for name, value in function["Environment"]["Variables"].items()
        } == {
            "EXPECTATIONS_TABLE": "salescast-expectations",
            "NOWCAST_TABLE": "salescast-nowcast",
            "ALERT_TOPIC_ARN": topic,
            "ALERT_MARGIN": "0.25",
            "STALL_MINUTES": "15",
            "STALL_MIN_EXPECTED": "20",
        }
        code = awslambda.get_function(FunctionName="salescast-realtime")["Code"]
        assert code["RepositoryType"] == "S3"
        bucket = cloudformation.artifact_bucket(session.settings)
        keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
        (consumer_key,) = [key for key in keys if key.startswith("lambda/realtime-")]
        body = boto3.client("s3").get_object(Bucket=bucket, Key=consumer_key)["Body"].read()
        archive = zipfile.ZipFile(io.BytesIO(body))
        assert archive.namelist() == ["realtime.py"]
        assert archive.read("realtime.py") == CONSUMER_SOURCE.read_bytes()

        events = boto3.client("events")
        (rule,) = events.list_rules(NamePrefix="salescast-realtime")["Rules"]
        assert (rule["ScheduleExpression"], rule["State"]) == ("rate(1 minute)", "ENABLED")
        (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"] == function["FunctionArn"]
        (grant,) = json.loads(awslambda.get_policy(FunctionName="salescast-realtime")["Policy"])[
            "Statement"
        ]
        assert grant["Principal"] == {"Service": "events.amazonaws.com"}
        assert grant["Condition"]["ArnLike"]["AWS:SourceArn"] == rule["Arn"]

        attributes = boto3.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]
        assert attributes["KmsMasterKeyId"] == "alias/aws/sns"

        platform.publish_expectations(expectations(30))  # the deployed table takes them
        assert len(stored(platform.settings)) == 30

        status = platform.status().set_index("stage")
        assert status.loc["realtime consumer", "detail"].startswith(
            "mapping Enabled (no result yet), 0s behind;"
        )
        assert status.loc["realtime consumer", ["records", "failed"]].tolist() == [0, 0]
        assert status.attrs["consumer"]["state"] == "Enabled"

    removed = cloudformation.teardown(session, progress=False)
    assert removed["stack"] == "salescast"
    assert boto3.client("dynamodb").list_tables()["TableNames"] == []
    assert boto3.client("sns").list_topics()["Topics"] == []
    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []
    assert boto3.client("lambda").list_functions()["Functions"] == []
    assert boto3.client("lambda").list_event_source_mappings()["EventSourceMappings"] == []
    assert boto3.client("events").list_rules()["Rules"] == []


@pytest.mark.parametrize(
    ("call", "table"),
    [
        (lambda platform: platform.publish_expectations(expectations(2)), "expectations"),
        (lambda platform: platform.nowcasts("2026-12-07"), "nowcast"),
        (lambda platform: platform.alerts(open_only=True), "nowcast"),
    ],
)
def test_a_stack_without_the_real_time_tables_says_to_deploy(aws_platform, call, table):
    with pytest.raises(DeployError) as missing:
        call(aws_platform)
    assert str(missing.value) == (
        f"the DynamoDB table salescast-{table} does not exist: the stack predates the real-time "
        "consumer (or is not deployed); run `salescast deploy` to add it"
    )


def test_status_without_a_consumer_says_so(aws_platform):
    status = aws_platform.status().set_index("stage")
    assert status.loc["realtime consumer", "detail"] == (
        "no real-time consumer: run `salescast deploy` to add it"
    )
    assert status.attrs["consumer"] == {}
