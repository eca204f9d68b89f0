"""Store and AMI reading for reports: interval energy from raw readings and from the
15-minute aggregates agree; household usage falls back to the site's AMI CSV source; the
plans a day's report reads come from the store's read method, newest first."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cems.config import load_site_text
from cems.errors import InputError
from cems.reports import data
from cems.store import PlanRecord, open_store

T0 = pd.Timestamp("2026-07-01T10:00", tz="Asia/Seoul")


def test_power_energy_from_raw_and_aggregates(tmp_path: Path) -> None:
    store = open_store(data_dir=tmp_path)
    # 10, 20, 30 kW at 10:00, 10:05, 10:10 -> mean 20 kW x 0.25 h = 5 kWh;
    # a 'stale' 100 kW reading at 10:12 is ignored
    rows = [(T0 + pd.Timedelta(minutes=m), "pv-1", "active_power_kw", kw, "good")
            for m, kw in ((0, 10.0), (5, 20.0), (10, 30.0))]
    rows.append((T0 + pd.Timedelta(minutes=12), "pv-1", "active_power_kw", 100.0, "stale"))
    store.write_readings(rows)
    end = T0 + pd.Timedelta(hours=1)
    raw = data.power_kwh(store, "pv-1", T0, end)
    assert list(raw.to_numpy()) == [5.0]
    store.aggregate(T0, end)
    agg = data.power_kwh(store, "pv-1", T0, end)
    assert list(agg.to_numpy()) == [5.0] and agg.index[0] == T0.tz_convert("UTC")
    store.engine.dispose()


SITE = """
schema_version: 1
site:
  id: ami-site
  name: AMI site
  latitude: 36.5
  longitude: 127.3
  data_dir: data
  grid: {contract_power_kw: 100, import_limit_kw: 100, export_limit_kw: 50,
         tariff_plan: general_b_high_a_2, meter: grid-meter}
ami_sources:
  - {id: feed, format: csv, path: ami.csv}
meters:
  - {id: grid-meter, kind: grid}
  - {id: m-1, kind: household, connection: {protocol: ami, source: feed}}
households:
  - {id: h-1, name: "1호", meter: m-1, asset_share: 0.5}
"""


def test_household_usage_from_the_ami_source(tmp_path: Path) -> None:
    # hourly CSV for July 2026: 0.5 kWh every hour -> 31 x 24 x 0.5 = 372 kWh
    index = pd.date_range("2026-07-01", "2026-08-01", freq="1h", inclusive="left",
                          tz="Asia/Seoul")
    lines = ["timestamp,meter_id,import_kwh"]
    lines += [f"{t.isoformat()},m-1,0.5" for t in index]
    (tmp_path / "ami.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = load_site_text(SITE, base_dir=tmp_path)
    store = open_store(data_dir=config.site.data_dir)
    start, end = data.month_bounds("2026-07", config.site.timezone)
    usage = data.household_usage(config, store, "m-1", start, end)
    assert len(usage) == 31 * 24 and usage["import_kwh"].sum() == pytest.approx(372.0)
    assert usage["export_kwh"].sum() == 0.0
    september = data.month_bounds("2026-09", config.site.timezone)
    with pytest.raises(InputError, match="meter m-1: no interval data"):
        data.household_usage(config, store, "m-1", *september)
    store.engine.dispose()


def test_plans_over_a_day_newest_first(tmp_path: Path) -> None:
    from cems.reports.daily import plan_schedule

    store = open_store(data_dir=tmp_path)
    day = pd.date_range("2026-07-01", periods=96, freq="15min", tz="Asia/Seoul")

    def plan(created: str, kw: float, steps: pd.DatetimeIndex) -> int:
        frame = pd.DataFrame({"pv-1_active_power_kw": kw}, index=steps)
        frame.index.name = "time"
        return store.record_plan(PlanRecord(
            created=pd.Timestamp(created, tz="Asia/Seoul"), kind="rolling", start=steps[0],
            end=steps[-1] + pd.Timedelta(minutes=15), inputs_digest="x", status="optimal",
            schedule=frame))

    old = plan("2026-06-30T09:30", 10.0, day)
    new = plan("2026-07-01T12:00", 20.0, day[48:])        # from 12:00 on
    plan("2026-06-29T09:30", 99.0, day - pd.Timedelta(days=1))   # the day before: not read
    start, end = day[0], day[-1] + pd.Timedelta(minutes=15)
    assert [i for i, _ in store.plan_schedules_overlapping(start, end)] == [new, old]
    merged = plan_schedule(store, start.tz_convert("UTC"), end.tz_convert("UTC"))
    # the newer plan wins where both cover: 10 kW until noon, 20 kW after
    assert list(merged["pv-1_active_power_kw"]) == [10.0] * 48 + [20.0] * 48
    store.engine.dispose()
