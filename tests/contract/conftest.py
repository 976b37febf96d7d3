"""The contract fixtures: one ``platform`` per backend (``--backend local|aws|all``), and a
``probe`` that looks behind it (stream records, raw objects, catalog) the way each backend can.

On aws the services are moto's (``mock_aws``, fake credentials): the table with its stream,
the lake bucket, the Kinesis stream and the Glue database are created as the stack would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import helpers
from helpers.config import Settings

BACKENDS = ("local", "aws")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("backend")
        metafunc.parametrize("backend", BACKENDS if chosen == "all" else [chosen])


@pytest.fixture
def aws(monkeypatch):
    """moto's AWS with fake credentials in us-east-1; no real account is reachable."""
    from moto import mock_aws

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


def create_moto_resources(settings: Settings) -> None:
    """What the stack creates that moto can serve: table + stream, bucket, Kinesis, database."""
    import boto3

    boto3.client("dynamodb").create_table(
        TableName=settings.table_name,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    boto3.client("s3").create_bucket(Bucket=settings.bucket)
    boto3.client("kinesis").create_stream(StreamName=settings.stream_name, ShardCount=2)
    boto3.client("glue").create_database(DatabaseInput={"Name": settings.database})


@pytest.fixture
def aws_platform(aws):
    """An aws platform over moto's services, named from the settings (no stack)."""
    import boto3

    account = boto3.client("sts").get_caller_identity()["Account"]
    region = boto3.Session().region_name  # the platform's, from boto3's chain
    settings = Settings.from_env(backend="aws", account_id=account, region=region)
    create_moto_resources(settings)
    with helpers.connect(backend="aws") as platform:
        yield platform


@pytest.fixture
def platform(backend, tmp_path, request):
    """The platform of the backend under test; on local nothing consumes, so what a test
    puts in the lake is all there is."""
    if backend == "aws":
        yield request.getfixturevalue("aws_platform")
        return
    with helpers.connect(backend="local", root=tmp_path / "root", consume=False) as platform:
        yield platform


class LocalProbe:
    def __init__(self, platform):
        self.platform = platform

    def stream_records(self) -> list[dict]:
        return [
            json.loads(record) for _, _, record, _ in self.platform.table.read_stream(0, 10_000)
        ]

    def put_object(self, key: str, body: bytes) -> None:
        self.platform.bucket.put_object(key, body)

    def get_object(self, key: str) -> bytes:
        return self.platform.bucket.get_object(key)

    def table(self, database: str, name: str) -> dict[str, Any]:
        return self.platform.catalog.get_table(database, name)

    def partitions(self, database: str, name: str) -> list[list[str]]:
        return sorted(p["Values"] for p in self.platform.catalog.partitions(database, name))


class AwsProbe:
    def __init__(self, platform):
        import boto3

        self.platform = platform
        self.s3, self.glue = boto3.client("s3"), boto3.client("glue")
        # moto serves DynamoDB Streams on its classic endpoint, not the account-based one
        self.streams = boto3.client(
            "dynamodbstreams", endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com"
        )
        self.dynamodb = boto3.client("dynamodb")

    def stream_records(self) -> list[dict]:
        arn = self.dynamodb.describe_table(TableName=self.platform.names.table_name)["Table"][
            "LatestStreamArn"
        ]
        records = []
        for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = self.streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            records += self.streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        return json.loads(json.dumps(records, default=lambda value: value.timestamp()))

    def put_object(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.platform.names.lake_bucket, Key=key, Body=body)

    def get_object(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.platform.names.lake_bucket, Key=key)["Body"].read()

    def table(self, database: str, name: str) -> dict[str, Any]:
        return self.glue.get_table(DatabaseName=database, Name=name)["Table"]

    def partitions(self, database: str, name: str) -> list[list[str]]:
        found = self.glue.get_partitions(DatabaseName=database, TableName=name)["Partitions"]
        return sorted(p["Values"] for p in found)


@pytest.fixture
def probe(backend, platform):
    """Looks behind the platform: stream records, raw objects, catalog tables and partitions."""
    return AwsProbe(platform) if backend == "aws" else LocalProbe(platform)
