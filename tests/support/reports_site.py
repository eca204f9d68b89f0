"""A tiny site and a real SQLite store seeded with April 2026 data (hand-solvable).

Shared by the report tests and the CLI contract tests.

Site: one PV array ``pv-1`` producing 40 kW from 10:00 to 14:00 local every day (16
quarter-hours), a grid meter ``grid-meter`` importing 20 kW all the time (no export), two
households on ``residential_low``: ``h-a`` (meter ``m-a``, asset_share 0.01) and ``h-b``
(meter ``m-b``, asset_share 0.02), each importing 0.05 kWh every 15 minutes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SITE_YAML = """
schema_version: 1
site:
  id: test-site
  name: "Test block (시험 단지)"
  timezone: Asia/Seoul
  latitude: 36.5
  longitude: 127.3
  data_dir: data
  grid:
    contract_power_kw: 500
    import_limit_kw: 500
    export_limit_kw: 200
    tariff_plan: general_b_high_a_2
    meter: grid-meter
    emission_factor_kg_per_kwh: 0.4747
assets:
  pv:
    - {id: pv-1, kwp: 50, tilt_deg: 15, azimuth_deg: 180, inverter_ac_kw: 45}
meters:
  - {id: grid-meter, kind: grid}
  - {id: m-a, kind: household}
  - {id: m-b, kind: household}
households:
  - {id: h-a, name: "101동 101호", meter: m-a, tariff_plan: residential_low, asset_share: 0.01}
  - {id: h-b, name: "101동 102호", meter: m-b, tariff_plan: residential_low, asset_share: 0.02}
"""

MONTH = "2026-04"
HOUSEHOLD_KWH_PER_QUARTER = 0.05
PV_KW = 40.0
GRID_KW = 20.0


def seed_store(data_dir: Path) -> None:
    """Write April 2026 readings, settlements into a fresh SQLite store in ``data_dir``."""
    from cems.store import open_store

    store = open_store(data_dir=data_dir)
    index = pd.date_range("2026-04-01", "2026-05-01", freq="15min", inclusive="left",
                          tz="Asia/Seoul")
    rows = []
    for ts in index:
        hour = ts.hour
        rows.append((ts, "pv-1", "active_power_kw", PV_KW if 10 <= hour < 14 else 0.0, "good"))
        rows.append((ts, "grid-meter", "active_power_kw", GRID_KW, "good"))
        rows.append((ts, "m-a", "import_kwh", HOUSEHOLD_KWH_PER_QUARTER, "good"))
        rows.append((ts, "m-b", "import_kwh", HOUSEHOLD_KWH_PER_QUARTER, "good"))
    store.write_readings(rows)
    start = pd.Timestamp("2026-04-10T14:00", tz="Asia/Seoul")
    store.record_settlement(kind="dr_reward", reference="ev-1", start=start,
                            end=start + pd.Timedelta(hours=1), amount_krw=1234,
                            detail={"meter_id": "m-a"})
    store.record_settlement(kind="dr_reward", reference="ev-1", start=start,
                            end=start + pd.Timedelta(hours=1), amount_krw=999,
                            detail={"meter_id": "m-b"})
    store.record_settlement(kind="brokerage", reference="2026-04-15",
                            start=pd.Timestamp("2026-04-15", tz="Asia/Seoul"),
                            end=pd.Timestamp("2026-04-16", tz="Asia/Seoul"),
                            amount_krw=50_000)
    store.engine.dispose()
