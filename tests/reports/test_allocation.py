"""The community's supply allocated to households never exceeds what they used; what is
left serves the shared facilities or is exported. Checked through
:func:`cems.accounting.allocation.allocate` on a hand example, and through the demo's
synthetic households (:mod:`cems.runtime.demo_households`) on a seeded store, whose report
saving equals ``cems bill`` on the consumption minus ``cems bill`` on the meter.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from strict_json import strict_json

from cems.accounting.allocation import allocate
from cems.config import load_site_text
from cems.runtime import demo_households
from cems.runtime.demo_households import DWELLING_FRACTION, household_usage, resident_outputs
from cems.store import open_store


def test_allocate_hand_example() -> None:
    # 4 quarter-hours, community supply S = 0, 10, 40, 4 kWh; shares 10 %, 20 %, 30 %
    index = pd.date_range("2026-07-15T10:00", periods=4, freq="15min", tz="Asia/Seoul")
    used = pd.DataFrame({"h-1": [1.0, 0.5, 2.0, 0.0],
                         "h-2": [1.0, 3.0, 2.0, 1.0],
                         "h-3": [1.0, 3.0, 20.0, 1.0]}, index=index)
    supply = pd.Series([0.0, 10.0, 40.0, 4.0], index=index)
    got = allocate(used, supply, {"h-1": 0.1, "h-2": 0.2, "h-3": 0.3})
    # share x S:  h-1 0, 1, 4, 0.4;  h-2 0, 2, 8, 0.8;  h-3 0, 3, 12, 1.2
    # capped at use: h-1 0, 0.5, 2, 0;  h-2 0, 2, 2, 0.8;  h-3 0, 3, 12, 1
    expected = pd.DataFrame({"h-1": [0.0, 0.5, 2.0, 0.0],
                             "h-2": [0.0, 2.0, 2.0, 0.8],
                             "h-3": [0.0, 3.0, 12.0, 1.0]}, index=index)
    pd.testing.assert_frame_equal(got, expected)
    assert (got <= used).all().all()
    # left for the shared facilities and export: 0, 4.5, 24, 2.2
    assert list(supply - got.sum(axis=1)) == pytest.approx([0.0, 4.5, 24.0, 2.2])


DAY = pd.Timestamp("2026-07-15", tz="Asia/Seoul")
SHARES = {"h-1": 0.1, "h-2": 0.2, "h-3": 0.3}
SITE = """
schema_version: 1
site:
  id: alloc-site
  name: "Allocation complex"
  timezone: Asia/Seoul
  latitude: 36.5
  longitude: 127.3
  data_dir: data
  grid: {contract: composite, contract_power_kw: 500, import_limit_kw: 500,
         export_limit_kw: 300, tariff_plan: general_a2_high_a_2, meter: grid-meter,
         emission_factor_kg_per_kwh: 0.4}
assets:
  pv:
    - {id: pv-1, kwp: 250, tilt_deg: 15, azimuth_deg: 180, inverter_ac_kw: 220}
  ess:
    - {id: ess-1, capacity_kwh: 200, max_charge_kw: 50, max_discharge_kw: 50}
  fuel_cells:
    - {id: fc-1, min_kw: 0, max_kw: 50, electrical_efficiency: 0.5,
       fuel_price_krw_per_kwh: 60, fuel_emission_factor_kg_per_kwh: 0.2}
loads:
  base: {meter: load-meter}
meters:
  - {id: grid-meter, kind: grid}
  - {id: load-meter, kind: sub, behind: grid-meter}
  - {id: m-1, kind: household, behind: grid-meter}
  - {id: m-2, kind: household, behind: grid-meter}
  - {id: m-3, kind: household, behind: grid-meter}
households:
  - {id: h-1, name: "1호", meter: m-1, asset_share: 0.1}
  - {id: h-2, name: "2호", meter: m-2, asset_share: 0.2}
  - {id: h-3, name: "3호", meter: m-3, asset_share: 0.3}
"""


def _powers(ts: pd.Timestamp) -> dict[str, float]:
    """kW of the seeded day: base load 100 kW; PV 200 kW 10:00-14:00; the battery charges
    30 kW from the grid 00:00-04:00 and discharges 30 kW 19:00-20:00; the fuel cell runs
    20 kW 18:00-22:00."""
    h = ts.hour
    pv = 200.0 if 10 <= h < 14 else 0.0
    ess = -30.0 if h < 4 else (30.0 if h == 19 else 0.0)
    fc = 20.0 if 18 <= h < 22 else 0.0
    load = 100.0
    return {"load-meter": load, "pv-1": pv, "ess-1": ess, "fc-1": fc,
            "grid-meter": load - pv - fc - ess}


def _hand_supply(ts: pd.Timestamp) -> float:
    """S = max(PV + fuel cell + ESS discharge − ESS charge, 0) x 0.25 h."""
    p = _powers(ts)
    return max(p["pv-1"] + p["fc-1"] + p["ess-1"], 0.0) * 0.25


@pytest.fixture
def seeded(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = load_site_text(SITE, base_dir=tmp_path)
    store = open_store(data_dir=config.site.data_dir)
    index = pd.date_range(DAY, periods=96, freq="15min")
    means = pd.DataFrame([_powers(t) for t in index], index=index.tz_convert("UTC"))
    store.write_interval_means(means, quantity="active_power_kw")
    yield config, store, index
    store.engine.dispose()


def test_demo_households_never_get_more_than_they_used(seeded) -> None:  # type: ignore[no-untyped-def]
    config, store, index = seeded
    usage = household_usage(config, store, DAY, DAY + pd.Timedelta(days=1))
    assert len(usage) == 3 * 96
    wide = {q: usage.pivot(index="time", columns="household_id", values=q)
            for q in ("consumption_kwh", "community_supply_kwh", "import_kwh")}
    used, given, bought = (wide[q] for q in ("consumption_kwh", "community_supply_kwh",
                                              "import_kwh"))
    # the dwellings use DWELLING_FRACTION of the base load (100 kW x 0.25 h = 25 kWh)
    assert used.sum(axis=1).to_numpy() == pytest.approx(np.full(96, DWELLING_FRACTION * 25.0),
                                                        abs=1e-5)
    # the allocation: never above use, equal to min(use, share x S), S by hand
    supply = np.array([_hand_supply(t) for t in index])
    for h, share in SHARES.items():
        expected = np.minimum(used[h].to_numpy(), share * supply)
        assert given[h].to_numpy() == pytest.approx(expected, abs=2e-6)
    assert (given <= used + 1e-12).all().all()
    assert bought.to_numpy() + given.to_numpy() == pytest.approx(used.to_numpy(), abs=1e-9)
    # at midday S = 50 kWh: every share (5, 10, 15 kWh) exceeds the ~3 kWh a dwelling uses,
    # so each gets exactly its use and buys nothing; 50 - 9.25 = 40.75 kWh are left for the
    # shared facilities (25 - 9.25 = 15.75 kWh) and export (25 kWh)
    noon = used.index == index[48]
    assert given[noon].to_numpy() == pytest.approx(used[noon].to_numpy())
    assert bought[noon].to_numpy() == pytest.approx(0.0)
    left = supply[48] - float(given[noon].sum(axis=1).iloc[0])
    assert left == pytest.approx(50.0 - DWELLING_FRACTION * 25.0, abs=1e-5)
    grid = _powers(index[48])["grid-meter"] * 0.25            # -25 kWh: export
    shared_facilities = grid - float(bought[noon].sum(axis=1).iloc[0])
    assert shared_facilities == pytest.approx((1 - DWELLING_FRACTION) * 25.0 - left, abs=1e-5)
    # at night the battery charges from the grid: no community supply at all
    assert given[used.index < index[16]].to_numpy() == pytest.approx(0.0)
    # 19:00-20:00: fuel cell 20 + battery 30 kW = 12.5 kWh; h-3's share 3.75 > its ~3 kWh
    assert supply[76] == pytest.approx(12.5)
    # the same seed makes the same data
    again = household_usage(config, store, DAY, DAY + pd.Timedelta(days=1))
    pd.testing.assert_frame_equal(usage, again)


def test_own_connection_households_get_no_allocation(tmp_path: Path) -> None:
    text = (SITE.replace("contract: composite", "contract: general")
            .replace("tariff_plan: general_a2_high_a_2", "tariff_plan: general_b_high_a_2")
            .replace("household, behind: grid-meter", "household"))
    config = load_site_text(text, base_dir=tmp_path)
    store = open_store(data_dir=config.site.data_dir)
    index = pd.date_range(DAY, periods=96, freq="15min")
    store.write_interval_means(pd.DataFrame([_powers(t) for t in index],
                                            index=index.tz_convert("UTC")),
                               quantity="active_power_kw")
    usage = household_usage(config, store, DAY, DAY + pd.Timedelta(days=1))
    store.engine.dispose()
    assert usage["community_supply_kwh"].isna().all()
    assert usage["import_kwh"].to_numpy() == pytest.approx(usage["consumption_kwh"].to_numpy())
    # outside the site: the base load's shape, OWN_CONNECTION_KWH_PER_DAY each on average
    assert usage["consumption_kwh"].sum() == pytest.approx(
        3 * demo_households.OWN_CONNECTION_KWH_PER_DAY, abs=1e-3)


def _usage_csv(path: Path, rows: list[dict[str, str]], column: str) -> Path:
    lines = ["timestamp,import_kwh"] + [f"{r['timestamp']},{r[column]}" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_demo_outputs_report_saving_equals_cems_bill_difference(  # type: ignore[no-untyped-def]
        seeded, run_cems, tmp_path: Path) -> None:
    config, store, _ = seeded
    out = tmp_path / "out"
    out.mkdir()
    summary = resident_outputs(config, store, out, DAY, DAY + pd.Timedelta(days=1))
    assert summary["synthetic"] is True and "synthetic" in summary["data_note"]
    assert summary["ami_rows"] == summary["supply_rows"] == 3 * 96
    assert summary["readings_stored"] == 2 * 3 * 96
    assert summary["households_supplied"] == 3
    with (out / "household_supply.csv").open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["household_id"] == summary["household_id"]]
    with (out / "ami_households.csv").open(encoding="utf-8") as handle:
        ami = [r for r in csv.DictReader(handle) if r["meter_id"] == "m-1"]
    assert [r["import_kwh"] for r in ami] == [r["import_kwh"] for r in rows]
    for r in rows:
        assert float(r["community_supply_kwh"]) <= float(r["consumption_kwh"])
    use_csv = _usage_csv(tmp_path / "use.csv", rows, "consumption_kwh")
    meter_csv = _usage_csv(tmp_path / "meter.csv", rows, "import_kwh")
    totals = []
    for path in (use_csv, meter_csv):
        proc = run_cems("bill", "--plan", "residential_low", "--usage", path, "--json")
        assert proc.returncode == 0, proc.stderr
        totals.append(int(strict_json(proc.stdout)["total_krw"]))
    assert summary["counterfactual_bill_krw"] == totals[0]
    assert summary["actual_bill_krw"] == totals[1]
    assert summary["bill_saving_krw"] == totals[0] - totals[1] > 0
    assert summary["supplied_kwh"] <= summary["consumption_kwh"]
    page = (out / summary["report"]).read_text(encoding="utf-8")
    assert "공동체 설비가 우리 집 사용량 중" in page


def test_fuel_cell_supply_is_not_counted_as_zero_carbon(seeded) -> None:  # type: ignore[no-untyped-def]
    # in the evening the fuel cell runs alone (18:00-19:00, 20:00-22:00: 20 kW x 0.25 h =
    # 5 kWh a quarter-hour); its fuel emits 0.2 kg/kWh ÷ 0.5 efficiency = 0.4 kg per kWh
    # electric, exactly the grid factor: the fuel-cell part avoids nothing. From 19:00 to
    # 20:00 the battery adds 30 kW: 12.5 kWh, 40 % fuel cell, 60 % battery (no credit).
    from cems.reports.resident import resident_month
    from cems.runtime.demo_households import store_usage

    config, store, index = seeded
    usage = household_usage(config, store, DAY, DAY + pd.Timedelta(days=1))
    store_usage(store, usage)
    m = resident_month(config, store, "h-3", "2026-07")
    h3 = usage[usage["household_id"] == "h-3"].set_index("time")["community_supply_kwh"]

    def between(first: int, last: int) -> float:
        return float(h3[(h3.index >= index[first]) & (h3.index < index[last])].sum())

    assert float(h3.sum()) == pytest.approx(between(40, 56) + between(72, 88))
    fc_part = between(72, 76) + 0.4 * between(76, 80) + between(80, 88)
    pv_part = between(40, 56)
    assert m.supply_by_source_kwh["fuel_cell"] == pytest.approx(fc_part, abs=1e-5)
    assert m.supply_by_source_kwh["pv"] == pytest.approx(pv_part, abs=1e-5)
    assert m.co2_avoided["fuel_cell_kg"] == pytest.approx(0.0, abs=1e-6)
    assert m.co2_avoided_kg == pytest.approx(pv_part * 0.4, abs=1e-5)
    assert m.co2_avoided_kg < m.supplied_kwh * 0.4
