"""Fixtures of the aws-only tests: moto's AWS (from the contract fixtures)."""

from tests.contract.conftest import aws, aws_platform  # noqa: F401 (fixtures)
