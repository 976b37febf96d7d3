"""Baselines: naive and seasonal naive forecasts with their own normal intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from helpers.forecast import naive, seasonal_naive
from helpers.forecast.baselines import repeat_last_season
from tests.forecast.support import future_dates, long_frame

Y = np.array([40.0, 52, 47, 61, 38, 55, 49, 44, 58, 50, 63, 41])  # far from zero


@pytest.mark.parametrize(
    ("y", "horizon", "season", "expected"),
    [
        ([1.0, 2, 3, 4, 5], 5, 2, [4, 5, 4, 5, 4]),
        ([1.0, 2, 3], 4, 3, [1, 2, 3, 1]),  # exactly one season
        ([1.0, 2], 3, 3, [2, 2, 2]),  # under a season: the last point
        ([1.0, 2, 3, 4, 5], 2, 4, [2, 3]),  # shorter horizon than a season
    ],
)
def test_repeat_last_season(y, horizon, season, expected):
    """The last season repeated over the horizon, or the last point under a season."""
    assert repeat_last_season(np.array(y), horizon, season).tolist() == expected


def test_seasonal_naive_repeats_the_last_season_on_the_next_dates():
    """Forecasts repeat the last season, on the days after the last one, per series."""
    df = long_frame({"b": Y, "a": Y[::-1]})

    result = seasonal_naive(df, horizon=8, freq="D", season_length=3)

    assert list(result.columns) == ["unique_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model"]
    assert result.unique_id.tolist() == ["a"] * 8 + ["b"] * 8
    assert set(result.model) == {"seasonal_naive"}
    for uid, y in (("a", Y[::-1]), ("b", Y)):
        frame = result[result.unique_id == uid]
        assert frame.yhat.tolist() == [y[-3], y[-2], y[-1]] * 2 + [y[-3], y[-2]]
        assert frame.ds.tolist() == future_dates(pd.Timestamp("2026-01-12"), 8, "D")


@pytest.mark.parametrize("level", [0.8, 0.9])
def test_seasonal_naive_interval_is_normal_and_widens_by_seasons_ahead(level):
    """Half width z * sd(seasonal differences) * sqrt(seasons ahead)."""
    df = long_frame({"a": Y})

    result = seasonal_naive(df, horizon=10, freq="D", season_length=4, level=level)

    sigma = np.std(Y[4:] - Y[:-4], ddof=1)
    seasons_ahead = np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3])
    half_width = norm.ppf(0.5 + level / 2) * sigma * np.sqrt(seasons_ahead)
    np.testing.assert_allclose(result.yhat_upper - result.yhat, half_width)
    np.testing.assert_allclose(result.yhat - result.yhat_lower, half_width)
    widths = (result.yhat_upper - result.yhat_lower).to_numpy()
    assert widths[4] == pytest.approx(widths[0] * np.sqrt(2))
    assert widths[8] == pytest.approx(widths[0] * np.sqrt(3))


def test_naive_repeats_the_last_value_and_widens_by_sqrt_of_the_step():
    """Naive is seasonal naive of season 1: the last value, sd of the daily differences."""
    df = long_frame({"a": Y}, freq="W-SUN", start="2026-01-04")

    result = naive(df, horizon=4, freq="W-SUN", level=0.9)

    assert result.yhat.tolist() == [Y[-1]] * 4
    assert set(result.model) == {"naive"}
    assert result.ds.tolist() == future_dates(df.ds.iloc[-1], 4, "W-SUN")
    half_width = norm.ppf(0.95) * np.std(np.diff(Y), ddof=1) * np.sqrt([1, 2, 3, 4])
    np.testing.assert_allclose(result.yhat_upper - result.yhat, half_width)


def test_eighty_percent_interval_is_inside_the_ninety():
    """The 80 % interval is the 90 % one scaled by the ratio of their normal quantiles."""
    df = long_frame({"a": Y})

    eighty = seasonal_naive(df, horizon=7, season_length=3, level=0.8)
    ninety = seasonal_naive(df, horizon=7, season_length=3, level=0.9)

    ratio = (eighty.yhat_upper - eighty.yhat) / (ninety.yhat_upper - ninety.yhat)
    np.testing.assert_allclose(ratio, norm.ppf(0.9) / norm.ppf(0.95))


@pytest.mark.parametrize(
    ("points", "zero_width"),
    [
        (7, True),  # exactly one season: no seasonal difference
        (9, False),  # two differences give a spread
    ],
)
def test_one_season_is_enough_with_a_zero_width_interval(points, zero_width):
    """A series of one season is forecast, with an interval of zero width."""
    result = seasonal_naive(long_frame({"a": Y[:points]}), horizon=7, season_length=7)

    assert result.yhat.tolist() == Y[points - 7 : points].tolist()
    assert bool(((result.yhat_upper - result.yhat_lower) == 0).all()) is zero_width


def test_under_one_season_is_refused_naming_the_series():
    """Six points cannot make a season of seven: refused, naming the series and both counts."""
    with pytest.raises(ValueError, match=r"series 'a' has 6 points, fewer than one season \(7\)"):
        seasonal_naive(long_frame({"a": Y[:6]}), horizon=3, season_length=7)


def test_bounds_stay_at_or_above_zero_around_the_forecast():
    """Near zero the lower bound is clipped at 0 and the forecast stays inside its interval."""
    y = np.array([0.0, 5, 0, 9, 1, 0, 12, 0, 2, 0, 0, 1])

    result = seasonal_naive(long_frame({"a": y}), horizon=6, season_length=3, level=0.9)

    assert result.yhat.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert (result.yhat_lower == 0).all()
    assert (result.yhat_upper > result.yhat).all()
