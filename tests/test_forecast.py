"""Tests of the forecast module: series building, Prophet fits and fallbacks, models, backtests."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from helpers.forecast import (
    FORECAST_COLUMNS,
    METRIC_COLUMNS,
    backtest,
    forecast,
    load_models,
    naive,
    save_models,
    scores,
    seasonal_naive,
    series_from_daily_sales,
    summarize,
)
from helpers.generate import SalesParams, backfill

PARAMS = SalesParams(orders_per_day=100, n_products=5, n_categories=2, n_customers=200)
END = date(2026, 7, 1)


@pytest.fixture(scope="module")
def daily_units() -> pd.DataFrame:
    """Two years of generated daily units per product (from the put frames), in daily_sales shape."""
    changes = backfill(730, end=END, params=PARAMS)
    puts = pd.concat([change.frame for change in changes if change.action == "put"])
    return (
        puts.assign(
            ds=puts["order_ts"].dt.tz_localize(None).dt.normalize(),
            revenue=puts["quantity"] * puts["unit_price"],
        )
        .groupby(["ds", "product_id", "product_name", "category"], as_index=False)
        .agg(units=("quantity", "sum"), revenue=("revenue", "sum"), orders=("order_id", "count"))
    )


@pytest.fixture(scope="module")
def total_units(daily_units) -> pd.DataFrame:
    return series_from_daily_sales(daily_units, level="total")


@pytest.fixture
def hand_made_daily() -> pd.DataFrame:
    """Two products in two categories over 2026-03-01..05, with gaps."""
    return pd.DataFrame(
        {
            "ds": pd.to_datetime(["2026-03-01", "2026-03-03", "2026-03-05", "2026-03-03"]),
            "product_id": ["p-1", "p-1", "p-1", "p-2"],
            "product_name": ["Lamp", "Lamp", "Lamp", "Mug"],
            "category": ["home", "home", "home", "kitchen"],
            "units": [2, 3, 4, 7],
            "revenue": [20.0, 30.0, 40.0, 14.0],
            "orders": [1, 2, 1, 3],
        }
    )


def test_gaps_become_zero_rows(hand_made_daily):
    series = series_from_daily_sales(hand_made_daily, level="product", measure="units")

    assert list(series.columns) == ["unique_id", "ds", "y"]
    assert len(series) == 2 * 5
    p1 = series[series.unique_id == "p-1"].set_index("ds")["y"]
    p2 = series[series.unique_id == "p-2"].set_index("ds")["y"]
    assert p1.tolist() == [2.0, 0.0, 3.0, 0.0, 4.0]
    assert p2.tolist() == [0.0, 0.0, 7.0, 0.0, 0.0]
    assert p1.index.equals(pd.date_range("2026-03-01", "2026-03-05", name="ds"))


@pytest.mark.parametrize("level", ["total", "category", "product"])
@pytest.mark.parametrize("measure", ["units", "revenue", "orders"])
def test_aggregation_matches_pandas(daily_units, level, measure):
    series = series_from_daily_sales(daily_units, level=level, measure=measure)

    key = {"total": None, "category": "category", "product": "product_id"}[level]
    grouped = daily_units.assign(unique_id="total" if key is None else daily_units[key])
    expected = grouped.groupby(["unique_id", "ds"])[measure].sum()
    observed = series.set_index(["unique_id", "ds"])["y"]
    assert observed.loc[expected.index].to_numpy() == pytest.approx(expected.to_numpy())
    assert observed.drop(expected.index).eq(0).all()
    days = daily_units["ds"].nunique()
    assert len(series) == days * grouped["unique_id"].nunique()
    assert series["y"].sum() == pytest.approx(daily_units[measure].sum())


def test_unknown_level_or_measure_is_refused(hand_made_daily):
    with pytest.raises(ValueError, match="level"):
        series_from_daily_sales(hand_made_daily, level="channel")
    with pytest.raises(ValueError, match="measure"):
        series_from_daily_sales(hand_made_daily, measure="profit")


def assert_well_formed(result: pd.DataFrame, ids: list[str], horizon: int) -> None:
    assert list(result.columns) == FORECAST_COLUMNS
    assert result.groupby("unique_id").size().to_dict() == dict.fromkeys(ids, horizon)
    values = result[["yhat", "yhat_lower", "yhat_upper"]]
    assert values.notna().all().all()
    assert (values >= 0).all().all()
    assert (result.yhat_lower <= result.yhat).all()
    assert (result.yhat <= result.yhat_upper).all()


def test_forecast_is_well_formed_in_parallel(daily_units):
    categories = series_from_daily_sales(daily_units, level="category").query("ds >= '2025-07-01'")

    result = forecast(categories, horizon=14, n_jobs=2, progress=False)

    ids = sorted(categories.unique_id.unique())
    assert_well_formed(result, ids, 14)
    assert set(result.model) == {"prophet"}
    first_day = categories.ds.max() + pd.Timedelta(days=1)
    assert (result.groupby("unique_id").ds.min() == first_day).all()
    assert (result.groupby("unique_id").ds.max() == first_day + pd.Timedelta(days=13)).all()


def test_forecast_is_never_negative_on_a_falling_series():
    days = pd.date_range("2026-01-01", periods=60)
    falling = pd.DataFrame({"unique_id": "fading", "ds": days, "y": np.linspace(30, 0, 60)})

    result = forecast(falling, horizon=28, n_jobs=1, progress=False, country=None)

    assert_well_formed(result, ["fading"], 28)
    assert result.yhat.min() == 0


def test_short_series_fall_back_to_baselines(total_units):
    recent = total_units.tail(30)
    short = pd.concat(
        [
            recent.assign(unique_id="long"),
            recent.tail(10).assign(unique_id="ten_days"),
            recent.tail(4).assign(unique_id="four_days"),
        ]
    )

    result = forecast(short, horizon=7, n_jobs=1, progress=False)

    assert_well_formed(result, ["four_days", "long", "ten_days"], 7)
    models = result.groupby("unique_id").model.unique().map(list).to_dict()
    assert models == {"long": ["prophet"], "ten_days": ["seasonal_naive"], "four_days": ["naive"]}
    ten_days = result[result.unique_id == "ten_days"].yhat.to_numpy()
    assert ten_days == pytest.approx(recent.y.to_numpy()[-7:])
    assert (result[result.unique_id == "four_days"].yhat == recent.y.iloc[-1]).all()


def test_min_points_decides_the_fallback(total_units):
    result = forecast(total_units.tail(30), horizon=3, n_jobs=1, progress=False, min_points=31)

    assert set(result.model) == {"seasonal_naive"}


def test_baselines_repeat_the_last_season_and_value():
    df = pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range("2026-01-01", periods=6), "y": [1, 2, 3, 4, 5, 9]}
    )

    seasonal = seasonal_naive(df, horizon=5, freq="D", season_length=3)
    last = naive(df, horizon=2, freq="D")

    assert seasonal.yhat.tolist() == [4, 5, 9, 4, 5]
    assert seasonal.ds.tolist() == list(pd.date_range("2026-01-07", periods=5))
    assert set(seasonal.model) == {"seasonal_naive"}
    widths = (seasonal.yhat_upper - seasonal.yhat).to_numpy()
    assert widths[3] == pytest.approx(widths[0] * np.sqrt(2))
    assert last.yhat.tolist() == [9, 9]
    assert set(last.model) == {"naive"}


def test_weekly_frequency(total_units):
    weekly = (
        total_units.set_index("ds").groupby("unique_id").y.resample("W-SUN").sum().reset_index()
    )
    weekly = weekly[weekly.ds <= total_units.ds.max()]

    result = forecast(weekly, horizon=8, freq="W-SUN", n_jobs=1, progress=False, min_points=52)

    assert_well_formed(result, ["total"], 8)
    assert set(result.model) == {"prophet"}
    assert (result.ds.dt.dayofweek == 6).all()
    assert result.ds.diff().dropna().eq(pd.Timedelta(weeks=1)).all()


def test_json_round_trip_gives_the_same_predictions(total_units, tmp_path):
    history = total_units.query("ds >= '2026-01-01'")
    result, models = forecast(history, horizon=7, n_jobs=1, progress=False, return_models=True)

    path = save_models(models, tmp_path / "models.json")
    loaded = load_models(path)

    assert list(loaded) == ["total"]
    future = pd.DataFrame({"ds": result.ds})
    before = models["total"].predict(future).yhat.to_numpy()
    after = loaded["total"].predict(future).yhat.to_numpy()
    assert after == pytest.approx(before)
    assert result.yhat.to_numpy() == pytest.approx(np.clip(before, 0, None))


def test_scores_match_direct_numpy():
    actual = np.array([3.0, 0.0, 5.0, 2.0])
    predicted = np.array([1.0, 0.0, 6.0, 2.0])
    history = np.array([1.0, 4.0, 2.0, 6.0, 3.0])

    metrics = scores(actual, predicted, history, season_length=2)

    assert metrics["mae"] == pytest.approx(3 / 4)
    assert metrics["rmse"] == pytest.approx(np.sqrt(5 / 4))
    assert metrics["smape"] == pytest.approx(200 / 4 * (2 / 4 + 0 + 1 / 11 + 0))
    assert metrics["mase"] == pytest.approx((3 / 4) / np.mean([1.0, 2.0, 1.0]))
    assert np.isnan(scores(actual, actual, np.ones(5), season_length=2)["mase"])  # no scale


def test_backtest_on_a_hand_made_series():
    y = np.array([10.0, 20, 30, 10, 20, 30, 10, 20, 40, 0, 20, 50])
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2026-01-01", periods=12), "y": y})

    metrics = backtest(df, horizon=2, folds=2, n_jobs=1, progress=False, min_points=99)

    assert list(metrics.columns) == METRIC_COLUMNS
    assert len(metrics) == 2 * 2  # naive and seasonal naive (the fallback) per fold
    fold0 = metrics[(metrics.fold == 0) & (metrics.model == "seasonal_naive")].iloc[0]
    train, test = y[:8], y[8:10]
    expected = train[1:3]  # one week back from days 9 and 10
    errors = np.abs(test - expected)
    assert fold0.mae == pytest.approx(errors.mean())
    assert fold0.rmse == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert fold0.smape == pytest.approx(100 * (20 / 60 + 30 / 30))
    assert fold0.mase == pytest.approx(errors.mean() / np.mean(np.abs(train[7:] - train[:1])))
    fold1 = metrics[(metrics.fold == 1) & (metrics.model == "naive")].iloc[0]
    assert fold1.mae == pytest.approx(np.mean(np.abs(y[10:] - y[9])))
    summary = summarize(metrics)
    assert summary.loc["naive", "mae"] == pytest.approx(
        metrics[metrics.model == "naive"].mae.mean()
    )


def test_prophet_beats_seasonal_naive_on_generated_sales(total_units):
    metrics = backtest(total_units, horizon=28, folds=3, n_jobs=1, progress=False)

    assert set(metrics.model) == {"prophet", "seasonal_naive", "naive"}
    assert len(metrics) == 3 * 3
    summary = summarize(metrics)
    print("\n" + summary.to_string())
    assert summary.loc["prophet", "mase"] < summary.loc["seasonal_naive", "mase"]
    assert summary.index[0] == "prophet"


def test_prophet_beats_seasonal_naive_on_most_of_the_top_20_products():
    params = SalesParams(orders_per_day=1500, n_products=20, seed=21, n_customers=500)
    puts = pd.concat([c.frame for c in backfill(730, end=END, params=params) if c.action == "put"])
    daily = (
        puts.assign(ds=puts["order_ts"].dt.tz_localize(None).dt.normalize(), revenue=0.0)
        .groupby(["ds", "product_id", "product_name", "category"], as_index=False)
        .agg(units=("quantity", "sum"), revenue=("revenue", "sum"), orders=("order_id", "count"))
    )
    series = series_from_daily_sales(daily, level="product")
    metrics = backtest(series, horizon=28, folds=1, n_jobs=2, progress=False)
    mase = metrics.pivot_table(index="unique_id", columns="model", values="mase")
    assert len(mase) == 20
    wins = int((mase["prophet"] < mase["seasonal_naive"]).sum())
    print(f"prophet beats seasonal naive on {wins} of 20 products")
    assert wins > 10, f"prophet beat seasonal naive on only {wins} of 20 products"


def test_backtest_needs_a_season_of_training_before_the_first_fold():
    def days(n):
        return pd.DataFrame(
            {"unique_id": "a", "ds": pd.date_range("2026-01-01", periods=n), "y": np.arange(n)}
        )

    with pytest.raises(ValueError, match=r"90 dates are too few for 3 folds of 28.*91 are needed"):
        backtest(days(90), horizon=28, folds=3, n_jobs=1, progress=False, min_points=999)
    metrics = backtest(days(91), horizon=28, folds=3, n_jobs=1, progress=False, min_points=999)
    assert sorted(metrics.fold.unique()) == [0, 1, 2]
