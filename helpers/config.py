"""Settings: backend, local root, resource names and pipeline tuning, from defaults and environment.

Every name comes from here so that notebooks hold no literal resource names. The defaults of
names, prefixes and tuning are the parameter defaults of the CloudFormation stack
(``cloudformation/stack.yaml``), so the local and the AWS backend cannot drift apart. Environment
variables ``SALESCAST_<FIELD>`` (upper case) override the defaults; keyword arguments override
both, which is how papermill parameters reach the platform.

Examples
--------
>>> Settings.from_env(prefix="demo").table_name
'demo-orders'
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from helpers.exceptions import BackendError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("local", "aws")
TEMPLATE_PATH = PROJECT_ROOT / "cloudformation" / "stack.yaml"
DEFAULT_REGION = "us-east-1"
"""The region when nothing names one: always on local, on aws when boto3's chain names none."""


class _TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML: short-form tags (``!Sub x``) become ``{"Fn::Sub": x}``."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The CloudFormation template as plain data, intrinsic functions in their long form."""
    return yaml.load(Path(path).read_text(), Loader=_TemplateLoader)


def template_defaults(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The ``Default`` of every parameter of the stack template, by parameter name."""
    parameters = load_template(path)["Parameters"]
    return {name: spec["Default"] for name, spec in parameters.items() if "Default" in spec}


_STACK = template_defaults()


@dataclass(frozen=True)
class Settings:
    """What a platform needs to know; defaults are the CloudFormation stack's parameter defaults.

    One default differs on purpose: ``buffer_interval_s`` is 1 s locally, where Firehose on AWS
    needs 60 s or more (``BufferIntervalSeconds``) with dynamic partitioning; a notebook would
    otherwise wait a minute for every flush. Set ``SALESCAST_BUFFER_INTERVAL_S`` to match AWS.
    """

    backend: str = "local"
    root: Path = PROJECT_ROOT / "data" / "local"
    region: str | None = None
    """The AWS region; None leaves it to boto3's chain on aws (then us-east-1) and is
    :data:`DEFAULT_REGION` on local, where it only appears in ARNs and the bucket name."""
    account_id: str = "000000000000"
    prefix: str = _STACK["Prefix"]
    database: str = _STACK["DatabaseName"]
    lake_prefix: str = _STACK["LakePrefix"]
    error_prefix: str = _STACK["ErrorPrefix"]
    athena_prefix: str = _STACK["AthenaResultsPrefix"]
    changes_table: str = "orders_changes"
    shard_count: int = int(_STACK["ShardCount"])
    pipe_batch_size: int = int(_STACK["PipeBatchSize"])
    pipe_batching_window_s: float = float(_STACK["PipeBatchingWindowSeconds"])
    buffer_size_mb: int = int(_STACK["BufferSizeMB"])
    buffer_interval_s: float = 1.0
    lambda_buffer_size_mb: float = float(_STACK["LambdaBufferSizeMB"])
    lambda_runtime: str = _STACK["LambdaRuntime"]
    """The transform Lambda's runtime on aws; deploy refuses one Lambda has deprecated."""
    poll_interval_s: float = 0.05
    crawl_interval_s: float = 0.0
    """Seconds between scheduled crawls while this process consumes; 0 crawls on demand only."""
    stream_retention_hours: int = int(_STACK["StreamRetentionHours"])
    """How long the Kinesis stream keeps records (24..8760), as the stack's parameter."""
    athena_results_retention_days: int = int(_STACK["AthenaResultsRetentionDays"])
    error_retention_days: int = int(_STACK["ErrorRetentionDays"])
    log_retention_days: int = int(_STACK["LogRetentionDays"])
    """Days the delivery records (the stand-in for the delivery stream's logs) and the
    functions' logs in ``<root>/logs`` (the log groups' retention) are kept."""
    retention_interval_s: float = 300.0
    """Seconds between retention trims while this process consumes; 0 trims on demand only."""
    consumer_batch_size: int = 100
    """The real-time consumer's event source mapping: ``BatchSize``..."""
    consumer_batching_window_s: float = 1.0
    """...and ``MaximumBatchingWindowInSeconds``."""
    consumer_schedule_s: float = 60.0
    """Seconds between the consumer's scheduled ticks (stalls seen while no order arrives);
    0 turns them off."""
    alert_margin: float = 0.25
    """The consumer's ``ALERT_MARGIN``: how far beyond its band a series must go to alert."""
    stall_minutes: float = 15.0
    """The consumer's ``STALL_MINUTES``: silence before a stall is called..."""
    stall_min_expected: float = 20.0
    """...when at least this many orders were expected in it (``STALL_MIN_EXPECTED``)."""
    country: str = "US"
    """The shop's country (a ``holidays`` code): forecasts learn its public holidays."""
    timezone: str = "UTC"
    """The shop's time zone (an IANA name): intraday profiles are learned on its clock, so that
    they follow its customers across daylight-saving switches. Days stay UTC days."""

    @property
    def table_name(self) -> str:
        return f"{self.prefix}-orders"

    @property
    def stream_name(self) -> str:
        return f"{self.prefix}-changes"

    @property
    def pipe_name(self) -> str:
        return f"{self.prefix}-orders-to-changes"

    @property
    def delivery_stream_name(self) -> str:
        return f"{self.prefix}-lake-delivery"

    @property
    def crawler_name(self) -> str:
        return f"{self.prefix}-lake-crawler"

    @property
    def function_name(self) -> str:
        return f"{self.prefix}-transform"

    @property
    def consumer_function_name(self) -> str:
        """The real-time consumer Lambda (``helpers/realtime.py``) on the Kinesis stream."""
        return f"{self.prefix}-realtime"

    @property
    def consumer_dlq_name(self) -> str:
        return f"{self.prefix}-realtime-dlq"

    @property
    def expectations_table_name(self) -> str:
        return f"{self.prefix}-expectations"

    @property
    def nowcast_table_name(self) -> str:
        return f"{self.prefix}-nowcast"

    @property
    def alert_topic_name(self) -> str:
        return f"{self.prefix}-alerts"

    @property
    def workgroup(self) -> str:
        return f"{self.prefix}-workgroup"

    @property
    def bucket(self) -> str:
        return f"{self.prefix}-lake-{self.account_id}-{self.region}"

    def arn(self, service: str, resource: str) -> str:
        """An ARN in this settings' partition, region and account."""
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource}"

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then ``SALESCAST_*`` environment variables, then ``overrides``."""
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            raw = os.environ.get(f"SALESCAST_{spec.name.upper()}")
            if raw is not None and overrides.get(spec.name) is None:
                values[spec.name] = _coerce(spec, raw)
        for name, value in overrides.items():
            if value is None:
                continue
            spec = next((s for s in dataclasses.fields(cls) if s.name == name), None)
            if spec is None:
                known = ", ".join(s.name for s in dataclasses.fields(cls))
                raise BackendError(f"unknown setting {name!r}; known settings: {known}")
            values[name] = _coerce(spec, value) if isinstance(value, str) else value
        settings = cls(**{**values, "region": values.get("region") or None})
        if settings.backend not in BACKENDS:
            raise BackendError(
                f"unknown backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        shop_zone(settings.timezone)
        if settings.backend == "local" and settings.region is None:
            settings = dataclasses.replace(settings, region=DEFAULT_REGION)
        return dataclasses.replace(settings, root=Path(settings.root).expanduser().resolve())


def shop_zone(name: str) -> ZoneInfo:
    """The zone the ``timezone`` setting names; BackendError (a ValueError) naming the setting
    and an example when no IANA zone has that name.

    Examples
    --------
    >>> shop_zone("Asia/Kolkata").key
    'Asia/Kolkata'
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise BackendError(
            f"setting 'timezone' must be an IANA time zone name such as 'America/New_York' "
            f"or 'UTC', got {name!r}; fix SALESCAST_TIMEZONE or the parameter"
        ) from None


def _coerce(spec: dataclasses.Field, raw: str) -> Any:
    kind = spec.type if isinstance(spec.type, str) else spec.type.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise BackendError(
            f"setting {spec.name!r} must be a {kind}, got {raw!r}; "
            f"fix SALESCAST_{spec.name.upper()} or the parameter"
        ) from None
    if kind == "Path":
        return Path(raw)
    return raw
