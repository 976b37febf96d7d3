"""What the stack needs of AWS: the regions it can be deployed to, the Lambda runtimes still
supported, and the IAM policy of whoever deploys it.

The facts come from cfn-lint's data (a development dependency): CloudFormation's resource
schemas, which say which resource types each region has and which permissions each type's
handlers need, and Lambda's runtime lifecycle. Deploy must not need cfn-lint, so what it
checks is written beside the template, after changing the template or upgrading cfn-lint::

    python -m helpers.aws.support

``cloudformation/support.json`` holds the regions and runtimes deploy checks before touching
anything; ``cloudformation/deployer-policy.json`` the deployer's policy. The tests regenerate
both and compare, so neither can drift from the template or from cfn-lint.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import botocore.session

from helpers.config import TEMPLATE_PATH, load_template
from helpers.exceptions import DeployError

SUPPORT_PATH = TEMPLATE_PATH.parent / "support.json"
POLICY_PATH = TEMPLATE_PATH.parent / "deployer-policy.json"
PARTITION = "aws"
"""The partition deploy supports: it builds S3 URLs and ARNs of the commercial partition."""
HANDLERS = ("create", "read", "update", "delete")
"""The handlers CloudFormation calls while it creates, updates and deletes a stack."""
DEPLOY_ACTIONS = {
    "ChangeSets": [
        "cloudformation:CreateChangeSet",
        "cloudformation:DescribeChangeSet",
        "cloudformation:ExecuteChangeSet",
        "cloudformation:DeleteChangeSet",
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
        "cloudformation:DescribeStackResources",
        "cloudformation:ListStackResources",
        "cloudformation:GetTemplateSummary",
        "cloudformation:DeleteStack",
    ],
    "ArtifactBucketAndTeardown": [
        "sts:GetCallerIdentity",
        "s3:CreateBucket",
        "s3:DeleteBucket",
        "s3:PutEncryptionConfiguration",
        "s3:PutBucketPublicAccessBlock",
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "dynamodb:DeleteTable",
        "kinesis:DeleteStream",
    ],
}
"""What deploy and teardown call themselves (CloudFormation's change sets, the artifact bucket,
emptying the lake, deleting the retained table, stream and lake), by statement id."""


def _cfnlint_data() -> Path:
    import cfnlint  # a development dependency: only regenerating needs it

    return Path(cfnlint.__file__).parent / "data"


def resource_types(template: dict[str, Any]) -> list[str]:
    """The template's resource types, sorted."""
    return sorted({resource["Type"] for resource in template["Resources"].values()})


def _schema(data: Path, region: str, resource_type: str) -> dict[str, Any]:
    providers = json.loads((data / "schemas" / "providers" / f"{region}.json").read_text())
    return json.loads(
        (data / "schemas" / "resources" / f"{providers[resource_type]}.json").read_text()
    )


def render_support(template: dict[str, Any]) -> dict[str, Any]:
    """The regions of the partition with every resource type of the template, those without
    (and what they lack), and the Python runtimes' lifecycle dates."""
    data = _cfnlint_data()
    types = set(resource_types(template))
    partitions = botocore.session.get_session()
    regions, lacking = [], {}
    for path in sorted((data / "schemas" / "providers").glob("*-*-*.json")):
        if partitions.get_partition_for_region(path.stem) != PARTITION:
            continue
        missing = sorted(types - set(json.loads(path.read_text())))
        if missing:
            lacking[path.stem] = missing
        else:
            regions.append(path.stem)
    lifecycle = json.loads((data / "AdditionalSpecs" / "LmbdRuntimeLifecycle.json").read_text())
    runtimes = {
        name: {"deprecated": dates["deprecated"], "successor": dates["successor"]}
        for name, dates in sorted(lifecycle.items())
        if name.startswith("python")
    }
    return {"regions": regions, "lacking": lacking, "runtimes": runtimes}


def render_policy(template: dict[str, Any]) -> dict[str, Any]:
    """The deployer's IAM policy: every permission the schemas' create, read, update and delete
    handlers need for the template's resource types (those IAM knows), and deploy's own calls."""
    data = _cfnlint_data()
    known = json.loads((data / "AdditionalSpecs" / "Policies.json").read_text())
    actions = set()
    for resource_type in resource_types(template):
        handlers = _schema(data, "us-east-1", resource_type)["handlers"]
        for handler in HANDLERS:
            for action in handlers.get(handler, {}).get("permissions", []):
                service, _, verb = action.partition(":")
                if verb.lower() in known.get(service, {}).get("Actions", {}):
                    actions.add(action)
    statements = [
        {"Sid": sid, "Effect": "Allow", "Action": sorted(listed), "Resource": "*"}
        for sid, listed in DEPLOY_ACTIONS.items()
    ]
    statements.append(
        {
            "Sid": "StackResources",
            "Effect": "Allow",
            "Action": sorted(actions - {a for listed in DEPLOY_ACTIONS.values() for a in listed}),
            "Resource": "*",
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}


def regenerate(template_path: Path = TEMPLATE_PATH) -> list[Path]:
    """Rewrite ``support.json`` and ``deployer-policy.json``; returns those that changed."""
    template = load_template(template_path)
    changed = []
    for path, content in (
        (SUPPORT_PATH, render_support(template)),
        (POLICY_PATH, render_policy(template)),
    ):
        text = json.dumps(content, indent=2) + "\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


def load_support() -> dict[str, Any]:
    """``cloudformation/support.json``."""
    return json.loads(SUPPORT_PATH.read_text())


def check_region(region: str) -> None:
    """Refuse a region without every resource type of the template, naming those that have."""
    support = load_support()
    if region in support["regions"]:
        return
    lacking = support["lacking"].get(region)
    why = (
        f"CloudFormation has no {', '.join(lacking)} there"
        if lacking
        else f"it is not a region of the {PARTITION} partition that cfn-lint's data knows"
    )
    raise DeployError(
        f"cannot deploy to {region}: {why}. Regions with every resource of the stack: "
        f"{', '.join(support['regions'])}; set SALESCAST_REGION (or AWS_DEFAULT_REGION) to one"
    )


def check_runtime(runtime: str, today: dt.date) -> None:
    """Refuse a Lambda runtime that is deprecated on ``today`` or that the data does not know."""
    runtimes = load_support()["runtimes"]
    current = [
        name
        for name, dates in runtimes.items()
        if dt.date.fromisoformat(dates["deprecated"]) > today
    ]
    current.sort(key=lambda name: [int(part) for part in re.findall(r"\d+", name)])
    choose = f"set SALESCAST_LAMBDA_RUNTIME to one of {', '.join(current)}"
    if runtime not in runtimes:
        raise DeployError(f"unknown Lambda runtime {runtime!r}; {choose}")
    deprecated = dt.date.fromisoformat(runtimes[runtime]["deprecated"])
    if deprecated <= today:
        raise DeployError(
            f"Lambda deprecated the runtime {runtime} on {deprecated}; {choose} "
            f"(the successor is {runtimes[runtime]['successor']})"
        )


if __name__ == "__main__":
    for changed in regenerate() or ["nothing"]:
        print(f"regenerated {changed}")
