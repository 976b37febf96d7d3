"""One boto3 session per platform: region and account from boto3's chain, clients with retries."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError

from helpers.config import DEFAULT_REGION, Settings
from helpers.exceptions import BackendError

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=32)


class Session:
    """A boto3 session with the region and account it acts in.

    A ``region`` setting (argument or ``SALESCAST_REGION``), whatever its value, wins over
    boto3's configured region; without one boto3's chain (``AWS_REGION``, the profile)
    decides, and us-east-1 when that names none. The account is the caller's, from STS.
    """

    def __init__(self, settings: Settings, session: boto3.Session | None = None):
        self.boto3 = session or boto3.Session(region_name=settings.region)
        if self.boto3.region_name is None:
            self.boto3 = boto3.Session(region_name=DEFAULT_REGION)
        self.region: str = self.boto3.region_name
        self._settings = settings

    @functools.cached_property
    def account_id(self) -> str:
        """The caller's account (STS GetCallerIdentity)."""
        try:
            return self.client("sts").get_caller_identity()["Account"]
        except (NoCredentialsError, ClientError) as error:
            raise BackendError(
                f"the aws backend cannot reach AWS ({error}); configure credentials the boto3 "
                "way (aws configure / AWS_PROFILE / environment variables / an instance role)"
            ) from None

    @functools.cached_property
    def settings(self) -> Settings:
        """The settings with this session's region and account (so derived names match)."""
        return dataclasses.replace(self._settings, region=self.region, account_id=self.account_id)

    @functools.cache  # noqa: B019 (one client per service for the session's life)
    def client(self, service: str) -> Any:
        """A thread-safe boto3 client with standard retries."""
        return self.boto3.client(service, config=CLIENT_CONFIG)
