"""The real-time consumer under load: time to an alert after a demand shock, false alerts on
a normal stretch, and its CPU cost per order beside Firehose's.

It builds the platform honestly: ``--days`` of history at ``--orders-per-day`` backfilled
through the pipeline, a forecast run on it (a cheap model set, AutoETS and the seasonal naive
forecast, one backtest fold, at product level) that publishes the expectations the consumer
reads, not the generator's truth. Then today's orders so far, and ``--seconds`` of the shop's
own day streamed live on a simulated clock paced so that orders come at ``--rate`` a second
(``generate.live_paced``: at 100,000 orders a day and 1,000 a second, a simulated day passes
in about 100 s, so that a second of the pipeline's own latency is a quarter of an hour of the
shop's day, not the hour a faster clock would make of it), with demand shocks on the top products: 3x and cut to zero, alternately, at
different minutes, each for ``--shock-hours`` of the simulated day.

Measured:

- **time to alert** (wall clock): from the first shocked order written to the table (for a
  cut: from the first order written at or after the shock's start) to the alert appearing in
  the consumer's alert table (polled every 50 ms); p50 and p95 over the shocks, a missed shock
  counting as infinitely late. Target p95 under 5 s.
- **false alerts per 100 product-days**: product alerts opened outside the shocks (and the
  ``--settle-hours`` after each, while the product's recent totals come back), per product-day
  of the simulated session outside them. Target under 1. Category and total alerts outside
  every shock window are counted apart (a shocked product moves its category and the total).
- **CPU per order** of the consumer (its runtime process, which steps its event source
  mapping and runs the handler, and its threads here) beside Firehose's (the delivery thread
  and the transform Lambda's runtime processes), over the live session, per order streamed.

Run: ``python -m benchmarks.realtime [--seconds 240] [--quick]``; the figures are noisy on a
shared machine (wall times most of all).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

import helpers
from helpers import generate, realtime, workbench
from helpers.config import PROJECT_ROOT
from helpers.forecast import run_forecast
from helpers.generate import SalesParams, Shock
from helpers.local.platform import REALTIME_STATE
from helpers.platform import WRITE_CHUNK

DEFAULT_ROOT = PROJECT_ROOT / "data" / "bench" / "realtime"
MODELS = ("auto_ets", "seasonal_naive")
TARGET_P95_S = 5.0
TARGET_FALSE_PER_100 = 1.0
POLL_S = 0.05
BUSY_HOURS = (10, 18)
"""UTC hours a shock may start in: the shop's busy part of the day (its hourly profile)."""


@dataclass(frozen=True)
class Setup:
    """The shop, its history and the live session."""

    orders_per_day: int = 100_000
    products: int = 50
    days: int = 21
    seconds: float = 240.0
    rate: float = 1000.0
    shocks: int = 6
    shock_hours: float = 3.0
    settle_hours: float = 3.0
    seed: int = 42

    @property
    def params(self) -> SalesParams:
        return SalesParams(
            seed=self.seed, orders_per_day=self.orders_per_day, n_products=self.products
        )


QUICK = Setup(orders_per_day=2_000, products=6, days=21, seconds=10.0, rate=200.0, shocks=2)
"""A small run for the test: about a simulated day in 10 s, one shock of each kind."""


class AlertWatcher(threading.Thread):
    """Polls the consumer's alert table and notes the wall time each new alert first appears;
    the alerts already there when it is made (``before``: written while today's earlier orders
    were replayed) are left out."""

    def __init__(self, path: Path):
        super().__init__(name="alert-watcher", daemon=True)
        self.path, self.seen, self.done = path, {}, threading.Event()
        store = realtime.SqliteStore(path)
        self.before = store.alerts()
        store.close()

    @staticmethod
    def key(alert: dict) -> tuple[str, str, str]:
        return alert["series_id"], alert["kind"], alert["since"]

    def run(self) -> None:
        store = realtime.SqliteStore(self.path)
        known = {self.key(alert) for alert in self.before}
        try:
            while not self.done.is_set():
                now = time.time()
                for alert in store.alerts():
                    if self.key(alert) not in known:
                        self.seen.setdefault(self.key(alert), alert | {"seen_wall": now})
                self.done.wait(POLL_S)
        finally:
            store.close()

    def alerts(self) -> pd.DataFrame:
        """Every new alert seen, with ``seen_wall`` (epoch seconds) and its state then."""
        return pd.DataFrame(list(self.seen.values()), columns=[*realtime.ALERT_FIELDS, "seen_wall"])


def paced_speed(params: SalesParams, rate: float, start: pd.Timestamp, seconds: float) -> float:
    """The simulated seconds per wall second at which the session's orders average ``rate``
    a second (the day's hours and days differ, so the speed is solved for the session)."""
    speed = rate * 86_400 / params.orders_per_day
    for _ in range(3):
        end = start + pd.Timedelta(seconds=speed * seconds)
        expected = generate.expected_paced_orders(params, start, end)
        speed *= rate * seconds / expected
    return speed


def shock_plan(
    setup: Setup, expectations: pd.DataFrame, start: pd.Timestamp, session_minutes: float
) -> list[Shock]:
    """``setup.shocks`` shocks on the top products by expected units, 3x and 0x in turn,
    each ``shock_hours`` long and starting in the busy hours of the simulated day
    (:data:`BUSY_HOURS`, where a product sells enough for an alert to be called), spread over
    the session's busy stretches."""
    products = expectations[expectations["level"] == "product"]
    top = (
        products.groupby("series_id")["units"]
        .sum()
        .nlargest(setup.shocks)
        .index.str.removeprefix("product#")
    )
    length = setup.shock_hours * 60
    minutes = np.arange(0.0, max(0.0, session_minutes - length), 5.0)
    hours = (start + pd.to_timedelta(minutes, unit="min")).hour
    busy = minutes[(hours >= BUSY_HOURS[0]) & (hours < BUSY_HOURS[1])]
    if busy.size == 0:
        raise ValueError(
            f"the session's {session_minutes:,.0f} simulated minutes from {start:%H:%M} hold no "
            f"busy hour ({BUSY_HOURS[0]}:00 to {BUSY_HOURS[1]}:00) to start a shock in: "
            "stream longer (--seconds) or faster (--rate)"
        )
    picks = busy[((np.arange(setup.shocks) + 0.5) * busy.size / setup.shocks).astype(int)]
    return [
        Shock(product_id, 3.0 if number % 2 == 0 else 0.0, float(begin), float(begin) + length)
        for number, (product_id, begin) in enumerate(zip(top, picks, strict=False))
    ]


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of the consumer's and Firehose's parts of this process tree."""
    found = {"consumer": 0.0, "firehose": 0.0}
    for thread in psutil.Process().threads():
        name = _thread_names().get(thread.id, "")
        part = _part(name)
        if part:
            found[part] += thread.user_time + thread.system_time
    for child in psutil.Process().children(recursive=True):
        try:
            part = _part(" ".join(child.cmdline()))
            if part:
                times = child.cpu_times()
                found[part] += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return found


def _thread_names() -> dict[int, str]:
    return {thread.native_id: thread.name for thread in threading.enumerate()}


def _part(name: str) -> str | None:
    """Which part a thread or runtime process belongs to, by its name or command line: the
    consumer's mapping runtime and poller threads, or the delivery stream's thread and data
    plane runtimes (which call the transform Lambda)."""
    if "realtime" in name or "event_source" in name:
        return "consumer"
    if "delivery" in name or "deliver_in_runtime" in name or "transform" in name:
        return "firehose"
    return None


def build(root: Path, setup: Setup) -> dict:
    """History backfilled and delivered, a forecast run publishing today's expectations."""
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    with helpers.connect(root=root) as platform:
        counts = workbench.backfill(platform, setup.days, setup.params)
        platform.flush(timeout=3600, progress=True)
        backfilled = time.perf_counter() - started
        run = run_forecast(
            platform,
            "product",
            "units",
            horizon=max(7, math.ceil(setup.seconds * 2 * setup.rate / setup.orders_per_day) + 2),
            folds=1,
            models=MODELS,
            progress=False,
        )
    return {
        "history_orders": counts["put"],
        "backfill_s": backfilled,
        "forecast_s": time.perf_counter() - started - backfilled,
        "run_id": run.run_id,
        "expectations": run.expectations,
    }


def stream(root: Path, setup: Setup, expectations: pd.DataFrame) -> dict:
    """Today's orders so far, then the paced live session with shocks: every alert's first
    sighting, when each shock's first order was written, and the CPU of both consumers."""
    params = setup.params
    with helpers.connect(root=root) as platform:
        platform.apply(list(generate.day_so_far(params=params)), batch_rows=WRITE_CHUNK)
        platform.flush(timeout=600)
        start = pd.Timestamp.now(tz="UTC")
        speed = paced_speed(params, setup.rate, start, setup.seconds)
        shocks = shock_plan(setup, expectations, start, speed * setup.seconds / 60)
        starts = [start + pd.Timedelta(minutes=shock.start_minute) for shock in shocks]
        first_order_wall: dict[int, float] = {}
        watcher = AlertWatcher(root / REALTIME_STATE)
        watcher.start()
        cpu_before, wall_start, puts = cpu_seconds(), time.time(), 0
        for change in generate.live_paced(speed, setup.seconds, params, start, shocks):
            platform.apply([change], progress=False)
            if change.action != "put":
                continue
            wall, frame = time.time(), change.frame
            puts += len(frame)
            stamps = pd.to_datetime(frame["order_ts"], utc=True)
            for number, shock in enumerate(shocks):
                shocked = stamps >= starts[number]
                if shock.factor:  # the product's own orders; a cut has none: any order then
                    shocked &= frame["product_id"] == shock.product_id
                if number not in first_order_wall and shocked.any():
                    first_order_wall[number] = wall
        streamed_s = time.time() - wall_start
        platform.flush(timeout=600)
        cpu_after = cpu_seconds()
        time.sleep(10 * POLL_S)  # the watcher's last look
        watcher.done.set()
        watcher.join()
    return {
        "start": start,
        "speed": speed,
        "shocks": shocks,
        "first_order_wall": first_order_wall,
        "alerts": watcher.alerts(),
        "alerts_before": len(watcher.before),
        "orders": puts,
        "streamed_s": streamed_s,
        "cpu_s": {part: cpu_after[part] - cpu_before.get(part, 0.0) for part in cpu_after},
    }


def measure(setup: Setup, session: dict) -> dict:
    """Time to each shock's alert, false alerts per 100 product-days, CPU per order."""
    start, speed, shocks = session["start"], session["speed"], session["shocks"]
    alerts = session["alerts"]
    since = pd.to_datetime(alerts["since"], utc=True)
    # a stall's since is the last order before it: a window opens a stall's length early
    early = pd.Timedelta(minutes=realtime.Config.from_env({}).stall_minutes)
    settle = pd.Timedelta(hours=setup.settle_hours)
    windows = {
        f"product#{shock.product_id}": (
            start + pd.Timedelta(minutes=shock.start_minute) - early,
            start + pd.Timedelta(minutes=shock.end_minute) + settle,
        )
        for shock in shocks
    }
    detected = [_detection(shock, number, alerts, session) for number, shock in enumerate(shocks)]
    delays = np.array([row["delay_s"] for row in detected])
    end = start + pd.Timedelta(seconds=speed * setup.seconds)
    session_days = (end - start) / pd.Timedelta(days=1)
    in_window = np.array(
        [
            series_id in windows and windows[series_id][0] <= when <= windows[series_id][1]
            for series_id, when in zip(alerts["series_id"], since, strict=True)
        ],
        dtype=bool,
    )
    in_any_window = np.array(
        [any(lo <= when <= hi for lo, hi in windows.values()) for when in since], dtype=bool
    )
    of_products = alerts["series_id"].str.startswith("product#").to_numpy(dtype=bool)
    false_products = alerts[of_products & ~in_window]
    shocked_days = sum(
        (min(hi, end) - max(lo, start)) / pd.Timedelta(days=1) for lo, hi in windows.values()
    )
    product_days = setup.products * session_days - shocked_days
    cpu = session["cpu_s"]
    return {
        "orders": session["orders"],
        "orders_per_s": session["orders"] / session["streamed_s"],
        "speed": speed,
        "simulated_days": session_days,
        "shocks": detected,
        "p50_s": float(np.percentile(delays, 50, method="higher")),  # a miss stays infinite
        "p95_s": float(np.percentile(delays, 95, method="higher")),
        "missed": int(np.isinf(delays).sum()),
        "false_product_alerts": len(false_products),
        "product_days": product_days,
        "false_per_100_product_days": 100 * len(false_products) / product_days,
        "false_alerts": false_products.to_dict("records"),
        "other_alerts_outside_shocks": int((~of_products & ~in_any_window).sum()),
        "alerts_while_replaying_today": session["alerts_before"],
        "consumer_cpu_us_per_order": 1e6 * cpu["consumer"] / max(1, session["orders"]),
        "firehose_cpu_us_per_order": 1e6 * cpu["firehose"] / max(1, session["orders"]),
    }


def _detection(shock: Shock, number: int, alerts: pd.DataFrame, session: dict) -> dict:
    """A shock's first alert of the expected kind (high for a rise; low or stalled for a
    cut) seen after its first order was written, and the delay in wall seconds (and in
    minutes of the simulated day)."""
    kinds = ("high",) if shock.factor > 1 else ("low", "stalled")
    first_order = session["first_order_wall"].get(number, math.inf)
    found = alerts[
        (alerts["series_id"] == f"product#{shock.product_id}")
        & alerts["kind"].isin(kinds)
        & (alerts["seen_wall"] >= first_order)
    ].sort_values("seen_wall")
    delay = found["seen_wall"].iloc[0] - first_order if len(found) else math.inf
    return {
        "product": shock.product_id,
        "factor": shock.factor,
        "start_minute": round(shock.start_minute),
        "alert": found["kind"].iloc[0] if len(found) else None,
        "delay_s": delay,
        "delay_simulated_min": delay * session["speed"] / 60,
    }


def table(figures: dict, setup: Setup) -> pd.DataFrame:
    """The figures beside their targets."""
    rows = [
        ("paced orders/s", figures["orders_per_s"], f"~{setup.rate:,.0f}", None),
        ("time to alert p50 (s)", figures["p50_s"], "", None),
        (
            "time to alert p95 (s)",
            figures["p95_s"],
            f"< {TARGET_P95_S:g}",
            figures["p95_s"] < TARGET_P95_S,
        ),
        ("shocks missed", figures["missed"], "0", figures["missed"] == 0),
        (
            "false alerts / 100 product-days",
            figures["false_per_100_product_days"],
            f"< {TARGET_FALSE_PER_100:g}",
            figures["false_per_100_product_days"] < TARGET_FALSE_PER_100,
        ),
        ("consumer CPU us/order", figures["consumer_cpu_us_per_order"], "", None),
        ("Firehose CPU us/order", figures["firehose_cpu_us_per_order"], "", None),
    ]
    frame = pd.DataFrame(rows, columns=["measure", "value", "target", "met"])
    frame["value"] = frame["value"].map(lambda value: f"{value:,.2f}")
    frame["met"] = frame["met"].map({True: "met", False: "NOT MET", None: ""})
    return frame


def run(root: Path, setup: Setup) -> dict:
    """Build, stream and measure; returns the figures (and prints how it went)."""
    built = build(root, setup)
    today = str(pd.Timestamp.now(tz="UTC").date())
    expectations = built.pop("expectations")
    if not (expectations["day"] == today).any():
        raise RuntimeError(f"the forecast run published no expectation for today ({today})")
    session = stream(root, setup, expectations[expectations["day"] == today])
    figures = built | measure(setup, session)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=Setup.seconds)
    parser.add_argument("--rate", type=float, default=Setup.rate)
    parser.add_argument("--orders-per-day", type=int, default=Setup.orders_per_day)
    parser.add_argument("--days", type=int, default=Setup.days)
    parser.add_argument("--shocks", type=int, default=Setup.shocks)
    parser.add_argument("--quick", action="store_true", help="a small run (as the test's)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    setup = (
        QUICK
        if args.quick
        else Setup(
            orders_per_day=args.orders_per_day,
            days=args.days,
            seconds=args.seconds,
            rate=args.rate,
            shocks=args.shocks,
        )
    )
    figures = run(args.root, setup)
    print(
        f"\n{figures['history_orders']:,} orders of history ({setup.days} days) in "
        f"{figures['backfill_s']:.0f}s; forecast ({', '.join(MODELS)}) in "
        f"{figures['forecast_s']:.0f}s; live {figures['orders']:,} orders at x"
        f"{figures['speed']:,.0f} ({figures['simulated_days']:.2f} simulated days)"
    )
    print(pd.DataFrame(figures["shocks"]).to_string(index=False))
    print(table(figures, setup).to_string(index=False))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
