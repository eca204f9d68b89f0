"""Every figure a user sees, computed in one place.

* :mod:`~cems.accounting.flows`: 15-minute energy flows at the site's meters, measured
  (the store) or simulated (a trace), with the same arithmetic.
* :mod:`~cems.accounting.figures`: energies, peak, self-sufficiency, self-consumption,
  storage change.
* :mod:`~cems.accounting.costs`: cost lines (import, demand charge with the one proration,
  fuel, heat credited up to the heat demand, degradation, storage change) and the one
  won-rounding rule.
* :mod:`~cems.accounting.emissions`: CO2 of grid import and fuel-cell fuel.
* :mod:`~cems.accounting.ev`: the charging service: energy into cars per stay, targets met,
  energy banked in cars plugged in at the period's ends.
* :mod:`~cems.accounting.allocation`: community supply allocated to households, capped at
  their consumption.
* :mod:`~cems.accounting.zeb`: the ZEB rule's 에너지자립률 and grade (a different figure).

The demo, the reports, the web API and the dashboard call :func:`site_figures`; no other
module computes these figures.
"""

from __future__ import annotations

from typing import Any

from cems.accounting.costs import cost_lines, heat_figures, round_won
from cems.accounting.emissions import co2
from cems.accounting.figures import energy_figures
from cems.accounting.flows import Flows, flows_from_means, flows_from_store, flows_from_trace
from cems.config.model import SiteConfig


def site_figures(config: SiteConfig, flows: Flows,
                 ev: dict[str, Any] | None = None) -> dict[str, Any]:
    """A period's energy figures, ``cost_krw`` lines and CO2 (with its breakdown); with
    ``ev`` (:func:`cems.accounting.ev.ev_figures` of the period's sessions) also the charging
    service, and the energy banked in cars priced in the cost lines."""
    change = (None if ev is None else
              float(ev["ev_in_progress_end_kwh"]) - float(ev["ev_in_progress_start_kwh"]))
    return {**energy_figures(flows), **(ev or {}), **heat_figures(config, flows),
            "cost_krw": cost_lines(config, flows, ev_in_progress_change_kwh=change),
            **co2(config, flows)}


__all__ = [
    "Flows", "co2", "cost_lines", "energy_figures", "flows_from_means", "flows_from_store",
    "flows_from_trace", "heat_figures", "round_won", "site_figures",
]
