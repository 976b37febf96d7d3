"""The salescast command, run in-process on a temporary root."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.cli import app

ROOT = Path(__file__).resolve().parent.parent

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_stream_lake_status_teardown(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESCAST_SCALE", "0.5")  # scales the notebooks, not --rate
    root = str(tmp_path / "root")
    output = invoke(
        "stream",
        "--days",
        "5",
        "--end",
        "2026-03-01",
        "--orders-per-day",
        "80",
        "--rate",
        "50",
        "--duration",
        "1",
        "--root",
        root,
    )
    assert "waiting for the lake" in output and "lake" in output
    # not a terminal: progress bars write whole lines, not carriage-return redraws
    i = output.find("\r")
    assert "\r" not in output, repr(output[i - 300 : i + 100])
    assert "\nchanges: 477change [" in output
    live = output.split("streaming 50 orders/s for 1s")[1]
    assert "'put': 50," in live and "reached the lake in p50" in live
    lake = invoke("lake", "--root", root, "--records", "3")
    assert "partitions" in lake and "0 error objects" in lake and "order_id" in lake
    partitions = int(lake.split(" partitions")[0].split()[-1])
    assert partitions == 6  # five backfilled days and today's live orders
    status = invoke("status", "--root", root)
    lines = {line.split()[0]: line.split() for line in status.splitlines()[1:]}
    assert lines["table"][1] != "0"
    assert lines["lake"][2] == "0"  # nothing pending
    refused = runner.invoke(app, ["teardown", "--root", root])
    assert refused.exit_code == 2 and "--yes" in refused.output
    invoke("teardown", "--yes", "--root", root)
    assert not (tmp_path / "root").exists()


def test_bad_settings_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESCAST_SHARD_COUNT", "many")
    result = runner.invoke(app, ["status", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "SALESCAST_SHARD_COUNT" in result.output


def test_crawl_and_query(tmp_path):
    root = str(tmp_path / "root")
    invoke("stream", "--days", "4", "--end", "2026-03-01", "--orders-per-day", "60", "--root", root)
    early = runner.invoke(app, ["query", "daily_revenue", "--root", root])
    assert early.exit_code == 1 and "run `salescast crawl` first" in early.output
    crawled = invoke("crawl", "--root", root)
    assert "tables created: ['orders_changes']" in crawled and "partitions added: 4" in crawled
    table = invoke("query", "daily_revenue", "--root", root)
    assert "revenue" in table and "(4 rows; result at s3://" in table
    csv = invoke(
        "query", "SELECT count(*) AS n FROM orders_current", "--output", "csv", "--root", root
    )
    assert csv.splitlines()[0] == "n" and int(csv.splitlines()[1]) > 0
    failed = runner.invoke(app, ["query", "SELECT nope FROM daily_sales", "--root", root])
    assert failed.exit_code == 1 and "COLUMN_NOT_FOUND" in failed.output


def test_trim_applies_retention_now(tmp_path, monkeypatch):
    import helpers
    import helpers.local.platform as local

    root = tmp_path / "root"
    with helpers.connect(root=root, buffer_interval_s=0.1) as platform:
        platform.orders.put(
            [
                {
                    "order_id": f"o-{i}",
                    "order_ts": "2026-01-02T10:00:00Z",
                    "customer_id": "c-1",
                    "product_id": "p-1",
                    "product_name": "Lamp",
                    "category": "home",
                    "channel": "web",
                    "quantity": 1,
                    "unit_price": 9.5,
                }
                for i in range(40)
            ]
        )
        platform.flush(timeout=60)
    output = invoke("trim", "--root", str(root))
    assert "change_stream_records: 0" in output  # all younger than 24 h
    real = local.time.time
    monkeypatch.setattr(local.time, "time", lambda: real() + 2 * 86400)
    output = invoke("trim", "--root", str(root))
    assert "change_stream_records: 40" in output and "kinesis_records: 40" in output


# Each row: the command (with what refuses it after parsing, so that accepted values stop
# there too), the option, values it refuses, values it accepts (each side of every limit),
# what the refusal says is allowed, and what the command says once the option is accepted.
LIMITS = [
    (["stream", "--rate", "1"], "--days", ["-1", "3661", "ten"], ["0", "3660"],
     "a whole number from 0 to 3660", "--rate 1 needs --duration"),
    (["stream", "--duration", "1"], "--rate", ["-0.5", "nan", "inf"], ["0"],
     "a number of 0 or more", "--duration 1 needs --rate"),
    (["stream", "--rate", "1"], "--duration", ["-1"], ["0"],
     "a number of 0 or more", "--rate 1 needs --duration"),
    (["stream", "--rate", "1"], "--orders-per-day", ["0"], ["1"],
     "a whole number of 1 or more", "--rate 1 needs --duration"),
    (["stream", "--rate", "1"], "--products", ["0"], ["1"],
     "a whole number of 1 or more", "--rate 1 needs --duration"),
    (["stream", "--rate", "1"], "--seed", ["-1"], ["0"],
     "a whole number of 0 or more", "--rate 1 needs --duration"),
    (["stream", "--rate", "1"], "--timeout", ["0"], ["0.001"],
     "a number above 0", "--rate 1 needs --duration"),
    (["stream", "--rate", "1"], "--end", ["2026-13-01"], ["2026-03-01"],
     "not an ISO date", "--rate 1 needs --duration"),
    (["forecast"], "--horizon", ["-5", "0", "3661"], ["1", "3660"],
     "a whole number from 1 to 3660", "no salescast state"),
    (["forecast"], "--folds", ["0"], ["1"], "a whole number of 1 or more", "no salescast state"),
    (["forecast"], "--level", ["store"], ["total"],
     "one of 'total', 'category', 'product'", "no salescast state"),
    (["forecast"], "--measure", ["profit"], ["orders"],
     "one of 'units', 'revenue', 'orders'", "no salescast state"),
    (["forecast"], "--seasonality-mode", ["linear"], ["multiplicative"],
     "one of 'auto', 'additive', 'multiplicative'", "no salescast state"),
    (["lake"], "--records", ["-1"], ["0"], "a whole number of 0 or more", "no salescast state"),
    (["report"], "--top", ["0"], ["1"], "a whole number of 1 or more", "no salescast state"),
    (["query", "daily_revenue"], "--output", ["json"], ["csv"],
     "one of 'table', 'csv'", "no salescast state"),
    (["status"], "--backend", ["gcp"], ["local"], "one of 'local', 'aws'", "no salescast state"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "option", "refused", "accepted", "allowed", "then"), LIMITS)
def test_options_are_checked_before_anything_is_written(
    tmp_path, command, option, refused, accepted, allowed, then
):
    """A value outside an option's limits is refused, naming option, value and what is
    allowed, before the command starts; the limit itself is accepted."""
    root = tmp_path / "root"
    for value in refused:
        result = runner.invoke(app, [*command, option, value, "--root", str(root)])
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '{option}'" in result.output
        assert value in result.output and allowed in result.output
    for value in accepted:
        result = runner.invoke(app, [*command, option, value, "--root", str(root)])
        assert result.exit_code == 2 and then in result.output, result.output
        assert "Invalid value" not in result.output
    assert not root.exists()


@pytest.mark.parametrize(
    "command", [["status"], ["lake"], ["crawl"], ["query", "daily_revenue"], ["forecast"]]
)
def test_reading_commands_need_an_existing_root(tmp_path, command):
    """A root that does not exist is named, not created empty."""
    root = tmp_path / "nowhere"
    result = runner.invoke(app, [*command, "--root", str(root)])
    assert result.exit_code == 2
    assert f"no salescast state at {root}" in result.output
    assert not root.exists()


def test_a_root_that_is_a_file_is_refused(tmp_path):
    """--root (and SALESCAST_ROOT) must be a folder; the file is left alone."""
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    result = runner.invoke(app, ["status", "--root", str(path)])
    assert result.exit_code == 2 and f"{path}' is a file" in result.output
    refused = runner.invoke(app, ["status"], env={"SALESCAST_ROOT": str(path)})
    assert refused.exit_code == 2 and "SALESCAST_ROOT" in refused.output
    assert path.read_text() == "mine"


def test_help_shows_environment_defaults_limits_and_bare_flags():
    """Help names the environment variables and defaults, each option's limits, and flags
    take no value."""
    text = " ".join(runner.invoke(app, ["stream", "--help"], terminal_width=200).output.split())
    assert "[env var: SALESCAST_ROOT; default: (data/local)]" in text
    assert "[env var: SALESCAST_BACKEND; default: (local)]" in text
    assert "a whole number from 0 to 3660 [default: 730]" in text
    assert "--reset Remove local state first" in text and "<bool>" not in text
    teardown = runner.invoke(app, ["teardown", "--help"]).output
    assert "--yes " in teardown and "<bool>" not in teardown


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-p", "LEVEL"], "-p LEVEL has no VALUE: pass -p LEVEL VALUE"),
        (["-p", "LEVEL", "-p", "DAYS", "3"], "-p LEVEL has no VALUE"),
        (["-p"], "-p needs a NAME and a VALUE"),
        (["-p", "LEVEL", "weekly"], "parameter LEVEL: 'weekly' is not allowed: one of 'total'"),
        (["-p", "HORIZON", "0"], "parameter HORIZON: 0 is not allowed: a whole number from 1"),
        (["-p", "DAYS", "-3"], "parameter DAYS: -3 is not allowed"),
        (["-p", "RESET", "true", "-p", "FOLDS", "0"], "parameter FOLDS: 0 is not allowed"),
    ],
)
def test_run_checks_every_parameter_before_the_first_notebook(tmp_path, arguments, message):
    """A bad parameter of any notebook stops the run before a notebook starts (so before a
    RESET removes anything): no run folder, no root."""
    env = {"SALESCAST_ROOT": str(tmp_path / "root")}
    result = runner.invoke(app, ["run", *arguments, "--runs", str(tmp_path / "runs")], env=env)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "root").exists()


@pytest.mark.slow
def test_an_interrupted_run_stops_and_prints_no_traceback(tmp_path):
    """Ctrl-C during a notebook stops the run (the kernel too), marks the summary interrupted
    and says where it is, without a traceback from the command, the kernel or its workers."""
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "SALESCAST_ROOT": str(tmp_path / "root"),
        "SALESCAST_SCALE": "0.05",
    }
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "helpers.cli", "run", "-p", "DAYS", "2"]
    command += ["-p", "LIVE_SECONDS", "120", "--runs", str(runs), "--run-id", "stopped"]
    caller = subprocess.Popen(
        command, env=env, cwd=tmp_path, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    streaming = runs / "stopped" / "01_generate_and_stream.ipynb"
    deadline = time.monotonic() + 120
    while not streaming.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(4)  # into the live session
    os.killpg(caller.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
    started = time.monotonic()
    _, stderr = caller.communicate(timeout=60)

    assert caller.returncode == 130
    assert time.monotonic() - started < 30  # not after the two minutes of live orders
    summary = runs / "stopped" / "summary.md"
    said = [line for line in stderr.splitlines() if not line.startswith("notebooks: ")]
    assert said == [f"interrupted; how far it got: {summary}"]  # and the bar's lines
    assert summary.read_text().startswith("# Run stopped: interrupted")


def test_teardown_of_a_root_that_does_not_exist_removes_nothing_and_creates_nothing(tmp_path):
    missing = tmp_path / "never-made"

    output = invoke("teardown", "--yes", "--root", str(missing))

    assert output.strip() == f"nothing to remove: there is nothing at {missing}"
    assert not missing.exists()
