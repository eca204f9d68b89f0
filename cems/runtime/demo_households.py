"""Synthetic AMI interval data for the demo's households, and their savings report.

The simulator serves the site's devices over Modbus, but not 300 household meters: in a
real district their consumption arrives as AMI interval data. For the demo this module
makes such data from what the demo measured, so that the resident report can be shown:

* household ``h`` consumes ``c_h(t) = share_h x f_h x g_h(t) x base(t)``: its asset share of
  the measured base load (``loads.base.meter``, else the site's whole consumption), scaled
  by a fixed household factor ``f_h`` (log-normal, mean 1) and a per-interval factor
  ``g_h(t)`` (uniform 0.8-1.2), both from a seeded generator, so runs repeat exactly;
* its meter records ``import_h(t) = max(c_h(t) - share_h x supply(t), 0)``: what it still
  bought after its share of the community's time-matched supply (the report's definition,
  :mod:`cems.reports.savings`).

The data is synthetic and labelled so; only the demo uses it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cems.config.model import SiteConfig
from cems.reports import data
from cems.reports.savings import site_supply_kwh
from cems.store import TelemetryStore

SEED = 515
"""Seed of the household factors (the Sejong 5-1 block number)."""


def household_usage(config: SiteConfig, store: TelemetryStore, start: datetime,
                    end: datetime, *, seed: int = SEED) -> pd.DataFrame:
    """Synthetic 15-minute meter data of every household with a meter over ``[start, end)``.

    Returns a long frame ``time`` (tz-aware interval start), ``meter_id``, ``import_kwh``.
    """
    flows = data.community_flows(config, store, start, end)
    supply = site_supply_kwh(flows.local_net_kwh, flows.flows["grid_export_kwh"])
    meter = config.loads.base.meter if config.loads.base is not None else None
    base = (data.power_kwh(store, meter, start, end).reindex(supply.index).fillna(0.0)
            if meter else flows.demand_kwh).clip(lower=0.0)
    households = [h for h in config.households if h.meter]
    rng = np.random.default_rng(seed)
    factor = rng.lognormal(0.0, 0.25, len(households))
    factor /= factor.mean()
    frames = []
    for h, f in zip(households, factor, strict=True):
        wiggle = rng.uniform(0.8, 1.2, len(base))
        consumption = h.asset_share * f * wiggle * base.to_numpy()
        imported = np.maximum(consumption - h.asset_share * supply.to_numpy(), 0.0)
        frames.append(pd.DataFrame({"time": base.index.tz_convert(config.site.timezone),
                                    "meter_id": h.meter, "import_kwh": imported.round(4)}))
    if not frames:
        return pd.DataFrame(columns=["time", "meter_id", "import_kwh"])
    return pd.concat(frames, ignore_index=True)


def store_usage(store: TelemetryStore, usage: pd.DataFrame) -> int:
    """Store the meter data as readings (device = meter, quantity ``import_kwh``)."""
    frame = pd.DataFrame({"time": usage["time"], "device": usage["meter_id"],
                          "quantity": "import_kwh", "value": usage["import_kwh"],
                          "quality": "good"})
    return store.write_readings_frame(frame)


def write_ami_csv(usage: pd.DataFrame, path: Path) -> None:
    """Write the data in the AMI CSV format ``cems ami import`` reads."""
    out = usage.rename(columns={"time": "timestamp"})
    out.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S%z")


def resident_outputs(config: SiteConfig, store: TelemetryStore, out_dir: Path,
                     start: datetime, end: datetime) -> dict[str, object]:
    """Make, store and write the households' data, then the first household's report.

    Writes ``ami_households.csv`` and ``resident_<household>.html`` (Korean) into
    ``out_dir``; returns the figures the demo prints (empty without metered households).
    """
    from cems.reports.render import resident_html
    from cems.reports.resident import resident_report

    usage = household_usage(config, store, start, end)
    if usage.empty:
        return {}
    stored = store_usage(store, usage)
    write_ami_csv(usage, out_dir / "ami_households.csv")
    household = next(h for h in config.households if h.meter)
    month = pd.Timestamp(start).tz_convert(config.site.timezone).strftime("%Y-%m")
    report = resident_report(config, store, household.id, month, trend_months=1)
    page = out_dir / f"resident_{household.id}.html"
    page.write_text(resident_html(report, "ko"), encoding="utf-8")
    m = report.month
    return {
        "household_id": household.id, "household_name": household.name, "month": month,
        "import_kwh": round(m.import_kwh, 3), "supplied_kwh": round(m.supplied_kwh, 3),
        "actual_bill_krw": m.actual_bill_krw,
        "counterfactual_bill_krw": m.counterfactual_bill_krw,
        "bill_saving_krw": m.bill_saving_krw, "readings_stored": stored,
        "report": page.name,
    }
