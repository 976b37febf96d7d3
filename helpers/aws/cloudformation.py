"""CloudFormation: deploy the stack through a change set, read its outputs, tear it down.

The stack is named after the ``prefix`` setting and made from ``cloudformation/stack.yaml``.
:func:`provision` refuses a region, prefix or Lambda runtime the stack cannot have
(:func:`preflight`), packages the transform and consumer Lambdas, uploads them to an artifact
bucket, then
creates or updates the stack through a change set (a change set without changes is not an
error), refusing one that replaces a resource holding data unless told to, and shows the
stack's events as they come. :func:`teardown` empties the lake and artifact buckets (every
version), deletes the stack, then what it keeps on deletion and the artifact bucket.

A template over 51,200 bytes (CloudFormation's limit for an inline body) is uploaded beside the
code and passed by URL.

Not handled: stack policies, nested stacks, drift detection, and termination protection (a
protected stack is reported, not unprotected).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from helpers.aws import s3, support
from helpers.aws.awslambda import CODE_PARAMETERS, code_key, package_module
from helpers.aws.session import Session
from helpers.config import PROJECT_ROOT, Settings, load_template
from helpers.exceptions import DeployError
from helpers.progress import tqdm

TEMPLATE = PROJECT_ROOT / "cloudformation" / "stack.yaml"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
POLL_S = 5.0
TEMPLATE_BODY_LIMIT = 51_200
BUCKET_NAME_LIMIT = 63


@dataclass(frozen=True)
class Resources:
    """The names the platform acts on: the stack's outputs, or derived from the settings."""

    table_name: str
    stream_name: str
    pipe_name: str
    delivery_stream_name: str
    function_name: str
    lake_bucket: str
    database: str
    changes_table: str
    crawler_name: str
    workgroup: str
    lake_prefix: str
    error_prefix: str
    athena_results_prefix: str
    expectations_table_name: str
    nowcast_table_name: str
    consumer_function_name: str
    table_stream_arn: str | None = None
    stream_arn: str | None = None
    dead_letter_queue_url: str | None = None
    alert_topic_arn: str | None = None
    consumer_function_arn: str | None = None
    consumer_dead_letter_queue_url: str | None = None
    stack: str | None = None
    """The stack the names come from; None when they are derived from the settings."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Resources:
        """The names the stack would have, from the settings (before a stack exists)."""
        return cls(
            table_name=settings.table_name,
            stream_name=settings.stream_name,
            pipe_name=settings.pipe_name,
            delivery_stream_name=settings.delivery_stream_name,
            function_name=settings.function_name,
            lake_bucket=settings.bucket,
            database=settings.database,
            changes_table=settings.changes_table,
            crawler_name=settings.crawler_name,
            workgroup=settings.workgroup,
            lake_prefix=settings.lake_prefix,
            error_prefix=settings.error_prefix,
            athena_results_prefix=settings.athena_prefix,
            expectations_table_name=settings.expectations_table_name,
            nowcast_table_name=settings.nowcast_table_name,
            consumer_function_name=settings.consumer_function_name,
        )

    @classmethod
    def from_outputs(cls, outputs: dict[str, str], stack: str, settings: Settings) -> Resources:
        """The names from the stack's outputs; an output the stack lacks comes from settings."""
        found = {field: outputs[name] for name, field in OUTPUTS.items() if name in outputs}
        return dataclasses.replace(cls.from_settings(settings), stack=stack, **found)


OUTPUTS = {
    "TableName": "table_name",
    "TableStreamArn": "table_stream_arn",
    "StreamName": "stream_name",
    "StreamArn": "stream_arn",
    "PipeName": "pipe_name",
    "DeadLetterQueueUrl": "dead_letter_queue_url",
    "DeliveryStreamName": "delivery_stream_name",
    "FunctionName": "function_name",
    "LakeBucket": "lake_bucket",
    "DatabaseName": "database",
    "ChangesTable": "changes_table",
    "CrawlerName": "crawler_name",
    "WorkGroup": "workgroup",
    "LakePrefix": "lake_prefix",
    "ErrorPrefix": "error_prefix",
    "AthenaResultsPrefix": "athena_results_prefix",
    "ExpectationsTableName": "expectations_table_name",
    "NowcastTableName": "nowcast_table_name",
    "AlertTopicArn": "alert_topic_arn",
    "ConsumerFunctionArn": "consumer_function_arn",
    "ConsumerDeadLetterQueueUrl": "consumer_dead_letter_queue_url",
}
"""Stack output -> :class:`Resources` field."""


def stack_name(settings: Settings) -> str:
    """The stack's name: the prefix."""
    return settings.prefix


def artifact_bucket(settings: Settings) -> str:
    """The bucket deploy uploads the Lambda package to: ``<prefix>-artifacts-<account>-<region>``,
    or ``-code-`` in place of ``-artifacts-`` where that would pass S3's 63 characters (a
    prefix of 27 or more in a 14-character region), so that existing stacks keep theirs."""
    name = f"{settings.prefix}-artifacts-{settings.account_id}-{settings.region}"
    if len(name) > BUCKET_NAME_LIMIT:
        name = f"{settings.prefix}-code-{settings.account_id}-{settings.region}"
    return name


def describe_stack(client: Any, name: str) -> dict[str, Any] | None:
    """DescribeStacks of one stack, or None when there is none (or it is deleted)."""
    try:
        stack = client.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in error.response["Error"]["Message"]:
            return None
        raise
    return None if stack["StackStatus"] == "DELETE_COMPLETE" else stack


def stack_outputs(stack: dict[str, Any]) -> dict[str, str]:
    """A described stack's outputs, by key."""
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def resolve(session: Session) -> Resources:
    """The resources of the deployed stack, or the settings' names when there is no stack."""
    settings = session.settings
    name = stack_name(settings)
    stack = describe_stack(session.client("cloudformation"), name)
    if stack is None or stack["StackStatus"] in ("REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE"):
        return Resources.from_settings(settings)
    return Resources.from_outputs(stack_outputs(stack), name, settings)


SETTING_PARAMETERS = {
    "Prefix": "prefix",
    "DatabaseName": "database",
    "LakePrefix": "lake_prefix",
    "ErrorPrefix": "error_prefix",
    "AthenaResultsPrefix": "athena_prefix",
    "ShardCount": "shard_count",
    "PipeBatchSize": "pipe_batch_size",
    "PipeBatchingWindowSeconds": "pipe_batching_window_s",
    "BufferSizeMB": "buffer_size_mb",
    "LambdaBufferSizeMB": "lambda_buffer_size_mb",
    "StreamRetentionHours": "stream_retention_hours",
    "AthenaResultsRetentionDays": "athena_results_retention_days",
    "ErrorRetentionDays": "error_retention_days",
    "LogRetentionDays": "log_retention_days",
    "LambdaRuntime": "lambda_runtime",
}
"""Stack parameter -> the setting that gives its value. ``BufferIntervalSeconds`` is left to
the template: the local default (1 s) is below what Firehose accepts."""


def template_source(storage: Any, bucket: str, region: str, body: str) -> dict[str, str]:
    """``TemplateBody``, or for a template too large for it, ``TemplateURL`` of a copy
    uploaded to the artifact bucket (named by its hash)."""
    if len(body.encode()) <= TEMPLATE_BODY_LIMIT:
        return {"TemplateBody": body}
    key = f"templates/stack-{hashlib.sha256(body.encode()).hexdigest()[:16]}.yaml"
    storage.put_object(Bucket=bucket, Key=key, Body=body.encode())
    return {"TemplateURL": f"https://{bucket}.s3.{region}.amazonaws.com/{key}"}


def template_parameters(
    client: Any, source: dict[str, str], settings: Settings, bucket: str, keys: dict[str, str]
) -> list[dict[str, str]]:
    """Values for the parameters the template declares: the artifact bucket, the packages'
    keys (by parameter, as :func:`upload_code` gives them), and those of
    :data:`SETTING_PARAMETERS`, so that the stack and the settings agree."""
    summary = client.get_template_summary(**source)
    declared = {parameter["ParameterKey"] for parameter in summary["Parameters"]}
    values = {name: getattr(settings, field) for name, field in SETTING_PARAMETERS.items()}
    values.update(keys, ArtifactBucket=bucket)
    return [
        {
            "ParameterKey": name,
            "ParameterValue": f"{value:g}" if isinstance(value, float) else str(value),
        }
        for name, value in sorted(values.items())
        if name in declared
    ]


def upload_code(storage: Any, bucket: str) -> dict[str, str]:
    """Upload each Lambda's package (:data:`~helpers.aws.awslambda.CODE_PARAMETERS`) to the
    artifact bucket under its content-named key; returns the keys by stack parameter."""
    keys = {}
    for parameter, source in CODE_PARAMETERS.items():
        package = package_module(source)
        keys[parameter] = code_key(package, source)
        storage.put_object(Bucket=bucket, Key=keys[parameter], Body=package)
    return keys


@dataclass(frozen=True)
class Replacement:
    """A resource a change set replaces (``Replacement`` True) or may (Conditional)."""

    logical_id: str
    resource_type: str
    replacement: str
    causes: tuple[str, ...]
    """The properties (or attributes) whose change requires recreating it."""

    def __str__(self) -> str:
        how = "may be replaced" if self.replacement == "Conditional" else "will be replaced"
        because = f" (changed: {', '.join(self.causes)})" if self.causes else ""
        return f"{self.logical_id} ({self.resource_type}) {how}{because}"


def kept_resources(template: dict[str, Any]) -> set[str]:
    """Logical ids of the resources that hold data: those the template keeps (Retain or
    Snapshot) when an update replaces them."""
    return {
        name
        for name, resource in template["Resources"].items()
        if resource.get("UpdateReplacePolicy") in ("Retain", "Snapshot")
    }


def replacements(changes: list[dict[str, Any]]) -> list[Replacement]:
    """The replacements among a change set's ``Changes`` (DescribeChangeSet's shape)."""
    found = []
    for change in changes:
        resource = change.get("ResourceChange", {})
        if resource.get("Action") != "Modify" or resource.get("Replacement") == "False":
            continue
        causes = {
            detail["Target"].get("Name") or detail["Target"].get("Attribute", "")
            for detail in resource.get("Details", [])
            if detail.get("Target", {}).get("RequiresRecreation") in ("Always", "Conditionally")
        }
        found.append(
            Replacement(
                resource["LogicalResourceId"],
                resource["ResourceType"],
                resource.get("Replacement", "Conditional"),
                tuple(sorted(causes)),
            )
        )
    return found


def refused_replacements(
    replaced: list[Replacement], kept: set[str], allow_replacement: bool
) -> list[Replacement]:
    """The replacements deploy refuses: of resources that hold data, unless allowed."""
    return [] if allow_replacement else [r for r in replaced if r.logical_id in kept]


def change_set_changes(client: Any, stack: str, change_set: str) -> list[dict[str, Any]]:
    """Every change of a change set (DescribeChangeSet pages them)."""
    response = client.describe_change_set(StackName=stack, ChangeSetName=change_set)
    changes = list(response.get("Changes", []))
    while response.get("NextToken"):
        response = client.describe_change_set(
            StackName=stack, ChangeSetName=change_set, NextToken=response["NextToken"]
        )
        changes.extend(response.get("Changes", []))
    return changes


def preflight(settings: Settings, region: str, template: dict[str, Any], today: dt.date) -> None:
    """Refuse what the stack cannot be deployed with, before anything is created: a region
    without its resource types, a prefix the template does not allow, a deprecated runtime."""
    support.check_region(region)
    pattern = template.get("Parameters", {}).get("Prefix", {}).get("AllowedPattern")
    if pattern and not re.fullmatch(pattern, settings.prefix):
        raise DeployError(
            f"prefix {settings.prefix!r} does not match {pattern} (2-30 characters: a lower-case"
            " letter, then lower-case letters, digits or hyphens); set SALESCAST_PREFIX or --prefix"
        )
    support.check_runtime(settings.lambda_runtime, today)


def provision(
    session: Session,
    template: Path = TEMPLATE,
    progress: bool = True,
    allow_replacement: bool = False,
) -> dict[str, Any]:
    """Create or update the stack; returns ``stack``, ``action`` (created, updated or
    unchanged), ``replaced`` (the logical ids replaced) and ``outputs``.

    Raises :class:`~helpers.exceptions.DeployError` before touching anything when
    :func:`preflight` refuses; when the change set would replace a resource that holds data
    (the table, the stream, the lake) unless ``allow_replacement``; and with the first failed
    resource's reason when CloudFormation rolls back.
    """
    settings = session.settings
    preflight(settings, session.region, load_template(template), dt.date.today())
    client, storage = session.client("cloudformation"), session.client("s3")
    bucket = artifact_bucket(settings)
    s3.ensure_bucket(storage, bucket, session.region)
    keys = upload_code(storage, bucket)
    source = template_source(storage, bucket, session.region, Path(template).read_text())
    parameters = template_parameters(client, source, settings, bucket, keys)

    name = stack_name(settings)
    stack = describe_stack(client, name)
    status = stack["StackStatus"] if stack else None
    if status == "ROLLBACK_COMPLETE":  # a failed first create leaves a stack that cannot update
        _say(progress, f"deleting stack {name} left in ROLLBACK_COMPLETE by a failed create")
        _delete_stack(client, stack["StackId"], progress)
        status = None
    elif status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise DeployError(f"stack {name} is busy ({status}); wait until it settles and retry")
    kind = "CREATE" if status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
    change_set = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    client.create_change_set(
        StackName=name,
        ChangeSetName=change_set,
        ChangeSetType=kind,
        **source,
        Parameters=parameters,
        Capabilities=CAPABILITIES,
        Tags=[{"Key": "project", "Value": "salescast"}],
    )
    described = _wait_change_set(client, name, change_set)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        client.delete_change_set(StackName=name, ChangeSetName=change_set)
        if any(text in reason for text in NO_CHANGES):
            _say(progress, f"stack {name} is up to date: no changes")
            return {
                "stack": name,
                "action": "unchanged",
                "replaced": [],
                "outputs": _outputs(client, name),
            }
        raise DeployError(f"change set {change_set} of stack {name} failed: {reason}")
    replaced = replacements(change_set_changes(client, name, change_set))
    for replacement in replaced:
        _say(progress, str(replacement))
    refused = refused_replacements(
        replaced, kept_resources(load_template(template)), allow_replacement
    )
    if refused:
        client.delete_change_set(StackName=name, ChangeSetName=change_set)
        raise DeployError(
            f"not deploying: {'; '.join(map(str, refused))}. It holds data: the stack would "
            "start over with an empty one (the old one is kept, outside the stack). Undo the "
            "change, or deploy with --allow-replacement to accept it"
        )
    seen = {event["EventId"] for event in _events(client, name)}
    client.execute_change_set(StackName=name, ChangeSetName=change_set)
    final, failures = _wait_stack(client, name, len(described.get("Changes", [])), seen, progress)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        reason = failures[0] if failures else "see the stack's events in the console"
        raise DeployError(f"stack {name} ended in {final}: {reason}")
    action = "created" if kind == "CREATE" else "updated"
    return {
        "stack": name,
        "action": action,
        "replaced": [r.logical_id for r in replaced],
        "outputs": _outputs(client, name),
    }


def teardown(session: Session, progress: bool = True, template: Path = TEMPLATE) -> dict[str, Any]:
    """Empty the lake and artifact buckets (every version), delete the stack, then what the
    stack keeps on deletion (the table, the stream, the lake: see :func:`kept_resources`) and
    the artifact bucket; returns what was removed."""
    settings = session.settings
    client, storage = session.client("cloudformation"), session.client("s3")
    resources = resolve(session)
    name = stack_name(settings)
    removed = {
        "objects": s3.empty_bucket(storage, resources.lake_bucket),
        "stack": None,
        "kept": [],
    }
    bucket = artifact_bucket(settings)
    removed["objects"] += s3.empty_bucket(storage, bucket)
    stack = describe_stack(client, name)
    if stack is not None:
        kept = _kept(client, stack["StackId"], kept_resources(load_template(template)))
        # a delivery may land between emptying and deleting the bucket (of a stack deployed
        # before the lake was kept on deletion)
        for attempt in (1, 2):
            final, failures = _delete_stack(client, stack["StackId"], progress)
            if final == "DELETE_COMPLETE":
                break
            if attempt == 2:
                reason = failures[0] if failures else final
                raise DeployError(f"stack {name} could not be deleted: {reason}")
            removed["objects"] += s3.empty_bucket(storage, resources.lake_bucket)
        removed["stack"] = name
        for resource_type, physical_id in kept:
            removed["objects"] += _delete_kept(session, resource_type, physical_id)
            removed["kept"].append(physical_id)
    try:
        storage.delete_bucket(Bucket=bucket)
        removed["artifact_bucket"] = bucket
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchBucket":
            raise
    return removed


def _kept(client: Any, stack_id: str, kept: set[str]) -> list[tuple[str, str]]:
    """(type, physical id) of the stack's resources that it keeps on deletion."""
    return [
        (resource["ResourceType"], resource["PhysicalResourceId"])
        for page in client.get_paginator("list_stack_resources").paginate(StackName=stack_id)
        for resource in page["StackResourceSummaries"]
        if resource["LogicalResourceId"] in kept and resource.get("PhysicalResourceId")
    ]


def _delete_kept(session: Session, resource_type: str, physical_id: str) -> int:
    """Delete a resource the stack left behind on purpose; returns the objects emptied."""
    emptied = 0
    try:
        if resource_type == "AWS::S3::Bucket":
            emptied = s3.empty_bucket(session.client("s3"), physical_id)  # late deliveries
            session.client("s3").delete_bucket(Bucket=physical_id)
        elif resource_type == "AWS::DynamoDB::Table":
            session.client("dynamodb").delete_table(TableName=physical_id)
        elif resource_type == "AWS::Kinesis::Stream":
            session.client("kinesis").delete_stream(
                StreamName=physical_id, EnforceConsumerDeletion=True
            )
        else:
            raise DeployError(
                f"the stack kept {physical_id} ({resource_type}) and teardown does not know how "
                "to delete it; delete it in the console"
            )
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("NoSuchBucket", "ResourceNotFoundException"):
            raise
    return emptied


def _outputs(client: Any, name: str) -> dict[str, str]:
    stack = describe_stack(client, name)
    return stack_outputs(stack) if stack else {}


def _wait_change_set(client: Any, stack: str, change_set: str) -> dict[str, Any]:
    while True:
        described = client.describe_change_set(StackName=stack, ChangeSetName=change_set)
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return described
        time.sleep(POLL_S / 2)


def _events(client: Any, stack: str) -> list[dict[str, Any]]:
    """The stack's latest events (one page), oldest first."""
    try:
        return client.describe_stack_events(StackName=stack)["StackEvents"][::-1]
    except ClientError as error:
        if "does not exist" in error.response["Error"]["Message"]:
            return []
        raise


def _delete_stack(client: Any, stack_id: str, progress: bool) -> tuple[str, list[str]]:
    seen = {event["EventId"] for event in _events(client, stack_id)}
    resources = len(client.describe_stack_resources(StackName=stack_id)["StackResources"])
    client.delete_stack(StackName=stack_id)
    return _wait_stack(client, stack_id, resources, seen, progress)


def _wait_stack(
    client: Any, stack: str, resources: int, seen: set[str], progress: bool
) -> tuple[str, list[str]]:
    """Wait for the stack to settle, showing its new events; returns the final status and the
    reasons of failed resources."""
    failures: list[str] = []
    with tqdm(
        total=resources or None,
        desc=f"stack {stack.split('/')[-2] if '/' in stack else stack}",
        unit="resource",
        disable=not progress,
    ) as bar:
        while True:
            described = client.describe_stacks(StackName=stack)["Stacks"][0]
            for event in _events(client, stack):
                if event["EventId"] in seen:
                    continue
                seen.add(event["EventId"])
                status, reason = event["ResourceStatus"], event.get("ResourceStatusReason", "")
                if event["ResourceType"] != "AWS::CloudFormation::Stack":
                    if status.endswith("_COMPLETE"):
                        bar.update(1)
                    if status.endswith("_FAILED") and reason:
                        failures.append(f"{event['LogicalResourceId']}: {reason}")
                bar.set_postfix_str(f"{event['LogicalResourceId']} {status}")
                if progress:
                    bar.write(
                        f"{event['Timestamp']:%H:%M:%S} {event['LogicalResourceId']} "
                        f"({event['ResourceType']}) {status} {reason}".rstrip()
                    )
            status = described["StackStatus"]
            if not status.endswith("_IN_PROGRESS"):
                return status, failures
            time.sleep(POLL_S)


def _say(progress: bool, message: str) -> None:
    if progress:
        tqdm.write(message)
