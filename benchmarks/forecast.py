"""Forecasting speed and accuracy on many product series, beside statsforecast's AutoETS as the peer.

Target on a 2-core machine: fit and forecast 200 daily series of two years each, 28 days ahead,
with Prophet (:func:`helpers.forecast.forecast`) in under 45 s of wall time. In the same run,
statsforecast's ``AutoETS(season_length=7)`` forecasts the same series, and the seasonal naive
forecast is scored for reference; every model gets the mean MASE (season 7) over the series on
the 28 held-out days.

Series are generated orders (the ``put`` changes of :func:`helpers.generate.backfill`, so
amendments and cancellations are left out) summed to units per product and day with pandas,
zero-filled; every catalog product is a series. The last ``horizon`` days are the test window.

Run: ``python -m benchmarks.forecast [--series 200] [--days 730] [--horizon 28] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from helpers.forecast import forecast, season_length_of, seasonal_naive, series_from_daily_sales
from helpers.forecast import scores as forecast_scores
from helpers.generate import SalesParams, backfill, product_catalog

END = "2026-01-01"
FREQ = "D"


def daily_series(
    n_series: int, days: int, orders_per_day: float = 2000.0, seed: int = 42
) -> pd.DataFrame:
    """Units per product and day (``unique_id, ds, y``) for ``days`` days ending before END."""
    params = SalesParams(n_products=n_series, orders_per_day=orders_per_day, seed=seed)
    parts = []
    for change in tqdm(backfill(days, end=END, params=params), desc="generating", total=None):
        if change.action != "put":
            continue
        frame = change.frame
        parts.append(
            frame.assign(
                ds=frame["order_ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize(),
                revenue=frame["quantity"] * frame["unit_price"],
            )
            .groupby(["ds", "product_id", "product_name", "category"], as_index=False)
            .agg(
                units=("quantity", "sum"),
                revenue=("revenue", "sum"),
                orders=("order_id", "count"),
            )
        )
    daily = pd.concat(parts, ignore_index=True)
    daily = daily.groupby(["ds", "product_id", "product_name", "category"], as_index=False).sum()
    # A zero row on the first day for every catalog product, so a product that never sold
    # is still a (zero) series.
    catalog = product_catalog(params)[["product_id", "product_name", "category"]]
    zeros = catalog.assign(ds=daily["ds"].min(), units=0, revenue=0.0, orders=0)
    daily = pd.concat([daily, zeros], ignore_index=True)
    return series_from_daily_sales(daily, level="product", measure="units")


def split(series: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train (all but the last ``horizon`` days) and test (the last ``horizon`` days)."""
    cutoff = series["ds"].max() - pd.Timedelta(days=horizon)
    return series[series["ds"] <= cutoff], series[series["ds"] > cutoff]


def mean_mase(
    predictions: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, column: str = "yhat"
) -> dict:
    """Mean over series of :func:`helpers.forecast.scores`' MASE (season 7) on the test window."""
    season_length = season_length_of(FREQ)
    scored = test.merge(predictions[["unique_id", "ds", column]], on=["unique_id", "ds"])
    histories = {uid: group["y"].to_numpy(dtype=float) for uid, group in train.groupby("unique_id")}
    mases = []
    for unique_id, group in scored.groupby("unique_id"):
        metrics = forecast_scores(
            group["y"], group[column], histories[unique_id], season_length=season_length
        )
        mases.append(metrics["mase"])
    mases = np.asarray(mases, dtype=float)
    return {
        "mean_mase": float(np.nanmean(mases)) if np.isfinite(mases).any() else float("nan"),
        "median_mase": float(np.nanmedian(mases)) if np.isfinite(mases).any() else float("nan"),
        "scored_series": int(np.isfinite(mases).sum()),
        "undefined_mase": int((~np.isfinite(mases)).sum()),
        "test_points": len(scored),
    }


def run_prophet(train: pd.DataFrame, test: pd.DataFrame, horizon: int) -> dict:
    """Wall time of :func:`helpers.forecast.forecast` over all series, and its accuracy."""
    started = time.perf_counter()
    predictions = forecast(train, horizon=horizon, freq=FREQ, n_jobs=None, progress=True)
    seconds = time.perf_counter() - started
    models = predictions.groupby("model")["unique_id"].nunique().to_dict()
    return {"seconds": seconds, "models": models, **mean_mase(predictions, train, test)}


def run_autoets(train: pd.DataFrame, test: pd.DataFrame, horizon: int, warm: bool) -> dict:
    """Wall time of statsforecast's AutoETS over all series, and the accuracy of its forecasts.

    The time of the first call in the process is the one reported; ``warm`` adds a second call.
    In statsforecast 2.x, ETS is compiled C++ (``statsforecast._lib``), so there is no numba JIT
    compile to pay on the first call; the two times differ only by process-pool start and caches.
    """
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    def once() -> tuple[float, pd.DataFrame]:
        model = StatsForecast(
            models=[AutoETS(season_length=season_length_of(FREQ))], freq=FREQ, n_jobs=-1
        )
        started = time.perf_counter()
        predictions = model.forecast(df=train[["unique_id", "ds", "y"]], h=horizon)
        return time.perf_counter() - started, predictions

    seconds, predictions = once()
    predictions = predictions.reset_index() if "unique_id" not in predictions else predictions
    result = {"seconds": seconds, **mean_mase(predictions, train, test, column="AutoETS")}
    result["negative_forecasts"] = int((predictions["AutoETS"] < 0).sum())
    clipped = predictions.assign(AutoETS=predictions["AutoETS"].clip(lower=0))
    result["mean_mase_clipped"] = mean_mase(clipped, train, test, column="AutoETS")["mean_mase"]
    if warm:
        result["warm_seconds"], _ = once()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200, help="products, one series each")
    parser.add_argument("--days", type=int, default=730, help="training days per series")
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--orders-per-day", type=float, default=2000.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-peer", action="store_true", help="skip statsforecast's AutoETS")
    parser.add_argument("--no-warm", action="store_true", help="skip the second, warm AutoETS call")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    series = daily_series(args.series, args.days + args.horizon, args.orders_per_day, args.seed)
    train, test = split(series, args.horizon)
    n_series = series["unique_id"].nunique()
    results = {
        "series": n_series,
        "train_days": int(train["ds"].nunique()),
        "test_days": int(test["ds"].nunique()),
        "horizon": args.horizon,
        "cores": os.cpu_count(),
        "mean_units_per_series_day": float(train["y"].mean()),
        "zero_share": float((train["y"] == 0).mean()),
    }
    print(
        f"\nseries : {n_series} daily series, {results['train_days']} training days + "
        f"{results['test_days']} held out, {args.horizon}-day horizon, {os.cpu_count()} cores; "
        f"mean {results['mean_units_per_series_day']:.1f} units/series-day, "
        f"{results['zero_share']:.1%} zero days"
    )

    results["seasonal_naive"] = naive = mean_mase(
        seasonal_naive(train, args.horizon, FREQ, season_length_of(FREQ)), train, test
    )
    results["prophet"] = prophet = run_prophet(train, test, args.horizon)
    print(
        f"prophet: {prophet['seconds']:.1f}s for fit + forecast of all series (target < 45s), "
        f"mean MASE {prophet['mean_mase']:.3f} (median {prophet['median_mase']:.3f}, "
        f"{prophet['scored_series']} series scored), series per model {prophet['models']}"
    )
    if not args.no_peer:
        results["autoets"] = ets = run_autoets(train, test, args.horizon, warm=not args.no_warm)
        warm = f", {ets['warm_seconds']:.1f}s warm (second call)" if "warm_seconds" in ets else ""
        print(
            f"autoets: {ets['seconds']:.1f}s first call (ETS is compiled C++ in "
            f"statsforecast 2.x, no JIT){warm}, "
            f"mean MASE {ets['mean_mase']:.3f} (median {ets['median_mase']:.3f}; "
            f"{ets['mean_mase_clipped']:.3f} with forecasts clipped at 0, "
            f"{ets['negative_forecasts']} negative)"
        )
        print(
            f"ratio  : prophet takes {prophet['seconds'] / ets['seconds']:,.1f}x AutoETS (first call)"
        )
    print(
        f"snaive : mean MASE {naive['mean_mase']:.3f} (median {naive['median_mase']:.3f}), "
        f"reference"
    )

    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
