"""Prophet fits, baselines, backtests and metrics on long-format sales series.

Every frame here is in statsforecast's long format: ``unique_id, ds, y`` in, and
``unique_id, ds, yhat, yhat_lower, yhat_upper, model`` out. :func:`series_from_daily_sales`
turns the ``daily_sales`` view into series (total, per category or per product), :func:`forecast`
fits one Prophet model per series in parallel processes, falling back to :func:`seasonal_naive`
or :func:`naive` for series too short to fit, and :func:`backtest` scores Prophet against both
baselines on rolling origins. Models are saved as Prophet's own JSON.

Supported frequencies are daily (``"D"``), weekly (``"W"``, ``"W-MON"``, ...) and monthly
(``"MS"``, ``"ME"``). Daily series get weekly seasonality and the country's public holidays;
weekly and monthly series get neither (their points do not fall on the holiday dates). Yearly
seasonality is Prophet's ``auto``: on once a series covers two years.

Worker processes come from a forkserver, not fork, so they are safe beside the pipeline's
threads; as with any multiprocessing outside fork, a script that calls :func:`forecast` needs
the ``if __name__ == "__main__":`` guard (notebooks and ``python -c`` do not).

Not done: hierarchical reconciliation of the total, category and product forecasts, external
regressors (promotions), and hyperparameter search.

Examples
--------
>>> daily = pd.DataFrame({"ds": pd.date_range("2026-01-01", periods=60), "product_id": "p-1",
...                       "product_name": "Lamp", "category": "home", "units": 5,
...                       "revenue": 50.0, "orders": 2})
>>> result = forecast(series_from_daily_sales(daily), horizon=7, n_jobs=1, progress=False)
>>> result.shape, result.model.unique().tolist()
((7, 6), ['prophet'])
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from helpers.exceptions import SalescastError
from helpers.progress import tqdm

if TYPE_CHECKING:
    from prophet import Prophet

LEVELS = {"total": None, "category": "category", "product": "product_id"}
MEASURES = ("units", "revenue", "orders")
FORECAST_COLUMNS = ["unique_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model"]
METRIC_COLUMNS = ["unique_id", "model", "fold", "mae", "rmse", "smape", "mase"]
SEASON_LENGTHS = {"D": 7, "W": 52, "MS": 12, "ME": 12, "M": 12}


def complete_daily_sales(platform) -> pd.DataFrame:
    """The ``daily_sales`` view without the current UTC day: it is still filling up, and a
    partial day would read as a slump to the models and the charts."""
    return platform.query("SELECT * FROM daily_sales WHERE ds < current_date")


def series_from_daily_sales(
    daily: pd.DataFrame, level: str = "product", measure: str = "units"
) -> pd.DataFrame:
    """Long-format series ``unique_id, ds, y`` from a ``daily_sales`` frame, gaps filled with 0.

    Parameters
    ----------
    daily : pandas.DataFrame
        Rows of the ``daily_sales`` view: ``ds, product_id, product_name, category, units,
        revenue, orders``.
    level : {"total", "category", "product"}
        One series for the whole shop (``unique_id`` ``"total"``), per category (the category
        name) or per product (the ``product_id``).
    measure : {"units", "revenue", "orders"}
        The column summed into ``y``.

    Returns
    -------
    pandas.DataFrame
        Every series spans every day from the first to the last day in ``daily``; days without
        sales are rows with ``y`` 0. Sorted by ``unique_id`` then ``ds``.

    Examples
    --------
    >>> daily = pd.DataFrame({"ds": ["2026-03-01", "2026-03-03"], "product_id": "p-1",
    ...                       "product_name": "Lamp", "category": "home", "units": [2, 3],
    ...                       "revenue": [20.0, 30.0], "orders": [1, 1]})
    >>> series_from_daily_sales(daily, level="total").y.tolist()
    [2.0, 0.0, 3.0]
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)}, got {level!r}")
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {list(MEASURES)}, got {measure!r}")
    frame = daily.assign(ds=pd.to_datetime(daily["ds"]).dt.tz_localize(None).dt.normalize())
    group_column = LEVELS[level]
    frame["unique_id"] = "total" if group_column is None else frame[group_column].astype(str)
    sums = frame.groupby(["unique_id", "ds"])[measure].sum().astype(float)
    days = pd.date_range(frame["ds"].min(), frame["ds"].max(), freq="D", name="ds")
    full_index = pd.MultiIndex.from_product([sums.index.unique("unique_id"), days])
    return sums.reindex(full_index, fill_value=0.0).rename("y").reset_index()


def season_length_of(freq: str) -> int:
    """Points in one seasonal cycle: 7 for daily data, 52 for weekly, 12 for monthly.

    Examples
    --------
    >>> season_length_of("D"), season_length_of("W-MON"), season_length_of("MS")
    (7, 52, 12)
    """
    base = freq.upper().split("-")[0]
    if base not in SEASON_LENGTHS:
        raise ValueError(
            f"freq must be daily, weekly or monthly ({sorted(SEASON_LENGTHS)}), got {freq!r}"
        )
    return SEASON_LENGTHS[base]


def naive(df: pd.DataFrame, horizon: int, freq: str = "D", level: float = 0.9) -> pd.DataFrame:
    """Repeat each series' last value; the interval widens with the square root of the step.

    The interval is normal around the forecast, with the standard deviation of the one-step
    differences times ``sqrt(step)``; a series of one point gets a zero-width interval.

    Examples
    --------
    >>> df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2026-01-01", periods=3),
    ...                    "y": [1.0, 2.0, 4.0]})
    >>> naive(df, horizon=2).yhat.tolist()
    [4.0, 4.0]
    """
    return seasonal_naive(df, horizon, freq, season_length=1, level=level).assign(model="naive")


def seasonal_naive(
    df: pd.DataFrame, horizon: int, freq: str = "D", season_length: int = 7, level: float = 0.9
) -> pd.DataFrame:
    """Repeat each series' last season; the interval widens with the number of seasons ahead.

    The interval is normal around the forecast, with the standard deviation of the in-sample
    seasonal differences ``y[t] - y[t - season_length]`` times ``sqrt(seasons ahead)``. A series
    no longer than one season gets a zero-width interval. Bounds are clipped at 0.

    Parameters
    ----------
    df : pandas.DataFrame
        Long format ``unique_id, ds, y``; each series needs at least ``season_length`` points.
    horizon : int
        Points to forecast after each series' last ``ds``.
    freq : str
        Pandas frequency of the series.
    season_length : int
        Points in one season (7 for daily data with a weekly cycle).
    level : float
        Interval width, 0.9 for a 90 % interval.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, yhat, yhat_lower, yhat_upper, model`` with ``model`` ``"seasonal_naive"``.

    Examples
    --------
    >>> df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2026-01-01", periods=4),
    ...                    "y": [1.0, 2.0, 3.0, 4.0]})
    >>> seasonal_naive(df, horizon=3, season_length=2).yhat.tolist()
    [3.0, 4.0, 3.0]
    """
    z = NormalDist().inv_cdf(0.5 + level / 2)
    steps = np.arange(horizon)
    frames = []
    for unique_id, series in _split(df):
        y = series["y"].to_numpy(dtype=float)
        if len(y) < season_length:
            raise ValueError(
                f"series {unique_id!r} has {len(y)} points, fewer than one season ({season_length})"
            )
        yhat = y[-season_length:][steps % season_length]
        differences = y[season_length:] - y[:-season_length]
        sigma = differences.std(ddof=1) if len(differences) > 1 else 0.0
        half_width = z * sigma * np.sqrt(steps // season_length + 1)
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": unique_id,
                    "ds": _future_dates(series["ds"].iloc[-1], horizon, freq),
                    "yhat": yhat,
                    "yhat_lower": yhat - half_width,
                    "yhat_upper": yhat + half_width,
                }
            )
        )
    return _finish(frames, model="seasonal_naive")


def forecast(
    df: pd.DataFrame,
    horizon: int = 28,
    freq: str = "D",
    level: float = 0.9,
    seasonality_mode: Literal["additive", "multiplicative"] = "additive",
    country: str | None = "US",
    n_jobs: int | None = None,
    progress: bool = True,
    min_points: int | None = None,
    return_models: bool = False,
    desc: str = "prophet fits",
) -> pd.DataFrame | tuple[pd.DataFrame, dict[str, Prophet]]:
    """Forecast every series with Prophet, or with a baseline where a series is too short.

    Parameters
    ----------
    df : pandas.DataFrame
        Long format ``unique_id, ds, y``, regular at ``freq`` (see :func:`series_from_daily_sales`).
    horizon : int
        Points to forecast after each series' last ``ds``.
    freq : str
        ``"D"``, ``"W"`` / ``"W-<DAY>"``, or ``"MS"`` / ``"ME"``.
    level : float
        Width of the prediction interval, 0.9 for 90 %.
    seasonality_mode : {"additive", "multiplicative"}
        How Prophet combines seasonality and holidays with the trend.
    country : str or None
        ``holidays`` country code whose public holidays daily models learn; None for none.
    n_jobs : int or None
        Worker processes; None for all cores, 1 to fit in this process.
    progress : bool
        Show a tqdm progress bar over the series.
    desc : str
        The progress bar's label.
    min_points : int or None
        Fewest points a series needs for Prophet; default two seasons (14 for daily data).
        Shorter series get :func:`seasonal_naive`, or :func:`naive` if shorter than one season.
    return_models : bool
        Also return the fitted Prophet models by ``unique_id`` (for :func:`save_models`).

    Returns
    -------
    pandas.DataFrame or (pandas.DataFrame, dict)
        ``unique_id, ds, yhat, yhat_lower, yhat_upper, model``, ``horizon`` rows per series,
        never negative; ``model`` is ``"prophet"``, ``"seasonal_naive"`` or ``"naive"``.

    Examples
    --------
    >>> df = pd.DataFrame({"unique_id": "short", "ds": pd.date_range("2026-01-01", periods=9),
    ...                    "y": range(9)})
    >>> forecast(df, horizon=2, n_jobs=1, progress=False).model.tolist()
    ['seasonal_naive', 'seasonal_naive']
    """
    season_length = season_length_of(freq)
    min_points = 2 * season_length if min_points is None else min_points
    daily = season_length == 7
    settings = {
        "horizon": horizon,
        "freq": freq,
        "interval_width": level,
        "seasonality_mode": seasonality_mode,
        "country": country if daily else None,
        "weekly_seasonality": "auto" if daily else False,
        "return_model": return_models,
    }
    series = dict(_split(df))
    lengths = {unique_id: len(frame) for unique_id, frame in series.items()}
    by_prophet = [uid for uid, n in lengths.items() if n >= min_points]
    by_seasonal_naive = [uid for uid, n in lengths.items() if season_length <= n < min_points]
    by_naive = [uid for uid, n in lengths.items() if n < min(season_length, min_points)]

    frames, model_jsons = [], {}
    workers = os.cpu_count() if n_jobs is None else n_jobs
    with tqdm(total=len(by_prophet), desc=desc, disable=not progress) as bar:
        for frame, model_json in _fit_all(series, by_prophet, workers, settings):
            frames.append(frame)
            model_jsons[frame["unique_id"].iloc[0]] = model_json
            bar.update()
    if by_seasonal_naive:
        short = df[df["unique_id"].isin(by_seasonal_naive)]
        frames.append(seasonal_naive(short, horizon, freq, season_length, level))
    if by_naive:
        frames.append(naive(df[df["unique_id"].isin(by_naive)], horizon, freq, level))
    result = _finish(frames)
    if not return_models:
        return result
    from prophet.serialize import model_from_json

    return result, {unique_id: model_from_json(text) for unique_id, text in model_jsons.items()}


def backtest(
    df: pd.DataFrame, horizon: int = 28, folds: int = 3, freq: str = "D", **forecast_kwargs
) -> pd.DataFrame:
    """Score :func:`forecast` and both baselines on rolling origins.

    Fold ``i`` (0-based) holds out the last ``horizon * (folds - i)`` points, fits on the rest and
    scores the next ``horizon`` points, so the folds' test windows tile the end of the history.
    The seasonal naive baseline uses one season of ``freq`` (a week for daily data).

    Parameters
    ----------
    df : pandas.DataFrame
        Long format ``unique_id, ds, y``; all series on the same dates.
    horizon, folds : int
        Points per test window, and how many windows.
    freq : str
        Frequency of the series.
    **forecast_kwargs
        Passed to :func:`forecast` (``n_jobs``, ``country``, ``progress``, ...).

    Returns
    -------
    pandas.DataFrame
        ``unique_id, model, fold, mae, rmse, smape, mase``, one row per series, model and fold;
        see :func:`scores` for the metrics.

    Examples
    --------
    >>> df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2026-01-01", periods=10),
    ...                    "y": [1.0, 2.0] * 5})
    >>> backtest(df, horizon=2, folds=1, n_jobs=1, progress=False, min_points=99).model.tolist()
    ['naive', 'seasonal_naive']
    """
    season_length = season_length_of(freq)
    dates = np.sort(df["ds"].unique())
    needed = horizon * folds + season_length
    if len(dates) < needed:
        raise ValueError(
            f"{len(dates)} dates are too few for {folds} folds of {horizon}: the first fold "
            f"trains on at least one season ({season_length}), so {needed} are needed; "
            f"lower folds or horizon, or add history"
        )
    rows = []
    for fold in range(folds):
        cutoff = dates[-horizon * (folds - fold) - 1]
        test_end = dates[-horizon * (folds - fold) - 1 + horizon]
        train = df[df["ds"] <= cutoff]
        test = df[(df["ds"] > cutoff) & (df["ds"] <= test_end)]
        predictions = pd.concat(
            [
                forecast(
                    train,
                    horizon,
                    freq,
                    desc=f"backtest fold {fold + 1}/{folds}",
                    **forecast_kwargs,
                ),
                seasonal_naive(train, horizon, freq, season_length),
                naive(train, horizon, freq),
            ]
        ).drop_duplicates(["unique_id", "model", "ds"])
        scored = predictions.merge(test, on=["unique_id", "ds"])
        for (unique_id, model), group in scored.groupby(["unique_id", "model"]):
            history = train.loc[train["unique_id"] == unique_id, "y"].to_numpy(dtype=float)
            metrics = scores(group["y"], group["yhat"], history, season_length)
            rows.append({"unique_id": unique_id, "model": model, "fold": fold, **metrics})
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def scores(
    actual: np.ndarray, predicted: np.ndarray, history: np.ndarray, season_length: int = 7
) -> dict[str, float]:
    """MAE, RMSE, sMAPE (percent, 0..200) and MASE of one forecast.

    sMAPE is ``200 * mean(|y - f| / (|y| + |f|))`` with 0/0 counted as 0. MASE divides the MAE by
    the in-sample MAE of the seasonal naive forecast on ``history``
    (``mean |y[t] - y[t - season_length]|``); it is NaN when that scale is 0 or undefined.

    Examples
    --------
    >>> scores(np.array([2.0, 0.0]), np.array([1.0, 0.0]), np.array([1.0, 3.0, 2.0]), 1)
    {'mae': 0.5, 'rmse': 0.7071067811865476, 'smape': 33.33333333333333, 'mase': 0.3333333333333333}
    """
    actual, predicted, history = (np.asarray(a, dtype=float) for a in (actual, predicted, history))
    errors = np.abs(actual - predicted)
    magnitudes = np.abs(actual) + np.abs(predicted)
    ratios = np.divide(errors, magnitudes, out=np.zeros_like(errors), where=magnitudes > 0)
    seasonal_errors = np.abs(history[season_length:] - history[:-season_length])
    scale = seasonal_errors.mean() if len(seasonal_errors) else np.nan
    mae = float(errors.mean())
    return {
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "smape": float(200 * ratios.mean()),
        "mase": float(mae / scale) if scale > 0 else float("nan"),
    }


def summarize(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric per model over series and folds, best MASE first.

    Examples
    --------
    >>> metrics = pd.DataFrame({"unique_id": "a", "model": ["naive", "naive"], "fold": [0, 1],
    ...                         "mae": [1.0, 3.0], "rmse": 2.0, "smape": 10.0, "mase": 1.0})
    >>> float(summarize(metrics).loc["naive", "mae"])
    2.0
    """
    return metrics.groupby("model")[["mae", "rmse", "smape", "mase"]].mean().sort_values("mase")


def save_models(models: dict[str, Prophet], path: str | Path) -> Path:
    """Write fitted Prophet models to one JSON file mapping ``unique_id`` to the model's JSON.

    Examples
    --------
    >>> _, models = forecast(df, n_jobs=1, progress=False, return_models=True)  # doctest: +SKIP
    >>> save_models(models, "models.json")  # doctest: +SKIP
    """
    from prophet.serialize import model_to_json

    path = Path(path)
    path.write_text(json.dumps({str(u): model_to_json(m) for u, m in models.items()}))
    return path


def load_models(path: str | Path) -> dict[str, Prophet]:
    """Read models written by :func:`save_models`.

    Examples
    --------
    >>> models = load_models("models.json")  # doctest: +SKIP
    >>> models["total"].predict(models["total"].make_future_dataframe(7))  # doctest: +SKIP
    """
    from prophet.serialize import model_from_json

    return {u: model_from_json(text) for u, text in json.loads(Path(path).read_text()).items()}


def _fit_all(
    series: dict[str, pd.DataFrame], unique_ids: list[str], workers: int, settings: dict
) -> Iterator[tuple[pd.DataFrame, str | None]]:
    """Yield :func:`_fit_prophet` results as fits finish, in worker processes if ``workers > 1``."""
    if workers == 1 or len(unique_ids) <= 1:
        for unique_id in unique_ids:
            yield _fit_prophet(series[unique_id], **settings)
        return
    # forkserver, not fork: the caller (a notebook, the CLI) may have pipeline threads running,
    # and forking a process with threads can deadlock the child on a lock held at the fork.
    # The server imports Prophet once, so that each pool's workers start ready to fit.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["helpers.forecast", "prophet"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_fit_prophet, series[uid], **settings) for uid in unique_ids]
        for future in as_completed(futures):
            yield future.result()


def _fit_prophet(
    series: pd.DataFrame,
    horizon: int,
    freq: str,
    interval_width: float,
    seasonality_mode: str,
    country: str | None,
    weekly_seasonality: bool | str,
    return_model: bool,
) -> tuple[pd.DataFrame, str | None]:
    """Fit one series and forecast it; runs in a worker process, so it returns plain data."""
    from prophet import Prophet
    from prophet.serialize import model_to_json

    model = Prophet(
        interval_width=interval_width,
        seasonality_mode=seasonality_mode,
        weekly_seasonality=weekly_seasonality,
        daily_seasonality=False,
    )
    if country:
        model.add_country_holidays(country_name=country)
    model.fit(series[["ds", "y"]])
    future = pd.DataFrame({"ds": _future_dates(series["ds"].iloc[-1], horizon, freq)})
    predicted = model.predict(future)[["ds", "yhat", "yhat_lower", "yhat_upper"]]
    frame = predicted.assign(unique_id=series["unique_id"].iloc[0], model="prophet")
    return frame, model_to_json(model) if return_model else None


def _silence_fit_logs() -> None:
    """Keep cmdstanpy's per-fit INFO lines and Prophet's notices out of the output.

    A handler on the cmdstanpy logger stops cmdstanpy from installing its own INFO handler.
    """
    for name, level in (
        ("cmdstanpy", logging.WARNING),
        ("prophet", logging.WARNING),
        ("prophet.plot", logging.CRITICAL),
    ):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
        logger.setLevel(level)


_silence_fit_logs()  # at import: the forkserver and its workers import Prophet before any fit


def _split(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``(unique_id, series sorted by ds)`` pairs, ``ds`` as datetime."""
    frame = df.assign(ds=pd.to_datetime(df["ds"])).sort_values(["unique_id", "ds"])
    return list(frame.groupby("unique_id", sort=True))


def _future_dates(last: pd.Timestamp, horizon: int, freq: str) -> pd.DatetimeIndex:
    """The ``horizon`` dates after ``last`` at ``freq``."""
    return pd.date_range(last, periods=horizon + 1, freq=freq)[1:]


def _finish(frames: list[pd.DataFrame], model: str | None = None) -> pd.DataFrame:
    """Concatenate forecasts, clip them at 0, keep yhat inside its interval, order the rows."""
    if not frames:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    result = pd.concat(frames, ignore_index=True)
    if model is not None:
        result["model"] = model
    bounds = ["yhat", "yhat_lower", "yhat_upper"]
    result[bounds] = result[bounds].clip(lower=0)
    result["yhat_lower"] = result[["yhat_lower", "yhat"]].min(axis=1)
    result["yhat_upper"] = result[["yhat_upper", "yhat"]].max(axis=1)
    return result[FORECAST_COLUMNS].sort_values(["unique_id", "ds"], ignore_index=True)


@dataclass
class ForecastRun:
    """One forecasting run: its id, what it forecast, and where its tables were written."""

    run_id: str
    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    locations: dict[str, str]

    @property
    def series(self) -> int:
        """How many series were forecast."""
        return int(self.forecasts["unique_id"].nunique())


def run_forecast(
    platform,
    level: str = "product",
    measure: str = "units",
    horizon: int = 28,
    folds: int = 3,
    run_id: str | None = None,
    **forecast_kwargs,
) -> ForecastRun:
    """The forecasting step end to end, on any backend: ``daily_sales`` by SQL, backtest and
    forecast, then both written back to the lake as the ``forecasts`` and
    ``forecast_metrics`` tables (and the run's parameters as ``forecast_runs``), partitioned
    by ``run_id`` and queryable by SQL.

    Examples
    --------
    >>> run = run_forecast(platform, level="total", horizon=14, folds=2)  # doctest: +SKIP
    >>> platform.query("SELECT * FROM forecasts WHERE run_id = ?", params=[run.run_id])  # doctest: +SKIP
    """
    run_id = run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    platform.crawl()  # the latest partitions, and the views
    try:
        daily = complete_daily_sales(platform)
    except SalescastError as error:
        raise ValueError(
            f"no daily sales to forecast ({error}); stream orders first (`salescast stream`)"
        ) from None
    series = series_from_daily_sales(daily, level, measure)
    metrics = backtest(series, horizon=horizon, folds=folds, **forecast_kwargs)
    forecasts = forecast(series, horizon=horizon, desc="forecast", **forecast_kwargs)
    labels = {"level": level, "measure": measure}
    forecasts, metrics = forecasts.assign(**labels), metrics.assign(**labels)
    parameters = pd.DataFrame(
        [
            {
                **labels,
                "horizon": horizon,
                "folds": folds,
                "freq": forecast_kwargs.get("freq", "D"),
                "interval_width": forecast_kwargs.get("level", 0.9),
                "seasonality_mode": forecast_kwargs.get("seasonality_mode", "additive"),
                "country": forecast_kwargs.get("country", "US") or "",
                "series": int(series["unique_id"].nunique()),
                "created": pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s"),
            }
        ]
    )
    locations = {
        table: platform.write_dataset(table, frame, {"run_id": run_id})
        for table, frame in (
            ("forecasts", forecasts),
            ("forecast_metrics", metrics),
            ("forecast_runs", parameters),
        )
    }
    return ForecastRun(run_id, forecasts, metrics, locations)
