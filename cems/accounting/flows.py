"""Energy flows of a site over a period, per 15-minute interval, at the site's meters.

Every figure of :mod:`cems.accounting` starts from :class:`Flows`. They are built from
15-minute mean powers per device, either measured (the telemetry store's interval
aggregates, :func:`flows_from_store`) or simulated (a trace of powers sampled over time,
:func:`flows_from_trace`), with the same arithmetic, so a measured day and a simulated one
compare like for like.

Signs and names (docs/glossary.md): powers in kW, energies in kWh per interval. The grid
meter's net energy of an interval is split into ``grid_import_kwh`` (its positive part) and
``grid_export_kwh`` (its negative part); a battery's into charge and discharge; an EV
charger's into charging and V2G discharge. ``consumption_kwh`` is what the site's loads used
(base load, deferrable loads and EV charging; batteries are storage, not consumption):
``import − export + PV + fuel cell + ESS discharge − ESS charge + V2G``. PV sold whole
through its own trading meter (전량 판매) is not part of the site: it is counted apart as
``sold_apart_kwh`` (its trading meter's export, else the arrays' output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cems.config.model import SiteConfig

if TYPE_CHECKING:
    from cems.store import TelemetryStore

#: Length of an accounting interval.
STEP = pd.Timedelta(minutes=15)
STEP_H = STEP / pd.Timedelta(hours=1)

#: The flow columns of :attr:`Flows.frame`, kWh per interval, all >= 0.
FLOW_COLUMNS = (
    "grid_import_kwh", "grid_export_kwh", "pv_kwh", "fc_kwh", "ess_charge_kwh",
    "ess_discharge_kwh", "ev_charge_kwh", "v2g_kwh", "fc_fuel_kwh", "fc_heat_kwh",
    "heat_demand_kwh", "sold_apart_kwh",
)


@dataclass(frozen=True)
class Flows:
    """15-minute energies of one site (one world) over ``[start, end)``.

    ``frame``: UTC interval starts, :data:`FLOW_COLUMNS` (kWh per interval).
    ``assets``: the same index, one column per device id, its signed energy (kWh; meters
    > 0 import, ESS > 0 discharge, EV chargers > 0 charging, PV and fuel cells >= 0).
    ``storage_start_kwh`` / ``storage_end_kwh``: energy held in the site's batteries at the
    period's ends (None where unknown). ``notes`` say what data was missing.
    """

    frame: pd.DataFrame
    assets: pd.DataFrame
    storage_start_kwh: float | None = None
    storage_end_kwh: float | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def index(self) -> pd.DatetimeIndex:
        """UTC interval starts."""
        return pd.DatetimeIndex(self.frame.index)

    @property
    def consumption_kwh(self) -> pd.Series:
        """Energy used by the site's loads per interval (base, deferrable, EV charging)."""
        f = self.frame
        total = (f["grid_import_kwh"] - f["grid_export_kwh"] + f["pv_kwh"] + f["fc_kwh"]
                 + f["ess_discharge_kwh"] - f["ess_charge_kwh"] + f["v2g_kwh"])
        return total.clip(lower=0.0)

    @property
    def local_supply_kwh(self) -> pd.Series:
        """The community assets' net supply per interval (>= 0): PV + fuel cell + ESS net
        discharge + V2G; the energy households and the common load can be allocated."""
        f = self.frame
        net = (f["pv_kwh"] + f["fc_kwh"] + f["ess_discharge_kwh"] - f["ess_charge_kwh"]
               + f["v2g_kwh"])
        return net.clip(lower=0.0)

    def window(self, start: datetime, end: datetime) -> Flows:
        """The flows of the intervals starting in ``[start, end)`` (storage ends unknown
        unless the window is the whole period)."""
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        keep = (self.index >= lo) & (self.index < hi)
        whole = bool(keep.all())
        return Flows(self.frame[keep], self.assets[keep],
                     self.storage_start_kwh if whole else None,
                     self.storage_end_kwh if whole else None, self.notes)


def interval_index(start: datetime, end: datetime) -> pd.DatetimeIndex:
    """UTC starts of the 15-minute intervals in ``[start, end)``."""
    return pd.date_range(pd.Timestamp(start).tz_convert("UTC"),
                         pd.Timestamp(end).tz_convert("UTC"), freq=STEP, inclusive="left")


def heat_demand_kwh(config: SiteConfig, index: pd.DatetimeIndex) -> np.ndarray:
    """The site's heat demand per interval (kWh thermal) from ``loads.heat``; 0 without."""
    heat = config.loads.heat
    if heat is None or len(index) == 0:
        return np.zeros(len(index))
    shape = np.asarray(heat.hourly_shape, dtype=float)
    shape = shape / shape.sum()
    hours = index.tz_convert(config.site.timezone).hour.to_numpy()
    return heat.daily_energy_kwh * shape[hours] * STEP_H


def flows_from_means(config: SiteConfig, means: pd.DataFrame, *,
                     storage_start_kwh: float | None = None,
                     storage_end_kwh: float | None = None,
                     notes: tuple[str, ...] = ()) -> Flows:
    """Flows from 15-minute mean powers (kW), one column per device id, UTC index.

    The grid meter's column is ``config.site.grid.meter``; without one (or without its
    data) the grid exchange is the balance of the other devices and the base-load meter.
    Devices without a column count as 0 kW.
    """
    index = pd.DatetimeIndex(means.index)
    a = config.assets

    def kw(device: str | None) -> np.ndarray:
        if device is None or device not in means.columns:
            return np.zeros(len(index))
        return means[device].to_numpy(dtype=float)

    def total(ids: list[str], part: str) -> np.ndarray:
        out = np.zeros(len(index))
        for device in ids:
            values = kw(device)
            out += np.clip(values, 0.0, None) if part == "pos" else np.clip(-values, 0.0, None)
        return out * STEP_H

    pv = total([p.id for p in config.site_pv], "pos")
    apart_meters = [m.id for m in config.meters if m.kind == "trading"]
    sold_apart = np.zeros(len(index))
    for meter in apart_meters:
        arrays = [p.id for p in a.pv if p.meter == meter]
        sold_apart += (total([meter], "neg") if meter in means.columns
                       else total(arrays, "pos"))
    fc = total([f.id for f in a.fuel_cells], "pos")
    fuel = sum((np.clip(kw(f.id), 0.0, None) * STEP_H / f.electrical_efficiency
                for f in a.fuel_cells), start=np.zeros(len(index)))
    heat = sum((np.clip(kw(f.id), 0.0, None) * STEP_H * f.heat_recovery_ratio
                for f in a.fuel_cells), start=np.zeros(len(index)))
    ess_ids = [e.id for e in a.ess]
    ev_ids = [c.id for c in a.ev_chargers]
    grid_meter = config.site.grid.meter
    if grid_meter is not None and grid_meter in means.columns:
        grid = kw(grid_meter) * STEP_H
    else:
        base = kw(config.loads.base.meter) + sum(
            (kw(d.id) for d in config.loads.deferrable), start=np.zeros(len(index)))
        grid = (base + sum((kw(c) for c in ev_ids), start=np.zeros(len(index)))
                - pv / STEP_H - fc / STEP_H
                - sum((kw(e) for e in ess_ids), start=np.zeros(len(index)))) * STEP_H
    frame = pd.DataFrame({
        "grid_import_kwh": np.clip(grid, 0.0, None),
        "grid_export_kwh": np.clip(-grid, 0.0, None),
        "pv_kwh": pv,
        "fc_kwh": fc,
        "ess_charge_kwh": total(ess_ids, "neg"),
        "ess_discharge_kwh": total(ess_ids, "pos"),
        "ev_charge_kwh": total(ev_ids, "pos"),
        "v2g_kwh": total(ev_ids, "neg"),
        "fc_fuel_kwh": fuel,
        "fc_heat_kwh": heat,
        "heat_demand_kwh": heat_demand_kwh(config, index),
        "sold_apart_kwh": sold_apart,
    }, index=index)
    devices = [d for d in means.columns if d is not None]
    assets = means[devices].astype(float) * STEP_H
    return Flows(frame, assets, storage_start_kwh, storage_end_kwh, notes)


def stored_kwh(config: SiteConfig, soc_pct: dict[str, float | None]) -> float | None:
    """Energy held in the site's batteries from their SOC in % (None if any is unknown)."""
    total = 0.0
    for ess in config.assets.ess:
        value = soc_pct.get(ess.id)
        if value is None or not np.isfinite(value):
            return None
        total += value / 100.0 * ess.capacity_kwh
    return total


def device_columns(config: SiteConfig) -> list[str]:
    """The devices whose powers make the flows: grid and base-load meters, assets, loads."""
    a = config.assets
    ids = [config.site.grid.meter, config.loads.base.meter]
    ids += [m.id for m in config.meters if m.kind == "trading"]
    ids += [x.id for group in (a.pv, a.ess, a.fuel_cells, a.ev_chargers) for x in group]
    ids += [d.id for d in config.loads.deferrable]
    return [i for i in dict.fromkeys(ids) if i is not None]


def means_from_trace(config: SiteConfig, trace: pd.DataFrame) -> pd.DataFrame:
    """15-minute mean powers per device from a sampled trace (one ``<device>_kw`` column per
    device, tz-aware index of regular samples; the grid meter may be absent)."""
    wanted = {f"{d}_kw": d for d in device_columns(config)}
    present = {c: d for c, d in wanted.items() if c in trace.columns}
    sampled = trace[list(present)].rename(columns=present)
    means = sampled.resample(STEP).mean()
    means.index = means.index.tz_convert("UTC")
    return means


def soc_means_from_trace(config: SiteConfig, trace: pd.DataFrame) -> pd.DataFrame:
    """15-minute mean SOC (%) per battery from a trace's ``<ess>_soc_pct`` columns."""
    present = {f"{e.id}_soc_pct": e.id for e in config.assets.ess
               if f"{e.id}_soc_pct" in trace.columns}
    means = trace[list(present)].rename(columns=present).resample(STEP).mean()
    means.index = means.index.tz_convert("UTC")
    return means


def storage_ends(config: SiteConfig, soc_means: pd.DataFrame
                 ) -> tuple[float | None, float | None]:
    """Energy stored at the period's start and end, read as the mean SOC of its first and
    its last interval (the same rule for measured and simulated worlds)."""
    if soc_means.empty:
        return None, None
    first = {c: float(soc_means[c].dropna().iloc[0]) if soc_means[c].notna().any() else None
             for c in soc_means.columns}
    last = {c: float(soc_means[c].dropna().iloc[-1]) if soc_means[c].notna().any() else None
            for c in soc_means.columns}
    return stored_kwh(config, first), stored_kwh(config, last)


def flows_from_trace(config: SiteConfig, trace: pd.DataFrame) -> Flows:
    """Flows of a simulated world: ``trace`` holds ``<device>_kw`` powers and, per battery,
    ``<ess>_soc_pct``, sampled at regular times."""
    start_kwh, end_kwh = storage_ends(config, soc_means_from_trace(config, trace))
    return flows_from_means(config, means_from_trace(config, trace),
                            storage_start_kwh=start_kwh, storage_end_kwh=end_kwh)


def _interval_means(store: TelemetryStore, quantity: str, start: datetime, end: datetime,
                    index: pd.DatetimeIndex) -> dict[str, pd.Series]:
    """Per device, the 15-minute means of ``quantity`` on ``index``: the store's aggregates
    where it has them, else the mean of the good raw readings of each interval."""
    out: dict[str, pd.Series] = {}
    agg = store.aggregates(quantity=quantity, start=start, end=end)
    if not agg.empty:
        for device, rows in agg.groupby("device"):
            out[str(device)] = pd.Series(rows["mean"].to_numpy(float),
                                         index=pd.DatetimeIndex(rows["start"])).reindex(index)
    raw = store.readings(quantity=quantity, start=start, end=end)
    if not raw.empty:
        raw = raw[(raw["quality"] == "good") & raw["value"].notna()]
        raw = raw[~raw["device"].isin(list(out))]
        for device, rows in raw.groupby("device"):
            starts = pd.DatetimeIndex(rows["time"]).floor(STEP)
            means = pd.Series(rows["value"].to_numpy(float), index=starts).groupby(level=0).mean()
            out[str(device)] = means.reindex(index)
    return out


def flows_from_store(config: SiteConfig, store: TelemetryStore, start: datetime,
                     end: datetime) -> Flows:
    """Measured flows over ``[start, end)`` from the store's 15-minute means of
    ``active_power_kw`` (aggregates, else raw readings); intervals a device lacks count as
    0 kW and are noted. Storage ends are the batteries' mean SOC of the first and the last
    interval."""
    index = interval_index(start, end)
    devices = device_columns(config)
    measured = _interval_means(store, "active_power_kw", start, end, index)
    notes: list[str] = []
    means = pd.DataFrame(index=index)
    for device in devices:
        series = measured.get(device, pd.Series(np.nan, index=index))
        have = int(series.notna().sum())
        if have == 0:
            if device == config.site.grid.meter:
                notes.append(f"{device}: no readings; the grid exchange is the balance of "
                             "the other meters")
            continue  # never measured: absent, so the balance stands in for a grid meter
        if have < len(index):
            notes.append(f"{device}: readings cover {have} of {len(index)} 15-minute "
                         "intervals; missing intervals count as 0 kWh")
        means[device] = series.fillna(0.0)
    soc = _interval_means(store, "soc_pct", start, end, index)
    soc_means = pd.DataFrame(index=index)
    for ess in config.assets.ess:
        if ess.id in soc:
            soc_means[ess.id] = soc[ess.id]
    start_kwh, end_kwh = storage_ends(config, soc_means)
    return flows_from_means(config, means, storage_start_kwh=start_kwh,
                            storage_end_kwh=end_kwh, notes=tuple(notes))
