"""Data and checks shared by the forecast tests: generated daily sales, long frames, and the
properties every forecast frame must have."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

import numpy as np
import pandas as pd

from helpers.forecast import FORECAST_COLUMNS
from helpers.generate import SalesParams, backfill

PARAMS = SalesParams(orders_per_day=80, n_products=4, n_categories=2, n_customers=100, seed=5)
END = date(2026, 3, 1)
FAST = ("auto_ets", "seasonal_naive", "naive")  # the model set where Prophet is not the point


def generated_daily_sales(days: int = 150, params: SalesParams = PARAMS) -> pd.DataFrame:
    """``days`` of generated orders (their puts) summed per product and day, in the shape of the
    ``daily_sales`` view; days without sales are missing, as in the view."""
    changes = backfill(days, end=END, params=params)
    puts = pd.concat([change.frame for change in changes if change.action == "put"])
    return (
        puts.assign(
            ds=puts["order_ts"].dt.tz_localize(None).dt.normalize(),
            revenue=puts["quantity"] * puts["unit_price"],
        )
        .groupby(["ds", "product_id", "product_name", "category"], as_index=False)
        .agg(units=("quantity", "sum"), revenue=("revenue", "sum"), orders=("order_id", "count"))
    )


def long_frame(
    values: dict[str, np.ndarray], start: str = "2026-01-01", freq: str = "D"
) -> pd.DataFrame:
    """Series ``{unique_id: y}`` in long format on regular dates from ``start``."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": uid,
                    "ds": pd.date_range(start, periods=len(y), freq=freq),
                    "y": np.asarray(y, dtype=float),
                }
            )
            for uid, y in values.items()
        ],
        ignore_index=True,
    )


def future_dates(last: pd.Timestamp, horizon: int, freq: str) -> list[pd.Timestamp]:
    """The ``horizon`` dates after ``last`` at ``freq``, worked out without ``date_range``."""
    last = pd.Timestamp(last)
    steps = range(1, horizon + 1)
    if freq == "D":
        return [last + pd.Timedelta(days=k) for k in steps]
    if freq == "B":
        return [pd.Timestamp(np.busday_offset(last.date(), k, roll="forward")) for k in steps]
    if freq.startswith("W"):
        return [last + pd.Timedelta(weeks=k) for k in steps]
    if freq in ("MS", "QS"):
        months = 1 if freq == "MS" else 3
        return [last + pd.DateOffset(months=months * k) for k in steps]
    period = {"ME": "M", "M": "M", "QE-DEC": "Q-DEC", "Q": "Q-DEC"}[freq]
    return [(pd.Period(last, period) + k).end_time.normalize() for k in steps]


def assert_forecast_frame(
    forecasts: pd.DataFrame,
    last: dict[str, pd.Timestamp],
    horizon: int,
    freq: str = "D",
    nonnegative: bool = True,
) -> None:
    """``FORECAST_COLUMNS``; ``horizon`` rows per series on the dates after its ``last`` date;
    no gaps; nested intervals (90 % around 80 % around ``yhat``); nothing below 0 if asked."""
    assert list(forecasts.columns) == FORECAST_COLUMNS
    assert sorted(forecasts["unique_id"].unique()) == sorted(last)
    for uid, frame in forecasts.groupby("unique_id"):
        assert len(frame) == horizon, uid
        assert list(frame["ds"]) == future_dates(last[uid], horizon, freq), uid
        assert frame["model"].nunique() == 1, uid
    values = forecasts[FORECAST_COLUMNS[2:7]]
    assert values.notna().all().all()
    assert np.isfinite(values.to_numpy(dtype=float)).all()
    chain = ["yhat_lower", "yhat_lower_80", "yhat", "yhat_upper_80", "yhat_upper"]
    for low, high in pairwise(chain):
        assert (forecasts[low] <= forecasts[high] + 1e-9).all(), (low, high)
    if nonnegative:
        assert (values >= 0).all().all()


def last_dates(df: pd.DataFrame) -> dict[str, pd.Timestamp]:
    """Each series' last date."""
    return df.groupby("unique_id")["ds"].max().to_dict()


def promoted(n: int, seed: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A 0/1 promotion plan over ``n`` days and the next 7 (two-day promotions, one in the
    horizon's days 3 and 4, one in days 3 and 4 after day 56), and sales 25 higher on them."""
    x = np.zeros(n + 7)
    for start in (10, 24, 38, 46, 58, n + 2):
        x[start : start + 2] = 1
    rng = np.random.default_rng(seed)
    return 20 + 25 * x[:n] + rng.normal(0, 2, n), x
