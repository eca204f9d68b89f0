"""Synthetic household data for the demo, and a household's savings report.

The simulator serves the site's devices over Modbus, but not 300 household meters: in a
real district their data arrives from KEPCO's AMI (the dwelling's meter) and from the
microgrid's delivery meters. For the demo this module makes such data from what the demo
measured, so that the resident report can be shown. **All of it is synthetic.**

* Consumption. The dwellings inside the site together use :data:`DWELLING_FRACTION` of the
  measured base load (``loads.base.meter``; the rest is the shared facilities: lifts,
  lighting, pumps, parking). Each dwelling gets a fixed log-normal weight and, per
  interval, a uniform wiggle; the weights are renormalised every interval, so
  ``Σ_h c_h(t) = DWELLING_FRACTION × base(t)`` exactly and the shared facilities' load
  (``base − Σ c_h``) never goes negative. Households with their own KEPCO connection (meter
  behind no site meter) are not part of the site's load: they get the same shape, scaled to
  :data:`OWN_CONNECTION_KWH_PER_DAY` each on average. A seeded generator makes runs repeat.
* Allocation. Only dwellings of a composite complex (their meters behind the site's grid
  meter, :func:`cems.reports.resident.delivery` ``behind_meter``) receive community supply:
  ``a_h(t) = min(c_h(t), share_h × S(t))`` (:func:`cems.accounting.allocation.allocate`),
  ``S`` = the community's net local supply (:attr:`cems.accounting.Flows.local_supply_kwh`).
  What is left, ``S − Σ a_h``, serves the shared facilities or is exported. Other
  households receive nothing behind their meter (``a_h = 0``).
* Meters. The dwelling's KEPCO meter reads ``import_kwh = c_h − a_h``; the microgrid's
  delivery meter reads ``community_supply_kwh = a_h`` (stored only for the households that
  have one). Both are stored as readings (device = the household's meter id, time = the
  interval start).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cems.accounting import flows_from_store
from cems.accounting.allocation import allocate
from cems.config.model import Household, SiteConfig
from cems.reports.resident import delivery
from cems.reports.savings import COMMUNITY_SUPPLY
from cems.store import TelemetryStore

SEED = 515
"""Seed of the household weights and wiggles (the Sejong 5-1 block number)."""

DWELLING_FRACTION = 0.37
"""Share of the measured base load (``loads.base.meter``) the dwellings inside the site use
together; the rest is the shared facilities. For the Sejong 5-1 example (9,000 kWh a day of
base load, 300 dwellings) a dwelling uses about 11 kWh a day, near the Korean household
mean (~330 kWh a month)."""

OWN_CONNECTION_KWH_PER_DAY = 11.0
"""Mean daily use of a household on its own KEPCO connection (outside the site's meter)."""

WEIGHT_SIGMA = 0.25
"""Spread of the households' fixed log-normal weights (sigma of the log)."""

WIGGLE = (0.8, 1.2)
"""Range of the per-interval uniform factor on each household's weight."""

DECIMALS = 6
"""kWh decimals of the stored and written values (import + supply = consumption exactly)."""

SYNTHETIC_BANNER = ("데모용 합성 세대 데이터 (실측 아님) / synthetic household data made by the "
                    "demo (not measured)")
"""Shown at the top of the demo's resident report page."""

SYNTHETIC_NOTE = ("synthetic household data made by the demo from the measured base load "
                  "(not measured): see cems/runtime/demo_households.py")


def split_consumption(base_kwh: pd.Series, households: list[str], total_kwh: pd.Series,
                      *, rng: np.random.Generator) -> pd.DataFrame:
    """Split ``total_kwh`` (per interval) among ``households`` with fixed log-normal
    weights and a per-interval wiggle, renormalised so each row sums to ``total_kwh``.
    Returns kWh per interval, one column per household, ``base_kwh``'s index."""
    if not households:
        return pd.DataFrame(index=base_kwh.index)
    weight = rng.lognormal(0.0, WEIGHT_SIGMA, len(households))
    wiggle = rng.uniform(*WIGGLE, size=(len(base_kwh), len(households)))
    w = weight[None, :] * wiggle
    w /= w.sum(axis=1, keepdims=True)
    total = total_kwh.reindex(base_kwh.index).fillna(0.0).to_numpy(dtype=float)
    return pd.DataFrame(w * total[:, None], index=base_kwh.index, columns=households)


def household_usage(config: SiteConfig, store: TelemetryStore, start: datetime,
                    end: datetime, *, seed: int = SEED) -> pd.DataFrame:
    """Synthetic 15-minute data of every household over ``[start, end)``.

    Returns a long frame: ``time`` (tz-aware interval start), ``household_id``,
    ``meter_id``, ``consumption_kwh``, ``community_supply_kwh`` (NaN where the household has
    no delivery meter), ``import_kwh`` (= consumption − supply).
    """
    flows = flows_from_store(config, store, start, end)
    index = flows.index
    meter = config.loads.base.meter
    if meter is not None and meter in flows.assets.columns:
        base = flows.assets[meter].clip(lower=0.0)
    else:
        base = flows.consumption_kwh
    base = base.reindex(index).fillna(0.0)
    rng = np.random.default_rng(seed)
    inside = [h for h in config.households if delivery(config, h) != "own_connection"]
    outside = [h for h in config.households if delivery(config, h) == "own_connection"]
    days = len(index) / 96.0
    own_scale = (len(outside) * OWN_CONNECTION_KWH_PER_DAY * days / float(base.sum())
                 if float(base.sum()) > 0 else 0.0)
    consumption = pd.concat([
        split_consumption(base, [h.id for h in inside], DWELLING_FRACTION * base, rng=rng),
        split_consumption(base, [h.id for h in outside], own_scale * base, rng=rng),
    ], axis=1)
    supplied_ids = [h.id for h in config.households if delivery(config, h) == "behind_meter"]
    shares = {h.id: h.asset_share for h in config.households}
    allocated = pd.DataFrame(0.0, index=index, columns=consumption.columns)
    if supplied_ids:
        allocated[supplied_ids] = allocate(consumption[supplied_ids],
                                           flows.local_supply_kwh, shares)
    frames = []
    local = index.tz_convert(config.site.timezone)
    for h in config.households:
        used = consumption[h.id].to_numpy(dtype=float).round(DECIMALS)
        given = np.minimum(allocated[h.id].to_numpy(dtype=float).round(DECIMALS), used)
        frames.append(pd.DataFrame({
            "time": local, "household_id": h.id, "meter_id": h.meter,
            "consumption_kwh": used,
            "community_supply_kwh": given if h.id in supplied_ids else np.nan,
            "import_kwh": (used - given).round(DECIMALS),
        }))
    if not frames:
        return pd.DataFrame(columns=["time", "household_id", "meter_id", "consumption_kwh",
                                     "community_supply_kwh", "import_kwh"])
    return pd.concat(frames, ignore_index=True)


def store_usage(store: TelemetryStore, usage: pd.DataFrame) -> tuple[int, int]:
    """Store the KEPCO meters' ``import_kwh`` and the delivery meters'
    ``community_supply_kwh`` as readings; returns the rows of each written."""
    meters = pd.DataFrame({"time": usage["time"], "device": usage["meter_id"],
                           "quantity": "import_kwh", "value": usage["import_kwh"],
                           "quality": "good"})
    delivered = usage[usage["community_supply_kwh"].notna()]
    supply = pd.DataFrame({"time": delivered["time"], "device": delivered["meter_id"],
                           "quantity": COMMUNITY_SUPPLY,
                           "value": delivered["community_supply_kwh"], "quality": "good"})
    return store.write_readings_frame(meters), store.write_readings_frame(supply)


def write_ami_csv(usage: pd.DataFrame, path: Path) -> None:
    """The KEPCO meters' data in the AMI CSV format ``cems ami import`` reads
    (timestamp, meter_id, import_kwh)."""
    out = usage[["time", "meter_id", "import_kwh"]].rename(columns={"time": "timestamp"})
    out.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S%z")


def write_supply_csv(usage: pd.DataFrame, path: Path) -> None:
    """Consumption, delivered community supply (empty: no delivery meter) and import per
    household and interval."""
    out = usage.rename(columns={"time": "timestamp"})
    out.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S%z")


def _first_reported(config: SiteConfig) -> Household:
    """The household the demo reports: the first that receives community supply, else the
    first listed."""
    return next((h for h in config.households if delivery(config, h) == "behind_meter"),
                config.households[0])


def resident_outputs(config: SiteConfig, store: TelemetryStore, out_dir: Path,
                     start: datetime, end: datetime) -> dict[str, object]:
    """Make, store and write the households' data, then one household's report.

    Writes ``ami_households.csv``, ``household_supply.csv`` and
    ``resident_<household>.html`` (Korean) into ``out_dir``; returns the figures the demo
    prints (empty without households). All household data is synthetic.
    """
    from cems.reports.render import resident_html
    from cems.reports.resident import resident_report

    if not config.households:
        return {}
    usage = household_usage(config, store, start, end)
    if usage.empty:
        return {}
    meter_rows, supply_rows = store_usage(store, usage)
    write_ami_csv(usage, out_dir / "ami_households.csv")
    write_supply_csv(usage, out_dir / "household_supply.csv")
    household = _first_reported(config)
    month = pd.Timestamp(start).tz_convert(config.site.timezone).strftime("%Y-%m")
    report = resident_report(config, store, household.id, month, trend_months=1)
    page = out_dir / f"resident_{household.id}.html"
    html = resident_html(report, "ko").replace(
        "<body>", f'<body>\n<p class="muted" id="synthetic">{SYNTHETIC_BANNER}</p>', 1)
    page.write_text(html, encoding="utf-8")
    m = report.month
    supplied = usage["community_supply_kwh"].notna()
    n_supplied = int(usage.loc[supplied, "household_id"].nunique())
    return {
        "household_id": household.id, "household_name": household.name, "month": month,
        "delivery": m.delivery,
        "consumption_kwh": None if m.consumption_kwh is None else round(m.consumption_kwh, 3),
        "import_kwh": None if m.import_kwh is None else round(m.import_kwh, 3),
        "supplied_kwh": round(m.supplied_kwh, 3),
        "actual_bill_krw": m.actual_bill_krw,
        "counterfactual_bill_krw": m.counterfactual_bill_krw,
        "bill_saving_krw": m.bill_saving_krw,
        "explanation": report.explanation("en"),
        "readings_stored": meter_rows + supply_rows,
        "ami_rows": meter_rows, "supply_rows": supply_rows,
        "households": int(usage["household_id"].nunique()),
        "households_supplied": n_supplied,
        "households_not_supplied_reason": (
            None if n_supplied == usage["household_id"].nunique() else
            "households on their own KEPCO connection or billed through the site receive "
            "no community supply behind their meter"),
        "households_consumption_kwh": round(float(usage["consumption_kwh"].sum()), 3),
        "households_community_supply_kwh": round(
            float(usage["community_supply_kwh"].fillna(0.0).sum()), 3),
        "synthetic": True,
        "data_note": SYNTHETIC_NOTE,
        "files": {
            "ami_households.csv": "synthetic AMI interval data of the household KEPCO meters "
                                  "(timestamp, meter_id, import_kwh; cems ami import reads it)",
            "household_supply.csv": "synthetic consumption, delivered community supply and "
                                    "import per household and 15 minutes",
            page.name: "one household's savings report (Korean) on the synthetic data",
        },
        "report": page.name,
    }
