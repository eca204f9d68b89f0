"""Store and AMI reading for reports: interval energy from raw readings and from the
15-minute aggregates agree; household usage falls back to the site's AMI CSV source."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cems.config import load_site_text
from cems.errors import InputError
from cems.reports import data
from cems.reports.resident import resident_month
from cems.store import open_store

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
    # grid meter imports 10 kW; no assets -> no supply, saving 0
    store.write_readings([(t, "grid-meter", "active_power_kw", 10.0, "good") for t in index])
    m = resident_month(config, store, "h-1", "2026-07")
    assert m.import_kwh == pytest.approx(372.0)
    assert m.supplied_kwh == 0.0 and m.bill_saving_krw == 0
    with pytest.raises(InputError, match="meter m-1: no interval data"):
        resident_month(config, store, "h-1", "2026-09")
    store.engine.dispose()
