"""Split-conformal intervals: the rank of the backtest error they take, their bounds, and the
coverage they give on new data from the same process."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.forecast import backtest_and_forecast
from helpers.forecast.intervals import bounds, conformal_half_width, widening
from tests.forecast.support import long_frame


def shuffled_errors(n: int, seed: int = 0) -> np.ndarray:
    """Errors whose absolute values are 1..n, in random order and with random signs."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(1.0, n + 1)) * rng.choice([-1.0, 1.0], n)


@pytest.mark.parametrize(
    ("n", "level", "expected"),
    [
        (10, 80, 9.0),  # rank ceil(11 * 0.8) = 9 of 10
        (19, 90, 18.0),  # rank ceil(20 * 0.9) = 18 of 19: below the largest
        (18, 90, 18.0),  # rank ceil(19 * 0.9) = 18 = n: the largest
        (8, 90, 8.0),  # rank ceil(9 * 0.9) = 9 > n: the largest too
        (4, 80, 4.0),  # rank ceil(5 * 0.8) = 4 = n
        (3, 80, 3.0),  # rank ceil(4 * 0.8) = 4 > n
        (1, 50, 1.0),
    ],
)
def test_half_width_is_the_conformal_rank_of_the_absolute_errors(n, level, expected):
    """The ceil((n + 1) * level / 100)-th smallest absolute error, the largest if n is short."""
    rank = math.ceil((n + 1) * level / 100)
    assert expected == min(rank, n)  # the errors' absolute values are 1..n

    assert conformal_half_width(shuffled_errors(n), level) == expected


def test_half_width_skips_non_finite_errors_and_is_nan_without_errors():
    """NaN and inf errors are not counted; no finite error gives NaN."""
    errors = np.concatenate([shuffled_errors(10), [np.nan, np.inf, -np.inf]])

    assert conformal_half_width(errors, 80) == 9.0
    assert np.isnan(conformal_half_width(np.array([]), 80))
    assert np.isnan(conformal_half_width(np.array([np.nan, np.inf]), 90))


def test_half_width_grows_with_the_level():
    """For any number of errors, the 90 % half width is at least the 80 % one."""
    rng = np.random.default_rng(1)
    for n in range(1, 60):
        errors = rng.normal(0, 3, n)
        assert conformal_half_width(errors, 80) <= conformal_half_width(errors, 90)


def test_bounds_are_the_forecast_plus_minus_the_half_width_clipped_at_zero_if_asked():
    """lower = yhat - w and upper = yhat + w, the lower one clipped at 0 for counts."""
    yhat = np.array([1.0, 5.0, 20.0])
    errors = shuffled_errors(10)  # 80 %: w = 9

    lower, upper = bounds(yhat, errors, 80, clip_at_zero=True)
    assert lower.tolist() == [0.0, 0.0, 11.0]
    assert upper.tolist() == [10.0, 14.0, 29.0]
    lower, upper = bounds(yhat, errors, 80, clip_at_zero=False)
    assert lower.tolist() == [-8.0, -4.0, 11.0]


def test_intervals_cover_about_their_level_on_new_data():
    """On a stationary noisy process, the 80 % and 90 % intervals from backtests cover about
    80 % and 90 % of new points drawn from the same process."""
    rng = np.random.default_rng(2026)
    horizon, history, n_series = 14, 100, 30
    y = rng.normal(50, 5, (n_series, history + horizon))
    df = long_frame({f"s{i:02d}": row[:history] for i, row in enumerate(y)})
    future = (
        long_frame({f"s{i:02d}": row for i, row in enumerate(y)}).groupby("unique_id").tail(horizon)
    )

    result = backtest_and_forecast(
        df, horizon, folds=3, level=0.9, models=("auto_ets", "naive"), n_jobs=1, progress=False
    )

    joined = result.forecasts.merge(future, on=["unique_id", "ds"], validate="one_to_one")
    assert len(joined) == n_series * horizon
    inside_80 = joined.y.between(joined.yhat_lower_80, joined.yhat_upper_80).mean()
    inside_90 = joined.y.between(joined.yhat_lower, joined.yhat_upper).mean()
    print(f"coverage: 80 % -> {inside_80:.3f}, 90 % -> {inside_90:.3f}")
    assert inside_80 == pytest.approx(0.8, abs=0.1)
    assert inside_90 == pytest.approx(0.9, abs=0.1)
    assert inside_90 > inside_80
    # one width per series and level: the quantile of its backtest errors, not of the step
    widths = joined.assign(
        w90=joined.yhat_upper - joined.yhat, w80=joined.yhat_upper_80 - joined.yhat
    ).groupby("unique_id")[["w90", "w80"]]
    assert (widths.max() - widths.min()).max().max() < 1e-9
    assert (widths.first().w90 >= widths.first().w80).all()


def conformal(errors: np.ndarray, level: float) -> float:
    """The conformal half width, by hand: the ceil((n + 1) * level)-th smallest absolute
    error, or the largest."""
    ordered = np.sort(np.abs(np.ravel(errors)))
    return float(ordered[min(math.ceil((len(ordered) + 1) * level / 100), len(ordered)) - 1])


def expected_widening(errors: list[np.ndarray], level: float) -> float:
    """The documented factor: the level quantile over every series of its latest window's
    absolute errors over the half width of its earlier windows, at least 1."""
    ratios = [
        np.abs(series[-1]) / conformal(series[:-1], level)
        for series in errors
        if len(series) >= 2 and conformal(series[:-1], level) > 0
    ]
    if not ratios:
        return 1.0
    return max(1.0, float(np.quantile(np.concatenate(ratios), level / 100)))


def test_widening_is_how_much_the_latest_window_outgrew_the_earlier_ones():
    """A latest window with errors twice the earlier ones' doubles the half widths."""
    assert widening([np.array([[1.0, -1.0], [2.0, 2.0]])], 90) == 2.0
    rng = np.random.default_rng(3)
    errors = [rng.normal(0, 1, (3, 7)) * np.array([[1.0], [1.0], [1.5]]) for _ in range(12)]
    for level in (80, 90):
        assert widening(errors, level) == pytest.approx(expected_widening(errors, level))
        assert widening(errors, level) > 1


def test_widening_never_narrows_and_needs_two_windows():
    """Smaller latest errors give 1; so do single windows and earlier windows without error."""
    shrinking = [np.array([[4.0, -4.0, 3.0], [1.0, 1.0, -1.0]])]
    assert widening(shrinking, 80) == 1.0
    assert widening([np.array([[4.0, 2.0, 5.0]])], 90) == 1.0
    assert widening([np.array([[0.0, 0.0], [3.0, 3.0]])], 90) == 1.0
    mixed = [np.array([[0.0, 0.0], [3.0, 3.0]]), np.array([[1.0, 1.0], [3.0, 3.0]])]
    assert widening(mixed, 90) == 3.0  # the series without earlier error is left out


def naive_errors(y: np.ndarray, horizon: int, folds: int) -> np.ndarray:
    """(folds, horizon) errors of the naive forecast in each rolling-origin window."""
    n = len(y)
    starts = [n - horizon * (folds - i) for i in range(folds)]
    return np.stack([y[c : c + horizon] - y[c - 1] for c in starts])


def test_run_intervals_are_the_conformal_half_widths_times_the_runs_widening():
    """Each series' half width at each level is its conformal half width over all its backtest
    errors times the run's widening for that level (naive forecasts: errors by hand)."""
    rng = np.random.default_rng(4)
    values = {f"s{i}": 100 + np.cumsum(rng.normal(0, 1 + i, 40)) for i in range(4)}

    result = backtest_and_forecast(
        long_frame(values), 5, folds=3, models=("naive",), n_jobs=1, progress=False
    )

    errors = {uid: naive_errors(y, 5, 3) for uid, y in values.items()}
    for level in (80, 90):
        assert result.widening[level] == pytest.approx(
            expected_widening(list(errors.values()), level)
        )
    assert set(result.widening) == {80, 90}
    for uid, frame in result.forecasts.groupby("unique_id"):
        for level, column in ((90, "yhat_upper"), (80, "yhat_upper_80")):
            half = result.widening[level] * conformal(errors[uid], level)
            np.testing.assert_allclose(frame[column] - frame.yhat, half, err_msg=uid)


def test_widened_intervals_still_nest():
    """Three steady series and five whose earlier windows had one spike and whose latest
    window drifted: every 80 % interval still lies inside its 90 % one."""
    steady = np.concatenate([np.full(16, 50.0), np.full(7, 51.0), np.full(7, 52.0), np.full(7, 53)])
    spiky = np.concatenate(
        [np.full(16, 50.0), [51.0] * 6 + [150.0], np.full(7, 151.0), np.full(7, 161.0)]
    )
    values = {**{f"steady{i}": steady for i in range(3)}, **{f"spiky{i}": spiky for i in range(5)}}
    df = long_frame(values)

    result = backtest_and_forecast(df, 7, folds=3, models=("naive",), n_jobs=1, progress=False)

    f = result.forecasts
    assert (f.yhat_lower <= f.yhat_lower_80).all() and (f.yhat_upper_80 <= f.yhat_upper).all()
