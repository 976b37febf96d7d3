"""The region of the aws backend: a setting wins, whatever its value; else boto3's chain."""

from __future__ import annotations

import pytest

from helpers.aws.session import Session
from helpers.config import Settings


@pytest.fixture
def profile(tmp_path, monkeypatch):
    """A profile naming eu-west-1, and no region in the environment."""
    config = tmp_path / "config"
    config.write_text("[profile work]\nregion = eu-west-1\n")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "SALESCAST_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "work")
    return monkeypatch


@pytest.mark.parametrize("region", ["us-east-1", "ap-south-1"])
def test_a_region_setting_wins_over_the_profile(profile, region):
    profile.setenv("SALESCAST_REGION", region)
    assert Session(Settings.from_env(backend="aws")).region == region
    profile.delenv("SALESCAST_REGION")
    assert Session(Settings.from_env(backend="aws", region=region)).region == region


def test_without_a_setting_boto3s_chain_decides(profile):
    assert Session(Settings.from_env(backend="aws")).region == "eu-west-1"
    profile.setenv("AWS_DEFAULT_REGION", "ca-central-1")
    assert Session(Settings.from_env(backend="aws")).region == "ca-central-1"
    profile.delenv("AWS_DEFAULT_REGION")
    profile.delenv("AWS_PROFILE")
    assert Session(Settings.from_env(backend="aws")).region == "us-east-1"  # none named


def test_local_needs_no_region():
    assert Settings.from_env(backend="local").region == "us-east-1"
