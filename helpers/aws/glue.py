"""Glue: run the crawler and wait for it, count partitions, make sure the database exists.

Not handled: crawlers of several tables (the stack's crawls one), and crawler schedules (the
stack sets one; a crawl started here waits for a scheduled one already running).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from helpers.exceptions import BackendError
from helpers.progress import tqdm

POLL_S = 5.0


def start_crawler(
    client: Any, name: str, timeout: float = 1800.0, progress: bool = True
) -> dict[str, Any]:
    """Start the crawler (after any run in progress) and wait until it is ready again;
    returns its ``LastCrawl``. Raises BackendError if the crawl failed or took too long."""
    deadline = time.monotonic() + timeout
    with tqdm(
        desc=f"crawler {name}",
        unit="s",
        disable=not progress,
        bar_format="{desc}: {elapsed} {postfix}",
    ) as bar:
        while True:
            try:
                client.start_crawler(Name=name)
                break
            except client.exceptions.CrawlerRunningException:
                bar.set_postfix_str("waiting for the running crawl")
                _wait(client, name, deadline, bar)
        crawler = _wait(client, name, deadline, bar)
    last = crawler.get("LastCrawl", {})
    if last.get("Status") in ("FAILED", "CANCELLED"):
        raise BackendError(
            f"crawler {name} {last.get('Status', 'failed').lower()}: "
            f"{last.get('ErrorMessage', 'see its CloudWatch log')}"
        )
    return last


def _wait(client: Any, name: str, deadline: float, bar: tqdm) -> dict[str, Any]:
    while True:
        crawler = client.get_crawler(Name=name)["Crawler"]
        bar.set_postfix_str(crawler["State"].lower())
        bar.refresh()
        if crawler["State"] == "READY":
            return crawler
        if time.monotonic() > deadline:
            raise BackendError(f"crawler {name} is still {crawler['State']}; try again later")
        time.sleep(POLL_S)


def partitions(client: Any, database: str, table: str) -> list[list[str]]:
    """The partition values of a table (none if there is no such table)."""
    try:
        pages = client.get_paginator("get_partitions").paginate(
            DatabaseName=database, TableName=table, ExcludeColumnSchema=True
        )
        return [partition["Values"] for page in pages for partition in page["Partitions"]]
    except client.exceptions.EntityNotFoundException:
        return []


def table_updated(client: Any, database: str, table: str) -> datetime | None:
    """When the table was last updated (or created); None if there is no such table."""
    try:
        found = client.get_table(DatabaseName=database, Name=table)["Table"]
    except client.exceptions.EntityNotFoundException:
        return None
    return found.get("UpdateTime") or found.get("CreateTime")


def ensure_database(client: Any, database: str) -> None:
    """Create the database unless it exists (the stack creates it; this is for no stack)."""
    try:
        client.get_database(Name=database)
    except client.exceptions.EntityNotFoundException:
        client.create_database(DatabaseInput={"Name": database})
