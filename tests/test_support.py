"""What the stack needs of AWS, checked against cfn-lint's data: regions, runtimes, the
deployer's policy, names within their limits, and the data kept on replacement and deletion."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from cfnlint.api import ManualArgs, lint_file

from helpers.aws import support
from helpers.aws.cloudformation import BUCKET_NAME_LIMIT, artifact_bucket, kept_resources
from helpers.config import TEMPLATE_PATH, Settings, load_template
from helpers.exceptions import DeployError

REGENERATE = "run `python -m helpers.aws.support` and commit cloudformation/*.json"
DATA = support._cfnlint_data()
IAM_ACTIONS = json.loads((DATA / "AdditionalSpecs" / "Policies.json").read_text())
ROLE_INLINE_POLICY_LIMIT = 10_240
"""IAM's limit of a role's inline policies, in characters without whitespace."""


@pytest.fixture(scope="module")
def stack() -> dict:
    return load_template()


@pytest.fixture(scope="module")
def policy() -> dict:
    return json.loads(support.POLICY_PATH.read_text())


def test_support_files_are_up_to_date(stack, policy):
    assert support.load_support() == support.render_support(stack), REGENERATE
    assert policy == support.render_policy(stack), REGENERATE


# regions ---------------------------------------------------------------------------------------


def test_supported_regions_have_every_resource_type(stack):
    types = set(support.resource_types(stack))
    known = support.load_support()
    assert "us-east-1" in known["regions"] and "eu-west-1" in known["regions"]
    for region in known["regions"]:
        provided = json.loads((DATA / "schemas" / "providers" / f"{region}.json").read_text())
        assert types <= set(provided), region
    assert known["lacking"]["ca-west-1"] == ["AWS::Pipes::Pipe"]
    assert not set(known["regions"]) & set(known["lacking"])


def test_cfn_lint_passes_in_every_supported_region():
    regions = support.load_support()["regions"]
    problems = lint_file(TEMPLATE_PATH, config=ManualArgs(regions=regions))
    assert [str(problem) for problem in problems] == []


def test_a_region_without_pipes_is_refused_naming_those_that_work():
    with pytest.raises(DeployError) as refused:
        support.check_region("ca-west-1")
    message = str(refused.value)
    assert "cannot deploy to ca-west-1: CloudFormation has no AWS::Pipes::Pipe there" in message
    assert "us-east-1" in message and "eu-west-1" in message and "SALESCAST_REGION" in message
    with pytest.raises(DeployError, match="us-gov-west-1: it is not a region of the aws partition"):
        support.check_region("us-gov-west-1")
    support.check_region("eu-west-1")


# Lambda runtimes -------------------------------------------------------------------------------


def test_a_deprecated_runtime_is_refused():
    with pytest.raises(DeployError) as refused:
        support.check_runtime("python3.11", dt.date(2027, 6, 30))
    message = str(refused.value)
    assert message.startswith("Lambda deprecated the runtime python3.11 on 2027-06-30")
    assert "SALESCAST_LAMBDA_RUNTIME to one of python3.12, python3.13, python3.14" in message
    support.check_runtime("python3.11", dt.date(2027, 6, 29))
    with pytest.raises(DeployError, match=r"unknown Lambda runtime 'python3\.99'"):
        support.check_runtime("python3.99", dt.date(2027, 1, 1))


def test_the_default_runtime_is_not_deprecated(stack):
    default = stack["Parameters"]["LambdaRuntime"]["Default"]
    assert default == Settings().lambda_runtime
    support.check_runtime(default, dt.date.today())
    assert re.fullmatch(stack["Parameters"]["LambdaRuntime"]["AllowedPattern"], default)


# the deployer's policy -------------------------------------------------------------------------


def test_deployer_policy_covers_every_resource_type(stack, policy):
    granted = {action for statement in policy["Statement"] for action in statement["Action"]}
    for resource_type in support.resource_types(stack):
        handlers = support._schema(DATA, "us-east-1", resource_type)["handlers"]
        needed = {
            action
            for handler in support.HANDLERS
            for action in handlers.get(handler, {}).get("permissions", [])
            if action.partition(":")[2].lower()
            in IAM_ACTIONS.get(action.partition(":")[0], {}).get("Actions", {})
        }
        assert needed and needed <= granted, f"{resource_type}: {sorted(needed - granted)}"
    assert {
        "cloudformation:CreateChangeSet",
        "cloudformation:ExecuteChangeSet",
        "pipes:CreatePipe",
        "iam:PassRole",
        "sts:GetCallerIdentity",
    } <= granted


def test_deployer_policy_is_valid_iam(policy):
    for statement in policy["Statement"]:
        for action in statement["Action"]:
            service, _, verb = action.partition(":")
            assert verb.lower() in IAM_ACTIONS[service]["Actions"], action
    size = len(re.sub(r"\s", "", json.dumps(policy)))
    assert size <= ROLE_INLINE_POLICY_LIMIT


# names within their limits ---------------------------------------------------------------------


def longest(pattern: str) -> str:
    """The longest value of ``a``s a template parameter's pattern allows."""
    return max(("a" * n for n in range(1, 200) if re.fullmatch(pattern, "a" * n)), key=len)


def test_every_generated_name_fits_for_the_longest_prefix_and_region(stack):
    prefix = longest(stack["Parameters"]["Prefix"]["AllowedPattern"])
    region = max(support.load_support()["regions"], key=len)
    assert (len(prefix), len(region)) == (30, 14)
    values = {"Prefix": prefix, "AWS::AccountId": "123456789012", "AWS::Region": region}
    checked = []
    for logical_id, resource in stack["Resources"].items():
        schema = support._schema(DATA, "us-east-1", resource["Type"])["properties"]
        for name, value in resource.get("Properties", {}).items():
            rules = schema.get(name, {})
            limited = rules.get("pattern") or rules.get("maxLength")
            if not isinstance(value, dict) or "Fn::Sub" not in value or not limited:
                continue
            text = re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], value["Fn::Sub"])
            assert len(text) <= rules.get("maxLength", len(text)), (logical_id, name, text)
            assert re.fullmatch(rules.get("pattern", ".*"), text), (logical_id, name, text)
            checked.append(name)
    assert {"BucketName", "TableName", "FunctionName", "DeliveryStreamName", "RoleName"} <= set(
        checked
    )
    for queue in ("PipeDeadLetterQueue", "ConsumerDeadLetterQueue"):
        name = stack["Resources"][queue]["Properties"]["QueueName"]["Fn::Sub"]
        assert len(name.replace("${Prefix}", prefix)) <= 80  # SQS's limit; its schema has none

    settings = Settings(prefix=prefix, account_id="123456789012", region=region)
    assert len(artifact_bucket(settings)) <= BUCKET_NAME_LIMIT
    assert len(f"{prefix}-artifacts-123456789012-{region}") > BUCKET_NAME_LIMIT  # the old name
    short = Settings(prefix="salescast", account_id="123456789012", region=region)
    assert artifact_bucket(short) == f"salescast-artifacts-123456789012-{region}"  # kept


# data kept on replacement and deletion ---------------------------------------------------------


def test_the_table_stream_and_lake_are_kept_on_replacement_and_deletion(stack):
    assert kept_resources(stack) == {"OrdersTable", "ChangesStream", "LakeBucket"}
    for logical_id in kept_resources(stack):
        resource = stack["Resources"][logical_id]
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")
