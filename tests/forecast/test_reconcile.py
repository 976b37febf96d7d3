"""Reconciliation: each method against its formula or hierarchicalforecast itself, the choice of
method on backtests, and coherent forecasts of a generated shop's levels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hierarchicalforecast.methods import MinTrace

from helpers.forecast import backtest_and_forecast, hierarchy_from_daily_sales, reconcile
from helpers.forecast.models import SeriesTask, fit_series
from tests.forecast.support import FAST, assert_forecast_frame, last_dates

# total; categories c1 (p1, p2) and c2 (p3); the products
S = pd.DataFrame(
    [[1.0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]],
    index=["total", "c1", "c2", "p1", "p2", "p3"],
    columns=["p1", "p2", "p3"],
)
YHAT = np.array(
    [
        [30.0, 33, 29],  # the total's forecasts disagree with the products' sum
        [19, 20, 18],
        [8, 9, 10],
        [9, 11, 10],
        [8, 7, 9],
        [9, 10, 11],
    ]
)


def projection(weights: np.ndarray) -> np.ndarray:
    """S (S' W^-1 S)^-1 S' W^-1 for a diagonal W: the forecasts' weighted least-squares
    projection onto coherent ones."""
    s = S.to_numpy()
    w_inv = np.diag(1 / weights)
    return s @ np.linalg.inv(s.T @ w_inv @ s) @ s.T @ w_inv


def assert_coherent(values: np.ndarray) -> None:
    """Products add up to their category, categories to the total, at every step."""
    np.testing.assert_allclose(values[0], values[1] + values[2], rtol=1e-9)
    np.testing.assert_allclose(values[1], values[3] + values[4], rtol=1e-9)
    np.testing.assert_allclose(values[2], values[5], rtol=1e-9)


def test_bottom_up_is_the_summing_matrix_times_the_bottom_forecasts():
    """Bottom-up sums the products' forecasts; negative ones count as 0 for counts."""
    result = reconcile.reconcile("bottom_up", S, YHAT, nonnegative=False)
    np.testing.assert_array_equal(result, S.to_numpy() @ YHAT[3:])

    negative = YHAT.copy()
    negative[4, 1] = -5.0
    kept = reconcile.reconcile("bottom_up", S, negative, nonnegative=False)
    clipped = reconcile.reconcile("bottom_up", S, negative, nonnegative=True)
    np.testing.assert_array_equal(kept, S.to_numpy() @ negative[3:])
    np.testing.assert_array_equal(clipped, S.to_numpy() @ np.clip(negative[3:], 0, None))
    assert clipped[0, 1] == kept[0, 1] + 5


@pytest.mark.parametrize("nonnegative", [False, True])
def test_mint_ols_is_the_ols_projection(nonnegative):
    """MinTrace OLS is S (S'S)^-1 S' yhat; with positive results the non-negative flag changes
    nothing."""
    result = reconcile.reconcile("mint_ols", S, YHAT, nonnegative)

    np.testing.assert_allclose(result, projection(np.ones(6)) @ YHAT, rtol=1e-9)
    assert_coherent(result)


def test_mint_wls_struct_is_the_structural_projection():
    """Structural WLS weighs each series by the number of products in it."""
    result = reconcile.reconcile("mint_wls_struct", S, YHAT, nonnegative=False)

    np.testing.assert_allclose(result, projection(S.sum(axis=1).to_numpy()) @ YHAT, rtol=1e-9)
    assert_coherent(result)


def test_mint_shrink_is_hierarchicalforecasts_mint_shrink_on_the_errors():
    """MinT with a shrunk covariance of the backtest errors, as hierarchicalforecast computes
    it from actuals and fitted values (only their difference matters)."""
    rng = np.random.default_rng(0)
    errors = S.to_numpy() @ rng.normal(0, 2, (3, 30)) + rng.normal(0, 1, (6, 30))

    result = reconcile.reconcile("mint_shrink", S, YHAT, nonnegative=False, errors=errors)

    expected = MinTrace("mint_shrink").fit_predict(
        S=S.to_numpy(), y_hat=YHAT, y_insample=errors + 100, y_hat_insample=np.full((6, 30), 100)
    )["mean"]
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    assert_coherent(result)


def test_mint_shrink_needs_errors():
    """Without backtest errors there is no covariance to shrink: refused, saying so."""
    with pytest.raises(ValueError, match="mint_shrink needs backtest errors"):
        reconcile.reconcile("mint_shrink", S, YHAT, nonnegative=False)


def test_unknown_method_is_refused_naming_it():
    """A method outside the known ones is refused, naming it and the known ones."""
    with pytest.raises(ValueError, match=r"method must be one of \['bottom_up', .*got 'top_down'"):
        reconcile.reconcile("top_down", S, YHAT, nonnegative=False)


def test_non_negative_reconciliation_stays_at_or_above_zero_and_adds_up():
    """Where the OLS projection would go below zero, counts stay at 0 or above, coherently."""
    yhat = np.array([[0.0], [0.0], [0.0], [10.0], [0.0], [0.0]])
    plain = reconcile.reconcile("mint_ols", S, yhat, nonnegative=False)
    assert (plain < -1e-6).any()  # the projection alone goes negative

    result = reconcile.reconcile("mint_ols", S, yhat, nonnegative=True)

    assert (result >= 0).all()
    assert_coherent(result)
    assert result[3, 0] > 0


def losses(reconciled, actuals, scales) -> dict[str, float]:
    """choose's loss: each series' MAE over folds and steps over its scale, averaged over every
    series alike."""
    out = {}
    for method, forecasts in reconciled.items():
        mase = np.abs(actuals - forecasts).mean(axis=(0, 2)) / scales
        out[method] = float(np.nanmean(mase))
    return out


def backtest_arrays(folds: int, seed: int = 1):
    """Backtests (folds, series, steps) off by noise, worse at the top, and their actuals."""
    rng = np.random.default_rng(seed)
    bottom = rng.uniform(5, 15, (folds, 3, 4))
    actuals = np.stack([S.to_numpy() @ b for b in bottom])
    noise = rng.normal(0, 1, actuals.shape) * np.array([6, 3, 3, 1, 1, 1])[None, :, None]
    return actuals + noise, actuals


def test_choose_on_one_fold_picks_the_lowest_loss_without_mint_shrink():
    """With one fold MinT's covariance has no other fold to come from: three methods compete,
    and the one with the lowest loss wins."""
    backtests, actuals = backtest_arrays(folds=1)
    scales = np.array([4.0, 2, 2, 1, 1, 1])

    best, reconciled = reconcile.choose(S, backtests, actuals, scales, nonnegative=False)

    assert set(reconciled) == {"bottom_up", "mint_ols", "mint_wls_struct"}
    np.testing.assert_allclose(reconciled["bottom_up"][0], S.to_numpy() @ backtests[0, 3:])
    np.testing.assert_allclose(reconciled["mint_ols"][0], projection(np.ones(6)) @ backtests[0])
    scored = losses(reconciled, actuals, scales)
    assert best == min(scored, key=scored.get)


def test_choose_takes_bottom_up_when_the_bottom_is_exact():
    """Exact product forecasts and wrong aggregates: bottom-up has no error at all."""
    backtests, actuals = backtest_arrays(folds=1)
    backtests[:, 3:] = actuals[:, 3:]

    best, reconciled = reconcile.choose(S, backtests, actuals, np.ones(6), nonnegative=True)

    assert best == "bottom_up"
    np.testing.assert_allclose(reconciled["bottom_up"], actuals)


def test_choose_on_two_folds_also_weighs_mint_shrink_from_the_other_fold():
    """From two folds MinT shrink competes, each fold reconciled with the other's errors."""
    backtests, actuals = backtest_arrays(folds=2, seed=3)
    scales = np.ones(6)

    best, reconciled = reconcile.choose(S, backtests, actuals, scales, nonnegative=False)

    assert set(reconciled) == set(reconcile.METHODS)
    errors = actuals - backtests
    for fold in range(2):
        expected = MinTrace("mint_shrink").fit_predict(
            S=S.to_numpy(),
            y_hat=backtests[fold],
            y_insample=errors[1 - fold],
            y_hat_insample=np.zeros_like(errors[1 - fold]),
        )["mean"]
        np.testing.assert_allclose(reconciled["mint_shrink"][fold], expected, rtol=1e-6)
    scored = losses(reconciled, actuals, scales)
    assert best == min(scored, key=scored.get)


# -- the whole model set on a generated shop's levels ---------------------------------------


@pytest.fixture(scope="module")
def tree(daily_sales):
    return hierarchy_from_daily_sales(daily_sales, level="product")


def forecast_levels(tree, folds: int, horizon: int = 7):
    return backtest_and_forecast(
        tree.series, horizon, folds=folds, hierarchy=tree, models=FAST, n_jobs=1, progress=False
    )


@pytest.fixture(scope="module")
def one_fold(tree):
    return forecast_levels(tree, folds=1)


def recompute(tree, result, folds: int, horizon: int = 7):
    """Each series' chosen candidate refitted on its own, reconciled by every method, and the
    losses of the methods, independently of the selection code."""
    order = list(tree.summing.index)
    wide = tree.series.pivot(index="unique_id", columns="ds", values="y").loc[order]
    n = wide.shape[1]
    cutoffs = tuple(n - horizon * (folds - i) for i in range(folds))
    chosen = result.choices.set_index("unique_id")["model"]
    backtests, finals, actuals, scales = [], [], [], []
    for uid in order:
        y = wide.loc[uid].to_numpy()
        task = SeriesTask(uid, y, wide.columns.to_numpy(), "D", horizon, cutoffs, FAST, None)
        fit = fit_series(task)
        assert chosen[uid] in fit.backtests  # one non-baseline model: no combinations
        backtests.append(np.clip(fit.backtests[chosen[uid]], 0, None))
        finals.append(np.clip(fit.final[chosen[uid]], 0, None))
        actuals.append([y[c : c + horizon] for c in cutoffs])
        scales.append(np.mean([np.abs(y[7:c] - y[: c - 7]).mean() for c in cutoffs]))
    backtests, actuals = np.stack(backtests, axis=1), np.stack(actuals, axis=1)
    errors = actuals - backtests
    reconciled = {}
    for method in reconcile.METHODS:
        if method == "mint_shrink" and folds < 2:
            continue
        reconciled[method] = np.stack(
            [
                reconcile.reconcile(
                    method,
                    tree.summing,
                    backtests[fold],
                    True,
                    np.concatenate([errors[k] for k in range(folds) if k != fold], axis=1)
                    if method == "mint_shrink"
                    else None,
                )
                for fold in range(folds)
            ]
        )
    scored = {}
    for method, forecasts in reconciled.items():
        mase = np.abs(actuals - forecasts).mean(axis=(0, 2)) / np.array(scales)
        scored[method] = float(np.nanmean(mase))
    return reconciled, actuals, np.stack(finals), scored


def assert_levels_add_up(tree, forecasts: pd.DataFrame) -> None:
    """Every day: products sum to their category, categories to the total."""
    wide = forecasts.pivot(index="unique_id", columns="ds", values="yhat")
    for category in tree.levels["category"]:
        members = [p for p in tree.levels["product"] if tree.summing.loc[category, p] == 1]
        np.testing.assert_allclose(wide.loc[members].sum(), wide.loc[category], rtol=1e-9)
    total = wide.loc[tree.levels["category"]].sum()
    np.testing.assert_allclose(total, wide.loc["total"], rtol=1e-9)


def test_levels_add_up_every_day(tree, one_fold):
    """The reconciled forecasts of every level add up, with nested non-negative intervals."""
    assert one_fold.reconciliation in reconcile.METHODS
    assert_levels_add_up(tree, one_fold.forecasts)
    assert_forecast_frame(one_fold.forecasts, last_dates(tree.series), 7)


def test_the_method_with_the_lowest_loss_reconciles_the_forecasts(tree, one_fold):
    """The method is the one whose reconciled backtests score best, every level alike; the
    chosen backtests and the forecasts are that method's reconciliation."""
    reconciled, actuals, finals, scored = recompute(tree, one_fold, folds=1)

    assert set(scored) == {"bottom_up", "mint_ols", "mint_wls_struct"}
    assert scored[one_fold.reconciliation] == pytest.approx(min(scored.values()))
    method = reconciled[one_fold.reconciliation]
    chosen = one_fold.metrics[one_fold.metrics.model == "chosen"].set_index("unique_id")
    for row, uid in enumerate(tree.summing.index):
        mae = np.abs(actuals[0, row] - method[0, row]).mean()
        assert chosen.loc[uid, "mae"] == pytest.approx(mae), uid
    expected = reconcile.reconcile(one_fold.reconciliation, tree.summing, finals, True)
    wide = one_fold.forecasts.pivot(index="unique_id", columns="ds", values="yhat")
    np.testing.assert_allclose(wide.loc[tree.summing.index].to_numpy(), expected, rtol=1e-7)


def test_levels_add_up_with_two_folds_and_mint_shrink_competing(tree):
    """With two folds (and three, the default) MinT shrink competes too; the forecasts still
    add up and the method with the lowest loss wins."""
    result = forecast_levels(tree, folds=2)

    _, _, _, scored = recompute(tree, result, folds=2)
    assert set(scored) == set(reconcile.METHODS)
    assert scored[result.reconciliation] == pytest.approx(min(scored.values()))
    assert_levels_add_up(tree, result.forecasts)
    assert_forecast_frame(result.forecasts, last_dates(tree.series), 7)


def test_without_a_hierarchy_nothing_is_reconciled(tree):
    """The same series without their hierarchy are forecast each on its own."""
    products = tree.series[tree.series.level == "product"]

    result = backtest_and_forecast(products, 7, folds=1, models=FAST, n_jobs=1, progress=False)

    assert result.reconciliation is None
    chosen = result.metrics[result.metrics.model == "chosen"].set_index("unique_id")["mae"]
    picked = result.metrics.merge(result.choices[["unique_id", "model"]])
    np.testing.assert_allclose(picked.set_index("unique_id").loc[chosen.index, "mae"], chosen)


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
def test_a_shop_whose_backtests_are_exact_is_still_forecast():
    """Products selling the same every week are forecast exactly: no method fails the run."""
    week = np.array([5, 6, 7, 9, 12, 3, 2])
    days = pd.date_range("2026-01-01", periods=56)
    products = (("p1", "c1", 1), ("p2", "c1", 2), ("p3", "c2", 3))
    daily = pd.concat(
        pd.DataFrame(
            {
                "ds": days,
                "product_id": pid,
                "product_name": pid,
                "category": category,
                "units": times * week[np.arange(56) % 7],
                "revenue": 1.0,
                "orders": 1,
            }
        )
        for pid, category, times in products
    )
    tree = hierarchy_from_daily_sales(daily)

    result = forecast_levels(tree, folds=2)

    assert_levels_add_up(tree, result.forecasts)
    p3 = result.forecasts[result.forecasts.unique_id == "p3"].yhat.to_numpy()
    np.testing.assert_allclose(p3, 3 * week[np.arange(56, 63) % 7], rtol=1e-6)


def test_hierarchicalforecast_is_imported_in_a_thread_while_the_workers_fit():
    """A fresh process has not imported hierarchicalforecast's methods with this module; the
    thread does, and returns once they are importable."""
    script = (
        "import sys\n"
        "from helpers.forecast import reconcile\n"
        "assert 'hierarchicalforecast.methods' not in sys.modules\n"
        "thread = reconcile.import_in_background()\n"
        "thread.join()\n"
        "assert 'hierarchicalforecast.methods' in sys.modules and not thread.is_alive()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
