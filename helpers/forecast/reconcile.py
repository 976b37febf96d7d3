"""Coherent forecasts: products add up to their category and categories to the total.

Each series is forecast on its own, so the levels disagree (the products' sum was 14 % below the
total's forecast). hierarchicalforecast's reconciliation methods project the forecasts onto ones
that add up: bottom-up, and MinTrace with OLS, structural (WLS) and shrunk-covariance (MinT)
weights, the last estimated from backtest errors. :func:`choose` picks the method whose
reconciled backtests score best, every level weighted alike. Forecasts of series that cannot be
negative stay non-negative (MinTrace's non-negative solver, used only when the plain projection
goes below zero).
"""

from __future__ import annotations

import importlib
import threading
import warnings

import numpy as np
import pandas as pd

METHODS = ("bottom_up", "mint_ols", "mint_wls_struct", "mint_shrink")
_MINTRACE = {"mint_ols": "ols", "mint_wls_struct": "wls_struct", "mint_shrink": "mint_shrink"}


def import_in_background() -> threading.Thread:
    """Start importing hierarchicalforecast's methods in a thread, and return it to join.

    The import takes 2.5 s of CPU (scikit-learn, scipy.stats). Started before the worker
    processes fit, it runs while this process waits for them, instead of after.

    Examples
    --------
    >>> import_in_background().join()
    >>> import sys; "hierarchicalforecast.methods" in sys.modules
    True
    """
    thread = threading.Thread(
        target=importlib.import_module,
        args=("hierarchicalforecast.methods",),
        name="import-hierarchicalforecast",
        daemon=True,
    )
    thread.start()
    return thread


def reconcile(
    method: str,
    summing: pd.DataFrame,
    yhat: np.ndarray,
    nonnegative: bool,
    errors: np.ndarray | None = None,
) -> np.ndarray:
    """Forecasts ``yhat`` (series in ``summing``'s row order x steps) made to add up.

    Parameters
    ----------
    method : {"bottom_up", "mint_ols", "mint_wls_struct", "mint_shrink"}
        The reconciliation; ``mint_shrink`` needs ``errors``.
    summing : pandas.DataFrame
        The summing matrix: one row per series, one column per bottom series.
    yhat : numpy.ndarray
        Base forecasts, one row per series of ``summing``.
    nonnegative : bool
        Keep every reconciled forecast at zero or above.
    errors : numpy.ndarray, optional
        Backtest errors (actual minus forecast), one row per series, for ``mint_shrink``.

    Examples
    --------
    >>> summing = pd.DataFrame([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    >>> reconcile("bottom_up", summing, np.array([[9.0], [4.0], [6.0]]), True).ravel().tolist()
    [10.0, 4.0, 6.0]
    """
    from hierarchicalforecast.methods import MinTrace

    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    S = summing.to_numpy(dtype=float)
    if method == "bottom_up":
        bottom = yhat[-S.shape[1] :]
        return S @ (np.clip(bottom, 0, None) if nonnegative else bottom)
    extra = {}
    if method == "mint_shrink":
        if errors is None:
            raise ValueError("mint_shrink needs backtest errors")
        # MinTrace takes actuals and fitted values; only their difference matters
        extra = {"y_insample": errors, "y_hat_insample": np.zeros_like(errors)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = MinTrace(_MINTRACE[method]).fit_predict(S=S, y_hat=yhat, **extra)
        if nonnegative and (result["mean"] < -1e-9).any():
            solver = MinTrace(_MINTRACE[method], nonnegative=True)
            result = solver.fit_predict(S=S, y_hat=yhat, **extra)
    mean = result["mean"]
    return np.clip(mean, 0, None) if nonnegative else mean


def choose(
    summing: pd.DataFrame,
    backtests: np.ndarray,
    actuals: np.ndarray,
    scales: np.ndarray,
    nonnegative: bool,
) -> tuple[str, dict[str, np.ndarray]]:
    """The method whose reconciled backtests have the lowest mean MASE over every series.

    ``backtests`` and ``actuals`` are (folds, series, steps); ``scales`` divides each series'
    absolute errors (its in-sample seasonal naive MAE). Every series counts once, so a run of
    many products picks what serves the products (weighting each level alike picked MinT-OLS on
    200 generated products: the total's holdout MASE 0.80 instead of bottom-up's 0.94, but the
    products' 0.98 instead of 0.95). MinT's covariance for a fold comes from the other folds'
    errors, so a fold is never scored with weights learned from itself. Returns the method and
    every method's reconciled backtests.
    """
    folds = len(backtests)
    errors = actuals - backtests
    reconciled: dict[str, np.ndarray] = {}
    for method in METHODS:
        if method == "mint_shrink" and folds < 2:
            continue
        try:
            reconciled[method] = np.stack(
                [
                    reconcile(
                        method,
                        summing,
                        backtests[fold],
                        nonnegative,
                        np.concatenate(
                            [errors[other] for other in range(folds) if other != fold], axis=1
                        )
                        if method == "mint_shrink"
                        else None,
                    )
                    for fold in range(folds)
                ]
            )
        except Exception:  # MinT raises a bare Exception when errors are about zero: skip it
            continue

    def loss(forecasts: np.ndarray) -> float:
        return float(np.nanmean(np.abs(actuals - forecasts).mean(axis=(0, 2)) / scales))

    best = min(reconciled, key=lambda method: loss(reconciled[method]))
    return best, reconciled
