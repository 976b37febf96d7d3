"""Deploy and teardown against moto: artifact bucket, change sets (create, no changes, update),
stack events, outputs read by the platform, and emptying versioned buckets.

moto's CloudFormation cannot create Pipes, Firehose, Glue or Athena resources, so the stack
here is a small one with the same parameters and some of the same outputs; the real template
is checked for the parameters deploy passes.
"""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest
from botocore.stub import Stubber

import helpers
from helpers.aws import cloudformation
from helpers.aws.awslambda import CONSUMER_SOURCE, HANDLER, code_key, package_module
from helpers.aws.session import Session
from helpers.config import Settings, load_template
from helpers.exceptions import DeployError

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Prefix: {Type: String, Default: salescast}
  ShardCount: {Type: Number, Default: 1}
  ArtifactBucket: {Type: String}
  LambdaCodeKey: {Type: String}
Resources:
  OrdersTable:
    Type: AWS::DynamoDB::Table
    DeletionPolicy: Retain
    UpdateReplacePolicy: Retain
    Properties:
      TableName: !Sub ${Prefix}-orders-v2
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: order_id, AttributeType: S}]
      KeySchema: [{AttributeName: order_id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
  ChangesStream:
    Type: AWS::Kinesis::Stream
    Properties: {Name: !Sub "${Prefix}-changes-v2", ShardCount: !Ref ShardCount}
  LakeBucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub ${Prefix}-lake-v2
      VersioningConfiguration: {Status: Enabled}
Outputs:
  TableName: {Value: !Ref OrdersTable}
  StreamName: {Value: !Ref ChangesStream}
  LakeBucket: {Value: !Ref LakeBucket}
  LambdaCodeKey: {Value: !Ref LambdaCodeKey}
"""


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(TEMPLATE)
    return path


def test_deploy_creates_then_finds_no_changes_then_updates(session, template, capsys):
    created = cloudformation.provision(session, template, progress=True)
    assert created["action"] == "created"
    outputs = created["outputs"]
    assert outputs["TableName"] == "salescast-orders-v2"
    assert outputs["LakeBucket"] == "salescast-lake-v2"
    assert "CREATE_COMPLETE" in capsys.readouterr().err  # the stack's events were shown

    s3 = boto3.client("s3")
    bucket = cloudformation.artifact_bucket(session.settings)
    assert bucket == "salescast-artifacts-123456789012-us-east-1"
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    code = s3.get_object(Bucket=bucket, Key=outputs["LambdaCodeKey"])["Body"].read()
    assert zipfile.ZipFile(io.BytesIO(code)).namelist() == ["transform.py"]

    assert cloudformation.provision(session, template, progress=False)["action"] == "unchanged"

    template.write_text(TEMPLATE + "  Prefix: {Value: !Ref Prefix}\n")
    updated = cloudformation.provision(session, template, progress=False)
    assert updated["action"] == "updated"
    assert updated["outputs"]["Prefix"] == "salescast"
    stack = boto3.client("cloudformation").describe_stacks(StackName="salescast")["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}[
        "ShardCount"
    ] == "2"


def test_a_template_too_large_to_send_inline_goes_by_url(session, template, monkeypatch):
    monkeypatch.setattr(cloudformation, "TEMPLATE_BODY_LIMIT", 100)
    assert cloudformation.provision(session, template, progress=False)["action"] == "created"
    bucket = cloudformation.artifact_bucket(session.settings)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(key.startswith("templates/stack-") for key in keys)
    assert cloudformation.provision(session, template, progress=False)["action"] == "unchanged"


def test_the_platform_uses_the_stack_outputs(session, template, make_orders):
    cloudformation.provision(session, template, progress=False)
    with helpers.connect(backend="aws") as platform:
        assert platform.names.stack == "salescast"
        assert platform.names.table_name == "salescast-orders-v2"  # output, not settings
        assert platform.names.database == "sales"  # no such output: from settings
        platform.orders.put(make_orders(3))
        assert platform.orders.count() == 3
        resources = platform.resources()
        outputs = resources[resources.kind == "Output"].set_index("name")
        resources = resources[resources.kind != "Output"]
        assert sorted(resources.kind) == ["Bucket", "Stream", "Table"]
        assert outputs.loc["TableName", "detail"] == "salescast-orders-v2"
        table = resources.set_index("kind").loc["Table"]
        assert (table["service"], table["name"]) == ("DynamoDB", "salescast-orders-v2")
    items = boto3.client("dynamodb").scan(TableName="salescast-orders-v2")["Items"]
    assert len(items) == 3


def test_teardown_empties_versioned_buckets_and_deletes_the_stack(session, template):
    cloudformation.provision(session, template, progress=False)
    s3 = boto3.client("s3")
    s3.put_bucket_versioning(  # moto's stack leaves out VersioningConfiguration
        Bucket="salescast-lake-v2", VersioningConfiguration={"Status": "Enabled"}
    )
    for body in (b"one", b"two"):  # two versions of one key
        s3.put_object(Bucket="salescast-lake-v2", Key="sales/year=2026/a.parquet", Body=body)
    s3.delete_object(Bucket="salescast-lake-v2", Key="sales/year=2026/a.parquet")  # a marker

    removed = cloudformation.teardown(session, progress=False, template=template)
    assert removed["stack"] == "salescast"
    assert removed["objects"] == 5  # two versions and a marker in the lake, the two code zips
    assert removed["kept"] == ["salescast-orders-v2"]  # moto keeps it, as CloudFormation does
    assert boto3.client("dynamodb").list_tables()["TableNames"] == []
    assert cloudformation.describe_stack(boto3.client("cloudformation"), "salescast") is None
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert cloudformation.artifact_bucket(session.settings) not in buckets
    assert cloudformation.teardown(session, progress=False, template=template)["stack"] is None


def test_the_real_template_takes_what_deploy_passes(session):
    body = cloudformation.TEMPLATE.read_text()
    passed = cloudformation.template_parameters(
        boto3.client("cloudformation"),
        {"TemplateBody": body},
        session.settings,
        "artifacts",
        {"LambdaCodeKey": "lambda/x.zip", "ConsumerCodeKey": "lambda/y.zip"},
    )
    values = {p["ParameterKey"]: p["ParameterValue"] for p in passed}
    assert (values["LambdaCodeKey"], values["ConsumerCodeKey"]) == ("lambda/x.zip", "lambda/y.zip")
    assert set(values) == {
        "ArtifactBucket",
        "LambdaCodeKey",
        "ConsumerCodeKey",
        *cloudformation.SETTING_PARAMETERS,
    }
    template = load_template()
    assert set(cloudformation.OUTPUTS) == set(template["Outputs"])
    function = template["Resources"]["TransformFunction"]["Properties"]
    assert function["Handler"] == HANDLER


def test_salescast_deploy_and_teardown_with_the_real_template(aws, monkeypatch):
    """The command line end to end on moto, which builds the resources it knows of the real
    template (table, stream, queue, bucket, function, roles) and skips the others."""
    from typer.testing import CliRunner

    from helpers.cli import app

    monkeypatch.setattr(cloudformation, "POLL_S", 0.01)
    runner = CliRunner()
    deployed = runner.invoke(app, ["deploy"])
    assert deployed.exit_code == 0, deployed.output
    assert "stack salescast in us-east-1 is ready" in deployed.output
    code = boto3.client("s3").list_objects_v2(Bucket="salescast-artifacts-123456789012-us-east-1")
    assert sorted(o["Key"] for o in code["Contents"]) == [
        code_key(package_module(CONSUMER_SOURCE), CONSUMER_SOURCE),
        code_key(package_module()),
    ]
    tables = sorted(boto3.client("dynamodb").list_tables()["TableNames"])
    assert tables == ["salescast-expectations", "salescast-nowcast", "salescast-orders"]

    refused = runner.invoke(app, ["teardown", "--backend", "aws"])
    assert refused.exit_code == 2
    removed = runner.invoke(app, ["teardown", "--backend", "aws", "--yes"])
    assert removed.exit_code == 0, removed.output
    assert "removed stack salescast" in removed.output
    assert boto3.client("dynamodb").list_tables()["TableNames"] == []


def test_no_credentials_is_a_clear_error(monkeypatch):
    from typer.testing import CliRunner

    from helpers.cli import app

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = CliRunner().invoke(app, ["status", "--backend", "aws"])
    assert result.exit_code == 2
    assert "configure credentials" in result.output


def table_replacement() -> dict:
    """A change of DescribeChangeSet that replaces the table (the shape botocore documents)."""
    return {
        "Type": "Resource",
        "ResourceChange": {
            "PolicyAction": "ReplaceAndRetain",
            "Action": "Modify",
            "LogicalResourceId": "OrdersTable",
            "PhysicalResourceId": "salescast-orders-v2",
            "ResourceType": "AWS::DynamoDB::Table",
            "Replacement": "True",
            "Scope": ["Properties"],
            "Details": [
                {
                    "Target": {
                        "Attribute": "Properties",
                        "Name": "KeySchema",
                        "RequiresRecreation": "Always",
                    },
                    "Evaluation": "Static",
                    "ChangeSource": "DirectModification",
                },
                {
                    "Target": {
                        "Attribute": "Properties",
                        "Name": "BillingMode",
                        "RequiresRecreation": "Never",
                    },
                    "Evaluation": "Static",
                    "ChangeSource": "DirectModification",
                },
            ],
        },
    }


def modify(logical_id: str, resource_type: str, replacement: str, requires: str) -> dict:
    return {
        "Type": "Resource",
        "ResourceChange": {
            "Action": "Modify",
            "LogicalResourceId": logical_id,
            "ResourceType": resource_type,
            "Replacement": replacement,
            "Details": [
                {
                    "Target": {
                        "Attribute": "Properties",
                        "Name": "Name",
                        "RequiresRecreation": requires,
                    },
                    "Evaluation": "Dynamic",
                    "ChangeSource": "ParameterReference",
                    "CausingEntity": "Prefix",
                }
            ],
        },
    }


def test_replacements_are_read_from_change_sets_as_botocore_describes_them():
    """The stub checks the responses against botocore's model of DescribeChangeSet and the
    calls' parameters (the second page by NextToken)."""
    client = boto3.client("cloudformation", region_name="us-east-1")
    first = [
        table_replacement(),
        modify("TransformFunction", "AWS::Lambda::Function", "False", "Never"),
        {
            "Type": "Resource",
            "ResourceChange": {
                "Action": "Add",
                "LogicalResourceId": "New",
                "ResourceType": "AWS::SQS::Queue",
            },
        },
    ]
    second = [
        modify("WorkGroup", "AWS::Athena::WorkGroup", "Conditional", "Conditionally"),
        modify("ChangesStream", "AWS::Kinesis::Stream", "Conditional", "Conditionally"),
    ]
    expected = {"StackName": "salescast", "ChangeSetName": "cs"}
    with Stubber(client) as stub:
        stub.add_response("describe_change_set", {"Changes": first, "NextToken": "t"}, expected)
        stub.add_response(
            "describe_change_set", {"Changes": second}, {**expected, "NextToken": "t"}
        )
        changes = cloudformation.change_set_changes(client, "salescast", "cs")
        stub.assert_no_pending_responses()
    replaced = cloudformation.replacements(changes)
    assert [str(r) for r in replaced] == [
        "OrdersTable (AWS::DynamoDB::Table) will be replaced (changed: KeySchema)",
        "WorkGroup (AWS::Athena::WorkGroup) may be replaced (changed: Name)",
        "ChangesStream (AWS::Kinesis::Stream) may be replaced (changed: Name)",
    ]
    kept = cloudformation.kept_resources(load_template())
    refused = cloudformation.refused_replacements(replaced, kept, allow_replacement=False)
    assert [r.logical_id for r in refused] == ["OrdersTable", "ChangesStream"]
    assert cloudformation.refused_replacements(replaced, kept, allow_replacement=True) == []


def test_deploy_refuses_to_replace_the_table_unless_allowed(session, template, monkeypatch):
    """moto's change sets carry no replacement details: CloudFormation's are given here."""
    cloudformation.provision(session, template, progress=False)
    template.write_text(TEMPLATE + "  Prefix: {Value: !Ref Prefix}\n")
    monkeypatch.setattr(cloudformation, "change_set_changes", lambda *_: [table_replacement()])
    client = boto3.client("cloudformation")
    before = len(client.list_change_sets(StackName="salescast")["Summaries"])
    with pytest.raises(DeployError) as refused:
        cloudformation.provision(session, template, progress=False)
    assert str(refused.value).startswith(
        "not deploying: OrdersTable (AWS::DynamoDB::Table) will be replaced (changed: KeySchema)."
    )
    assert "--allow-replacement" in str(refused.value)
    assert len(client.list_change_sets(StackName="salescast")["Summaries"]) == before
    assert cloudformation.describe_stack(client, "salescast")["StackStatus"] == "CREATE_COMPLETE"

    updated = cloudformation.provision(session, template, progress=False, allow_replacement=True)
    assert (updated["action"], updated["replaced"]) == ("updated", ["OrdersTable"])


def test_deploy_refuses_a_region_without_pipes_before_touching_anything(aws, monkeypatch):
    from typer.testing import CliRunner

    from helpers.cli import app

    monkeypatch.setenv("SALESCAST_REGION", "ca-west-1")
    result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 1
    assert (
        "cannot deploy to ca-west-1: CloudFormation has no AWS::Pipes::Pipe there" in result.output
    )
    assert "us-east-1" in result.output
    for region in ("ca-west-1", "us-east-1"):
        assert boto3.client("s3", region_name=region).list_buckets()["Buckets"] == []
        stacks = boto3.client("cloudformation", region_name=region).list_stacks()
        assert stacks["StackSummaries"] == []


def test_deploy_refuses_a_deprecated_runtime_before_touching_anything(aws):
    session = Session(Settings.from_env(backend="aws", lambda_runtime="python3.9"))
    with pytest.raises(
        DeployError, match=r"Lambda deprecated the runtime python3\.9 on 2025-12-15"
    ):
        cloudformation.provision(session, progress=False)
    assert boto3.client("s3").list_buckets()["Buckets"] == []


def test_deploy_refuses_a_prefix_the_template_does_not_allow(aws):
    session = Session(Settings.from_env(backend="aws", prefix="Sales_Cast"))
    with pytest.raises(DeployError, match="prefix 'Sales_Cast' does not match") as refused:
        cloudformation.provision(session, progress=False)
    assert "set SALESCAST_PREFIX or --prefix" in str(refused.value)
    assert boto3.client("s3").list_buckets()["Buckets"] == []
