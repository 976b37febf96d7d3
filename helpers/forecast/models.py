"""The model set: Prophet, statsforecast's AutoETS, AutoARIMA, AutoTheta and MSTL, and baselines.

Every model is fitted to one series (a numpy array of ``y`` on regular dates) and returns its
point forecast; intervals come later, calibrated on backtests (:mod:`.intervals`), so that every
model's interval means the same thing. :func:`fit_series` fits the whole set at each backtest
cutoff and at the end of the history, which is one worker task.

Prophet's settings come from the data (:func:`prophet_settings`): yearly seasonality once a
series covers a year (Prophet's own ``auto`` waits for two), weekly seasonality and public
holidays for daily data, and multiplicative seasonality where the seasonal swing grows with the
level. A model that cannot fit a series (too short, or a numerical failure) is left out of that
series' candidates, with the reason; the baselines always fit.

A known future regressor (the share of a series' products on promotion, from the promotion
plan) goes to Prophet and AutoARIMA where it varies in the training data; the other models do
not take one. AutoARIMA forecasts the series without the regressor's effect and adds it back
(:func:`regressor_effect`). Not done: hyperparameter search.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from helpers.forecast.baselines import repeat_last_season
from helpers.forecast.series import Frequency

BASELINES = ("seasonal_naive", "naive")
STATISTICAL = ("auto_ets", "auto_arima", "auto_theta", "mstl")
MODELS = ("prophet", *STATISTICAL, *BASELINES)
EXOGENOUS = ("auto_arima",)  # the statistical models that take a known future regressor
REGRESSOR = "promotion"
REFIT_SHARE = 0.85  # refit for the final forecast unless the first cutoff held this share
# (3 folds of 28 days on two years of days: 88.5 %; the carried fit scored as well, for less)
SEASONS_SEEN = 52  # the statistical models fit the last 52 seasons (a year of daily data)


@dataclass(frozen=True)
class SeriesTask:
    """One series to fit at each cutoff: what a worker process needs, as plain data."""

    unique_id: str
    y: np.ndarray
    ds: np.ndarray
    freq: str
    horizon: int
    cutoffs: tuple[int, ...]  # training lengths of the backtest folds
    models: tuple[str, ...] = MODELS
    country: str | None = None
    seasonality_mode: str = "auto"
    regressor: np.ndarray | None = None  # a known future regressor over ds and the horizon


@dataclass
class SeriesFit:
    """What a worker returns: per model, the forecast after each cutoff and after the end."""

    unique_id: str
    backtests: dict[str, np.ndarray] = field(default_factory=dict)  # (folds, horizon)
    final: dict[str, np.ndarray] = field(default_factory=dict)  # (horizon,)
    failures: dict[str, str] = field(default_factory=dict)
    prophet: dict | None = None  # the settings Prophet was given


def fit_series(task: SeriesTask) -> SeriesFit:
    """Forecast with every model of ``task`` after each backtest cutoff and after the end.

    Prophet is fitted at each cutoff. statsforecast's models are fitted at the first cutoff and
    carried forward over the later folds with their parameters fixed (statsforecast's
    cross-validation without refit), then fitted again on the whole history for the forecast
    unless the first cutoff held :data:`REFIT_SHARE` of it: one or two fits per series whatever
    the number of folds. They see the last :data:`SEASONS_SEEN` seasons before each fit's end
    (a year of days; every point of longer seasons): a model of weekly seasons gains nothing
    measurable from older days, and each one costs time (on the real and generated panels the
    forecasts scored the same, at 60 % of the time). Each Prophet fit starts from the
    parameters of the one before it.
    """
    frequency = Frequency.of(task.freq)
    result = SeriesFit(task.unique_id)
    if "prophet" in task.models:
        result.prophet = prophet_settings(task.y, frequency, task.country, task.seasonality_mode)
    ends = (*task.cutoffs, len(task.y))
    for name in task.models:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runs = _runs(name, task, frequency, ends, result.prophet)
        except Exception as error:  # a model that cannot fit is one candidate less
            result.failures[name] = f"{type(error).__name__}: {error}"
            continue
        if not all(np.isfinite(run).all() for run in runs):
            result.failures[name] = "non-finite forecast"
            continue
        result.backtests[name] = np.array(runs[:-1]).reshape(len(task.cutoffs), task.horizon)
        result.final[name] = np.asarray(runs[-1], dtype=float)
    return result


def _runs(name: str, task: SeriesTask, frequency: Frequency, ends, prophet: dict | None):
    """The forecasts of one model after each end (training length) in ``ends``."""
    y, horizon = task.y, task.horizon
    if name in BASELINES:
        season = frequency.season_length if name == "seasonal_naive" else 1
        return [repeat_last_season(y[:end], horizon, season) for end in ends]
    x = task.regressor
    if name == "prophet":
        runs, params = [], None
        timeline = pd.DatetimeIndex(task.ds)
        dates = DateFeatures(timeline.append(frequency.future(timeline[-1], horizon)))
        for end in ends:  # each fit starts where the last one ended
            known = _known(x, end, horizon)
            forecast, params = _prophet(
                y[:end], task.ds[:end], frequency, horizon, prophet, dates, known, params
            )
            runs.append(forecast)
        return runs
    exogenous = name in EXOGENOUS and all(_known(x, end, horizon) is not None for end in ends)
    season = frequency.season_length
    window = SEASONS_SEEN * season
    start = max(0, ends[0] - window)  # one start for the backtests: forward keeps the phase

    def lift(begin: int, end: int) -> np.ndarray:
        """The regressor's part of every point, its effect estimated on ``y[begin:end]``."""
        if not exogenous:
            return np.zeros(len(y) + horizon)
        return regressor_effect(y[begin:end], x[begin:end], season) * x[: len(y) + horizon]

    part = lift(start, ends[0])
    adjusted = y - part[: len(y)]
    seen = adjusted[start : ends[0]]
    model = _STATISTICAL[name](seen, frequency).fit(seen)
    runs = [model.predict(h=horizon)["mean"] + part[ends[0] : ends[0] + horizon]]
    runs += [
        model.forward(y=adjusted[start:end], h=horizon)["mean"] + part[end : end + horizon]
        for end in ends[1:]
    ]
    if ends[0] >= REFIT_SHARE * len(y):  # the fit saw nearly all of it: carry it forward
        return runs
    begin = max(0, len(y) - window)
    part = lift(begin, len(y))
    adjusted = y[begin:] - part[begin : len(y)]
    final_model = _same_form(name, model, adjusted, frequency).fit(adjusted)
    runs[-1] = final_model.predict(h=horizon)["mean"] + part[len(y) :]
    return runs


def regressor_effect(y: np.ndarray, x: np.ndarray, season_length: int) -> float:
    """The change in ``y`` per unit of the regressor ``x``, by least squares beside a seasonal
    profile (a mean per position in the season) and a linear trend.

    The statistical models that take a regressor forecast ``y`` minus this effect times ``x``
    and add it back to the forecast: regression with ARIMA errors in two steps. statsforecast's
    own exogenous AutoARIMA estimates the effect inside every model of its search, by numerical
    gradients, at 1.5 times the CPU; on the generated products the default forecast scored the
    same (mean MASE 0.9389 against 0.9392).

    Examples
    --------
    >>> days = np.arange(70)
    >>> x = (days % 9 == 0).astype(float)
    >>> y = 10 + 3 * (days % 7) + 0.1 * days + 25 * x
    >>> round(regressor_effect(y, x, 7), 6)
    25.0
    """
    position = np.arange(len(y)) % season_length
    design = np.column_stack(
        [x, np.eye(season_length)[position], np.arange(len(y)) / max(len(y), 1)]
    )
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(coefficients[0])


def _known(x: np.ndarray | None, end: int, horizon: int) -> np.ndarray | None:
    """The regressor over the first ``end`` points and the ``horizon`` after them, or None when
    there is none or it does not vary in those points (nothing to learn from)."""
    if x is None or len(x) < end + horizon or np.ptp(x[:end]) == 0:
        return None
    return x[: end + horizon]


def prophet_settings(
    y: np.ndarray, frequency: Frequency, country: str | None, seasonality_mode: str = "auto"
) -> dict:
    """Prophet's seasonalities, holidays and mode for a series of this length and shape.

    Examples
    --------
    >>> settings = prophet_settings(np.ones(400), Frequency.of("D"), "US")
    >>> settings["yearly_seasonality"], settings["weekly_seasonality"], settings["country"]
    (6, True, 'US')
    >>> prophet_settings(np.ones(30), Frequency.of("MS"), "US")["yearly_seasonality"]
    6
    """
    years = len(y) / frequency.per_year
    if frequency.daily:
        yearly: bool | int = 10 if years >= 2 else (6 if years >= 1 else False)
    else:  # no more Fourier terms than half the points in a year
        order = min(10, int(frequency.per_year // 2))
        yearly = order if years >= 2 else False
    if seasonality_mode == "auto":
        seasonality_mode = _seasonality_mode(y, frequency.season_length)
    return {
        "yearly_seasonality": yearly,
        "weekly_seasonality": frequency.daily and len(y) >= 2 * frequency.season_length,
        "daily_seasonality": False,
        "seasonality_mode": seasonality_mode,
        "country": country if frequency.daily else None,
    }


def _seasonality_mode(y: np.ndarray, season_length: int) -> str:
    """``multiplicative`` where each season's spread grows with its level, else ``additive``.

    Needs positive values over at least four seasons whose levels differ by half or more.
    """
    seasons = len(y) // season_length
    if seasons < 4 or np.min(y) <= 0:
        return "additive"
    blocks = np.asarray(y[-seasons * season_length :], dtype=float).reshape(seasons, season_length)
    levels, spreads = blocks.mean(axis=1), blocks.std(axis=1)
    if levels.max() < 1.5 * levels.min() or np.ptp(spreads) == 0:
        return "additive"
    correlation = pd.Series(levels).corr(pd.Series(spreads), method="spearman")
    return "multiplicative" if correlation > 0.6 else "additive"


def _seasonal(y: np.ndarray, season: int) -> int:
    """The season length a statistical model can use on ``y``: 1 under two seasons."""
    return season if len(y) >= 2 * season + 2 else 1


def _auto_ets(y, frequency):
    from statsforecast.models import AutoETS

    # ETS allows seasons of at most 24 points; weekly data goes without
    season = _seasonal(y, frequency.season_length)
    return AutoETS(season_length=season if season <= 24 else 1)


def _auto_arima(y, frequency):
    from statsforecast.models import AutoARIMA

    # a small stepwise search: seasonal orders up to 1, ten models at most
    return AutoARIMA(
        season_length=_seasonal(y, frequency.season_length),
        max_p=3,
        max_q=3,
        max_P=1,
        max_Q=1,
        nmodels=10,
        approximation=len(y) > 150,
    )


def _auto_theta(y, frequency):
    from statsforecast.models import AutoTheta

    return AutoTheta(season_length=_seasonal(y, frequency.season_length))


def _mstl(y, frequency):
    from statsforecast.models import MSTL

    season = frequency.season_length
    if len(y) < 2 * season + 2:
        raise ValueError(
            f"MSTL needs two seasons and two points ({2 * season + 2}), the series has {len(y)}"
        )
    # one season only: a yearly one costs ten times as much per fit, and Prophet has it
    return MSTL(season_length=season)


def _same_form(name: str, fitted, y: np.ndarray, frequency: Frequency):
    """A model of the form the search at the first cutoff chose (ETS components, ARIMA orders
    and constant, Theta variant), to estimate again on the whole history without searching.

    The search is most of a fit's cost (an ETS search is about fourteen times one ETS fit); the
    form it finds on most of the history rarely changes with the rest, the parameters do.
    """
    from statsforecast.models import ARIMA, AutoETS, AutoTheta

    found = fitted.model_
    if name == "auto_ets":
        components = found["components"]
        return AutoETS(season_length=found["m"], model=components[:3], damped=components[3] == "D")
    if name == "auto_arima":
        p, q, seasonal_p, seasonal_q, season, d, seasonal_d = found["arma"][:7]
        return ARIMA(
            order=(p, d, q),
            season_length=season,
            seasonal_order=(seasonal_p, seasonal_d, seasonal_q),
            include_mean="intercept" in found["coef"],
            include_drift="drift" in found["coef"],
        )
    if name == "auto_theta":
        return AutoTheta(
            season_length=found["m"],
            # only a seasonal (decomposed) fit records it; the others take Theta's default
            decomposition_type=found.get("decomposition_type", "multiplicative"),
            model=found["modeltype"],
        )
    return _STATISTICAL[name](y, frequency)


_STATISTICAL = {
    "auto_ets": _auto_ets,
    "auto_arima": _auto_arima,
    "auto_theta": _auto_theta,
    "mstl": _mstl,
}


def _prophet(
    y: np.ndarray,
    ds: np.ndarray,
    frequency: Frequency,
    horizon: int,
    settings: dict,
    dates: DateFeatures,
    regressor: np.ndarray | None = None,
    init: dict | None = None,
) -> tuple[np.ndarray, dict]:
    """Prophet's point forecast and its fitted parameters, to start the next fit from (``init``:
    a fit on a few more points converges from there in fewer steps than from Prophet's guess).
    Its seasonality and holiday features come from ``dates``, the series' tables."""
    if len(y) < 2 * frequency.season_length:
        raise ValueError(f"Prophet needs two seasons, the series has {len(y)} points")
    options = {key: value for key, value in settings.items() if key != "country"}
    future = pd.DataFrame({"ds": frequency.future(pd.Timestamp(ds[-1]), horizon)})
    if settings["country"]:
        first, last = pd.Timestamp(ds[0]).year, future["ds"].iloc[-1].year
        options["holidays"] = _holidays(settings["country"], first, last)
    model = _series_prophet()(dates, uncertainty_samples=0, **options)
    model.stan_backend = _stan_backend()
    history = pd.DataFrame({"ds": ds, "y": y})
    if regressor is not None:
        model.add_regressor(REGRESSOR)
        history[REGRESSOR], future[REGRESSOR] = regressor[: len(y)], regressor[len(y) :]
    model.fit(history, **({"init": init} if init else {}))
    params = {name: model.params[name][0] for name in ("delta", "beta")}
    params |= {name: float(model.params[name][0][0]) for name in ("k", "m", "sigma_obs")}
    return prophet_yhat(model, future), params


def prophet_yhat(model, future: pd.DataFrame) -> np.ndarray:
    """``model.predict(future)["yhat"]`` of a fitted Prophet of linear growth, without the rest.

    Prophet's ``predict`` also breaks the forecast into every component, each through pandas
    (a third of a daily fit, for a column nobody reads here). This computes the same sum from
    the same features and parameters: the trend times one plus the multiplicative terms, plus
    the additive terms. For Prophet without conditional seasonalities or a logistic trend (what
    :func:`_prophet` builds); the tests check it against ``predict`` to 1e-9.

    Examples
    --------
    >>> from prophet import Prophet
    >>> history = pd.DataFrame({"ds": pd.date_range("2026-01-01", periods=28), "y": range(28)})
    >>> model = Prophet(uncertainty_samples=0).fit(history)  # doctest: +SKIP
    >>> future = pd.DataFrame({"ds": pd.date_range("2026-01-29", periods=7)})
    >>> np.allclose(prophet_yhat(model, future), model.predict(future)["yhat"])  # doctest: +SKIP
    True
    """
    dates = future["ds"]
    blocks = [
        model.make_seasonality_features(
            dates, props["period"], props["fourier_order"], name
        ).to_numpy()
        for name, props in model.seasonalities.items()
    ]
    holidays = model.construct_holiday_dataframe(dates)
    if len(holidays):
        blocks.append(model.make_holiday_features(dates, holidays)[0].to_numpy())
    for name, props in model.extra_regressors.items():
        blocks.append(((future[name].to_numpy(dtype=float) - props["mu"]) / props["std"])[:, None])
    features = np.hstack(blocks) if blocks else np.zeros((len(future), 1))
    beta = model.params["beta"][0]
    terms = model.train_component_cols
    additive = features @ (beta * terms["additive_terms"].to_numpy()) * model.y_scale
    multiplicative = features @ (beta * terms["multiplicative_terms"].to_numpy())
    t = ((dates - model.start) / model.t_scale).to_numpy(dtype=float)
    trend = model.piecewise_linear(
        t,
        np.nanmean(model.params["delta"], axis=0),
        np.nanmean(model.params["k"]),
        np.nanmean(model.params["m"]),
        model.changepoints_t,
    )
    trend = trend * model.y_scale + model.y_min  # the floor: 0 with Prophet's absmax scaling
    return trend * (1 + multiplicative) + additive


class DateFeatures:
    """Prophet's seasonality and holiday features over a series' whole timeline (its dates and
    the horizon after them), each made once and looked up by date for every fit and forecast.

    Prophet makes them again at each fit and forecast, through pandas: a fifth of a series' CPU
    over four fits. A row depends on its date alone, so the lookup gives the same numbers.

    Examples
    --------
    >>> dates = DateFeatures(pd.date_range("2026-01-01", periods=10))
    >>> dates.rows(pd.Series(pd.date_range("2026-01-03", periods=2))).tolist()
    [2, 3]
    >>> dates.rows(pd.Series(pd.date_range("2026-01-10", periods=2))) is None  # one is not there
    True
    """

    def __init__(self, timeline: pd.DatetimeIndex):
        self.timeline = timeline
        self._tables: dict = {}

    def rows(self, dates: pd.Series) -> np.ndarray | None:
        """Where ``dates`` are in the timeline, or None when one of them is not."""
        positions = self.timeline.get_indexer(dates)
        return None if (positions < 0).any() else positions

    def table(self, key, make, keep=None):
        """The table ``make(timeline)`` under ``key``, made on first use. A key that holds an
        object's ``id`` passes the object as ``keep``: kept with the table, it lives as long,
        so no other object takes its id meanwhile."""
        if key not in self._tables:
            self._tables[key] = keep, make(pd.Series(self.timeline, name="ds"))
        return self._tables[key][1]


@functools.cache
def _series_prophet():
    """Prophet whose date features come from a series' :class:`DateFeatures`, and whose
    feature-to-component table is made once per set of features."""
    from prophet import Prophet

    class SeriesProphet(Prophet):
        def __init__(self, dates: DateFeatures, **options):
            super().__init__(**options)
            self.dates = dates

        def make_seasonality_features(self, dates, period, series_order, prefix):
            rows = self.dates.rows(dates)
            if rows is None:
                return super().make_seasonality_features(dates, period, series_order, prefix)
            make = functools.partial(
                Prophet.make_seasonality_features,
                period=period,
                series_order=series_order,
                prefix=prefix,
            )
            table = self.dates.table(("seasonality", period, series_order, prefix), make)
            return table.iloc[rows].reset_index(drop=True)

        def construct_holiday_dataframe(self, dates):
            if self.country_holidays is not None:  # Prophet makes these from the dates' years
                return super().construct_holiday_dataframe(dates)
            # the series' holiday frame, and at a forecast the one trimmed to the fit's holidays
            trained = self.train_holiday_names
            key = ("holiday frame", id(self.holidays), None if trained is None else tuple(trained))
            construct = super().construct_holiday_dataframe
            return self.dates.table(key, lambda _: construct(dates), keep=self.holidays)

        def make_holiday_features(self, dates, holidays):
            rows = self.dates.rows(dates)
            if rows is None:
                return super().make_holiday_features(dates, holidays)
            content = self.dates.table(  # once per frame: the fit's and forecast's often agree
                ("holiday content", id(holidays)),
                lambda _: pd.util.hash_pandas_object(holidays, index=False).to_numpy().tobytes(),
                keep=holidays,
            )
            key = ("holidays", tuple(holidays.columns), content)
            make = functools.partial(super().make_holiday_features, holidays=holidays)
            table, scales, names = self.dates.table(key, make)
            if self.train_holiday_names is None:  # what Prophet's own method records
                self.train_holiday_names = pd.Series(names)
            return table.iloc[rows].reset_index(drop=True), list(scales), list(names)

        def regressor_column_matrix(self, seasonal_features, modes):
            if self.train_component_cols is not None:  # a forecast: Prophet checks it
                return super().regressor_column_matrix(seasonal_features, modes)
            holidays = self.train_holiday_names
            key = (
                tuple(seasonal_features.columns),
                tuple((mode, tuple(names)) for mode, names in modes.items()),
                None if holidays is None else tuple(holidays),
                self.holidays_mode,
                tuple((name, props["mode"]) for name, props in self.extra_regressors.items()),
            )
            if key not in _COMPONENTS:
                _COMPONENTS[key] = super().regressor_column_matrix(seasonal_features, modes)
            columns, grouped = _COMPONENTS[key]
            return columns.copy(), {mode: list(names) for mode, names in grouped.items()}

    return SeriesProphet


_COMPONENTS: dict = {}  # Prophet's feature-to-component tables by features and settings


@functools.cache
def _stan_backend():
    """Prophet's cmdstan backend, run without cmdstanpy: the same program with the same
    arguments, its data and starting point written by ujson, its one row of output read back.

    cmdstanpy writes the files through stanio, which visits every number in Python, starts the
    program in a thread that copies its console to a file line by line, and reads the output
    through pandas: together about a third of Prophet's own CPU per daily fit. ujson writes the
    same shortest round-trip digits and the output is the same text, so the fit is the same.
    """
    import ujson
    from prophet.models import CmdStanPyBackend

    class DirectBackend(CmdStanPyBackend):
        def fit(self, stan_init, stan_data, init=None):
            if init is not None:  # a starting point of the caller's, checked as Prophet does
                stan_init = self.sanitize_custom_inits(stan_init, init)
            init, data = self.prepare_data(stan_init, stan_data)
            algorithm = "newton" if data["T"] < 100 else "lbfgs"  # Prophet's choice
            with tempfile.TemporaryDirectory(prefix="prophet-") as folder:
                files = {name: os.path.join(folder, f"{name}.json") for name in ("data", "init")}
                for name, content in (("data", data), ("init", init)):
                    with open(files[name], "w") as file:
                        ujson.dump(content, file)
                try:
                    names, values = self._optimize(files, folder, algorithm)
                except RuntimeError:
                    if algorithm == "newton" or not self.newton_fallback:
                        raise
                    names, values = self._optimize(files, folder, "newton")  # as Prophet does
            self.stan_fit = None
            params = self.stan_to_dict_numpy(names, values)
            return {name: value.reshape((1, -1)) for name, value in params.items()}

        def _optimize(self, files: dict, folder: str, algorithm: str):
            """The column names and values of cmdstan's optimum; RuntimeError if it failed."""
            output = os.path.join(folder, "output.csv")
            command = [
                *(self.model.exe_file, "random", "seed=1"),  # every parameter has a start
                *("data", f"file={files['data']}", f"init={files['init']}"),
                *("output", f"file={output}", "refresh=10000"),  # no progress lines
                *("method=optimize", f"algorithm={algorithm}", "iter=10000"),
            ]
            run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if run.returncode:
                console = run.stdout.decode(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"cmdstan {algorithm} failed: " + " | ".join(console))
            with open(output) as file:
                rows = [line for line in file if not line.startswith("#")]
            return rows[0].strip().split(","), np.array(rows[1].split(","), dtype=float)

    return DirectBackend()


@functools.lru_cache(maxsize=16)
def _holidays(country: str, first_year: int, last_year: int) -> pd.DataFrame:
    """The country's public holidays over those years, as Prophet's ``holidays`` frame.

    What ``add_country_holidays`` would compute at every fit and predict, made once per worker:
    a tenth of a daily Prophet fit.
    """
    from prophet.make_holidays import make_holidays_df

    return make_holidays_df(list(range(first_year, last_year + 1)), country)


def silence_fit_logs() -> None:
    """Keep cmdstanpy's per-fit INFO lines and Prophet's notices out of the output.

    A handler on the cmdstanpy logger stops cmdstanpy from installing its own INFO handler.
    """
    for name, level in (
        ("cmdstanpy", logging.WARNING),
        ("prophet", logging.WARNING),
        ("prophet.plot", logging.CRITICAL),
    ):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
        logger.setLevel(level)


silence_fit_logs()  # at import: worker processes import this module before any fit
