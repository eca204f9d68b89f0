"""Device limits for the safety layer, taken from the site file."""

from __future__ import annotations

from cems.config.model import SiteConfig
from cems.dispatch.safety import DeviceLimits


def device_limits(config: SiteConfig) -> dict[str, DeviceLimits]:
    """Limits of every controllable asset, keyed by id."""
    out: dict[str, DeviceLimits] = {}
    for ess in config.assets.ess:
        out[ess.id] = DeviceLimits(
            ess.id, "ess", max_charge_kw=ess.max_charge_kw,
            max_discharge_kw=ess.max_discharge_kw, capacity_kwh=ess.capacity_kwh,
            soc_min=ess.soc_min, soc_max=ess.soc_max,
            charge_efficiency=ess.charge_efficiency,
            discharge_efficiency=ess.discharge_efficiency,
        )
    for fc in config.assets.fuel_cells:
        out[fc.id] = DeviceLimits(
            fc.id, "fuel_cell", max_charge_kw=fc.max_kw, min_kw=fc.min_kw, safe_kw=fc.safe_kw,
            ramp_kw_per_min=fc.ramp_kw_per_min,
        )
    for ch in config.assets.ev_chargers:
        out[ch.id] = DeviceLimits(
            ch.id, "ev_charger", max_charge_kw=ch.max_kw,
            max_discharge_kw=ch.max_discharge_kw if ch.bidirectional else 0.0, min_kw=ch.min_kw,
            soc_min=ch.v2g_min_soc,  # the V2G floor: no discharge at or below it
        )
    for pv in config.assets.pv:
        out[pv.id] = DeviceLimits(pv.id, "pv", max_charge_kw=pv.inverter_ac_kw)
    for load in config.loads.deferrable:
        out[load.id] = DeviceLimits(load.id, "deferrable", max_charge_kw=load.max_kw,
                                    min_kw=load.min_kw)
    return out
