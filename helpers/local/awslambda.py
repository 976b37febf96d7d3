"""Functions (AWS Lambda): call a handler with the event and a context, as the runtime does.

The handler is imported from its module path (``helpers.transform.lambda_handler``), the same
file that is zipped for AWS. Its ``logging`` output goes to ``<logs>/<function>.log``, the local
stand-in for the CloudWatch log group ``/aws/lambda/<function>``.

Not emulated: isolation (the handler runs in the caller's process and thread), cold starts,
concurrency limits, the 6 MB payload limit (the caller keeps under it), and layers.
"""

from __future__ import annotations

import importlib
import logging
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class FunctionError(Exception):
    """The handler raised; carries Lambda's ``errorType`` and ``errorMessage``."""

    def __init__(self, error_type: str, message: str):
        self.error_type, self.message = error_type, message
        super().__init__(f"{error_type}: {message}")


@dataclass
class Context:
    """The context object a Python handler receives."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_s: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    started: float = field(default_factory=time.monotonic)

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


class Function:
    """A Lambda function backed by an importable handler."""

    def __init__(
        self,
        name: str,
        handler: str,
        arn: str,
        log_dir: Path,
        logger_name: str,
        timeout_s: float = 60.0,
        memory_mb: int = 256,
    ):
        self.name, self.arn, self.timeout_s, self.memory_mb = name, arn, timeout_s, memory_mb
        module_name, _, attribute = handler.rpartition(".")
        self.handler = getattr(importlib.import_module(module_name), attribute)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log_handler = logging.FileHandler(self.log_path, encoding="utf-8")
        self._log_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s")
        )
        self._logger = logging.getLogger(logger_name)
        self._logger.addHandler(self._log_handler)
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)

    def invoke(self, event: dict[str, Any]) -> Any:
        """Invoke synchronously (RequestResponse); raise :class:`FunctionError` on failure."""
        context = Context(self.name, self.arn, self.memory_mb, self.timeout_s)
        try:
            return self.handler(event, context)
        except Exception as error:
            self._logger.error(
                "RequestId %s failed\n%s", context.aws_request_id, traceback.format_exc()
            )
            raise FunctionError(type(error).__name__, str(error)) from error

    def close(self) -> None:
        self._logger.removeHandler(self._log_handler)
        self._log_handler.close()
