"""crawl on aws, against moto: it starts the crawler, waits for it, then sends the views'
``CREATE OR REPLACE VIEW`` to Athena in the stack's workgroup. moto neither crawls nor runs
SQL; what the crawler finds and what Athena answers are checked on a real account only."""

from __future__ import annotations

import boto3
import pytest

from helpers import queries
from helpers.aws import glue
from helpers.schema import glue_columns, glue_partition_keys


@pytest.fixture
def platform(aws_platform, monkeypatch):
    """The aws platform with a crawler whose runs end at once, and the stack's workgroup."""
    from moto.moto_api import state_manager

    state_manager.set_transition("glue::crawl", {"progression": "immediate"})
    monkeypatch.setattr(glue, "POLL_S", 0.0)
    r = aws_platform.names
    client = boto3.client("glue")
    client.create_crawler(
        Name=r.crawler_name,
        Role="arn:aws:iam::123456789012:role/crawler",
        DatabaseName=r.database,
        Targets={"CatalogTargets": [{"DatabaseName": r.database, "Tables": [r.changes_table]}]},
    )
    boto3.client("athena").create_work_group(Name=r.workgroup)
    yield aws_platform
    state_manager.unset_transition("glue::crawl")


def create_changes_table(platform) -> None:
    r = platform.names
    boto3.client("glue").create_table(
        DatabaseName=r.database,
        TableInput={
            "Name": r.changes_table,
            "PartitionKeys": glue_partition_keys(),
            "StorageDescriptor": {
                "Columns": glue_columns(),
                "Location": f"s3://{r.lake_bucket}/{r.lake_prefix}",
            },
        },
    )


def statements(workgroup: str) -> list[str]:
    athena = boto3.client("athena")
    ids = athena.list_query_executions(WorkGroup=workgroup)["QueryExecutionIds"]
    found = [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    assert all(e["WorkGroup"] == workgroup for e in found)
    return sorted(e["Query"] for e in found)


def test_crawl_runs_the_crawler_then_creates_the_views(platform):
    create_changes_table(platform)
    result = platform.crawl(progress=False)
    crawler = boto3.client("glue").get_crawler(Name=platform.names.crawler_name)["Crawler"]
    assert crawler["State"] == "READY" and "LastCrawl" in crawler
    assert result["views_created"] == list(queries.VIEWS)
    assert result["tables_created"] == [] and result["partitions_added"] == 0
    expected = [f"CREATE OR REPLACE VIEW {name} AS\n{queries.load(name)}" for name in queries.VIEWS]
    assert statements(platform.names.workgroup) == sorted(expected)


def test_no_views_before_the_changes_table_exists(platform):
    assert platform.crawl(progress=False)["views_created"] == []
    assert statements(platform.names.workgroup) == []
