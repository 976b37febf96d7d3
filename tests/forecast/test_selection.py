"""Backtests and the choice per series: argument checks, folds, candidates and combinations,
the choice rule recomputed from the metrics, fallbacks for short series, scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from helpers.forecast import (
    CHOSEN,
    FORECAST_COLUMNS,
    METRIC_COLUMNS,
    backtest,
    backtest_and_forecast,
    forecast,
    intervals,
    naive,
    scores,
    seasonal_naive,
    series_from_daily_sales,
    summarize,
)
from helpers.forecast.models import SeriesTask, fit_series
from tests.forecast.support import FAST, assert_forecast_frame, last_dates, long_frame, promoted

SET = ("auto_ets", "auto_theta", "mstl", "seasonal_naive", "naive")  # three to combine
COMBINATIONS = ("median", "weighted")
BASELINES = ("seasonal_naive", "naive")
HORIZON, FOLDS = 7, 3


def step_series() -> np.ndarray:
    """60 days whose level jumps right before each backtest window: the naive forecast is
    nearly right in every window, smoothing models lag behind."""
    rng = np.random.default_rng(0)
    y = np.concatenate([np.full(38, 20.0), np.full(7, 60.0), np.full(7, 100.0), np.full(8, 140.0)])
    return y + rng.normal(0, 0.5, 60)


def noise_series() -> np.ndarray:
    """60 days of independent noise around 30."""
    rng = np.random.default_rng(1)
    return 30 + rng.normal(0, 3, 60)


def run(df, horizon=HORIZON, folds=FOLDS, models=SET, **kwargs):
    return backtest_and_forecast(
        df, horizon, folds=folds, models=models, n_jobs=1, progress=False, **kwargs
    )


@pytest.fixture(scope="module")
def series(daily_sales) -> pd.DataFrame:
    """The generated products, a series of level jumps and a stationary noisy one."""
    products = series_from_daily_sales(daily_sales, level="product")
    made = long_frame({"step": step_series(), "noise": noise_series()}, start="2025-12-01")
    return pd.concat([products, made], ignore_index=True)


@pytest.fixture(scope="module")
def result(series):
    return run(series)


def cutoffs(n: int, horizon: int = HORIZON, folds: int = FOLDS) -> list[int]:
    """Fold i of k trains on all but the last horizon * (k - i) points."""
    return [n - horizon * (folds - i) for i in range(folds)]


def window_mae(metrics: pd.DataFrame, uid: str) -> pd.DataFrame:
    """Folds x candidates: each candidate's MAE in each backtest window."""
    rows = metrics[(metrics.unique_id == uid) & (metrics.model != CHOSEN)]
    return rows.pivot(index="fold", columns="model", values="mae")


def expected_choice(mae: pd.DataFrame) -> str:
    """The selection rule as documented: the combination with the lower mean absolute error,
    unless one model beats that combination in every backtest window; with no combination,
    the model with the lowest mean absolute error."""
    means = mae.mean()
    singles = means.drop([c for c in COMBINATIONS if c in means.index])
    best_single = singles.idxmin()
    combinations = means[[c for c in COMBINATIONS if c in means.index]]
    if combinations.empty:
        return best_single
    combination = combinations.idxmin()
    return best_single if (mae[best_single] < mae[combination]).all() else combination


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": 0}, "horizon must be 1 or more, got 0"),
        ({"folds": 0}, "folds must be 1 or more, got 0"),
        ({"level": 1.0}, r"level must be between 0 and 1 \(0.9 for 90 %\), got 1.0"),
        ({"level": 0.0}, "level must be between 0 and 1"),
        ({"level": 90}, "level must be between 0 and 1 .*got 90"),
        ({"models": ("prophet", "lstm")}, r"models must be some of .*got \['prophet', 'lstm'\]"),
        ({"models": ()}, r"models must be some of .*got \[\]"),
        ({"freq": "h"}, "freq 'h' is not one frequency"),
    ],
)
def test_arguments_are_checked_naming_the_problem(kwargs, message):
    """Each bad argument is refused with a message that names it and the value given."""
    df = long_frame({"a": noise_series()})
    arguments = {"horizon": HORIZON, "folds": FOLDS, "models": FAST, **kwargs}

    with pytest.raises(ValueError, match=message):
        backtest_and_forecast(df, n_jobs=1, progress=False, **arguments)


def test_smallest_arguments_are_accepted():
    """One step, one fold, and levels just inside (0, 1) work."""
    df = long_frame({"a": noise_series()})

    result = run(df, horizon=1, folds=1, models=FAST, level=0.99)

    assert len(result.forecasts) == 1
    assert result.metrics.fold.unique().tolist() == [0]
    assert run(df, horizon=1, folds=1, models=FAST, level=0.01).forecasts.shape == (1, 8)


def test_forecasts_have_the_columns_rows_and_dates(series, result):
    """FORECAST_COLUMNS, horizon rows per series on the next days, nested non-negative
    intervals, and each series' model as chosen."""
    assert_forecast_frame(result.forecasts, last_dates(series), HORIZON)
    models = result.forecasts.groupby("unique_id")["model"].first()
    assert models.to_dict() == result.choices.set_index("unique_id")["model"].to_dict()


def test_the_choice_follows_the_rule_recomputed_from_the_metrics(series, result):
    """Each series takes what the documented rule gives on its backtest errors per window;
    the jumping series is one where a single model beats the combinations in every window."""
    choices = result.choices.set_index("unique_id")
    for uid in series.unique_id.unique():
        mae = window_mae(result.metrics, uid)
        assert set(mae.columns) == {*SET, *COMBINATIONS}, uid
        assert choices.loc[uid, "model"] == expected_choice(mae), uid
    taken = set(choices["model"])
    assert taken & set(COMBINATIONS) and taken - set(COMBINATIONS)  # both branches happen
    assert choices.loc["step", "model"] == "naive"


def test_choices_say_why_with_the_chosen_mase_and_the_runner_up(result):
    """choices: one row per series with the chosen candidate's backtest MASE (mean over
    folds), the runner-up (the other candidate with the lowest mean error) and a reason."""
    assert list(result.choices.columns) == [
        "unique_id",
        "model",
        "backtest_mase",
        "runner_up",
        "runner_up_mase",
        "folds",
        "reason",
    ]
    metrics = result.metrics[result.metrics.model != CHOSEN]
    for choice in result.choices.itertuples():
        rows = metrics[metrics.unique_id == choice.unique_id]
        mean = rows.groupby("model")[["mae", "mase"]].mean()
        assert choice.backtest_mase == pytest.approx(mean.loc[choice.model, "mase"])
        others = mean.drop(choice.model)
        assert choice.runner_up == others["mae"].idxmin()
        assert choice.runner_up_mase == pytest.approx(mean.loc[choice.runner_up, "mase"])
        assert choice.folds == FOLDS
        assert f"{choice.backtest_mase:.2f}" in choice.reason


def test_chosen_metric_rows_exist_per_series_and_fold(series, result):
    """The chosen forecast has metric rows for every series and fold; without a hierarchy they
    are the chosen candidate's."""
    assert list(result.metrics.columns) == METRIC_COLUMNS
    chosen = result.metrics[result.metrics.model == CHOSEN]
    expected = {(uid, fold) for uid in series.unique_id.unique() for fold in range(FOLDS)}
    assert set(zip(chosen.unique_id, chosen.fold, strict=True)) == expected
    assert len(chosen) == len(expected)
    picked = result.metrics.merge(result.choices[["unique_id", "model"]])
    merged = chosen.merge(picked, on=["unique_id", "fold"], suffixes=("", "_candidate"))
    for column in ("mae", "rmse", "smape", "mase"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_candidate"])


def test_combinations_are_the_median_and_inverse_error_weighted_mean(series, result):
    """Refitting each series' models: the median candidate is the three models' median and the
    weighted one their mean weighted by 1 / MAE over all windows."""
    for uid, frame in series.groupby("unique_id"):
        y = frame.y.to_numpy()
        points = cutoffs(len(y))
        task = SeriesTask(uid, y, frame.ds.to_numpy(), "D", HORIZON, tuple(points), SET, None)
        fit = fit_series(task)
        members = np.stack([fit.backtests[name] for name in SET if name not in BASELINES])
        assert (members >= 0).all(), uid  # so clipping at zero plays no part
        actuals = np.stack([y[c : c + HORIZON] for c in points])
        mae = np.abs(actuals - members).mean(axis=(1, 2))
        weights = (1 / mae) / (1 / mae).sum()
        expected = {
            "median": np.median(members, axis=0),
            "weighted": np.einsum("m,mfs->fs", weights, members),
        }
        got = window_mae(result.metrics, uid)
        for name, predictions in expected.items():
            np.testing.assert_allclose(
                got[name], np.abs(actuals - predictions).mean(axis=1), rtol=1e-9, err_msg=uid
            )


@pytest.mark.parametrize(
    ("models", "combined"),
    [
        (("auto_ets", "naive"), False),  # one model besides the baselines: nothing to combine
        (("auto_ets", "auto_theta", "naive"), True),
    ],
)
def test_combinations_need_two_models_besides_the_baselines(models, combined):
    """The median and weighted candidates exist from two non-baseline models on."""
    result = run(long_frame({"a": noise_series()}), models=models)

    candidates = set(result.metrics.model) - {CHOSEN}
    assert candidates == set(models) | (set(COMBINATIONS) if combined else set())


def test_metrics_are_the_scores_of_each_rolling_origin_window():
    """Fold i of k trains on all but the last horizon * (k - i) points: the baselines' scores
    in each window, worked out with numpy."""
    rng = np.random.default_rng(5)
    y = rng.integers(5, 40, 40).astype(float)
    horizon, folds = 5, 3

    result = run(long_frame({"a": y}), horizon=horizon, folds=folds, models=BASELINES)

    metrics = result.metrics.set_index(["model", "fold"])
    for fold, cutoff in enumerate(cutoffs(40, horizon, folds)):
        actual, history = y[cutoff : cutoff + horizon], y[:cutoff]
        scale = np.abs(history[7:] - history[:-7]).mean()
        for model, predicted in (
            ("naive", np.full(horizon, y[cutoff - 1])),
            ("seasonal_naive", y[cutoff - 7 : cutoff - 2]),
        ):
            errors = np.abs(actual - predicted)
            row = metrics.loc[(model, fold)]
            assert row.mae == pytest.approx(errors.mean())
            assert row.rmse == pytest.approx(np.sqrt((errors**2).mean()))
            assert row.smape == pytest.approx(200 * np.mean(errors / (actual + predicted)))
            assert row.mase == pytest.approx(errors.mean() / scale)


@pytest.mark.parametrize("folds", [1, 3])
def test_a_series_one_point_short_of_a_window_falls_back_to_the_seasonal_naive(folds):
    """A fold needs the horizon plus two seasons and two points of training: at exactly that
    length a series gets one fold; one point less and it gets the seasonal naive forecast,
    with the reason."""
    enough = HORIZON + 2 * 7 + 2
    y = noise_series()
    df = long_frame({"enough": y[:enough], "short": y[: enough - 1]})

    result = run(df, folds=folds, models=FAST)

    choices = result.choices.set_index("unique_id")
    assert choices.loc["enough", "folds"] == 1
    assert set(result.metrics.query("unique_id == 'enough'").fold) == {0}
    assert choices.loc["short", "model"] == "seasonal_naive"
    assert choices.loc["short", "folds"] == 0
    assert choices.loc["short", "reason"] == (
        f"{enough - 1} points are too few to backtest (a window of {HORIZON} needs {enough}); "
        "seasonal_naive with its own interval"
    )
    assert "short" not in set(result.metrics.unique_id)
    short = result.forecasts[result.forecasts.unique_id == "short"]
    assert short.yhat.tolist() == y[enough - 8 : enough - 1].tolist()


def test_folds_that_do_not_fit_are_dropped_from_the_earliest():
    """Three folds need three windows plus two seasons and two points; one point less drops
    the earliest fold, and the windows that remain end at the end of the series."""
    needed = 3 * HORIZON + 16
    y = noise_series()
    df = long_frame({"three": y[:needed], "two": y[: needed - 1]})

    result = run(df, models=("naive",))

    assert result.choices.set_index("unique_id").folds.to_dict() == {"three": 3, "two": 2}
    two = result.metrics[(result.metrics.unique_id == "two") & (result.metrics.model == "naive")]
    for fold, cutoff in enumerate([needed - 1 - 2 * HORIZON, needed - 1 - HORIZON]):
        expected = np.abs(y[cutoff : cutoff + HORIZON] - y[cutoff - 1]).mean()
        assert two[two.fold == fold].mae.iloc[0] == pytest.approx(expected)


def test_short_series_get_baselines_with_their_own_intervals():
    """Under a window, a season or more gets the seasonal naive forecast and less than a
    season the naive one, each with its normal interval at 80 % and at the level asked."""
    y = noise_series()
    df = long_frame({"long": y[:40], "ten_days": y[:10], "four_days": y[:4]})

    result = run(df, models=FAST, level=0.9)

    assert_forecast_frame(result.forecasts, last_dates(df), HORIZON)
    models = result.choices.set_index("unique_id")["model"].to_dict()
    assert models["ten_days"] == "seasonal_naive" and models["four_days"] == "naive"
    ten = result.forecasts[result.forecasts.unique_id == "ten_days"]
    four = result.forecasts[result.forecasts.unique_id == "four_days"]
    assert ten.yhat.tolist() == y[3:10].tolist()
    assert (four.yhat == y[3]).all()
    sigma = np.std(y[7:10] - y[:3], ddof=1)
    np.testing.assert_allclose(ten.yhat_upper - ten.yhat, norm.ppf(0.95) * sigma)
    np.testing.assert_allclose(ten.yhat_upper_80 - ten.yhat, norm.ppf(0.9) * sigma)
    baseline = seasonal_naive(df[df.unique_id == "ten_days"], HORIZON, season_length=7, level=0.9)
    np.testing.assert_allclose(ten.yhat_lower, baseline.yhat_lower)
    eighty = naive(df[df.unique_id == "four_days"], HORIZON, level=0.8)
    np.testing.assert_allclose(four.yhat_lower_80, eighty.yhat_lower)


@pytest.mark.parametrize(
    ("freq", "points", "horizon"),
    [
        ("D", 40, 5),
        ("B", 40, 5),
        ("W-SUN", 112, 4),
        ("MS", 36, 6),
        ("ME", 36, 6),
        ("QS", 16, 4),
        ("QE-DEC", 16, 4),
    ],
)
def test_forecasts_fall_on_the_next_periods_at_each_frequency(freq, points, horizon):
    """Every frequency gets a backtested forecast (enough points for one fold) on its dates."""
    rng = np.random.default_rng(6)
    df = long_frame({"a": 50 + rng.normal(0, 4, points)}, start="2017-01-01", freq=freq)

    result = run(df, horizon=horizon, folds=1, models=("auto_ets", "naive"), freq=freq)

    assert_forecast_frame(result.forecasts, last_dates(df), horizon, freq=freq)
    assert result.choices.folds.tolist() == [1]


def test_a_falling_count_is_never_forecast_below_zero():
    """A count falling to zero: forecasts and bounds stay at 0 or above."""
    rng = np.random.default_rng(7)
    y = np.clip(np.linspace(30, 0, 60) + rng.normal(0, 1, 60), 0, None)
    df = long_frame({"fading": y})

    result = run(df, horizon=14, folds=2, models=("auto_ets", "auto_theta", "naive"))

    assert_forecast_frame(result.forecasts, last_dates(df), 14)
    assert result.forecasts.yhat_lower.min() == 0


def test_a_series_that_goes_below_zero_keeps_negative_forecasts():
    """Only series that never go below zero are clipped: a series around -50 stays there."""
    df = long_frame({"below": -50 + noise_series() - 30})

    result = run(df, models=FAST)

    assert_forecast_frame(result.forecasts, last_dates(df), HORIZON, nonnegative=False)
    assert (result.forecasts.yhat_upper < 0).all()


def test_a_model_that_fails_is_named_in_the_reason_and_left_out():
    """Prophet cannot learn an unknown country's holidays: the others are chosen from, and
    the reason names it."""
    df = long_frame({"a": noise_series()[:40]})

    result = run(df, models=("prophet", "auto_ets", "naive"), folds=2, country="XX")

    assert "prophet" not in set(result.metrics.model)
    assert result.choices.reason.iloc[0].endswith("; could not fit prophet")
    assert_forecast_frame(result.forecasts, last_dates(df), HORIZON)


def test_prophet_competes_on_generated_sales(daily_sales):
    """With Prophet in the set, it is backtested beside the others on the generated total."""
    total = series_from_daily_sales(daily_sales, level="total")

    result = run(total, folds=2, models=("prophet", "auto_ets", "seasonal_naive", "naive"))

    assert {"prophet", "auto_ets", *COMBINATIONS} <= set(result.metrics.model)
    assert result.choices.reason.str.contains("could not fit").sum() == 0
    assert_forecast_frame(result.forecasts, last_dates(total), HORIZON)


def test_forecast_and_backtest_are_the_two_halves_of_backtest_and_forecast():
    """forecast() gives the forecasts and backtest() the metrics of the same run."""
    df = long_frame({"a": noise_series(), "b": step_series()})
    options = {"models": FAST, "n_jobs": 1, "progress": False}

    full = backtest_and_forecast(df, HORIZON, folds=2, **options)

    pd.testing.assert_frame_equal(forecast(df, HORIZON, folds=2, **options), full.forecasts)
    pd.testing.assert_frame_equal(backtest(df, HORIZON, folds=2, **options), full.metrics)


def test_scores_match_numpy():
    """MAE, RMSE, sMAPE (0/0 as 0) and MASE against the seasonal naive scale."""
    actual = np.array([3.0, 0.0, 5.0, 2.0])
    predicted = np.array([1.0, 0.0, 6.0, 2.0])
    history = np.array([1.0, 4.0, 2.0, 6.0, 3.0])

    metrics = scores(actual, predicted, history, season_length=2)

    assert metrics["mae"] == pytest.approx(3 / 4)
    assert metrics["rmse"] == pytest.approx(np.sqrt(5 / 4))
    assert metrics["smape"] == pytest.approx(200 / 4 * (2 / 4 + 0 + 1 / 11 + 0))
    assert metrics["mase"] == pytest.approx((3 / 4) / np.mean([1.0, 2.0, 1.0]))


@pytest.mark.parametrize(
    "history",
    [np.ones(5), np.array([1.0, 2.0])],  # no seasonal change; no seasonal difference at all
)
def test_mase_is_nan_without_a_scale(history):
    """A history with no seasonal error (or too short for one) has no MASE."""
    metrics = scores(np.array([1.0, 2.0]), np.array([1.0, 1.0]), history, season_length=2)

    assert np.isnan(metrics["mase"])
    assert metrics["mae"] == 0.5


def test_summarize_averages_each_metric_per_model_best_mase_first(result):
    """summarize is the mean of each metric per model over series and folds, by MASE."""
    summary = summarize(result.metrics)

    expected = result.metrics.groupby("model")[["mae", "rmse", "smape", "mase"]].mean()
    pd.testing.assert_frame_equal(summary.sort_index(), expected.sort_index())
    assert summary["mase"].is_monotonic_increasing


@pytest.fixture(scope="module")
def promotions():
    """A series 25 higher on promoted days, its promotion plan over the history and the week
    ahead (a column per series), and the forecast without the plan."""
    y, x = promoted(70)
    df = long_frame({"promo": y})
    plan = pd.DataFrame({"promo": x}, index=pd.date_range("2026-01-01", periods=77))
    options = {"folds": 2, "models": ("auto_arima", "naive")}
    return df, plan, run(df, **options), options


def test_a_promotion_plan_lifts_the_forecast_on_promoted_days(promotions):
    """Given the plan over the horizon, the forecast rises on the promoted days ahead."""
    df, plan, _, options = promotions

    result = run(df, regressors=plan, **options)

    forecasts = result.forecasts.set_index("ds")
    ahead = plan["promo"].reindex(forecasts.index) == 1
    assert ahead.sum() == 2
    lift = forecasts.yhat[ahead].mean() - forecasts.yhat[~ahead].mean()
    assert 15 < lift < 35


@pytest.mark.parametrize(
    "plan_of",
    [
        lambda plan: plan.iloc[:70],  # known over the history only
        lambda plan: plan.drop(plan.index[40]),  # a day missing
        lambda plan: plan.rename(columns={"promo": "other"}),  # another series' plan
    ],
    ids=["history_only", "a_day_missing", "other_series"],
)
def test_a_plan_that_does_not_cover_the_series_and_horizon_is_not_used(promotions, plan_of):
    """A regressor that is not known for every day of the series and the horizon is left out:
    the same forecast as without it."""
    df, plan, without, options = promotions

    result = run(df, regressors=plan_of(plan), **options)

    pd.testing.assert_frame_equal(result.forecasts, without.forecasts)
    pd.testing.assert_frame_equal(result.metrics, without.metrics)


def test_the_80_percent_columns_are_given_when_80_percent_is_the_level():
    """The 80 % interval is always given, also when it is the main one."""
    df = long_frame({"a": noise_series()})

    result = run(df, models=FAST, level=0.8)

    assert result.forecasts[FORECAST_COLUMNS[5:7]].notna().all().all()
    np.testing.assert_allclose(result.forecasts.yhat_lower_80, result.forecasts.yhat_lower)


def test_a_short_series_below_zero_keeps_its_seasonal_naive_forecast():
    """The seasonal naive forecast of a short series repeats its last season, also below 0."""
    y = -noise_series()[:10]

    result = run(long_frame({"a": y}), models=FAST)

    assert result.choices.model.tolist() == ["seasonal_naive"]
    np.testing.assert_allclose(result.forecasts.yhat, y[3:10])


def weekly_noise(n_series: int, days: int, seed: int = 11) -> dict[str, np.ndarray]:
    """Series of a weekly pattern and independent normal noise (sd 4 around 20-50 a day)."""
    rng = np.random.default_rng(seed)
    week = np.array([30.0, 32, 35, 38, 50, 25, 20])
    return {
        f"s{i:02d}": week[np.arange(days) % 7] + rng.normal(0, 4, days) for i in range(n_series)
    }


def test_period_totals_sum_the_days_and_their_intervals_cover_the_held_out_weeks():
    """A week's total gets its own interval: days' misses partly cancel, so it is narrower
    than the days' intervals added up, and it still covers the weeks held out about as often
    as it says (26 of 30 here; 90 % asked)."""
    values = weekly_noise(30, 98 + 28)
    history = long_frame({uid: y[:98] for uid, y in values.items()})
    result = backtest_and_forecast(
        history, 28, folds=3, models=("seasonal_naive", "naive"), n_jobs=1, progress=False
    )

    periods = result.periods.set_index(["unique_id", "days"])
    assert sorted(result.periods["days"].unique()) == [7, 28]
    covered = []
    for uid, frame in result.forecasts.groupby("unique_id"):
        for days in (7, 28):
            ahead, total = frame.iloc[:days], periods.loc[(uid, days)]
            assert total.yhat == pytest.approx(ahead.yhat.sum())
            assert total.yhat_lower <= total.yhat_lower_80 <= total.yhat <= total.yhat_upper_80
            assert total.yhat_upper_80 <= total.yhat_upper
            width = total.yhat_upper - total.yhat_lower
            assert width < ahead.yhat_upper.sum() - ahead.yhat_lower.sum()
        actual = values[uid][98:105].sum()
        covered.append(
            periods.loc[(uid, 7)].yhat_lower <= actual <= periods.loc[(uid, 7)].yhat_upper
        )
    assert 0.8 <= np.mean(covered) < 1.0


def test_period_totals_of_other_frequencies_are_the_horizon_and_short_series_add_up_days():
    """Weeks of weekly data are not days: only the horizon's total. A series too short to
    backtest has its days' intervals added up."""
    weekly = long_frame({"w": 100 + np.arange(40.0)}, freq="W-SUN")
    result = backtest_and_forecast(weekly, 6, "W-SUN", folds=2, models=FAST, progress=False)
    assert result.periods["days"].tolist() == [6]

    short = long_frame({"new": np.array([5.0, 7, 6, 8, 9, 6, 7, 8, 5, 6])})
    result = backtest_and_forecast(short, 7, folds=2, models=FAST, progress=False)
    total, days = result.periods.iloc[0], result.forecasts
    assert total.days == 7 and total.yhat_lower == pytest.approx(days.yhat_lower.sum())
    assert total.yhat_upper_80 == pytest.approx(days.yhat_upper_80.sum())


def test_a_period_backtest_error_is_how_far_the_backtests_totals_missed():
    """The mean absolute miss of each window's first-week total over the mean actual total."""
    values = weekly_noise(3, 98)
    result = backtest_and_forecast(
        long_frame(values), 14, folds=2, models=("seasonal_naive", "naive"), progress=False
    )
    metrics = result.metrics[result.metrics.model == CHOSEN]

    for uid, y in values.items():
        error = result.periods.set_index(["unique_id", "days"]).loc[(uid, 7), "backtest_error"]
        windows = [(98 - 14 * (2 - fold), fold) for fold in range(2)]
        actual = [y[start : start + 7].sum() for start, _ in windows]
        assert len(metrics[metrics.unique_id == uid]) == 2
        assert 0 < error < 0.3
        naive = [y[start - 7 : start].sum() for start, _ in windows]  # last week again
        chosen = result.choices.set_index("unique_id").loc[uid, "model"]
        if chosen == "seasonal_naive":
            expected = np.mean(np.abs(np.subtract(actual, naive))) / np.mean(actual)
            assert error == pytest.approx(expected)


def test_period_totals_widen_with_the_run_as_the_days_do():
    """Where the latest backtest windows missed more than the earlier ones, the days'
    intervals widen by the run's factor, and the period totals' by the same factor: the share
    of the daily half widths that covered the backtests' totals is measured before widening
    (measured after it, the factor cancelled out of the totals)."""
    rng = np.random.default_rng(2)
    n, cutoffs = 98, (77, 84, 91)
    spread = np.where(np.arange(n) < 91, 2.0, 8.0)  # the last window is noisier
    values = {f"s{i}": 200 + 20 * np.sin(np.arange(n) * 2 * np.pi / 7) for i in range(12)}
    values = {uid: y + rng.normal(0, spread) for uid, y in values.items()}

    result = backtest_and_forecast(
        long_frame(values), 7, folds=3, models=("seasonal_naive",), n_jobs=1, progress=False
    )

    assert result.widening[90] > 1.5
    errors = [np.stack([y[c : c + 7] - y[c - 7 : c] for c in cutoffs]) for y in values.values()]
    halves = [intervals.conformal_half_width(e.ravel(), 90) for e in errors]
    share = intervals.period_factor(errors, halves, 7, 90)
    totals = result.periods.set_index("unique_id")
    for uid, half in zip(values, halves, strict=True):
        width = totals.loc[uid, "yhat_upper"] - totals.loc[uid, "yhat"]
        assert width == pytest.approx(result.widening[90] * share * 7 * half)
