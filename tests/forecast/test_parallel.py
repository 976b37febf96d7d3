"""Worker processes: the same fits as in-process, and a script without a main guard that
forecasts in parallel without its workers running it again."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.forecast import backtest_and_forecast
from helpers.forecast.models import SeriesTask
from helpers.forecast.parallel import fit_all
from tests.forecast.support import assert_forecast_frame, long_frame

ROOT = Path(__file__).resolve().parents[2]
STATISTICAL = ("auto_ets", "auto_arima", "auto_theta", "mstl", "seasonal_naive", "naive")


@pytest.fixture(scope="module")
def tasks() -> list[SeriesTask]:
    """Four noisy weekly-patterned series of 70 days, three folds of 7."""
    rng = np.random.default_rng(11)
    ds = pd.date_range("2026-01-01", periods=70).to_numpy()
    week = np.array([5.0, 6, 7, 9, 12, 3, 2])
    return [
        SeriesTask(
            f"s{i}",
            scale * week[np.arange(70) % 7] + rng.normal(0, scale, 70),
            ds,
            "D",
            7,
            (49, 56, 63),
            STATISTICAL,
            None,
        )
        for i, scale in enumerate((1.0, 2.0, 5.0, 10.0))
    ]


@pytest.mark.slow
def test_two_workers_fit_the_same_as_one(tasks):
    """Fits in two worker processes equal the in-process ones, model by model."""
    alone = fit_all(tasks, n_jobs=1, progress=False)
    workers = fit_all(tasks, n_jobs=2, progress=False)

    assert sorted(workers) == sorted(alone) == ["s0", "s1", "s2", "s3"]
    for uid, fit in alone.items():
        other = workers[uid]
        assert other.unique_id == uid
        assert other.failures == fit.failures == {}
        assert set(other.final) == set(fit.final) == set(STATISTICAL)
        for name in STATISTICAL:
            np.testing.assert_allclose(other.backtests[name], fit.backtests[name], rtol=1e-10)
            np.testing.assert_allclose(other.final[name], fit.final[name], rtol=1e-10)


def test_worker_counts_below_one_fit_in_this_process(tasks):
    """n_jobs of 0 counts as one worker: the same fits, without a pool."""
    light = [replace(task, models=("auto_ets", "naive")) for task in tasks[:2]]
    alone = fit_all(light, n_jobs=1, progress=False)
    zero = fit_all(light, n_jobs=0, progress=False)

    for uid, fit in alone.items():
        np.testing.assert_array_equal(zero[uid].final["auto_ets"], fit.final["auto_ets"])


def test_parallel_forecasts_equal_in_process_ones():
    """The whole forecast with two workers equals the one fitted in this process."""
    rng = np.random.default_rng(12)
    df = long_frame({f"s{i}": 40 + rng.normal(0, 4, 60) for i in range(3)})
    options = {"folds": 2, "models": ("auto_ets", "auto_theta", "naive"), "progress": False}

    alone = backtest_and_forecast(df, 7, n_jobs=1, **options)
    workers = backtest_and_forecast(df, 7, n_jobs=2, **options)

    pd.testing.assert_frame_equal(workers.forecasts, alone.forecasts)
    pd.testing.assert_frame_equal(workers.metrics, alone.metrics)
    pd.testing.assert_frame_equal(workers.choices, alone.choices)


SCRIPT = """\
import sys

import numpy as np
import pandas as pd
import psutil

with open(sys.argv[1], "a") as marker:  # module level, no main guard
    marker.write("ran\\n")

import helpers.forecast

rng = np.random.default_rng(0)
df = pd.concat(
    pd.DataFrame({"unique_id": uid, "ds": pd.date_range("2026-01-01", periods=60),
                  "y": 20 + rng.normal(0, 2, 60)})
    for uid in ("a", "b", "c")
)
result = helpers.forecast.forecast(
    df, horizon=5, folds=1, n_jobs=2, progress=False, models=("auto_ets", "naive")
)
result.to_csv(sys.argv[2], index=False)
workers = [
    child for child in psutil.Process().children(recursive=True)
    if "LokyProcess" in " ".join(child.cmdline())
]
print(f"workers: {len(workers)}")
"""


def test_a_script_without_a_main_guard_forecasts_in_parallel(tmp_path):
    """A plain script (no ``if __name__ == "__main__":``) forecasts with two workers; the
    workers do not run the script again, so its module-level code runs once."""
    script, marker, output = tmp_path / "plain.py", tmp_path / "marker.txt", tmp_path / "out.csv"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    done = subprocess.run(
        [sys.executable, str(script), str(marker), str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert done.returncode == 0, done.stderr
    assert "workers: 2" in done.stdout  # the fits really ran in two worker processes
    assert marker.read_text().splitlines() == ["ran"]
    result = pd.read_csv(output, parse_dates=["ds"])
    last = dict.fromkeys(("a", "b", "c"), pd.Timestamp("2026-03-01"))
    assert_forecast_frame(result, last, 5)


KILLED = """
import os, sys
import numpy as np, pandas as pd
from helpers.forecast.models import SeriesTask
from helpers.forecast.parallel import fit_all

ds = pd.date_range("2024-01-01", periods=400, freq="D").to_numpy()
rng = np.random.default_rng(0)
y = rng.poisson(10, 400).astype(float)
tasks = [SeriesTask(f"s{i}", y, ds, "D", 28, (316, 344, 372)) for i in range(400)]
fit_all(tasks, n_jobs=2, progress=False)
"""


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_exit_when_the_process_that_started_them_is_killed(tmp_path):
    """A killed notebook or ``salescast forecast`` leaves no worker behind (loky's would wait
    on their queue for minutes, a few hundred MB each)."""
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    caller = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env)
    try:
        workers: set[int] = set()
        for _ in range(600):  # until both workers are fitting
            workers = {
                pid
                for pid in _children(caller.pid)
                if b"LokyProcess" in Path(f"/proc/{pid}/cmdline").read_bytes()
            }
            if len(workers) == 2 or caller.poll() is not None:
                break
            time.sleep(0.1)
        assert len(workers) == 2 and caller.poll() is None
        time.sleep(1.0)  # their first fits are running
    finally:
        caller.kill()
        caller.wait()
    for _ in range(100):
        if not any(_alive(pid) for pid in workers):
            break
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
