"""Backtests and selection: each series gets the candidate that forecast it best on its own past.

Every model of the set is fitted at rolling origins (fold ``i`` of ``k`` trains on all but the
last ``horizon * (k - i)`` points and forecasts the next ``horizon``) and at the end of the
history. The candidates are the models and two combinations of the non-baseline ones: their
median, and their mean weighted by the inverse of each one's backtest error. Each series takes
the combination with the lower mean absolute backtest error, unless one model beats that
combination in every backtest window: a choice among nine candidates on a few windows is noisy,
and combinations are the robust default. On 49 real series, choosing on the earlier windows
of five-fold backtests and scoring the next one (145 windows, training data only), this rule
scored a mean MASE of 1.022, the lowest mean error 1.068, the median alone as the combination
1.039; on the holdout, 1.115 against 1.171 for the lowest mean error. The forecast is then
reconciled across levels (when a hierarchy is given) and gets intervals calibrated on its
backtest errors.
The ``model`` column says which candidate each series took, and ``choices`` says why.

Series too short for one fold (``horizon`` plus two seasons) get the seasonal naive forecast
(the naive one under a season) with its own intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from helpers.forecast import intervals, reconcile
from helpers.forecast.baselines import naive, seasonal_naive
from helpers.forecast.models import BASELINES, MODELS, SeriesTask
from helpers.forecast.parallel import fit_all
from helpers.forecast.series import Frequency, Hierarchy, nonnegative, split_series

FORECAST_COLUMNS = [
    "unique_id",
    "ds",
    "yhat",
    "yhat_lower",
    "yhat_upper",
    "yhat_lower_80",
    "yhat_upper_80",
    "model",
]
METRIC_COLUMNS = ["unique_id", "model", "fold", "mae", "rmse", "smape", "mase"]
METRIC_TYPES = {"unique_id": "string", "model": "string", "fold": "int64"} | {
    name: "float64" for name in METRIC_COLUMNS[3:]
}  # so that no backtest at all (every series too short) is still a typed table
PERIOD_COLUMNS = ["unique_id", "days", *FORECAST_COLUMNS[2:7], "backtest_error"]
PERIOD_DAYS = (7, 28)  # the periods of daily data whose totals get intervals, and the horizon
ENSEMBLES = ("median", "weighted")
CHOSEN = "chosen"  # the metrics' name for each series' chosen (and reconciled) forecast


@dataclass
class ModelSetForecast:
    """Forecasts of the model set, the backtest metrics they were chosen on, and the choices.

    ``forecasts`` has :data:`FORECAST_COLUMNS`; ``metrics`` has :data:`METRIC_COLUMNS`, one row
    per series, candidate and fold, with the chosen forecast as model ``"chosen"``;
    ``choices`` has one row per series: the candidate, its backtest MASE, the runner-up and a
    sentence; ``reconciliation`` is the method used across levels, if any; ``widening`` the
    factor each interval level's half widths were multiplied by (see
    :func:`helpers.forecast.intervals.widening`); ``periods`` has :data:`PERIOD_COLUMNS`: each
    series' total over its first 7 and 28 days (of daily data) and over the horizon, with
    intervals of those totals (:func:`helpers.forecast.intervals.period_factor`) and how far
    the backtests' totals of that length missed (``backtest_error``, a share of the actual).
    """

    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    choices: pd.DataFrame
    reconciliation: str | None = None
    widening: dict[int, float] = field(default_factory=dict)
    periods: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PERIOD_COLUMNS))


def backtest_and_forecast(
    df: pd.DataFrame,
    horizon: int = 28,
    freq: str = "D",
    folds: int = 3,
    level: float = 0.9,
    models: tuple[str, ...] = MODELS,
    country: str | None = "US",
    seasonality_mode: str = "auto",
    hierarchy: Hierarchy | None = None,
    regressors: pd.DataFrame | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
    desc: str = "model set",
) -> ModelSetForecast:
    """Backtest the model set, choose per series, reconcile, calibrate and forecast.

    Parameters
    ----------
    df : pandas.DataFrame
        Long format ``unique_id, ds, y``, regular at ``freq``. With ``hierarchy``, its
        ``series`` (every level) is used instead.
    horizon, folds : int
        Points to forecast, and the backtest windows of that length to choose by.
    freq : str
        Any pandas alias of daily, business-day, weekly, monthly or quarterly data.
    level : float
        The main interval (``yhat_lower``, ``yhat_upper``); the 80 % one is always given too.
    models : tuple of str
        The model set (see :data:`helpers.forecast.models.MODELS`).
    country : str or None
        Whose public holidays Prophet learns on daily data.
    seasonality_mode : {"auto", "additive", "multiplicative"}
        Prophet's; ``auto`` decides per series from the data.
    hierarchy : Hierarchy, optional
        Levels to make coherent (:func:`helpers.forecast.series.hierarchy_from_daily_sales`).
    regressors : pandas.DataFrame, optional
        A known future regressor per series: indexed by date over the history and the
        horizon, a column per ``unique_id`` (see
        :func:`helpers.forecast.series.promotion_shares`); Prophet and AutoARIMA use it.
    n_jobs : int or None
        Worker processes; None for every core, 1 to fit in this process.
    progress : bool
        Show a progress bar over the series.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be 1 or more, got {horizon}")
    if folds < 1:
        raise ValueError(f"folds must be 1 or more, got {folds}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (0.9 for 90 %), got {level}")
    unknown = set(models) - set(MODELS)
    if unknown or not models:
        raise ValueError(f"models must be some of {list(MODELS)}, got {list(models)}")
    frequency = Frequency.of(freq)
    if hierarchy is not None:
        df = hierarchy.series
    series = dict(split_series(df[["unique_id", "ds", "y"]]))
    season = frequency.season_length
    tasks, short = [], []
    for unique_id, frame in series.items():
        cutoffs = _cutoffs(len(frame), horizon, folds, season)
        if not cutoffs:
            short.append(unique_id)
            continue
        tasks.append(
            SeriesTask(
                unique_id,
                frame["y"].to_numpy(dtype=float),
                frame["ds"].to_numpy(),
                freq,
                horizon,
                cutoffs,
                tuple(models),
                country,
                seasonality_mode,
                _regressor(regressors, unique_id, frame["ds"], frequency, horizon),
            )
        )
    importing = reconcile.import_in_background() if hierarchy is not None else None
    fits = fit_all(tasks, n_jobs=n_jobs, progress=progress, desc=desc)
    if importing is not None:
        importing.join()
    chosen = {task.unique_id: _choose(task, fits[task.unique_id], season) for task in tasks}

    method = None
    if hierarchy is not None and chosen and not short:
        method = _reconcile(hierarchy, chosen)
    levels = sorted({80, round(level * 100)})
    errors = [choice.actuals - choice.backtest for choice in chosen.values()]
    widen: dict[int, float] = {}
    for width in levels:  # a wider level never gets a smaller factor, so intervals nest
        widen[width] = max([intervals.widening(errors, width), *widen.values()])
    frames = [
        _with_intervals(choice, frequency, widen, round(level * 100)) for choice in chosen.values()
    ]
    frames += _baselines(df[df["unique_id"].isin(short)], horizon, freq, level, season)
    forecasts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    forecasts = forecasts.reindex(columns=FORECAST_COLUMNS)
    metrics = [row for choice in chosen.values() for row in choice.metric_rows()]
    choices = [choice.summary() for choice in chosen.values()]
    choices += [_short_choice(uid, len(series[uid]), horizon, season) for uid in short]
    lengths = {days for days in PERIOD_DAYS if frequency.daily and days <= horizon} | {horizon}
    periods = _period_totals(chosen, forecasts, sorted(lengths), widen, round(level * 100))
    return ModelSetForecast(
        forecasts.sort_values(["unique_id", "ds"], ignore_index=True),
        pd.DataFrame(metrics, columns=METRIC_COLUMNS).astype(METRIC_TYPES),
        pd.DataFrame(choices).sort_values("unique_id", ignore_index=True),
        method,
        widen,
        periods,
    )


def _period_totals(
    chosen: dict, forecasts: pd.DataFrame, lengths: list[int], widen: dict[int, float], main: int
) -> pd.DataFrame:
    """Each series' forecast total over its first ``lengths`` steps, with intervals of that
    total: the period's share of the summed daily half widths that covered the backtests'
    period totals (one share per level and length, over the run's series), widened by the
    run's factor as the days are (the share is measured on half widths before widening: after
    it, the factor cancelled out). A series without backtests (too short) gets its days'
    intervals added up."""
    errors = {uid: choice.actuals - choice.backtest for uid, choice in chosen.items()}
    half = {  # each series' daily half width per level, before widening
        level: {uid: intervals.conformal_half_width(e.ravel(), level) for uid, e in errors.items()}
        for level in widen
    }
    series = {uid: frame.sort_values("ds") for uid, frame in forecasts.groupby("unique_id")}
    rows = []
    for days in lengths:
        share = {
            level: intervals.period_factor(list(errors.values()), list(h.values()), days, level)
            for level, h in half.items()
        }
        for uid, frame in series.items():
            ahead = frame.iloc[:days]
            total = ahead["yhat"].sum()
            row = {"unique_id": uid, "days": days, "yhat": total}
            row["backtest_error"] = _period_error(chosen[uid], days) if uid in chosen else np.nan
            clip = uid not in chosen or nonnegative(chosen[uid].task.y)
            width = 0.0
            for level in sorted(half):  # nested: a wider level is never narrower
                for suffix in _suffixes(level, main):
                    if uid in chosen:
                        width = max(width, widen[level] * share[level] * days * half[level][uid])
                        lower, upper = total - width, total + width
                    else:
                        lower = ahead[f"yhat_lower{suffix}"].sum()
                        upper = ahead[f"yhat_upper{suffix}"].sum()
                    row[f"yhat_lower{suffix}"] = max(lower, 0.0) if clip else lower
                    row[f"yhat_upper{suffix}"] = upper
            rows.append(row)
    return pd.DataFrame(rows, columns=PERIOD_COLUMNS)


def _suffixes(level: int, main: int) -> list[str]:
    """The interval columns' suffixes of ``level``: ``""`` for the main one, ``"_80"`` for
    80 % (both when 80 % is the main level)."""
    return [suffix for suffix, own in (("", level == main), ("_80", level == 80)) if own]


def _period_error(choice: _Choice, days: int) -> float:
    """How far the chosen forecast's period totals missed in the backtests, as a share of the
    actual totals (mean absolute miss over mean total); NaN without sales or a whole period."""
    if choice.actuals.shape[1] < days:
        return float("nan")
    actual = choice.actuals[:, :days].sum(axis=1)
    missed = np.abs(actual - choice.backtest[:, :days].sum(axis=1))
    return float(missed.mean() / actual.mean()) if actual.mean() > 0 else float("nan")


def _regressor(
    regressors: pd.DataFrame | None, unique_id: str, ds: pd.Series, frequency, horizon: int
) -> np.ndarray | None:
    """The series' regressor over its dates and the horizon, or None where it is not known."""
    if regressors is None or unique_id not in regressors:
        return None
    days = pd.DatetimeIndex(ds).append(frequency.future(ds.iloc[-1], horizon))
    values = regressors[unique_id].reindex(days)
    return None if values.isna().any() else values.to_numpy(dtype=float)


def _cutoffs(n: int, horizon: int, folds: int, season: int) -> tuple[int, ...]:
    """Training lengths of the folds that fit in ``n`` points, the earliest first; a fold needs
    two seasons of training, so a short series gets fewer folds, or none."""
    fitting = [n - horizon * (folds - i) for i in range(folds)]
    return tuple(cutoff for cutoff in fitting if cutoff >= 2 * season + 2)


class _Choice:
    """One series' candidates on its backtests, the one chosen, and its final forecast."""

    def __init__(
        self, task: SeriesTask, actuals, candidates: dict, finals: dict, failures: dict, season
    ):
        self.task = task
        self.season = season
        self.actuals = actuals
        scales = np.array([_scale(task.y[:c], season) for c in task.cutoffs])
        self.scales = np.where(scales > 0, scales, np.nan)
        self.candidates, self.finals, self.failures = candidates, finals, failures
        self.errors = {
            name: np.abs(self.actuals - predictions).mean()
            for name, predictions in candidates.items()
        }
        self.name, self.why = self._pick()
        self.backtest = candidates[self.name]  # replaced by the reconciled backtests, if any
        self.final = finals[self.name]

    def _pick(self) -> tuple[str, str]:
        """The better combination, unless one model beats it in every backtest window."""
        windows = len(self.task.cutoffs)
        singles = [name for name in self.errors if name not in ENSEMBLES]
        best_single = min(singles, key=self.errors.get)
        combinations = [name for name in ENSEMBLES if name in self.errors]
        if not combinations:
            return best_single, f"the lowest mean absolute error over {windows} backtest window(s)"
        combination = min(combinations, key=self.errors.get)
        by_window = np.abs(self.actuals - self.candidates[combination]).mean(axis=1)
        single_by_window = np.abs(self.actuals - self.candidates[best_single]).mean(axis=1)
        if (single_by_window < by_window).all():
            return best_single, (
                f"beat the {combination} combination in all {windows} backtest window(s)"
            )
        return combination, (
            f"the better combination over {windows} backtest window(s); no model beat it in "
            f"every window (best alone: {best_single})"
        )

    def mase(self, name: str) -> float:
        per_fold = np.abs(self.actuals - self.candidates[name]).mean(axis=1) / self.scales
        finite = per_fold[np.isfinite(per_fold)]
        return float(finite.mean()) if len(finite) else float("nan")

    def metric_rows(self) -> list[dict]:
        rows = []
        named = {**self.candidates, CHOSEN: self.backtest}
        for name, predictions in named.items():
            for fold, (actual, predicted) in enumerate(zip(self.actuals, predictions, strict=True)):
                history = self.task.y[: self.task.cutoffs[fold]]
                metrics = scores(actual, predicted, history, self.season)
                rows.append(
                    {"unique_id": self.task.unique_id, "model": name, "fold": fold, **metrics}
                )
        return rows

    def summary(self) -> dict:
        ranked = sorted(self.errors, key=self.errors.get)
        runner_up = next((name for name in ranked if name != self.name), None)
        mase = self.mase(self.name)
        reason = f"{self.why}; backtest MASE {mase:.2f}"
        if runner_up:
            reason += f", next {runner_up} {self.mase(runner_up):.2f}"
        if self.failures:
            reason += "; could not fit " + ", ".join(sorted(self.failures))
        return {
            "unique_id": self.task.unique_id,
            "model": self.name,
            "backtest_mase": mase,
            "runner_up": runner_up,
            "runner_up_mase": self.mase(runner_up) if runner_up else float("nan"),
            "folds": len(self.task.cutoffs),
            "reason": reason,
        }


def _choose(task: SeriesTask, fit, season: int) -> _Choice:
    """Candidates of one series (its models and their combinations) and the best of them."""
    candidates, finals = dict(fit.backtests), dict(fit.final)
    actuals = np.stack([task.y[c : c + task.horizon] for c in task.cutoffs])
    members = [name for name in candidates if name not in BASELINES]
    if len(members) >= 2:
        stacked = np.stack([candidates[name] for name in members])
        stacked_final = np.stack([finals[name] for name in members])
        candidates["median"] = np.median(stacked, axis=0)
        finals["median"] = np.median(stacked_final, axis=0)
        mae = np.array([np.abs(actuals - candidates[name]).mean() for name in members])
        weights = 1 / np.maximum(mae, 1e-9)
        weights /= weights.sum()
        candidates["weighted"] = np.tensordot(weights, stacked, axes=1)
        finals["weighted"] = weights @ stacked_final
    if nonnegative(task.y):
        candidates = {name: np.clip(p, 0, None) for name, p in candidates.items()}
        finals = {name: np.clip(p, 0, None) for name, p in finals.items()}
    return _Choice(task, actuals, candidates, finals, fit.failures, season)


def _reconcile(hierarchy: Hierarchy, chosen: dict[str, _Choice]) -> str:
    """Make the chosen forecasts add up, with the method that backtests best; returns it."""
    order = list(hierarchy.summing.index)
    choices = [chosen[uid] for uid in order]
    backtests = np.stack([c.backtest for c in choices], axis=1)  # folds, series, steps
    actuals = np.stack([c.actuals for c in choices], axis=1)
    scales = np.array([np.nanmean(c.scales) for c in choices])  # NaN where a scale is 0
    keep_positive = all(nonnegative(c.task.y) for c in choices)
    method, reconciled = reconcile.choose(
        hierarchy.summing, backtests, actuals, scales, keep_positive
    )
    errors = np.concatenate(list(actuals - backtests), axis=1)
    finals = reconcile.reconcile(
        method,
        hierarchy.summing,
        np.stack([c.final for c in choices]),
        keep_positive,
        errors if method == "mint_shrink" else None,
    )
    for row, choice in enumerate(choices):
        choice.backtest = reconciled[method][:, row, :]
        choice.final = finals[row]
    return method


def _with_intervals(
    choice: _Choice, frequency: Frequency, widen: dict[int, float], main: int
) -> pd.DataFrame:
    """The chosen final forecast with conformal intervals from its backtest errors, each level
    widened by the run's factor."""
    task = choice.task
    errors = (choice.actuals - choice.backtest).ravel()
    columns = {
        "unique_id": task.unique_id,
        "ds": frequency.future(pd.Timestamp(task.ds[-1]), task.horizon),
        "yhat": choice.final,
        "model": choice.name,
    }
    clip = nonnegative(task.y)
    for level, factor in widen.items():
        lower, upper = intervals.bounds(choice.final, errors, level, clip, factor)
        for suffix in _suffixes(level, main):
            columns[f"yhat_lower{suffix}"], columns[f"yhat_upper{suffix}"] = lower, upper
    return pd.DataFrame(columns)  # in one go: a column added at a time copies the frame


def _baselines(short: pd.DataFrame, horizon: int, freq: str, level: float, season: int):
    """Seasonal naive forecasts (naive under a season) for series too short to backtest."""
    if short.empty:
        return []
    lengths = short.groupby("unique_id")["y"].transform("size")
    frames = []
    for subset, baseline in ((lengths >= season, "seasonal"), (lengths < season, "naive")):
        part = short[subset]
        if part.empty:
            continue

        def run(width, part=part, baseline=baseline):
            if baseline == "naive":
                return naive(part, horizon, freq, width)
            return seasonal_naive(part, horizon, freq, season, width)

        main, eighty = run(level), run(0.8)
        main["yhat_lower_80"] = eighty["yhat_lower"].to_numpy()
        main["yhat_upper_80"] = eighty["yhat_upper"].to_numpy()
        frames.append(main)
    return frames


def _short_choice(unique_id: str, n: int, horizon: int, season: int) -> dict:
    model = "seasonal_naive" if n >= season else "naive"
    return {
        "unique_id": unique_id,
        "model": model,
        "backtest_mase": float("nan"),
        "runner_up": None,
        "runner_up_mase": float("nan"),
        "folds": 0,
        "reason": f"{n} points are too few to backtest (a window of {horizon} needs "
        f"{horizon + 2 * season + 2}); {model} with its own interval",
    }


def _scale(history: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast (naive under two seasons): MASE's scale."""
    lag = season if len(history) > season else 1
    differences = np.abs(history[lag:] - history[:-lag])
    return float(differences.mean()) if len(differences) else float("nan")


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
