"""The aws backend's platform: the stack's services behind the same interface as local.

Nothing runs in this process: the pipe, the stream, Firehose and its Lambda move the changes;
``flush`` watches the lake for the changes written through this platform (see
:mod:`helpers.aws.flush`), and ``status`` reads the services' own counters.
"""

from __future__ import annotations

import functools
import json
import time
from datetime import date
from typing import Any

import boto3
import pandas as pd

from helpers import queries
from helpers.aws import athena, cloudformation, cloudwatch, glue, kinesis, realtime
from helpers.aws.cloudformation import Resources
from helpers.aws.dynamodb import Table
from helpers.aws.flush import LAKE_COLUMNS, Expectations, LakeView, stream_states
from helpers.aws.s3 import list_objects
from helpers.aws.session import Session
from helpers.config import Settings
from helpers.exceptions import PipelineStuckError
from helpers.platform import (
    CATALOG_COLUMNS,
    RESOURCE_COLUMNS,
    Orders,
    Platform,
    catalog_row,
    empty_lake,
    failure_summary,
    failures_frame,
    objects_frame,
)
from helpers.progress import waiting_bar
from helpers.schema import PARTITION_KEYS

FLUSH_POLL_S = 5.0
_ABSENT = object()


class AwsPlatform(Platform):
    """The deployed stack (or, before ``salescast deploy``, the names the settings give).

    Parameters
    ----------
    settings
        Names and tuning; the region and account come from boto3's chain.
    session
        A boto3 session to use instead of the default one.
    """

    def __init__(self, settings: Settings, session: boto3.Session | None = None):
        self.session = Session(settings, session)
        self.settings = self.session.settings
        self.names: Resources = cloudformation.resolve(self.session)
        self.expectations = Expectations()
        self._unapplied: dict[str, tuple[int, str]] = {}
        """Changes of today and yesterday in the lake, not yet seen applied by the real-time
        consumer: order id -> (day number, ``event_seq``)."""
        self.table = Table(
            self.session.client("dynamodb"), self.names.table_name, self.expectations.record
        )
        self.orders = Orders(self.table)

    @property
    def _s3_output(self) -> str:
        r = self.names
        return f"s3://{r.lake_bucket}/{r.athena_results_prefix}"

    # the lake ----------------------------------------------------------------------------

    def lake_objects(self, prefix: str | None = None) -> pd.DataFrame:
        entries = list_objects(
            self.session.client("s3"),
            self.names.lake_bucket,
            self.names.lake_prefix if prefix is None else prefix,
        )
        return objects_frame((o["Key"], o["Size"], o["LastModified"]) for o in entries)

    def read_lake(self, limit: int | None = None) -> pd.DataFrame:
        import awswrangler as wr

        read = functools.partial(
            wr.s3.read_parquet,
            f"s3://{self.names.lake_bucket}/{self.names.lake_prefix}",
            dataset=True,
            boto3_session=self.session.boto3,
        )
        try:
            frame = next(iter(read(chunked=limit))).head(limit) if limit else read()
        except (wr.exceptions.NoFilesFound, StopIteration):
            return empty_lake()
        for name in PARTITION_KEYS:
            frame[name] = frame[name].astype(str)
        return frame.reset_index(drop=True)

    def _read_objects(self, keys: list[str]) -> pd.DataFrame:
        import awswrangler as wr

        bucket = self.names.lake_bucket
        return wr.s3.read_parquet(
            [f"s3://{bucket}/{key}" for key in keys],
            columns=LAKE_COLUMNS,
            boto3_session=self.session.boto3,
        )

    def _list_keys(self, prefix: str) -> list[str]:
        entries = list_objects(self.session.client("s3"), self.names.lake_bucket, prefix)
        return [entry["Key"] for entry in entries]

    # flush and status ----------------------------------------------------------------------

    def flush(self, timeout: float = 60.0, progress: bool = False, realtime: bool = True) -> None:
        """Return once the changes written through this platform are in the lake and, with
        ``realtime``, applied by the real-time consumer (those of the days it keeps).

        See :mod:`helpers.aws.flush` for how, and its limits: the lake's latest event of each
        order gives its ``SequenceNumber``, and the consumer has applied it once the order's
        contribution item carries that number or a later one. On timeout, raises
        :class:`~helpers.exceptions.PipelineStuckError` naming the pipe (changes missing from
        the Kinesis stream), the delivery stream (in the stream, not in the lake) or the
        real-time consumer.
        """
        deadline = time.monotonic() + timeout
        expected = self.expectations.snapshot()
        since = self.expectations.since
        delivered: dict[str, tuple[int, str]] = {}  # order id -> (day number, event_seq)
        view = LakeView(self._list_keys, self._read_objects, self.names.lake_prefix)
        with waiting_bar("lake", len(expected), progress) as bar:
            while expected:
                view.refresh(expected)
                matched = view.matched(expected)
                self.expectations.confirm(matched)
                for key, (day, _) in matched.items():
                    delivered[key] = (day, view.latest[key][0])
                    del expected[key]
                bar.update(len(matched))
                if not expected:
                    break
                if time.monotonic() + FLUSH_POLL_S > deadline:
                    raise self._stuck(expected, since or time.time(), timeout)
                time.sleep(FLUSH_POLL_S)
        yesterday = int(time.time() // 86_400) - 1  # the UTC day number; the consumer keeps
        self._unapplied.update(  # no older day (its own clock may be later)
            (key, entry) for key, entry in delivered.items() if entry[0] >= yesterday
        )
        if realtime and self._unapplied:
            self._wait_for_consumer(deadline, timeout, progress)

    def _wait_for_consumer(self, deadline: float, timeout: float, progress: bool) -> None:
        """Wait until the consumer applied the changes of ``_unapplied`` of the days it keeps.
        A stack deployed before the consumer has none to wait for."""
        client, r = self.session.client("dynamodb"), self.names
        try:
            oldest = date.fromisoformat(realtime.oldest_kept_day(client, r))
        except client.exceptions.ResourceNotFoundException:
            self._unapplied.clear()
            return
        first = (oldest - date(1970, 1, 1)).days
        for key in [key for key, (day, _) in self._unapplied.items() if day < first]:
            del self._unapplied[key]  # a day the consumer no longer keeps
        waiting = {key: seq for key, (_, seq) in self._unapplied.items()}
        with waiting_bar("realtime consumer", len(waiting), progress) as bar:
            while waiting:
                behind = realtime.not_applied(client, r.nowcast_table_name, waiting)
                bar.update(len(waiting) - len(behind))
                for key in waiting.keys() - behind.keys():
                    del self._unapplied[key]
                waiting = behind
                if not waiting:
                    return
                if time.monotonic() + FLUSH_POLL_S > deadline:
                    queued = self._dead_letters(r.consumer_dead_letter_queue_url)
                    hint = (
                        f"{queued} batch(es) it gave up on wait in its on-failure queue "
                        f"{r.consumer_dead_letter_queue_url}."
                        if queued
                        else "See its mapping in status() and the logs of the Lambda "
                        f"{r.consumer_function_name}."
                    )
                    raise PipelineStuckError("realtime consumer", len(waiting), timeout, hint)
                time.sleep(FLUSH_POLL_S)

    def _stuck(self, expected: dict, since: float, timeout: float) -> PipelineStuckError:
        """Name the stage that holds the missing changes, by reading the Kinesis stream."""
        r = self.names
        records = kinesis.read_since(self.session.client("kinesis"), r.stream_name, since - 60)
        in_stream = stream_states(records)
        missing = [
            key for key, (_, state) in expected.items() if in_stream.get(key, _ABSENT) != state
        ]
        if missing:
            queued = self._dead_letters(r.dead_letter_queue_url)
            hint = (
                f"{queued} record(s) wait in the pipe's dead-letter queue {r.dead_letter_queue_url}."
                if queued
                else f"Check the pipe: aws pipes describe-pipe --name {r.pipe_name}"
            )
            return PipelineStuckError("pipe", len(missing), timeout, hint)
        failed = [
            o
            for o in list_objects(self.session.client("s3"), r.lake_bucket, r.error_prefix)
            if o["LastModified"].timestamp() >= since - 60
        ]
        hint = (
            f"{len(failed)} object(s) of failed records under s3://{r.lake_bucket}/{r.error_prefix} "
            f"since the writes; see the logs of the Lambda {r.function_name}."
            if failed
            else "Firehose may still be buffering; flush again with a longer timeout."
        )
        return PipelineStuckError("delivery stream", len(expected), timeout, hint)

    def _dead_letters(self, url: str | None) -> int:
        """Messages waiting in a dead-letter queue (0 without one)."""
        if not url:
            return 0
        attributes = self.session.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def status(self) -> pd.DataFrame:
        """Records per stage in the last hour (CloudWatch), failures, and the lake's freshness.

        ``pending`` counts the changes written through this platform and not yet confirmed
        by ``flush``; the table's count is DynamoDB's own, refreshed about every six hours.
        The real-time consumer's row gives its mapping's state, how far behind it reads, its
        invocations in the last hour and its dead letters; ``attrs["consumer"]`` holds them.
        """
        r = self.names
        watch = self.session.client("cloudwatch")
        pipe = cloudwatch.metrics(
            watch,
            "AWS/EventBridge/Pipes",
            "PipeName",
            r.pipe_name,
            {"EventCount": "Sum", "ExecutionFailed": "Sum"},
        )
        stream = cloudwatch.metrics(
            watch, "AWS/Kinesis", "StreamName", r.stream_name, {"IncomingRecords": "Sum"}
        )
        delivery = cloudwatch.metrics(
            watch,
            "AWS/Firehose",
            "DeliveryStreamName",
            r.delivery_stream_name,
            {"DeliveryToS3.Records": "Sum", "KinesisMillisBehindLatest": "Maximum"},
        )
        objects = self.lake_objects()
        errors = self.lake_objects(r.error_prefix)
        failures = self.read_errors() if len(errors) else None
        failed = 0 if failures is None else len(failures)
        newest = objects["last_modified"].max() if len(objects) else None
        pending = len(self.expectations)
        consumer = self._consumer(watch)
        rows = [
            (
                "table",
                self.table.approximate_count(),
                0,
                0,
                None,
                "items (DynamoDB's count, refreshed ~6-hourly)",
            ),
            (
                "change stream",
                int(pipe["EventCount"]),
                pending,
                self._dead_letters(r.dead_letter_queue_url),
                None,
                f"pipe events in the last hour; {int(pipe['ExecutionFailed'])} failed executions; failed = dead letters",
            ),
            (
                "kinesis stream",
                int(stream["IncomingRecords"]),
                0,
                0,
                None,
                f"records in the last hour; Firehose {delivery['KinesisMillisBehindLatest'] / 1000:g}s behind",
            ),
            (
                "lake",
                int(delivery["DeliveryToS3.Records"]),
                0,
                failed,
                None if newest is None else round(time.time() - newest.timestamp(), 3),
                f"records delivered in the last hour; {len(objects)} objects, {len(errors)} error objects"
                + ("" if failures is None else f" ({failure_summary(failures)})"),
            ),
            (
                "realtime consumer",
                consumer.get("invocations", 0),
                0,
                consumer.get("dead_letters", 0),
                None,
                f"mapping {consumer['state']} ({consumer['last_result']}),"
                f" {consumer['seconds_behind']:g}s behind;"
                " records = invocations in the last hour (Lambda counts no records);"
                " failed = batches in its on-failure queue"
                if consumer
                else "no real-time consumer: run `salescast deploy` to add it",
            ),
        ]
        frame = pd.DataFrame(
            rows,
            columns=["stage", "records", "pending", "failed", "seconds_since_delivery", "detail"],
        )
        frame.attrs["consuming"] = False
        frame.attrs["errors"] = {}
        frame.attrs["consumer"] = consumer
        return frame

    def _consumer(self, watch: Any) -> dict[str, Any]:
        """The real-time consumer's event source mapping: ``state`` and ``last_result``
        (Lambda's words), ``seconds_behind`` (the last hour's highest IteratorAge) and
        ``dead_letters`` (batches given up on, in its queue); empty without a mapping."""
        r = self.names
        client = self.session.client("lambda")
        try:
            mappings = client.list_event_source_mappings(FunctionName=r.consumer_function_name)
        except client.exceptions.ResourceNotFoundException:
            return {}
        if not mappings["EventSourceMappings"]:
            return {}
        mapping = mappings["EventSourceMappings"][0]
        age = cloudwatch.metrics(
            watch,
            "AWS/Lambda",
            "FunctionName",
            r.consumer_function_name,
            {"IteratorAge": "Maximum", "Invocations": "Sum"},
        )
        return {
            "invocations": int(age["Invocations"]),
            "state": mapping["State"],
            "last_result": mapping.get("LastProcessingResult", "no result yet"),
            "seconds_behind": age["IteratorAge"] / 1000,
            "dead_letters": self._dead_letters(r.consumer_dead_letter_queue_url),
        }

    # catalog and SQL ---------------------------------------------------------------------

    def crawl(self, progress: bool = True) -> dict:
        """Run the crawler, wait for it, then create the views; returns what the run did."""
        r = self.names
        client = self.session.client("glue")
        before = len(glue.partitions(client, r.database, r.changes_table))
        updated_before = glue.table_updated(client, r.database, r.changes_table)
        last = glue.start_crawler(client, r.crawler_name, progress=progress)
        updated = glue.table_updated(client, r.database, r.changes_table)
        exists = updated is not None
        return {
            "crawler": r.crawler_name,
            "started": last["StartTime"].isoformat() if "StartTime" in last else None,
            "tables_created": [r.changes_table] if exists and updated_before is None else [],
            "tables_updated": [r.changes_table]
            if updated_before is not None and updated != updated_before
            else [],
            "partitions_added": len(glue.partitions(client, r.database, r.changes_table)) - before,
            "messages": [last["ErrorMessage"]] if last.get("ErrorMessage") else [],
            "views_created": self.create_views() if exists else [],
        }

    def create_views(self) -> list[str]:
        """Create or replace the catalog views of ``helpers/queries`` (Athena DDL is free)."""
        r = self.names
        for name in queries.VIEWS:
            athena.run_statement(
                f"CREATE OR REPLACE VIEW {name} AS\n{queries.load(name)}",
                r.database,
                r.workgroup,
                self._s3_output,
                self.session.boto3,
            )
        return list(queries.VIEWS)

    def query(self, sql: str, database: str | None = None, params=None) -> pd.DataFrame:
        r = self.names
        return athena.read_sql_query(
            sql, database or r.database, r.workgroup, self._s3_output, self.session.boto3, params
        )

    def write_dataset(self, table: str, frame: pd.DataFrame, partition: dict[str, str]) -> str:
        import awswrangler as wr

        r = self.names
        glue.ensure_database(self.session.client("glue"), r.database)
        written = wr.s3.to_parquet(
            frame.assign(**partition),
            path=f"s3://{r.lake_bucket}/{table}/",
            dataset=True,
            database=r.database,
            table=table,
            partition_cols=list(partition),
            mode="overwrite_partitions",
            compression="snappy",
            boto3_session=self.session.boto3,
        )
        return next(iter(written["partitions_values"]))

    # real time ------------------------------------------------------------------------------

    def publish_expectations(self, frame: pd.DataFrame) -> int:
        """Write the expectations to the stack's expectations table (BatchWriteItem, unprocessed
        items sent again); see :func:`helpers.aws.realtime.publish_expectations`."""
        client, table = self.session.client("dynamodb"), self.names.expectations_table_name
        with realtime.stack_table(client, table):
            return realtime.publish_expectations(client, table, frame)

    def nowcasts(self, day: str | None = None) -> pd.DataFrame:
        client = self.session.client("dynamodb")
        with realtime.stack_table(client, self.names.nowcast_table_name):
            return realtime.nowcasts(client, self.names, day)

    def alerts(self, open_only: bool = False) -> pd.DataFrame:
        client, table = self.session.client("dynamodb"), self.names.nowcast_table_name
        with realtime.stack_table(client, table):
            return realtime.alerts(client, table, open_only)

    def read_errors(self, limit: int | None = None) -> pd.DataFrame:
        r = self.names
        client = self.session.client("s3")
        documents = []
        for listed in list_objects(client, r.lake_bucket, r.error_prefix):
            body = client.get_object(Bucket=r.lake_bucket, Key=listed["Key"])["Body"].read()
            for line in body.decode().splitlines():
                documents.append({"key": listed["Key"], **json.loads(line)})
                if limit is not None and len(documents) >= limit:
                    return failures_frame(documents)
        return failures_frame(documents)

    def catalog_tables(self) -> pd.DataFrame:
        """The tables and views of the stack's database (the catalog's other databases are
        not this platform's)."""
        database, client = self.names.database, self.session.client("glue")
        rows = []
        try:
            for page in client.get_paginator("get_tables").paginate(DatabaseName=database):
                for table in page["TableList"]:
                    partitions = glue.partitions(client, database, table["Name"])
                    rows.append(catalog_row(table, partitions))
        except client.exceptions.EntityNotFoundException:
            pass
        return pd.DataFrame(rows, columns=CATALOG_COLUMNS)

    # provisioning and lifecycle -------------------------------------------------------------

    def provision(self, progress: bool = True, allow_replacement: bool = False) -> pd.DataFrame:
        """Deploy the stack (``salescast deploy``: create or update, see
        :func:`cloudformation.provision`), then use its outputs; returns :meth:`resources`."""
        cloudformation.provision(
            self.session, progress=progress, allow_replacement=allow_replacement
        )
        self.names = cloudformation.resolve(self.session)
        self.table.name = self.names.table_name
        return self.resources()

    def resources(self) -> pd.DataFrame:
        """The stack's resources (service, kind, physical name, ARN when the id is one, and
        status), then its outputs (kind ``Output``, the value as detail); empty when there is
        no stack."""
        client = self.session.client("cloudformation")
        if self.names.stack is None:
            return pd.DataFrame(columns=RESOURCE_COLUMNS)
        rows = []
        for page in client.get_paginator("list_stack_resources").paginate(
            StackName=self.names.stack
        ):
            for resource in page["StackResourceSummaries"]:
                parts = resource["ResourceType"].split("::")  # AWS::DynamoDB::Table
                service, kind = (parts[1], parts[2]) if len(parts) == 3 else (parts[0], "")
                physical = resource.get("PhysicalResourceId", "")
                rows.append(
                    (
                        service,
                        kind,
                        physical,
                        physical if physical.startswith("arn:") else "",
                        resource["ResourceStatus"],
                    )
                )
        stack = client.describe_stacks(StackName=self.names.stack)["Stacks"][0]
        for output in stack.get("Outputs", []):
            value = output["OutputValue"]
            rows.append(
                (
                    "CloudFormation",
                    "Output",
                    output["OutputKey"],
                    value if value.startswith("arn:") else "",
                    value,
                )
            )
        return pd.DataFrame(rows, columns=RESOURCE_COLUMNS)

    def close(self) -> None:
        """Nothing runs here; the services keep running (``teardown`` removes them)."""

    def teardown(self, progress: bool = True) -> dict[str, Any]:
        """Empty the buckets and delete the stack (see :func:`cloudformation.teardown`)."""
        return cloudformation.teardown(self.session, progress)

    def __repr__(self) -> str:
        return f"AwsPlatform(stack={self.names.stack!r}, region={self.session.region!r})"
