"""Functions (AWS Lambda): call a handler with the event and a context, as the runtime does.

The handler is imported from its module path (``helpers.transform.lambda_handler``), the same
file that is zipped for AWS, in worker processes of its own. Its ``logging`` output goes to
``<logs>/<function>.log``, the local stand-in for the CloudWatch log group
``/aws/lambda/<function>``.

The function's environment variables are set in its runtime processes, over the caller's.

Log retention (the log group's ``RetentionInDays``, the stack's ``LogRetentionDays``):
:func:`trim_logs` renames each live log to ``<function>.log.<UTC time>`` once a day, and
deletes a renamed log once its last line is older than the retention. The runtimes reopen
``<function>.log`` when it was renamed (``WatchedFileHandler``), so no line is lost to a
rotation. CloudWatch expires each event on its own; here a line goes with its day's file, so it
is kept between the retention and the retention plus a day.

Not emulated: memory limits, the JSON round trip of payloads (events travel pickled over
pipes), the 6 MB
payload limit (the caller keeps under it), versions, aliases and layers.
"""

from __future__ import annotations

import importlib
import logging
import logging.handlers
import os
import pickle
import queue
import select
import subprocess
import sys
import time
import traceback
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from helpers.config import PROJECT_ROOT


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


LOG_ROTATION_S = 86400.0
"""How long a function's live log collects lines before :func:`trim_logs` renames it."""
_ROTATED_STAMP = "%Y%m%dT%H%M%SZ"


def trim_logs(log_dir: Path, retention_days: float, now: float | None = None) -> int:
    """Apply a log group's retention to the functions' logs in ``log_dir``; returns how many
    rotated logs it deleted.

    A live ``<function>.log`` is renamed ``<function>.log.<UTC time>`` when the newest such
    name is ``LOG_ROTATION_S`` old or there is none; a renamed log is deleted once its last
    line (its modification time) is older than ``retention_days``.

    Examples
    --------
    >>> trim_logs(Path("data/local/logs"), retention_days=14)  # doctest: +SKIP
    0
    """
    now = time.time() if now is None else now
    removed = 0
    names = {path.name.partition(".log.")[0] + ".log" for path in log_dir.glob("*.log.*")}
    for live in sorted({*log_dir.glob("*.log"), *(log_dir / name for name in names)}):
        rotated = sorted(_rotated_logs(live).items())
        for _, old in rotated:
            if old.stat().st_mtime < now - retention_days * 86400:
                old.unlink(missing_ok=True)
                removed += 1
        due = not rotated or rotated[-1][0] <= now - LOG_ROTATION_S
        if due and live.exists() and live.stat().st_size:
            stamp = datetime.fromtimestamp(now, UTC).strftime(_ROTATED_STAMP)
            live.rename(live.with_name(f"{live.name}.{stamp}"))
    return removed


def _rotated_logs(live: Path) -> dict[float, Path]:
    """The renamed logs of a live log, by the time in their names (other files left alone)."""
    found = {}
    for path in live.parent.glob(live.name + ".*"):
        try:
            stamp = datetime.strptime(path.name[len(live.name) + 1 :], _ROTATED_STAMP)
        except ValueError:
            continue
        found[stamp.replace(tzinfo=UTC).timestamp()] = path
    return found


INIT_TIMEOUT_S = 10.0
"""Lambda gives the init phase (imports, the cold start) its own 10 s, apart from the timeout."""
READY = "ready"


class _Worker:
    """One runtime process: reads pickled (event, context) frames on stdin, answers on stdout."""

    def __init__(self, handler: str, log_path: Path, logger_name: str, environment: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, handler, str(log_path), logger_name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=PROJECT_ROOT,
            env={**os.environ, **environment} if environment else None,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], INIT_TIMEOUT_S)
        if not ready:
            self.kill()
            raise FunctionError(
                "Runtime.InitError", f"the handler {handler!r} did not load in {INIT_TIMEOUT_S}s"
            )
        answer = _read_frame(self.process.stdout)
        if answer != READY:
            self.kill()
            raise FunctionError(*answer[1])

    def call(self, event: dict[str, Any], context: Context, timeout_s: float) -> tuple[bool, Any]:
        _write_frame(self.process.stdin, (event, context))
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        if not ready:
            raise TimeoutError
        return _read_frame(self.process.stdout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class Function:
    """A Lambda function backed by an importable handler, run in runtime processes.

    As on AWS, the handler runs apart from its caller: in ``concurrency`` runtime processes
    (the function's reserved concurrency), so invocations run beside the caller's own work,
    on another core, and a crash of the handler's process fails one invocation, not the caller.
    """

    def __init__(
        self,
        name: str,
        handler: str,
        arn: str,
        log_dir: Path,
        logger_name: str,
        timeout_s: float = 60.0,
        memory_mb: int = 256,
        concurrency: int = 1,
        log_name: str | None = None,
        environment: dict[str, str] | None = None,
    ):
        self.name, self.arn, self.handler = name, arn, handler
        self.environment = dict(environment or {})
        self.timeout_s, self.memory_mb = timeout_s, memory_mb
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{log_name or name}.log"
        self.logger_name = logger_name
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        for _ in range(concurrency):
            self._idle.put(None)  # a slot; its runtime starts on first use (the cold start)
        self._calls = ThreadPoolExecutor(concurrency, thread_name_prefix=f"lambda-{name}")
        self._workers: list[_Worker] = []

    def invoke_async(self, event: dict[str, Any]) -> Future:
        """Start an invocation; :meth:`result` waits for it."""
        return self._calls.submit(self._call, event)

    def invoke(self, event: dict[str, Any]) -> Any:
        """Invoke and wait (RequestResponse)."""
        return self.result(self.invoke_async(event))

    def result(self, future: Future) -> Any:
        """The invocation's payload; raise :class:`FunctionError` as Lambda reports failures."""
        ok, payload = future.result()
        if not ok:
            raise FunctionError(*payload)
        return payload

    def _call(self, event: dict[str, Any]) -> tuple[bool, Any]:
        worker = self._idle.get()
        if worker is None:
            try:
                worker = _Worker(self.handler, self.log_path, self.logger_name, self.environment)
            except (FunctionError, EOFError, OSError) as error:
                self._idle.put(None)
                if isinstance(error, FunctionError):
                    return False, (error.error_type, error.message)
                return False, ("Runtime.InitError", f"the runtime failed to start: {error!r}")
            self._workers.append(worker)
        context = Context(self.name, self.arn, self.memory_mb, self.timeout_s)
        try:
            answer = worker.call(event, context, self.timeout_s)
        except TimeoutError:
            worker.kill()
            self._workers.remove(worker)
            self._idle.put(None)
            return False, ("Sandbox.Timedout", f"Task timed out after {self.timeout_s:.2f} seconds")
        except (EOFError, OSError, pickle.UnpicklingError) as error:
            worker.kill()
            self._workers.remove(worker)
            self._idle.put(None)
            return False, ("Runtime.ExitError", f"the runtime exited: {error!r}")
        self._idle.put(worker)
        return answer

    def close(self) -> None:
        self._calls.shutdown(wait=True)
        for worker in self._workers:
            worker.stop()
        self._workers.clear()


def _write_frame(stream: BinaryIO, value: Any) -> None:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(body).to_bytes(8, "big") + body)
    stream.flush()


def _read_frame(stream: BinaryIO) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the runtime closed its output")
    size = int.from_bytes(header, "big")
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("the runtime closed its output mid-answer")
    return pickle.loads(body)


def _serve(handler: str, log_path: str, logger_name: str) -> None:
    """The runtime loop: import the handler (cold start), then answer invocations until EOF."""
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # handler prints must not corrupt the answer channel
    module_name, _, attribute = handler.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        _write_frame(answers, (False, ("Runtime.ImportModuleError", f"{handler}: {error!r}")))
        return
    function = getattr(module, attribute, None)
    if not callable(function):
        _write_frame(answers, (False, ("Runtime.HandlerNotFound", f"{handler} is undefined")))
        return
    file_handler = logging.handlers.WatchedFileHandler(log_path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger(logger_name)
    logger.addHandler(file_handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    _write_frame(answers, READY)
    while True:
        try:
            event, context = _read_frame(requests)
        except EOFError:
            return
        context.started = time.monotonic()
        try:
            answer = (True, function(event, context))
        except Exception as error:
            logger.error("RequestId %s failed\n%s", context.aws_request_id, traceback.format_exc())
            answer = (False, (type(error).__name__, str(error)))
        _write_frame(answers, answer)


if __name__ == "__main__":
    _serve(*sys.argv[1:4])
