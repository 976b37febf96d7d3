"""Fixtures of the aws-only tests: moto's AWS (from the contract fixtures), and a session on
it that deploys stacks the way CloudFormation evaluates their outputs."""

import pytest

from helpers.aws import cloudformation
from helpers.aws.session import Session
from helpers.config import Settings
from tests.contract.conftest import aws, aws_platform  # noqa: F401 (fixtures)


@pytest.fixture
def session(aws, monkeypatch):  # noqa: F811 (the fixture, not the import)
    """A session on moto, polling fast; moto's stacks get their outputs from change sets.

    moto builds a stack's outputs when the stack object is made (from an empty template, for
    a change set of type CREATE) and not when a change set is executed; CloudFormation
    evaluates them on every create and update. The patch rebuilds them after execution.
    """
    from moto.cloudformation.models import ChangeSet

    apply = ChangeSet.apply

    def apply_with_outputs(change_set):
        apply(change_set)
        change_set.stack.template_dict = change_set.template_dict
        change_set.stack.output_map = change_set.stack._create_output_map()

    monkeypatch.setattr(ChangeSet, "apply", apply_with_outputs)
    monkeypatch.setattr(cloudformation, "POLL_S", 0.01)
    return Session(Settings.from_env(backend="aws"))
