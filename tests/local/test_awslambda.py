"""Lambda functions run in runtime processes (helpers/local/awslambda.py)."""

from __future__ import annotations

import os
import re
import time

import pytest

from helpers.local.awslambda import LOG_ROTATION_S, Function, FunctionError, trim_logs

from .conftest import ACCOUNT, REGION


def make_function(tmp_path, handler: str, **options) -> Function:
    name = handler.rsplit(".", 1)[-1]
    return Function(
        name,
        f"tests.local.handlers.{handler}",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        tmp_path / "logs",
        "tests.local.handlers",
        **options,
    )


def test_invoke_returns_the_result_from_another_process(tmp_path):
    function = make_function(tmp_path, "echo", timeout_s=20)
    try:
        event = {"records": [{"recordId": "1", "data": "SGk="}], "nested": {"n": 1.5}}
        first = function.invoke(event)
        second = function.invoke({"again": True})
    finally:
        function.close()
    assert first["event"] == event
    assert first["pid"] != os.getpid()
    assert second["pid"] == first["pid"]  # a warm runtime is reused
    assert first["function_name"] == "echo"
    assert first["arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:echo"
    assert first["log_group"] == "/aws/lambda/echo"
    assert 0 < first["remaining_ms"] <= 20_000
    assert re.fullmatch(r"[0-9a-f-]{36}", first["request_id"])
    assert first["request_id"] != second["request_id"]


def test_raising_handler_gives_function_error_with_type_and_message(tmp_path):
    function = make_function(tmp_path, "raising")
    try:
        with pytest.raises(FunctionError) as caught:
            function.invoke({"order_id": "o-7"})
        # the runtime survives a handler error
        with pytest.raises(FunctionError):
            function.invoke({"order_id": "o-8"})
    finally:
        function.close()
    assert caught.value.error_type == "OrderRejected"
    assert caught.value.message == "order o-7 rejected"
    assert str(caught.value) == "OrderRejected: order o-7 rejected"
    log = (tmp_path / "logs" / "raising.log").read_text()
    assert "OrderRejected: order o-7 rejected" in log and "Traceback" in log


def test_timeout_gives_sandbox_timedout_and_the_next_invocation_works(tmp_path):
    function = make_function(tmp_path, "sleepy", timeout_s=2.0)
    try:
        warm = function.invoke({"sleep": 0})
        started = time.monotonic()
        with pytest.raises(FunctionError) as caught:
            function.invoke({"sleep": 10})
        waited = time.monotonic() - started
        after = function.invoke({"sleep": 0.01})
    finally:
        function.close()
    assert caught.value.error_type == "Sandbox.Timedout"
    assert caught.value.message == "Task timed out after 2.00 seconds"
    assert 2.0 <= waited < 9  # ended at the timeout, not when the handler finished
    assert after["slept"] == 0.01
    assert after["pid"] != warm["pid"]  # the timed-out runtime was replaced


def test_logging_from_the_handler_lands_in_the_log_file(tmp_path):
    function = make_function(tmp_path, "logging_handler")
    try:
        assert function.invoke({"marker": "m-12345"}) == "logged"
    finally:
        function.close()
    assert function.log_path == tmp_path / "logs" / "logging_handler.log"
    lines = function.log_path.read_text().splitlines()
    assert any(line.endswith("INFO handling m-12345") for line in lines), lines
    assert any(line.endswith("WARNING careful with m-12345") for line in lines), lines


def test_runtime_that_exits_fails_one_invocation_only(tmp_path):
    function = make_function(tmp_path, "exiting")
    try:
        with pytest.raises(FunctionError) as caught:
            function.invoke({})
        assert caught.value.error_type == "Runtime.ExitError"
        with pytest.raises(FunctionError) as again:
            function.invoke({})  # a fresh runtime is started, and fails the same way
        assert again.value.error_type == "Runtime.ExitError"
    finally:
        function.close()


def test_concurrent_invocations_run_in_parallel_runtimes(tmp_path):
    function = make_function(tmp_path, "sleepy", concurrency=2, timeout_s=20)
    try:
        cold = [function.invoke_async({"sleep": 0}) for _ in range(2)]
        [function.result(f) for f in cold]
        futures = [function.invoke_async({"sleep": 0.6}) for _ in range(2)]
        results = [function.result(f) for f in futures]
    finally:
        function.close()
    assert len({r["pid"] for r in results}) == 2
    (first_start, first_end), (second_start, second_end) = (r["span"] for r in results)
    assert first_start < second_end and second_start < first_end  # they ran side by side


def test_unknown_handler_fails_the_invocation(tmp_path):
    function = make_function(tmp_path, "no_such_handler")
    try:
        with pytest.raises(FunctionError) as caught:
            function.invoke({})
    finally:
        function.close()
    assert caught.value.error_type == "Runtime.HandlerNotFound"


def test_cold_start_does_not_count_against_the_timeout(tmp_path):
    function = Function(
        "quick",
        "tests.local.slow_init_handlers.quick",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:quick",
        tmp_path / "logs",
        "tests.local.handlers",
        timeout_s=0.5,
    )
    try:
        assert function.invoke({})["ok"] is True
    finally:
        function.close()


DAY = 86400


def test_log_retention_rotates_daily_and_deletes_whole_expired_files(tmp_path):
    """The live log is renamed once a day while a runtime keeps writing (it reopens the live
    name: no line is lost), and a renamed log goes once its last line passed the retention."""
    function = make_function(tmp_path, "logging_handler")
    logs = tmp_path / "logs"
    try:
        function.invoke({"marker": "m-first"})
        start = time.time()
        assert trim_logs(logs, retention_days=1, now=start) == 0  # none rotated yet: rotate
        (rotated,) = logs.glob("logging_handler.log.*")
        assert "m-first" in rotated.read_text() and not function.log_path.exists()
        function.invoke({"marker": "m-second"})  # the same runtime, a new live file
        assert "m-second" in function.log_path.read_text()
        assert "m-second" not in rotated.read_text()
        trim_logs(logs, retention_days=1, now=start + LOG_ROTATION_S - 1)  # a second early
        assert len(list(logs.glob("logging_handler.log.*"))) == 1
        trim_logs(logs, retention_days=7, now=start + LOG_ROTATION_S)  # a day on: rotate
        (second,) = set(logs.glob("logging_handler.log.*")) - {rotated}
    finally:
        function.close()
    os.utime(second, (start + DAY, start + DAY))  # its last line a day later
    newest = rotated.stat().st_mtime
    assert trim_logs(logs, retention_days=1, now=newest + DAY - 1) == 0  # a second young
    assert rotated.exists()
    assert trim_logs(logs, retention_days=1, now=newest + DAY + 1) == 1  # a second old
    assert not rotated.exists() and "m-second" in second.read_text()


def test_log_retention_leaves_empty_logs_and_other_files_alone(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "quiet.log").touch()
    (logs / "quiet.log.bak").write_text("kept by hand")
    old = time.time() - 30 * DAY
    os.utime(logs / "quiet.log.bak", (old, old))
    assert trim_logs(logs, retention_days=1) == 0
    assert sorted(p.name for p in logs.iterdir()) == ["quiet.log", "quiet.log.bak"]
