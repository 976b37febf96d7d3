"""The forecast benchmark's list of series the default does not beat the seasonal naive on,
checked on real monthly series against the wins its table counts."""

from __future__ import annotations

import pytest

from benchmarks.forecast import DEFAULT, evaluate, losses, split, table
from benchmarks.real_series import real_panels
from helpers.forecast import backtest_and_forecast, seasonal_naive

SERIES = ("datasets/AirPassengers", "fpp2/elecequip", "fpp2/usmelec", "forecast/wineind")
MODELS = ("auto_ets", "auto_theta", "seasonal_naive", "naive")


@pytest.fixture(scope="module")
def scored():
    """The default (a small model set) and the seasonal naive forecast of four real monthly
    series, scored on their last 12 months, with the default's choices."""
    panel = next(p for p in real_panels() if p.name == "monthly")
    train, test = split(panel.series[panel.series.unique_id.isin(SERIES)], panel.horizon)
    result = backtest_and_forecast(
        train, panel.horizon, panel.freq, models=MODELS, n_jobs=1, progress=False
    )
    forecasts = {
        DEFAULT: result.forecasts.drop(columns="model"),
        "SeasonalNaive": seasonal_naive(train, panel.horizon, panel.freq, 12),
    }
    results = {name: evaluate(f, train, test, 12) for name, f in forecasts.items()}
    return results, result.choices


def test_losses_are_the_series_the_table_does_not_count_as_wins(scored):
    """One row per series whose MASE is not below the seasonal naive's, worst first, with the
    model the selection took, its backtest MASE and the reason, as in ``choices``."""
    results, choices = scored
    lost = losses(results, choices)
    mase = {name: r.set_index("unique_id")["mase"] for name, r in results.items()}
    expected = {uid for uid in SERIES if not mase[DEFAULT][uid] < mase["SeasonalNaive"][uid]}
    assert 0 < len(expected) < len(SERIES)  # both sides happen on these series
    assert set(lost.unique_id) == expected
    wins = table(results, {}).loc[DEFAULT, "beats_snaive"]
    assert len(lost) == round((1 - wins) * len(SERIES))
    assert list(lost.columns) == [
        "unique_id",
        "mase",
        "snaive_mase",
        "model",
        "backtest_mase",
        "reason",
    ]
    excess = lost.mase - lost.snaive_mase
    assert excess.is_monotonic_decreasing and (excess >= 0).all()
    chose = choices.set_index("unique_id")
    for row in lost.itertuples():
        assert row.snaive_mase == mase["SeasonalNaive"][row.unique_id]
        assert (row.model, row.reason) == tuple(chose.loc[row.unique_id, ["model", "reason"]])
        assert row.backtest_mase == chose.loc[row.unique_id, "backtest_mase"]


@pytest.mark.parametrize(("factor", "listed"), [(1.0, len(SERIES)), (0.999, 0)])
def test_a_tie_with_the_seasonal_naive_is_a_loss_and_any_lower_mase_a_win(scored, factor, listed):
    """The edge: a default equal to the seasonal naive on every series loses on each; one a
    thousandth lower wins on each. The panel column is kept when the results have one."""
    results, choices = scored
    baseline = results["SeasonalNaive"].assign(panel="monthly")
    same = {DEFAULT: baseline.assign(mase=baseline.mase * factor), "SeasonalNaive": baseline}
    lost = losses(same, choices)
    assert len(lost) == listed
    assert list(lost.columns[:2]) == ["unique_id", "panel"]
