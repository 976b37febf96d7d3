"""The live view and ``salescast watch``: today's sales against the forecast's band, read from
the real-time consumer's state on a real local platform, checked against the table's orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import helpers
from helpers import generate, jobs, live
from helpers import realtime as rt
from helpers.cli import app
from helpers.exceptions import JobParameterError

DAY = datetime.now(UTC).date() + timedelta(days=3)
"""A day ahead of the wall clock: its latest order is the consumer's "now" (noon)."""
YESTERDAY = DAY - timedelta(days=1)
NOON_MS = rt.day_start_ms(str(DAY)) + 12 * rt.MS_PER_HOUR
FLAT = [(hour + 1) / 24 for hour in range(24)]


def orders_of(day, hours: list[int], product_id: str, quantity: int, first: int) -> list[dict]:
    return [
        {
            "order_id": f"o-{day}-{first + number:04d}",
            "order_ts": pd.Timestamp(f"{day}T{hour:02d}:00:00Z"),
            "customer_id": "c-1",
            "product_id": product_id,
            "product_name": f"Lamp {product_id}",
            "category": "home",
            "channel": "web",
            "quantity": quantity,
            "unit_price": 4.0,
        }
        for number, hour in enumerate(hours)
    ]


def expectation(series_id: str, units: float, name: str) -> dict:
    """An expectation of ``units`` for DAY with a 90 % interval of +-20 %, flat profile."""
    return {
        "series_id": series_id,
        "day": str(DAY),
        "level": series_id.split("#")[0],
        "name": name,
        "units": units,
        "units_lo_80": 0.85 * units,
        "units_hi_80": 1.15 * units,
        "units_lo_90": 0.8 * units,
        "units_hi_90": 1.2 * units,
        "revenue": 4 * units,
        "revenue_lo_90": 3.2 * units,
        "revenue_hi_90": 4.8 * units,
        "profile": FLAT,
        "run_id": "test",
        "expires_at": rt.expires_at(str(DAY)),
    }


@pytest.fixture(scope="module")
def day_platform(tmp_path_factory):
    """A local platform holding orders of DAY (to noon, amended and cancelled some) and of
    the day before, expectations for DAY only, every change applied by the consumer."""
    root = tmp_path_factory.mktemp("live") / "root"
    with helpers.connect(root=root, buffer_interval_s=0.2) as platform:
        platform.publish_expectations(
            pd.DataFrame(
                [
                    expectation("total", 200, "total"),
                    expectation("product#p-1", 20, "Lamp p-1"),  # sells far more: above
                    expectation("product#p-2", 400, "Lamp p-2"),  # sells far less: below
                    expectation("product#p-3", 60, "Lamp p-3"),  # as expected: in band
                ]
            )
        )
        platform.orders.put(
            pd.DataFrame(
                orders_of(YESTERDAY, [9, 10, 11], "p-4", 5, 0)
                + orders_of(DAY, list(range(12)), "p-1", 3, 0)  # 36 units by noon
                + orders_of(DAY, [1, 2, 3], "p-2", 2, 100)  # 6
                + orders_of(DAY, list(range(0, 13)), "p-3", 2, 200)  # 26, the last at noon
            )
        )
        platform.orders.update(f"o-{DAY}-0000", quantity=7)  # p-1: 36 + 4
        platform.orders.delete([f"o-{DAY}-0100"])  # p-2: 6 - 2
        platform.flush(timeout=120)
        yield platform


def table_units(platform, day) -> pd.Series:
    """Units per series of ``day`` from the orders table itself."""
    orders = platform.orders.scan()
    orders = orders[pd.to_datetime(orders["order_ts"], utc=True).dt.date == day]
    units = orders.groupby("product_id")["quantity"].sum()
    return pd.concat([pd.Series({"total": units.sum()}), units.rename("product#{}".format)])


def test_the_frame_is_the_tables_orders_against_the_band_so_far(day_platform):
    frame = live.live_frame(day_platform, top=3).set_index("series_id")
    units = table_units(day_platform, DAY)
    assert frame.attrs["day"] == str(DAY)
    assert frame.attrs["now"] == pd.Timestamp(NOON_MS, unit="ms", tz="UTC")
    # the total first, then products by expected units; p-4 sold only yesterday
    assert frame.index.tolist() == ["total", "product#p-2", "product#p-3", "product#p-1"]
    assert frame["actual"].to_dict() == units.loc[frame.index].astype(float).to_dict()
    assert units["product#p-1"] == 40 and units["product#p-2"] == 4
    share = rt.profile_share(FLAT, 12.0)
    assert share == 0.5 and (frame["hour"] == 12.0).all()
    expected = pd.Series({"total": 200, "product#p-2": 400, "product#p-3": 60, "product#p-1": 20})
    assert np.allclose(frame["expected_so_far"], expected * share)
    assert np.allclose(frame["band_lo_90"], 0.8 * expected * share)
    assert np.allclose(frame["band_hi_90"], 1.2 * expected * share)
    assert frame["state"].to_dict() == {
        "total": "below",  # 70 under 80
        "product#p-2": "below",
        "product#p-3": "in band",
        "product#p-1": "above",
    }
    # the nowcast: sold so far plus the expected rest of the day
    assert np.allclose(frame["nowcast"], frame["actual"] + expected * (1 - share))
    assert (frame["nowcast_lo_90"] <= frame["nowcast"]).all()
    assert (frame["nowcast"] <= frame["nowcast_hi_90"]).all()
    assert frame.loc["product#p-1", "profile"] == FLAT


def test_the_band_edges_are_in_band_on_both_sides():
    row = expectation("product#p-3", 60, "Lamp p-3")  # band at noon: 24 to 36
    total = {"units": 24.0, "revenue": 96.0, "orders": 12, "last_order_ms": NOON_MS}
    states = {
        units: live._series_row("product#p-3", str(DAY), total | {"units": units}, row, NOON_MS)[
            "state"
        ]
        for units in (23.0, 24.0, 36.0, 37.0)
    }
    assert states == {23.0: "below", 24.0: "in band", 36.0: "in band", 37.0: "above"}


def test_a_day_without_expectations_shows_what_sold(day_platform):
    with live.consumer_state(day_platform) as store:
        frame = live.series_frame(store, top=5, day=str(YESTERDAY))
    assert frame["series_id"].tolist() == ["total", "product#p-4"]
    assert frame["actual"].tolist() == [15.0, 15.0]
    assert (frame["state"] == "").all() and frame["band_lo_90"].isna().all()
    assert frame["nowcast"].tolist() == frame["actual"].tolist()
    assert frame["profile"].isna().all() and (frame["hour"] == 24.0).all()


def test_top_limits_the_products(day_platform):
    assert live.live_frame(day_platform, top=1)["series_id"].tolist() == ["total", "product#p-2"]


def test_watch_once_prints_the_frame_and_the_open_alerts(day_platform):
    result = CliRunner().invoke(
        app, ["watch", "--once", "--top", "2", "--root", str(day_platform.settings.root)]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{DAY} 12:00:00 UTC (the consumer's clock)"
    header = ["series", "sold", "expected", "band", "90%", "nowcast", "nowcast", "90%"]
    assert lines[1].split() == header
    assert lines[2].split()[:6] == ["total", "70", "100", "80-120", "below", "170"]
    assert lines[3].split()[:6] == ["product#p-2", "4", "200", "160-240", "below", "204"]
    assert lines[4].split()[:7] == ["product#p-3", "26", "30", "24-36", "in", "band", "56"]
    # p-2 sold nothing after 03:00 while hundreds of units were expected: a real stall
    alerts = day_platform.alerts(open_only=True)
    assert "product#p-2" in set(alerts["series_id"])
    assert lines[5:] == [live.alert_line(alert) for alert in alerts.to_dict("records")]
    assert "ALERT stalled product#p-2 (Lamp p-2): no order since 03:00, while" in result.output


def test_watch_says_when_no_alert_is_open(tmp_path):
    helpers.connect(root=tmp_path / "root", consume=False).close()  # state, no orders
    result = CliRunner().invoke(app, ["watch", "--once", "--root", str(tmp_path / "root")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[2].split() == ["total", "0", "-", "-", "0", "0-0"]
    assert lines[-1] == "no open alerts" and len(lines) == 4


def test_watch_refreshes_until_its_seconds_and_refuses_bad_options(day_platform):
    root = str(day_platform.settings.root)
    arguments = ["watch", "--root", root, "--top", "1"]
    result = CliRunner().invoke(app, [*arguments, "--every", "0.2", "--seconds", "0.5"])
    assert result.exit_code == 0, result.output
    # at 0, 0.2, 0.4 and 0.5 s; a render slower than 0.2 s (a busy machine) skips one between
    assert 2 <= result.output.count("(the consumer's clock)") <= 4
    result = CliRunner().invoke(app, [*arguments, "--seconds", "0"])
    assert result.output.count("(the consumer's clock)") == 1
    for option, value in (("--every", "0"), ("--seconds", "-1"), ("--top", "0")):
        refused = CliRunner().invoke(app, [*arguments, option, value])
        assert refused.exit_code == 2 and option in refused.output, refused.output


def test_watch_needs_a_root_with_state(tmp_path):
    result = CliRunner().invoke(app, ["watch", "--once", "--root", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no salescast state" in result.output


def test_shocks_default_to_the_top_product_and_factor_one_is_none():
    params = generate.SalesParams(n_products=6, seed=4)
    today = pd.Timestamp.now(tz="UTC").normalize()
    demand = generate.expected_daily_units(
        params, today.date(), (today + pd.Timedelta("1D")).date()
    )
    top = demand.loc[demand["expected_units"].idxmax(), "product_id"]
    (shock,) = live.shocks(params, "", 0.0, 5.0, minutes=30)
    assert shock == generate.Shock(top, 0.0, 5.0, 35.0)
    assert live.shocks(params, "p-0002", 3.0, 1.0)[0].product_id == "p-0002"
    assert live.shocks(params, "p-0002", 1.0, 1.0) == []


@pytest.mark.parametrize(
    ("scale", "seconds", "scaled"),
    [
        ("1", 60.0, 60.0),
        ("0.05", 0.0, 0.0),
        ("0.05", 9.0, 9.0),
        ("0.05", 10.0, 10.0),
        ("0.05", 199.0, 10.0),
        ("0.05", 201.0, 10.05),
        ("2", 60.0, 60.0),
    ],
)
def test_the_live_duration_scales_down_to_a_floor(monkeypatch, scale, seconds, scaled):
    monkeypatch.setenv("SALESCAST_SCALE", scale)
    assert live.scaled_seconds(seconds) == pytest.approx(scaled)


@pytest.mark.slow
def test_a_live_session_continues_the_day_where_the_consumer_stands(tmp_path, monkeypatch):
    """A second session starts its simulated clock at the consumer's "now" (the first left
    the day ahead of the wall clock), writes no catch-up, and leaves a snapshot per refresh."""
    monkeypatch.delenv("SALESCAST_SCALE", raising=False)
    params = generate.SalesParams(orders_per_day=5_000, n_products=4, seed=5)
    with helpers.connect(root=tmp_path / "root", buffer_interval_s=0.2) as platform:
        first = live.stream(platform, 3600.0, 1.0, params, refresh_s=0.2, timeout=60)
        with live.consumer_state(platform) as store:
            ahead_ms = store.now_ms()
        assert first.session.counts["put"] > 0
        assert ahead_ms > datetime.now(UTC).timestamp() * 1000 + 1_800_000  # an hour ahead
        before = set(platform.orders.scan()["order_id"])
        second = live.stream(platform, 3600.0, 1.0, params, refresh_s=0.2, timeout=60)
        orders = platform.orders.scan()
        new = orders[~orders["order_id"].isin(before)]
        counts = second.session.counts  # its cancellations concern its own orders
        assert len(new) == counts["put"] - counts["delete"] > 0
        stamps = pd.to_datetime(new["order_ts"], utc=True)
        assert stamps.min() >= pd.Timestamp(ahead_ms, unit="ms", tz="UTC")
        assert len(second.snapshots) >= 3  # before, while and after streaming
        final = second.snapshots[-1].set_index("series_id")
        units = table_units(platform, stamps.max().date())
        assert final.loc["total", "actual"] == units["total"]
        figures = second.figures()
        assert figures["live"] == second.session.counts
        assert list(figures["series"].index) == final.index.tolist()


def test_the_shock_parameters_are_checked_at_their_edges():
    declared = jobs.notebook_parameters([jobs.NOTEBOOKS / "06_live.ipynb"])
    edges = {"SHOCK_FACTOR": "0", "SHOCK_MINUTE": "0", "SHOCK_PRODUCT": "p-0003"}
    assert jobs.typed_parameters(edges, declared) == {
        "SHOCK_FACTOR": 0.0,
        "SHOCK_MINUTE": 0.0,
        "SHOCK_PRODUCT": "p-0003",
    }
    for name in ("SHOCK_FACTOR", "SHOCK_MINUTE"):
        with pytest.raises(JobParameterError, match=name):
            jobs.typed_parameters({name: "-0.5"}, declared)
