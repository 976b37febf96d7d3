"""Forecasting runs on any backend: ``daily_sales`` by SQL in, tables back in the lake.

A run forecasts every level from the total down to the one asked (so the levels can be made to
add up) and writes six tables partitioned by ``run_id``: ``forecasts`` (one row per series and
day, with the series' ``level``), ``forecast_periods`` (each series' total over the next week,
four weeks and the horizon, with intervals of those totals), ``forecast_metrics`` (the
backtests), ``forecast_choices`` (the model each series took, and why),
``forecast_expectations`` (each series' expected units and revenue per day with its intraday
profile, :mod:`helpers.forecast.expectations`) and ``forecast_runs`` (the run's parameters).
The expectations are also published where the real-time consumer reads them
(``platform.publish_expectations``).

The run record in ``forecast_runs`` is written last, once the other tables are: a run
that fails on the way has none, so readers that take runs from ``forecast_runs`` (the report)
only ever see complete ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from numbers import Integral

import pandas as pd

from helpers.config import shop_zone
from helpers.exceptions import SalescastError
from helpers.forecast.expectations import EXPECTATIONS_TABLE, expectations_of_run
from helpers.forecast.models import MODELS
from helpers.forecast.selection import backtest_and_forecast
from helpers.forecast.series import (
    LEVELS,
    MEASURES,
    PROMOTIONS_TABLE,
    complete_daily_sales,
    hierarchy_from_daily_sales,
    promotion_shares,
)

SEASONALITY_MODES = ("auto", "additive", "multiplicative")
"""Prophet's seasonality modes, and ``auto``: chosen per series from the data."""


def promotion_plan(platform) -> pd.DataFrame | None:
    """The promoted ``ds, product_id`` pairs of the lake's ``promotions`` table, or None when
    nobody published a plan."""
    try:
        plan = platform.query(f"SELECT DISTINCT ds, product_id FROM {PROMOTIONS_TABLE}")
    except SalescastError:  # no such table: forecasts go without promotions
        return None
    return plan if len(plan) else None


@dataclass
class ForecastRun:
    """One forecasting run: its id, what it forecast, and where its tables were written."""

    run_id: str
    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    choices: pd.DataFrame
    locations: dict[str, str]
    level: str = "product"
    reconciliation: str | None = None
    periods: pd.DataFrame | None = None
    expectations: pd.DataFrame | None = None
    """One row per series and forecast day for the real-time consumer (as published)."""

    @property
    def series(self) -> int:
        """How many series were forecast at the run's level."""
        return int(self.forecasts.loc[self.forecasts["level"] == self.level, "unique_id"].nunique())


def run_forecast(
    platform,
    level: str = "product",
    measure: str = "units",
    horizon: int = 28,
    folds: int = 3,
    run_id: str | None = None,
    timezone: str | None = None,
    **forecast_kwargs,
) -> ForecastRun:
    """The forecasting step end to end: backtest, choose, reconcile and forecast every level
    down to ``level``, then write the tables back to the lake, queryable by SQL.

    ``forecast_kwargs`` go to :func:`helpers.forecast.selection.backtest_and_forecast`
    (``country``, by default the platform's ``SALESCAST_COUNTRY`` setting; ``level`` as
    ``interval``; ``n_jobs``, ``progress``, ``models``, ...). ``timezone`` is the shop's (an
    IANA name; by default the ``SALESCAST_TIMEZONE`` setting): the clock the expectations'
    intraday profiles are learned on. When the lake holds a promotion
    plan (the ``promotions`` table), the share of each series' products on promotion is a
    known future regressor.

    Examples
    --------
    >>> run = run_forecast(platform, level="category", horizon=14, folds=2)  # doctest: +SKIP
    >>> platform.query("SELECT * FROM forecasts WHERE run_id = ?", params=[run.run_id])  # doctest: +SKIP
    """
    _check_arguments(level, measure, horizon, folds, forecast_kwargs.get("seasonality_mode"))
    timezone = shop_zone(timezone or platform.settings.timezone).key
    run_id = run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    platform.crawl()  # the latest partitions, and the views
    try:
        daily = complete_daily_sales(platform)
    except SalescastError as error:
        raise ValueError(
            f"no daily sales to forecast ({error}); stream orders first (`salescast stream`)"
        ) from None
    if daily.empty:
        raise ValueError("no complete day of sales to forecast yet; stream orders first")
    hierarchy = hierarchy_from_daily_sales(daily, level, measure)
    interval = forecast_kwargs.pop("interval", 0.9)
    forecast_kwargs.setdefault("country", platform.settings.country)
    days = hierarchy.series["ds"].drop_duplicates().sort_values()
    calendar = promotion_plan(platform)
    regressors = None
    if calendar is not None:
        days = pd.date_range(days.min(), days.max() + pd.Timedelta(days=horizon), freq="D")
        regressors = promotion_shares(daily, calendar, days)
    result = backtest_and_forecast(
        hierarchy.series,
        horizon,
        folds=folds,
        level=interval,
        hierarchy=hierarchy,
        regressors=regressors,
        **forecast_kwargs,
    )
    levels = hierarchy.level_of
    labels = {"measure": measure}
    forecasts = result.forecasts.assign(level=result.forecasts["unique_id"].map(levels), **labels)
    metrics = result.metrics.assign(level=result.metrics["unique_id"].map(levels), **labels)
    choices = result.choices.assign(level=result.choices["unique_id"].map(levels), **labels)
    periods = result.periods.assign(level=result.periods["unique_id"].map(levels), **labels)
    expectations = expectations_of_run(
        platform, forecasts, daily, run_id, measure, interval, timezone
    )
    parameters = pd.DataFrame(
        [
            {
                "level": level,
                **labels,
                "horizon": horizon,
                "folds": folds,
                "freq": forecast_kwargs.get("freq", "D"),
                "interval_width": interval,
                "country": forecast_kwargs["country"] or "",
                "timezone": timezone,
                "reconciliation": result.reconciliation or "",
                "regressors": "promotions" if regressors is not None else "",
                "models": ", ".join(forecast_kwargs.get("models", MODELS)),
                **{
                    f"interval_widening_{width}": factor
                    for width, factor in result.widening.items()
                },
                "series": len(hierarchy.levels[level]),
                "created": pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s"),
            }
        ]
    )
    tables = {
        "forecasts": forecasts,
        "forecast_periods": periods,
        "forecast_metrics": metrics,
        "forecast_choices": choices,
        EXPECTATIONS_TABLE: expectations,
    }
    locations = {
        table: platform.write_dataset(table, _typed(frame), {"run_id": run_id})
        for table, frame in tables.items()
    }
    platform.publish_expectations(expectations)
    # last: the record that the run is complete
    locations["forecast_runs"] = platform.write_dataset(
        "forecast_runs", _typed(parameters), {"run_id": run_id}
    )
    return ForecastRun(
        run_id,
        forecasts,
        metrics,
        choices,
        locations,
        level,
        result.reconciliation,
        periods,
        expectations,
    )


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its columns of text that hold no value typed as text: a run whose series
    are all too short to backtest has no metrics and no runners-up, and a table's columns
    need types in the catalog."""
    empty = [name for name in frame if frame[name].dtype == object and frame[name].isna().all()]
    return frame.astype(dict.fromkeys(empty, "string")) if empty else frame


def _check_arguments(
    level: str, measure: str, horizon: int, folds: int, seasonality_mode: str | None
) -> None:
    """ValueError naming the argument, its value and what is allowed, before a run writes
    anything (the crawl included)."""
    checks = (
        ("level", level, level in LEVELS, f"one of {list(LEVELS)}"),
        ("measure", measure, measure in MEASURES, f"one of {list(MEASURES)}"),
        (
            "horizon",
            horizon,
            isinstance(horizon, Integral) and horizon >= 1,
            "a whole number, 1 or more",
        ),
        ("folds", folds, isinstance(folds, Integral) and folds >= 1, "a whole number, 1 or more"),
        (
            "seasonality_mode",
            seasonality_mode,
            seasonality_mode in (None, *SEASONALITY_MODES),
            f"one of {list(SEASONALITY_MODES)}",
        ),
    )
    for name, value, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{name} must be {allowed}, got {value!r}; nothing was written")
