"""Baselines with their own intervals: the naive and seasonal naive forecasts.

They are the yardstick every model is scored against (MASE divides by the seasonal naive error),
and the forecast of a series too short to backtest.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

from helpers.forecast.series import Frequency, nonnegative, split_series

FORECAST_COLUMNS = ["unique_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model"]


def repeat_last_season(y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """The last ``season_length`` points repeated over ``horizon`` (the last point if shorter).

    Examples
    --------
    >>> repeat_last_season(np.array([1.0, 2.0, 3.0]), 4, 2).tolist()
    [2.0, 3.0, 2.0, 3.0]
    """
    season = season_length if len(y) >= season_length else 1
    return np.asarray(y[-season:], dtype=float)[np.arange(horizon) % season]


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
    no longer than one season gets a zero-width interval. The lower bound of a series that never
    went below zero is clipped at 0.

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
    for unique_id, series in split_series(df):
        y = series["y"].to_numpy(dtype=float)
        if len(y) < season_length:
            raise ValueError(
                f"series {unique_id!r} has {len(y)} points, fewer than one season ({season_length})"
            )
        yhat = repeat_last_season(y, horizon, season_length)
        differences = y[season_length:] - y[:-season_length]
        sigma = differences.std(ddof=1) if len(differences) > 1 else 0.0
        half_width = z * sigma * np.sqrt(steps // season_length + 1)
        lower = yhat - half_width
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": unique_id,
                    "ds": Frequency.of(freq).future(series["ds"].iloc[-1], horizon),
                    "yhat": yhat,
                    "yhat_lower": np.clip(lower, 0, None) if nonnegative(y) else lower,
                    "yhat_upper": yhat + half_width,
                }
            )
        )
    return _finish(frames, model="seasonal_naive")


def _finish(frames: list[pd.DataFrame], model: str) -> pd.DataFrame:
    """Concatenate forecasts, name their model, order the rows."""
    if not frames:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    result = pd.concat(frames, ignore_index=True).assign(model=model)
    return result[FORECAST_COLUMNS].sort_values(["unique_id", "ds"], ignore_index=True)
