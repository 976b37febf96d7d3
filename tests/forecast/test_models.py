"""The model set per series: Prophet's data-driven settings, the statistical models' seasons, the
baselines at each cutoff, and models that fail or give non-finite forecasts being left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from statsforecast.models import ARIMA, MSTL, AutoARIMA, AutoETS, AutoTheta

from helpers.forecast import MODELS, Frequency
from helpers.forecast.models import (
    REGRESSOR,
    DateFeatures,
    SeriesTask,
    _holidays,
    _series_prophet,
    _stan_backend,
    fit_series,
    prophet_settings,
    prophet_yhat,
    regressor_effect,
)
from tests.forecast.support import promoted

WEEK = np.array([5.0, 6, 7, 9, 12, 3, 2]) * 4  # a weekly profile, far from zero
SPREAD = np.arange(-3, 4)  # a season's shape: mean 0, standard deviation 2


def weekly(n: int, noise: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` days of the weekly profile plus normal noise."""
    rng = np.random.default_rng(seed)
    return WEEK[np.arange(n) % 7] + rng.normal(0, noise, n)


def task(y, cutoffs, models, freq="D", horizon=7, country=None, regressor=None) -> SeriesTask:
    """One series of ``y`` on regular dates to fit after each cutoff."""
    ds = pd.date_range("2024-01-01", periods=len(y), freq=freq).to_numpy()
    y = np.asarray(y, dtype=float)
    return SeriesTask("s", y, ds, freq, horizon, cutoffs, models, country, regressor=regressor)


def seasons(levels, spreads) -> np.ndarray:
    """Weeks of integers, each ``level + spread * SPREAD``: mean ``level``, std ``2 * spread``."""
    pairs = zip(levels, spreads, strict=True)
    return np.concatenate([level + spread * SPREAD for level, spread in pairs])


def mode(y) -> str:
    return prophet_settings(np.asarray(y, dtype=float), Frequency.of("D"), None)["seasonality_mode"]


def test_the_model_set():
    """Prophet, the four statistical models and the two baselines."""
    assert set(MODELS) == {
        "prophet",
        "auto_ets",
        "auto_arima",
        "auto_theta",
        "mstl",
        "seasonal_naive",
        "naive",
    }


@pytest.mark.parametrize(
    ("freq", "points", "yearly"),
    [
        # daily data: 6 Fourier terms from one year (365.25 days), 10 from two
        ("D", 365, False),
        ("D", 366, 6),
        ("D", 730, 6),
        ("D", 731, 10),
        ("B", 260, False),  # 261 business days a year
        ("B", 261, 6),
        # other data: from two years, at most half the points in a year (and at most 10)
        ("W-SUN", 104, False),  # two years are 104.4 weeks
        ("W-SUN", 105, 10),
        ("MS", 23, False),
        ("MS", 24, 6),
        ("QS", 7, False),
        ("QS", 8, 2),
    ],
)
def test_prophet_yearly_seasonality_from_one_year_of_days_or_two_of_other_data(
    freq, points, yearly
):
    """Yearly seasonality starts at a year of daily data and two years of other data."""
    settings = prophet_settings(np.ones(points), Frequency.of(freq), "US")

    assert settings["yearly_seasonality"] == yearly
    assert settings["daily_seasonality"] is False


@pytest.mark.parametrize(
    ("freq", "points", "weekly_on", "country"),
    [
        ("D", 13, False, "US"),  # under two weeks
        ("D", 14, True, "US"),
        ("B", 9, False, "US"),  # two weeks are 10 business days
        ("B", 10, True, "US"),
        ("W-SUN", 200, False, None),  # weekly data has no days of the week nor holidays
        ("MS", 60, False, None),
    ],
)
def test_prophet_weekly_seasonality_and_holidays_only_for_daily_data(
    freq, points, weekly_on, country
):
    """Weekly seasonality from two weeks of daily data; holidays for daily data only."""
    settings = prophet_settings(np.ones(points), Frequency.of(freq), "US")

    assert settings["weekly_seasonality"] is weekly_on
    assert settings["country"] == country


def test_prophet_seasonality_mode_given_is_kept():
    """A mode given by the caller is used as is, whatever the data."""
    growing = seasons([20, 24, 27, 30], [1, 2, 3, 4])

    assert mode(growing) == "multiplicative"
    settings = prophet_settings(growing, Frequency.of("D"), None, "additive")
    assert settings["seasonality_mode"] == "additive"


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ([20, 24, 27, 30], "multiplicative"),  # the highest level is 1.5 times the lowest
        ([20, 24, 27, 29], "additive"),  # 1.45 times: levels too alike to tell
    ],
)
def test_seasonality_mode_needs_levels_apart_by_half(levels, expected):
    """Multiplicative needs the seasons' levels to differ by half or more."""
    assert mode(seasons(levels, [1, 2, 3, 4])) == expected


@pytest.mark.parametrize(
    ("spread_ranks", "rho", "expected"),
    [
        ([1, 4, 6, 3, 5, 9, 7, 2, 10, 8], 0.6121, "multiplicative"),
        ([1, 4, 3, 8, 7, 6, 5, 2, 10, 9], 0.6, "additive"),
        ([5, 2, 1, 4, 8, 6, 10, 3, 7, 9], 0.5879, "additive"),
        (list(range(10, 0, -1)), -1.0, "additive"),
    ],
)
def test_seasonality_mode_needs_spread_to_follow_level(spread_ranks, rho, expected):
    """Multiplicative needs a rank correlation of spread with level above 0.6."""
    levels = np.arange(40, 100, 6)  # ten seasons, rising by far more than half
    assert spearmanr(levels, spread_ranks).statistic == pytest.approx(rho, abs=1e-4)

    assert mode(seasons(levels, spread_ranks)) == expected


def test_seasonality_mode_needs_four_positive_seasons_of_different_spreads():
    """Under four seasons, with a zero, or with equal spreads the mode stays additive."""
    growing = seasons([20, 24, 27, 30], [1, 2, 3, 4])
    assert mode(growing) == "multiplicative"

    assert mode(growing[7:]) == "additive"  # three seasons
    assert growing.min() == 17
    assert mode(growing - 16) == "multiplicative"  # lowest point 1
    assert mode(growing - 17) == "additive"  # lowest point 0
    assert mode(seasons([20, 24, 27, 30], [2, 2, 2, 2])) == "additive"


@pytest.mark.parametrize(("first_cutoff", "season"), [(16, 7), (15, 1)])
def test_ets_uses_the_weekly_season_from_two_seasons_and_two_points(first_cutoff, season):
    """AutoETS is seasonal once its training data holds two seasons and two points."""
    y = weekly(40)

    fit = fit_series(task(y, (first_cutoff, first_cutoff + 7), ("auto_ets",)))

    model = AutoETS(season_length=season).fit(y[:first_cutoff])
    np.testing.assert_allclose(fit.backtests["auto_ets"][0], model.predict(h=7)["mean"])
    other = AutoETS(season_length=8 - season).fit(y[:first_cutoff]).predict(h=7)["mean"]
    assert not np.allclose(fit.backtests["auto_ets"][0], other)


def test_statistical_models_carry_the_first_fit_over_the_folds_and_refit_for_the_forecast():
    """Later folds reuse the first cutoff's parameters on newer data; the final forecast comes
    from a fit on the whole history."""
    y = weekly(60, seed=1)

    fit = fit_series(task(y, (39, 46), ("auto_ets",)))

    model = AutoETS(season_length=7).fit(y[:39])
    np.testing.assert_allclose(fit.backtests["auto_ets"][0], model.predict(h=7)["mean"])
    np.testing.assert_allclose(fit.backtests["auto_ets"][1], model.forward(y=y[:46], h=7)["mean"])
    refit = AutoETS(season_length=7).fit(y[:46]).predict(h=7)["mean"]
    assert not np.allclose(fit.backtests["auto_ets"][1], refit)  # not refitted per fold
    whole = AutoETS(season_length=7).fit(y).predict(h=7)["mean"]
    np.testing.assert_allclose(fit.final["auto_ets"], whole)


def test_ets_on_weekly_data_goes_without_season():
    """A year of weeks is longer than ETS allows: weekly data gets a non-seasonal ETS."""
    rng = np.random.default_rng(2)
    y = 100 + 10 * np.sin(np.arange(130) * 2 * np.pi / 52) + rng.normal(0, 2, 130)

    fit = fit_series(task(y, (120,), ("auto_ets",), freq="W-SUN", horizon=4))

    expected = AutoETS(season_length=1).fit(y[:120]).predict(h=4)["mean"]
    np.testing.assert_allclose(fit.backtests["auto_ets"][0], expected)


def test_mstl_decomposes_the_weekly_season_only_even_on_two_years_of_days():
    """MSTL takes one season, the frequency's, whatever the length (a yearly one is Prophet's),
    over the last 52 weeks before the cutoff."""
    rng = np.random.default_rng(3)
    t = np.arange(738 + 7)
    y = 50 + 5 * np.sin(2 * np.pi * t / 7) + 10 * np.sin(2 * np.pi * t / 365.25)
    y += rng.normal(0, 1, len(t))

    fit = fit_series(task(y, (738,), ("mstl",)))

    first = MSTL(season_length=7).fit(y[738 - 364 : 738])
    np.testing.assert_allclose(fit.backtests["mstl"][0], first.predict(7)["mean"])
    # the cutoff held 99 % of the days: the final forecast carries that fit forward
    np.testing.assert_allclose(fit.final["mstl"], first.forward(y=y[738 - 364 :], h=7)["mean"])


@pytest.mark.parametrize("model", ["auto_ets", "auto_arima", "auto_theta", "mstl"])
def test_statistical_models_see_the_last_52_seasons_and_nothing_older(model):
    """Older points cost time and barely move a model of weekly seasons (measured on the real
    and generated panels): a change just before the last 52 weeks of each fit changes nothing,
    a change at their first day changes the forecasts (the final refit's too: the form it keeps
    was found on the first window)."""
    y = weekly(500, seed=9)
    cutoffs, window = (430, 458), 364

    def fitted(changed_at: int):
        changed = y.copy()
        changed[changed_at] += 40
        return fit_series(task(changed, cutoffs, (model,)))

    fit = fit_series(task(y, cutoffs, (model,)))
    before_both = fitted(430 - window - 1)  # before the backtests' window, and the final's
    np.testing.assert_array_equal(before_both.backtests[model], fit.backtests[model])
    np.testing.assert_array_equal(before_both.final[model], fit.final[model])
    at_backtest_start = fitted(430 - window)
    assert not np.allclose(at_backtest_start.backtests[model][0], fit.backtests[model][0])
    at_final_start = fitted(500 - window)
    assert not np.allclose(at_final_start.final[model], fit.final[model])


@pytest.mark.parametrize(("cutoff", "refit"), [(85, False), (84, True)])
def test_the_final_forecast_refits_unless_the_first_cutoff_held_85_percent(cutoff, refit):
    """Refitting on the whole history costs a fit per model; it is skipped once the first
    cutoff's fit saw 85 % of the points or more (at 85 of 100 it is carried forward). A refit
    keeps the variant the first cutoff's search chose and estimates it again."""
    y = weekly(100, seed=8)

    fit = fit_series(task(y, (cutoff,), ("auto_theta",)))

    first = AutoTheta(season_length=7).fit(y[:cutoff])
    if refit:
        found = first.model_
        same = AutoTheta(7, found["decomposition_type"], found["modeltype"])
        expected = same.fit(y).predict(7)["mean"]
        # a new search on the whole history picks another variant here: it was not searched
        searched = AutoTheta(season_length=7).fit(y)
        assert searched.model_["modeltype"] != found["modeltype"]
        assert not np.allclose(fit.final["auto_theta"], searched.predict(7)["mean"])
    else:
        expected = first.forward(y=y, h=7)["mean"]
    np.testing.assert_allclose(fit.final["auto_theta"], expected)
    other = first.forward(y=y, h=7)["mean"]
    assert refit != np.allclose(other, fit.final["auto_theta"])


def test_a_theta_without_a_season_at_the_first_cutoff_refits_too():
    """Noise has no season to decompose: the refit takes the variant without one."""
    y = np.random.default_rng(0).poisson(5, 60).astype(float)

    fit = fit_series(task(y, (40,), ("auto_theta",)))

    assert "decomposition_type" not in AutoTheta(season_length=7).fit(y[:40]).model_
    assert fit.failures == {} and np.isfinite(fit.final["auto_theta"]).all()


def test_the_refit_keeps_the_ets_components_and_arima_orders_found_at_the_first_cutoff():
    """The whole history refits the ETS components (with damping) and the ARIMA orders and
    constant that the first cutoff's search chose, with new parameters."""
    rng = np.random.default_rng(4)
    t = np.arange(120)
    y = 40 + 0.3 * t + WEEK[t % 7] + rng.normal(0, 2, len(t))

    fit = fit_series(task(y, (80,), ("auto_ets", "auto_arima")))

    components = AutoETS(season_length=7).fit(y[:80]).model_["components"]
    ets = AutoETS(season_length=7, model=components[:3], damped=components[3] == "D")
    np.testing.assert_allclose(fit.final["auto_ets"], ets.fit(y).predict(7)["mean"])
    searched = AutoARIMA(
        season_length=7, max_p=3, max_q=3, max_P=1, max_Q=1, nmodels=10, approximation=False
    ).fit(y[:80])
    p, q, sp, sq, season, d, sd = searched.model_["arma"][:7]
    coef = searched.model_["coef"]
    arima = ARIMA(
        order=(p, d, q),
        season_length=season,
        seasonal_order=(sp, sd, sq),
        include_mean="intercept" in coef,
        include_drift="drift" in coef,
    )
    np.testing.assert_allclose(fit.final["auto_arima"], arima.fit(y).predict(7)["mean"])
    carried = searched.forward(y=y, h=7)["mean"]
    assert not np.allclose(fit.final["auto_arima"], carried)  # new parameters, same orders


def prophet_of(settings: dict, y: np.ndarray, horizon: int = 7, country: str | None = "US"):
    """Prophet's own forecast of ``y`` on the test dates, as Prophet would make it alone: its
    default backend and ``add_country_holidays``."""
    from prophet import Prophet

    options = {key: value for key, value in settings.items() if key != "country"}
    model = Prophet(uncertainty_samples=0, **options)
    if country:
        model.add_country_holidays(country)
    ds = pd.date_range("2024-01-01", periods=len(y), freq="D")
    model.fit(pd.DataFrame({"ds": ds, "y": y}))
    future = pd.DataFrame({"ds": pd.date_range(ds[-1], periods=horizon + 1, freq="D")[1:]})
    return model.predict(future)["yhat"].to_numpy()


def test_prophet_fits_as_prophet_alone_would_with_holidays_made_once_and_its_data_by_ujson():
    """The holiday frame made once per worker, and cmdstan run without cmdstanpy (its files
    written by ujson instead of stanio), give Prophet's own forecast to the digit."""
    y = weekly(400, noise=0.5, seed=5)
    fit = fit_series(task(y, (372, 386), ("prophet",), country="US"))

    expected = prophet_of(fit.prophet, y[:372])
    np.testing.assert_allclose(fit.backtests["prophet"][0], expected, rtol=1e-9)


def test_prophet_on_under_100_points_fits_by_newton_as_prophet_alone_does():
    """The other side of Prophet's switch from L-BFGS to Newton: 98 points give Prophet's
    own forecast from the backend that runs cmdstan itself."""
    y = weekly(98 + 7, noise=0.5, seed=9)
    fit = fit_series(task(y, (98,), ("prophet",)))

    np.testing.assert_allclose(
        fit.backtests["prophet"][0], prophet_of(fit.prophet, y[:98], country=None), rtol=1e-9
    )


def backend_inputs(points: int) -> tuple[dict, dict]:
    """Prophet's starting point and data for ``points`` days of a weekly pattern, the data
    broken: one value of ``y`` short, which cmdstan refuses."""
    from prophet import Prophet

    model = Prophet(uncertainty_samples=0)
    ds = pd.date_range("2024-01-01", periods=points)
    sent = {}

    class Capture:
        newton_fallback = True

        def fit(self, init, data, **kwargs):
            sent["init"], sent["data"] = init, data
            raise StopIteration

    model.stan_backend = Capture()  # stops the fit, keeping what it would send to cmdstan
    with pytest.raises(StopIteration):
        model.fit(pd.DataFrame({"ds": ds, "y": weekly(points, seed=10)}))
    data = dict(sent["data"], y=sent["data"]["y"][:-1])
    return sent["init"], data


@pytest.mark.parametrize(
    ("points", "fallback", "last_tried"),
    [(120, True, "newton"), (120, False, "lbfgs"), (99, True, "newton")],
)
def test_a_cmdstan_failure_is_retried_by_newton_as_prophet_does_then_raised(
    points, fallback, last_tried
):
    """L-BFGS failing falls back to Newton unless the fallback is off; Newton (under 100
    points) is not retried; the error names the last method and quotes cmdstan."""
    init, data = backend_inputs(points)
    backend = _stan_backend()
    backend.newton_fallback = fallback
    try:
        with pytest.raises(RuntimeError, match=f"cmdstan {last_tried} failed: .*variable name=y"):
            backend.fit(init, data)
    finally:
        backend.newton_fallback = True


def test_each_later_prophet_fit_starts_from_the_last_one_and_lands_where_a_cold_start_does():
    """Warm starts change how the optimizer gets there, not where: within 1 % of a fit from
    Prophet's own starting point, and not the same digits (the start was used)."""
    y = weekly(400, noise=0.5, seed=5)
    fit = fit_series(task(y, (372, 386), ("prophet",), country="US"))

    for got, end in ((fit.backtests["prophet"][1], 386), (fit.final["prophet"], 400)):
        cold = prophet_of(fit.prophet, y[:end])
        np.testing.assert_allclose(got, cold, rtol=0.01)
        assert not np.allclose(got, cold, rtol=1e-9, atol=0)


def test_baselines_repeat_the_last_season_or_value_at_each_cutoff():
    """Seasonal naive and naive forecasts after each cutoff and the end, from the data alone."""
    y = weekly(40, seed=4)
    cutoffs = (19, 26, 33)

    fit = fit_series(task(y, cutoffs, ("seasonal_naive", "naive")))

    for fold, cutoff in enumerate(cutoffs):
        np.testing.assert_array_equal(fit.backtests["seasonal_naive"][fold], y[cutoff - 7 : cutoff])
        np.testing.assert_array_equal(fit.backtests["naive"][fold], np.full(7, y[cutoff - 1]))
    np.testing.assert_array_equal(fit.final["seasonal_naive"], y[-7:])
    np.testing.assert_array_equal(fit.final["naive"], np.full(7, y[-1]))


def test_every_model_gives_a_forecast_per_fold_and_a_final_one():
    """Backtests are folds x horizon and the final forecast has horizon points, all finite."""
    y = weekly(60, seed=5)
    models = ("auto_ets", "auto_arima", "auto_theta", "mstl", "seasonal_naive", "naive")

    fit = fit_series(task(y, (39, 46, 53), models, horizon=5))

    assert fit.unique_id == "s" and fit.failures == {} and fit.prophet is None
    assert set(fit.backtests) == set(fit.final) == set(models)
    for name in models:
        assert fit.backtests[name].shape == (3, 5), name
        assert fit.final[name].shape == (5,), name
        assert np.isfinite(fit.backtests[name]).all() and np.isfinite(fit.final[name]).all()


def test_a_model_that_raises_is_left_out_with_its_reason():
    """Too little training data for MSTL and Prophet: both are left out, saying why."""
    y = weekly(30, seed=6)

    fit = fit_series(task(y, (13, 20), ("prophet", "mstl", "auto_ets", "naive")))

    assert set(fit.backtests) == set(fit.final) == {"auto_ets", "naive"}
    assert set(fit.failures) == {"prophet", "mstl"}
    for name, label in (("prophet", "Prophet"), ("mstl", "MSTL")):
        assert fit.failures[name].startswith(f"ValueError: {label} needs two seasons"), name
        assert "the series has 13" in fit.failures[name], name


def test_mstl_fits_from_two_seasons_and_two_points():
    """The other side of MSTL's limit: 16 days of training are enough."""
    fit = fit_series(task(weekly(30, seed=6), (16, 23), ("mstl",)))

    assert fit.failures == {} and fit.backtests["mstl"].shape == (2, 7)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_forecasts_are_left_out(bad):
    """A model whose forecasts are not finite (NaN or inf in its window) is not a candidate."""
    y = weekly(40, seed=7)
    y[25] = bad  # the last point before the second cutoff

    fit = fit_series(task(y, (19, 26), ("seasonal_naive", "naive")))

    assert fit.failures == {"seasonal_naive": "non-finite forecast", "naive": "non-finite forecast"}
    assert fit.backtests == {} and fit.final == {}
    clean = fit_series(task(y, (19,), ("seasonal_naive", "naive")))  # windows before the point
    assert clean.failures == {}
    np.testing.assert_array_equal(clean.final["naive"], np.full(7, y[-1]))


def test_prophet_fits_and_forecasts_a_weekly_pattern():
    """Prophet learns the weekly profile of twelve noisy weeks and forecasts the next week."""
    y = weekly(84 + 7, noise=0.5, seed=8)

    fit = fit_series(task(y[:84], (77,), ("prophet",)))

    assert fit.failures == {}
    assert fit.prophet == {
        "yearly_seasonality": False,
        "weekly_seasonality": True,
        "daily_seasonality": False,
        "seasonality_mode": "additive",
        "country": None,
    }
    truth = WEEK[np.arange(84, 91) % 7]
    assert np.abs(fit.final["prophet"] - truth).mean() < 1.0
    assert np.abs(fit.backtests["prophet"][0] - WEEK[np.arange(77, 84) % 7]).mean() < 1.0


def test_prophet_with_unknown_holidays_is_left_out_naming_the_country():
    """Prophet cannot learn holidays of an unknown country: left out, the others stay."""
    fit = fit_series(task(weekly(40, seed=9), (33,), ("prophet", "naive"), country="XX"))

    assert set(fit.final) == {"naive"}
    assert "XX" in fit.failures["prophet"]
    assert fit.prophet["country"] == "XX"


def test_a_known_promotion_plan_lifts_arima_and_prophet_on_promoted_days():
    """AutoARIMA and Prophet learn the lift of a promotion regressor and forecast it on the
    promoted days ahead; AutoETS takes no regressor and forecasts as without it."""
    y, x = promoted(70)

    fit = fit_series(task(y, (56, 63), ("auto_arima", "prophet", "auto_ets"), regressor=x))
    plain = fit_series(task(y, (56, 63), ("auto_ets",)))

    assert fit.failures == {}
    ahead = x[70:] == 1
    for name in ("auto_arima", "prophet"):
        lift = fit.final[name][ahead].mean() - fit.final[name][~ahead].mean()
        assert 15 < lift < 35, (name, lift)
        window = x[56:63] == 1  # the first backtest window has a promotion too
        assert fit.backtests[name][0][window].min() > fit.backtests[name][0][~window].max()
    np.testing.assert_array_equal(fit.final["auto_ets"], plain.final["auto_ets"])


@pytest.mark.parametrize(
    ("change", "used"),
    [
        ("as_is", True),
        ("constant", False),  # nothing to learn from
        ("varies_ahead_only", False),  # constant over the training data
        ("too_short", False),  # not known over the first backtest window
    ],
)
def test_a_regressor_is_used_only_where_it_varies_and_is_known_ahead(change, used):
    """AutoARIMA takes the regressor when it varies in its training data and covers the
    horizon; otherwise it forecasts exactly as without one."""
    y, x = promoted(70)
    x = {
        "as_is": x,
        "constant": np.ones_like(x),
        "varies_ahead_only": np.where(np.arange(77) < 70, 0.0, x),
        "too_short": x[:62],
    }[change]

    fit = fit_series(task(y, (56, 63), ("auto_arima",), regressor=x))
    plain = fit_series(task(y, (56, 63), ("auto_arima",)))

    same = np.allclose(fit.final["auto_arima"], plain.final["auto_arima"])
    assert same is not used


def test_a_regressor_one_day_short_of_the_horizon_gives_no_short_forecast():
    """Every final forecast has horizon points, even when the regressor ends a day early."""
    y, x = promoted(70)

    fit = fit_series(task(y, (56, 63), ("auto_arima", "naive"), regressor=x[:-1]))

    assert {name: len(values) for name, values in fit.final.items()} == dict.fromkeys(fit.final, 7)


@pytest.mark.parametrize(
    ("freq", "points", "mode", "country", "regressor"),
    [
        # daily: yearly and weekly seasonalities, holidays and a regressor, which Prophet
        # standardizes unless it is 0 or 1 (one product's promotion days)
        ("D", 800, "multiplicative", "US", "share"),
        ("D", 400, "additive", "US", "days"),
        ("MS", 60, "additive", None, None),  # monthly: yearly seasonality only
        ("QS", 6, "additive", None, None),  # no seasonality at all: Prophet's placeholder
    ],
)
def test_prophet_yhat_is_prophets_own_predict(freq, points, mode, country, regressor):
    """The lean forecast adds up the same terms as Prophet's ``predict``: the same yhat to
    1e-9 with every kind of feature the model set gives Prophet."""
    from prophet import Prophet

    rng = np.random.default_rng(3)
    y = 50 + 10 * np.sin(np.arange(points) / 5) + np.arange(points) / 10 + rng.normal(0, 2, points)
    settings = prophet_settings(y, Frequency.of(freq), country, mode)
    options = {key: value for key, value in settings.items() if key != "country"}
    model = Prophet(uncertainty_samples=0, **options)
    if country:
        model.add_country_holidays(country)
    dates = pd.date_range("2023-01-01", periods=points + 30, freq=freq)
    history = pd.DataFrame({"ds": dates[:points], "y": y})
    future = pd.DataFrame({"ds": dates[points:]})
    if regressor:
        promoted = rng.uniform(0, 1, points + 30) < 0.2
        shares = promoted * (rng.uniform(0, 1, points + 30) if regressor == "share" else 1.0)
        model.add_regressor("promotion")
        history["promotion"], future["promotion"] = shares[:points], shares[points:]
    model.fit(history)

    np.testing.assert_allclose(
        prophet_yhat(model, future), model.predict(future)["yhat"], rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize(("lift", "promoted_every"), [(25.0, 9), (-8.0, 5), (0.0, 9)])
def test_regressor_effect_is_found_beside_a_weekly_profile_and_a_trend(lift, promoted_every):
    """The effect per unit of the regressor, whatever the weekly profile and trend around it."""
    days = np.arange(364)
    x = (days % promoted_every == 0).astype(float)
    noise = np.random.default_rng(1).normal(0, 2, len(days))
    y = WEEK[days % 7] + 0.05 * days + lift * x + noise

    assert regressor_effect(y, x, 7) == pytest.approx(lift, abs=0.6)


def test_a_regressor_that_never_varies_has_no_effect():
    """Nothing to learn from a regressor that is always 0: no effect, not a division by 0."""
    assert regressor_effect(weekly(70), np.zeros(70), 7) == 0.0


def test_arima_with_a_regressor_forecasts_the_series_without_it_and_adds_it_back():
    """AutoARIMA's forecast with a promotion plan is its forecast of the sales less the
    promotions' effect, plus that effect on the promoted days ahead."""
    y, x = promoted(70)

    fit = fit_series(task(y, (56, 63), ("auto_arima",), regressor=x))

    effect = regressor_effect(y[:56], x[:56], 7)
    adjusted = y[:56] - effect * x[:56]
    searched = AutoARIMA(season_length=7, max_p=3, max_q=3, max_P=1, max_Q=1, nmodels=10)
    expected = searched.fit(adjusted).predict(7)["mean"] + effect * x[56:63]
    np.testing.assert_allclose(fit.backtests["auto_arima"][0], expected)


def test_prophet_with_date_features_made_once_fits_and_forecasts_as_prophet_does():
    """Seasonality and holiday features looked up in a series' tables (made at the first fit,
    used again at the second) and the component table kept between fits change no digit:
    the same parameters and forecast as Prophet's own at every cutoff."""
    from prophet import Prophet

    y, x = promoted(400)
    dates = pd.date_range("2024-01-01", periods=407)
    settings = prophet_settings(y, Frequency.of("D"), "US", "multiplicative")
    options = {key: value for key, value in settings.items() if key != "country"}
    options["holidays"] = _holidays("US", 2024, 2025)
    tables = DateFeatures(dates)
    for end in (372, 400):
        history = pd.DataFrame({"ds": dates[:end], "y": y[:end], REGRESSOR: x[:end]})
        future = pd.DataFrame({"ds": dates[end : end + 7], REGRESSOR: x[end : end + 7]})
        models = [_series_prophet()(tables, **options), Prophet(**options)]
        for model in models:
            model.add_regressor(REGRESSOR)
            model.fit(history)
        ours, prophets = models
        for name in ("k", "m", "delta", "beta"):
            np.testing.assert_array_equal(ours.params[name], prophets.params[name])
        np.testing.assert_array_equal(prophet_yhat(ours, future), prophet_yhat(prophets, future))
    # yearly, weekly and holiday features, each made once; the holiday frames of the fits and
    # of the forecasts (trimmed to the fit's holidays, the same here) and their content keys
    assert len(tables._tables) == 7
