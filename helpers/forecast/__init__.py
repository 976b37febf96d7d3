"""Forecasts of sales series: a model set chosen per series by backtest, reconciled, calibrated.

Every frame here is in statsforecast's long format: ``unique_id, ds, y`` in, and
``unique_id, ds, yhat, yhat_lower, yhat_upper, yhat_lower_80, yhat_upper_80, model`` out. The
rooms:

- :mod:`.series`: series from ``daily_sales`` (one level, or every level as a hierarchy) and the
  frequencies (every pandas alias of daily, weekly, monthly and quarterly data).
- :mod:`.models`: the model set (Prophet with settings chosen by the data, statsforecast's
  AutoETS, AutoARIMA, AutoTheta and MSTL, the baselines), fitted per series.
- :mod:`.parallel`: worker processes that work from any caller (joblib's loky).
- :mod:`.selection`: rolling-origin backtests, the median and weighted combinations, and the
  choice per series.
- :mod:`.reconcile`: coherent levels (hierarchicalforecast: bottom-up, MinTrace).
- :mod:`.intervals`: intervals calibrated on backtest errors (split conformal).
- :mod:`.baselines`: naive and seasonal naive with their own intervals.
- :mod:`.runs`: a run on a platform, written back to the lake as tables.

Examples
--------
>>> df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2026-01-01", periods=90),
...                    "y": ([5.0, 6, 7, 9, 12, 3, 2] * 13)[:90]})
>>> result = forecast(df, horizon=7, folds=2, n_jobs=1, progress=False, models=("auto_ets", "naive"))
>>> result.shape, result.model.iloc[0]
((7, 8), 'auto_ets')
"""

from __future__ import annotations

import pandas as pd

from helpers.forecast.baselines import naive, seasonal_naive
from helpers.forecast.models import MODELS
from helpers.forecast.runs import ForecastRun, run_forecast
from helpers.forecast.selection import (
    CHOSEN,
    FORECAST_COLUMNS,
    METRIC_COLUMNS,
    ModelSetForecast,
    backtest_and_forecast,
    scores,
    summarize,
)
from helpers.forecast.series import (
    LEVELS,
    MEASURES,
    Frequency,
    Hierarchy,
    complete_daily_sales,
    hierarchy_from_daily_sales,
    season_length_of,
    series_from_daily_sales,
)

__all__ = [
    "CHOSEN",
    "FORECAST_COLUMNS",
    "LEVELS",
    "MEASURES",
    "METRIC_COLUMNS",
    "MODELS",
    "ForecastRun",
    "Frequency",
    "Hierarchy",
    "ModelSetForecast",
    "backtest",
    "backtest_and_forecast",
    "complete_daily_sales",
    "forecast",
    "hierarchy_from_daily_sales",
    "naive",
    "run_forecast",
    "scores",
    "season_length_of",
    "seasonal_naive",
    "series_from_daily_sales",
    "summarize",
]


def forecast(df: pd.DataFrame, horizon: int = 28, freq: str = "D", **kwargs) -> pd.DataFrame:
    """The default forecast of every series: :func:`backtest_and_forecast`'s ``forecasts``."""
    return backtest_and_forecast(df, horizon, freq, **kwargs).forecasts


def backtest(
    df: pd.DataFrame, horizon: int = 28, folds: int = 3, freq: str = "D", **kwargs
) -> pd.DataFrame:
    """Backtest metrics of every candidate and of the chosen forecast, per series and fold."""
    return backtest_and_forecast(df, horizon, freq, folds=folds, **kwargs).metrics
