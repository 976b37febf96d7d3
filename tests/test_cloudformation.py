"""The CloudFormation stack: valid, least privilege, and in step with the code it mirrors.

Names, prefixes and defaults are shared with the local backend (``Settings``); the Glue columns
and the saved SQL are generated from ``helpers/schema.py`` and ``helpers/queries``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
from pathlib import Path

import cfnlint
import pytest
from cfnlint.api import lint_file

from helpers import queries, transform
from helpers import realtime as rt
from helpers.aws import template
from helpers.aws.awslambda import CODE_PARAMETERS, CONSUMER_HANDLER, CONSUMER_SOURCE
from helpers.config import TEMPLATE_PATH, Settings, load_template, template_defaults
from helpers.local.platform import error_prefix_template, lake_prefix_template
from helpers.schema import KEY, glue_columns, glue_partition_keys

OUTPUTS = {
    "TableName",
    "TableStreamArn",
    "StreamName",
    "StreamArn",
    "PipeName",
    "DeadLetterQueueUrl",
    "DeliveryStreamName",
    "FunctionName",
    "LakeBucket",
    "DatabaseName",
    "ChangesTable",
    "CrawlerName",
    "WorkGroup",
    "LakePrefix",
    "ErrorPrefix",
    "AthenaResultsPrefix",
    "ExpectationsTableName",
    "NowcastTableName",
    "AlertTopicArn",
    "ConsumerFunctionArn",
    "ConsumerDeadLetterQueueUrl",
}
"""The outputs the aws backend reads."""
ROLE_SERVICES = {
    "PipeRole": "pipes.amazonaws.com",
    "DeliveryRole": "firehose.amazonaws.com",
    "TransformRole": "lambda.amazonaws.com",
    "CrawlerRole": "glue.amazonaws.com",
    "ConsumerRole": "lambda.amazonaws.com",
}
SETTING_PARAMETERS = {
    "prefix": "Prefix",
    "database": "DatabaseName",
    "lake_prefix": "LakePrefix",
    "error_prefix": "ErrorPrefix",
    "athena_prefix": "AthenaResultsPrefix",
    "shard_count": "ShardCount",
    "pipe_batch_size": "PipeBatchSize",
    "pipe_batching_window_s": "PipeBatchingWindowSeconds",
    "buffer_size_mb": "BufferSizeMB",
    "lambda_buffer_size_mb": "LambdaBufferSizeMB",
    "stream_retention_hours": "StreamRetentionHours",
    "athena_results_retention_days": "AthenaResultsRetentionDays",
    "error_retention_days": "ErrorRetentionDays",
    "log_retention_days": "LogRetentionDays",
    "lambda_runtime": "LambdaRuntime",
}
IAM_ACTIONS = json.loads(
    (Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json").read_text()
)
"""cfn-lint's copy of the Service Authorization Reference: actions and their resource types."""
REGENERATE = "run `python -m helpers.aws.template` and commit cloudformation/stack.yaml"


@pytest.fixture(scope="module")
def stack() -> dict:
    return load_template()


def properties(stack: dict, logical_id: str) -> dict:
    return stack["Resources"][logical_id]["Properties"]


def resolve(value, names: dict[str, str]) -> str:
    """A ``Ref`` or ``Fn::Sub`` string with every ``${name}`` replaced from ``names``."""
    text = value["Ref"] if "Ref" in value else value["Fn::Sub"]
    if "Ref" in value:
        return names[text]
    return re.sub(r"\$\{([^}]+)\}", lambda match: names[match.group(1)], text)


# cfn-lint -------------------------------------------------------------------------------------


def test_cfn_lint_reports_no_errors_or_warnings():
    problems = [str(match) for match in lint_file(TEMPLATE_PATH)]
    assert problems == []


def test_cfn_lint_catches_a_wrong_property(tmp_path):
    broken = tmp_path / "stack.yaml"
    broken.write_text(TEMPLATE_PATH.read_text().replace("FileExtension:", "FileExtensions:"))
    assert [match.rule.id for match in lint_file(broken)] == ["E3002"]


# least privilege -------------------------------------------------------------------------------


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _scoped(resource) -> bool:
    """A resource names one resource (a Ref, a GetAtt, an ARN without ``*``) or this stack's
    objects under a prefix (a Sub ending in ``*`` after a stack resource or parameter)."""
    if not isinstance(resource, dict):
        return False
    if "Ref" in resource or "Fn::GetAtt" in resource:
        return True
    text = resource.get("Fn::Sub", "")
    if "*" not in text:
        return bool(text)
    references = re.findall(r"\$\{([^}]+)\}", text)
    return "*" not in text[:-1] and any(not name.startswith("AWS::") for name in references)


def policy_problems(stack: dict) -> list[str]:
    """What breaks least privilege in the stack's IAM roles, one line per problem."""
    problems = []
    roles = {
        name: resource
        for name, resource in stack["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    if set(roles) != set(ROLE_SERVICES):
        problems.append(f"roles are {sorted(roles)}, expected {sorted(ROLE_SERVICES)}")
    for name, role in roles.items():
        if role["Properties"].get("ManagedPolicyArns"):
            problems.append(f"{name}: managed policies grant more than the stack uses")
        trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if [statement["Principal"] for statement in trust] != [
            {"Service": ROLE_SERVICES.get(name)}
        ]:
            problems.append(f"{name}: trusts {trust}, expected only {ROLE_SERVICES.get(name)}")
        for policy in role["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                where = f"{name}/{statement.get('Sid', '?')}"
                if statement["Effect"] != "Allow" or "NotAction" in statement:
                    problems.append(f"{where}: only plain Allow statements are expected")
                    continue
                actions = _listed(statement["Action"])
                for action in actions:
                    service, _, verb = action.partition(":")
                    if "*" in action:
                        problems.append(f"{where}: wildcard action {action}")
                    elif verb.lower() not in IAM_ACTIONS.get(service, {}).get("Actions", {}):
                        problems.append(f"{where}: {action} is not an IAM action")
                for resource in _listed(statement.get("Resource")):
                    if resource == "*":
                        scoped_actions = [
                            action
                            for action in actions
                            if IAM_ACTIONS.get(action.partition(":")[0], {})
                            .get("Actions", {})
                            .get(action.partition(":")[2].lower(), {})
                            .get("Resources")
                        ]
                        if scoped_actions:
                            problems.append(f"{where}: {scoped_actions} on * could be scoped")
                    elif not _scoped(resource):
                        problems.append(f"{where}: resource {resource} is not this stack's")
    return problems


def test_roles_have_least_privilege(stack):
    assert policy_problems(stack) == []


def test_least_privilege_check_catches_wildcards(stack):
    loose = copy.deepcopy(stack)
    statements = properties(loose, "DeliveryRole")["Policies"][0]["PolicyDocument"]["Statement"]
    statements[0]["Action"] = "kinesis:*"
    statements[1]["Resource"] = "*"
    statements[2]["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:glue:*"}
    assert policy_problems(loose) == [
        "DeliveryRole/ReadTheKinesisStream: wildcard action kinesis:*",
        "DeliveryRole/InvokeTheTransform: ['lambda:InvokeFunction', "
        "'lambda:GetFunctionConfiguration'] on * could be scoped",
        "DeliveryRole/ReadTheSchemaForParquet: resource {'Fn::Sub': "
        "'arn:${AWS::Partition}:glue:*'} is not this stack's",
    ]


def test_every_star_resource_says_why():
    lines = TEMPLATE_PATH.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() == 'Resource: "*"':
            assert lines[number - 1].strip().startswith("#"), f"line {number + 1}: say why"


# generated from helpers/schema.py and helpers/queries ------------------------------------------


def test_generated_block_is_up_to_date(stack):
    assert template.stale_resources(stack) == [], REGENERATE
    assert template.render() in TEMPLATE_PATH.read_text(), REGENERATE


def test_glue_table_has_the_schemas_columns(stack):
    table = properties(stack, template.CHANGES_TABLE_ID)["TableInput"]
    assert table["StorageDescriptor"]["Columns"] == glue_columns()
    assert table["PartitionKeys"] == glue_partition_keys()


def test_saved_queries_are_the_sql_files(stack):
    saved = {
        resource["Properties"]["Name"]: resource["Properties"]["QueryString"]
        for resource in stack["Resources"].values()
        if resource["Type"] == "AWS::Athena::NamedQuery"
    }
    assert {name: saved[name] for name in queries.NAMED} == {
        name: queries.load(name) for name in queries.NAMED
    }
    for view in queries.VIEWS:
        assert saved[f"create_view_{view}"] == (
            f"CREATE OR REPLACE VIEW {view} AS\n{queries.load(view)}"
        )


def test_drift_is_detected(stack, monkeypatch):
    load = queries.load
    monkeypatch.setattr(
        queries, "load", lambda name: load(name) + ("-- edited\n" if name == "top_products" else "")
    )
    monkeypatch.setattr(template, "glue_columns", lambda: glue_columns()[:-1])
    assert template.stale_resources(stack) == ["ChangesTable", "QueryTopProducts"]


def test_regenerate_rewrites_only_the_generated_block(tmp_path):
    path = tmp_path / "stack.yaml"
    shutil.copy(TEMPLATE_PATH, path)
    path.write_text(path.read_text().replace("LIMIT 20", "LIMIT 25"))
    assert template.stale_resources(load_template(path)) == ["QueryTopProducts"]
    assert template.regenerate(path) is True
    assert path.read_text() == TEMPLATE_PATH.read_text()
    assert template.regenerate(path) is False


# shared with the local backend -----------------------------------------------------------------


def test_settings_defaults_are_the_templates():
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    parameters = template_defaults()
    assert {name: defaults[name] for name in SETTING_PARAMETERS} == {
        name: parameters[parameter] for name, parameter in SETTING_PARAMETERS.items()
    }
    assert defaults["buffer_interval_s"] < parameters["BufferIntervalSeconds"]  # on purpose


def test_names_match_settings(stack):
    settings = Settings(prefix="demo", account_id="123456789012", region="eu-west-1")
    names = {
        "Prefix": settings.prefix,
        "AWS::AccountId": settings.account_id,
        "AWS::Region": settings.region,
        "LakeBucket": settings.bucket,
        "LakePrefix": settings.lake_prefix,
        "ErrorPrefix": settings.error_prefix,
        "AthenaResultsPrefix": settings.athena_prefix,
    }
    named = {
        ("OrdersTable", "TableName"): settings.table_name,
        ("ChangesStream", "Name"): settings.stream_name,
        ("OrdersToChangesPipe", "Name"): settings.pipe_name,
        ("LakeDelivery", "DeliveryStreamName"): settings.delivery_stream_name,
        ("LakeCrawler", "Name"): settings.crawler_name,
        ("TransformFunction", "FunctionName"): settings.function_name,
        ("ConsumerFunction", "FunctionName"): settings.consumer_function_name,
        ("ExpectationsTable", "TableName"): settings.expectations_table_name,
        ("NowcastTable", "TableName"): settings.nowcast_table_name,
        ("AlertTopic", "TopicName"): settings.alert_topic_name,
        ("ConsumerDeadLetterQueue", "QueueName"): settings.consumer_dlq_name,
        ("LakeBucket", "BucketName"): settings.bucket,
        ("WorkGroup", "Name"): settings.workgroup,
    }
    for (logical_id, name), expected in named.items():
        assert resolve(properties(stack, logical_id)[name], names) == expected, logical_id
    assert properties(stack, "ChangesTable")["TableInput"]["Name"] == settings.changes_table
    destination = properties(stack, "LakeDelivery")["ExtendedS3DestinationConfiguration"]
    assert resolve(destination["Prefix"], names) == lake_prefix_template(settings.lake_prefix)
    assert resolve(destination["ErrorOutputPrefix"], names) == error_prefix_template(
        settings.error_prefix
    )
    results = properties(stack, "WorkGroup")["WorkGroupConfiguration"]["ResultConfiguration"]
    assert (
        resolve(results["OutputLocation"], names)
        == f"s3://{settings.bucket}/{settings.athena_prefix}"
    )


def test_crawler_keeps_the_stacks_table(stack):
    crawler = properties(stack, "LakeCrawler")
    assert crawler["Targets"] == {
        "CatalogTargets": [
            {"DatabaseName": {"Ref": "GlueDatabase"}, "Tables": [{"Ref": "ChangesTable"}]}
        ]
    }
    assert crawler["SchemaChangePolicy"]["DeleteBehavior"] == "LOG"  # catalog targets need it
    assert json.loads(crawler["Configuration"])["Version"] == 1.0


def statements(stack: dict, role: str) -> dict[str, dict]:
    """A role's policy statements, by Sid."""
    (policy,) = properties(stack, role)["Policies"]
    return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}


def test_crawler_role_has_what_aws_documents_for_a_crawler(stack):
    """AWSGlueServiceRole's crawler rights on this stack's resources: list the bucket with no
    prefix condition (a crawler lists from the table's location, not a prefix we choose)."""
    granted = statements(stack, "CrawlerRole")
    bucket = granted["ListTheBucket"]
    assert bucket["Resource"] == {"Fn::GetAtt": ["LakeBucket", "Arn"]} and "Condition" not in bucket
    assert set(bucket["Action"]) == {"s3:GetBucketLocation", "s3:GetBucketAcl", "s3:ListBucket"}
    assert granted["ReadTheLake"]["Resource"] == {"Fn::Sub": "${LakeBucket.Arn}/${LakePrefix}*"}
    assert granted["ListAllBuckets"]["Action"] == "s3:ListAllMyBuckets"
    assert {
        "glue:GetDatabase",
        "glue:GetTable",
        "glue:UpdateTable",
        "glue:GetPartitions",
        "glue:BatchCreatePartition",
        "glue:BatchUpdatePartition",
    } <= set(granted["UpdateTheChangeLogTable"]["Action"])
    own = properties(stack, "CrawlerRole")["RoleName"]["Fn::Sub"]
    assert granted["ReadItsOwnRole"]["Resource"]["Fn::Sub"].endswith(f":role/{own}")
    assert set(granted["ReadItsOwnRole"]["Action"]) == {
        "iam:GetRole",
        "iam:GetRolePolicy",
        "iam:ListRolePolicies",
    }
    logs = granted["WriteCrawlerLogs"]["Resource"]
    assert [resource["Fn::Sub"].split(":log-group:")[1] for resource in logs] == [
        "/aws-glue/crawlers",
        "/aws-glue/crawlers:log-stream:${Prefix}-lake-crawler",
    ]
    conditions = [s.get("Condition") for s in granted.values()]
    assert conditions == [None] * len(granted)


def test_pipe_partitions_by_the_order_key(stack):
    target = properties(stack, "OrdersToChangesPipe")["TargetParameters"]
    assert target["KinesisStreamParameters"]["PartitionKey"] == f"$.dynamodb.Keys.{KEY}.S"


def test_lambda_runs_the_transform_module(stack):
    function = properties(stack, "TransformFunction")
    module, handler = function["Handler"].split(".")
    assert module == Path(transform.__file__).stem and callable(getattr(transform, handler))
    assert function["Runtime"] == {"Ref": "LambdaRuntime"}


def test_outputs_are_what_the_backend_reads(stack):
    assert set(stack["Outputs"]) == OUTPUTS


# the real-time consumer -------------------------------------------------------------------------


def test_consumer_reads_the_stream_with_the_contracts_mapping(stack):
    """The settings of /work/rt_spec.md, which the local emulation shares."""
    mapping = properties(stack, "ConsumerEventSourceMapping")
    assert mapping == {
        "FunctionName": {"Ref": "ConsumerFunction"},
        "EventSourceArn": {"Fn::GetAtt": ["ChangesStream", "Arn"]},
        "StartingPosition": "LATEST",
        "BatchSize": 100,
        "MaximumBatchingWindowInSeconds": 1,
        "BisectBatchOnFunctionError": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumRetryAttempts": 3,
        "MaximumRecordAgeInSeconds": 3600,
        "DestinationConfig": {
            "OnFailure": {"Destination": {"Fn::GetAtt": ["ConsumerDeadLetterQueue", "Arn"]}}
        },
    }


def test_consumer_runs_realtime_py_with_the_contracts_environment(stack):
    function = properties(stack, "ConsumerFunction")
    assert function["Handler"] == CONSUMER_HANDLER
    assert function["Handler"].split(".")[0] == CONSUMER_SOURCE.stem == "realtime"
    assert function["Code"] == {
        "S3Bucket": {"Ref": "ArtifactBucket"},
        "S3Key": {"Ref": "ConsumerCodeKey"},
    }
    assert set(CODE_PARAMETERS) <= set(stack["Parameters"])
    assert function["Runtime"] == properties(stack, "TransformFunction")["Runtime"]
    assert function["Environment"]["Variables"] == {
        "EXPECTATIONS_TABLE": {"Ref": "ExpectationsTable"},
        "NOWCAST_TABLE": {"Ref": "NowcastTable"},
        "ALERT_TOPIC_ARN": {"Ref": "AlertTopic"},
        "ALERT_MARGIN": {"Ref": "AlertMargin"},
        "STALL_MINUTES": {"Ref": "StallMinutes"},
        "STALL_MIN_EXPECTED": {"Ref": "StallMinExpected"},
    }
    defaults = template_defaults()
    assert (defaults["AlertMargin"], defaults["StallMinutes"], defaults["StallMinExpected"]) == (
        0.25,
        15,
        20,
    )
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "ConsumerLogGroup"}}
    logs = properties(stack, "ConsumerLogGroup")
    assert logs["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${Prefix}-realtime"}
    assert logs["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_consumer_role_grants_only_what_it_uses_on_the_stacks_resources(stack):
    granted = statements(stack, "ConsumerRole")
    stream = {"Fn::GetAtt": ["ChangesStream", "Arn"]}
    assert set(granted["ReadTheKinesisStream"]["Action"]) == {
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
    }
    assert granted["ReadTheKinesisStream"]["Resource"] == stream
    subscribe = granted["SubscribeAsAnEnhancedFanOutConsumer"]
    assert subscribe["Resource"] == {"Fn::Sub": "${ChangesStream.Arn}/consumer/*"}
    assert granted["ListStreams"]["Action"] == "kinesis:ListStreams"
    reads = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
    assert set(granted["ReadTheExpectations"]["Action"]) == reads
    writes = {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
    }
    assert set(granted["KeepTheRunningState"]["Action"]) == reads | writes
    for sid, table in (
        ("ReadTheExpectations", "ExpectationsTable"),
        ("KeepTheRunningState", "NowcastTable"),
    ):
        assert granted[sid]["Resource"] == [
            {"Fn::GetAtt": [table, "Arn"]},
            {"Fn::Sub": f"${{{table}.Arn}}/index/*"},
        ]
    dynamodb = {
        action
        for statement in granted.values()
        for action in _listed(statement["Action"])
        if action.startswith("dynamodb:")
    }
    assert dynamodb == reads | writes  # no table, scan, stream or delete actions
    assert granted["PublishAlerts"] == {
        "Sid": "PublishAlerts",
        "Effect": "Allow",
        "Action": "sns:Publish",
        "Resource": {"Ref": "AlertTopic"},
    }
    assert granted["RecordFailedBatches"]["Action"] == "sqs:SendMessage"
    assert granted["RecordFailedBatches"]["Resource"] == {
        "Fn::GetAtt": ["ConsumerDeadLetterQueue", "Arn"]
    }
    assert set(granted["WriteItsOwnLogs"]["Action"]) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert granted["WriteItsOwnLogs"]["Resource"] == {"Fn::GetAtt": ["ConsumerLogGroup", "Arn"]}
    assert len(granted) == 8


def test_real_time_tables_have_the_contracts_keys_and_expire_by_ttl(stack):
    keys = {
        "ExpectationsTable": [("series_id", "HASH"), ("day", "RANGE")],
        "NowcastTable": [("pk", "HASH"), ("sk", "RANGE")],
    }
    for logical_id, expected in keys.items():
        table = properties(stack, logical_id)
        assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == expected
        assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert table["BillingMode"] == properties(stack, "OrdersTable")["BillingMode"]
        resource = stack["Resources"][logical_id]
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Delete", "Delete")
    (by_day,) = properties(stack, "ExpectationsTable")["GlobalSecondaryIndexes"]
    assert (by_day["IndexName"], by_day["KeySchema"][0]["AttributeName"]) == (
        rt.EXPECTATIONS_BY_DAY,
        "day",
    )
    (alerts,) = properties(stack, "NowcastTable")["GlobalSecondaryIndexes"]
    assert alerts["IndexName"] == "alerts-by-state"
    assert [k["AttributeName"] for k in alerts["KeySchema"]] == ["state", "since"]


def test_alert_topic_is_encrypted_and_the_clock_invokes_the_consumer_every_minute(stack):
    assert properties(stack, "AlertTopic")["KmsMasterKeyId"] == "alias/aws/sns"
    clock = properties(stack, "ConsumerClock")
    assert (clock["ScheduleExpression"], clock["State"]) == ("rate(1 minute)", "ENABLED")
    assert clock["Targets"] == [
        {"Id": "consumer", "Arn": {"Fn::GetAtt": ["ConsumerFunction", "Arn"]}}
    ]
    assert properties(stack, "ConsumerClockPermission") == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Ref": "ConsumerFunction"},
        "Principal": "events.amazonaws.com",
        "SourceAccount": {"Ref": "AWS::AccountId"},
        "SourceArn": {"Fn::GetAtt": ["ConsumerClock", "Arn"]},
    }
    queue = properties(stack, "ConsumerDeadLetterQueue")
    assert queue["MessageRetentionPeriod"] == 1_209_600 and queue["SqsManagedSseEnabled"] is True
