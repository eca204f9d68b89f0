"""Energy figures of a period from its :class:`~cems.accounting.flows.Flows`.

Definitions (each figure says what it is; docs/glossary.md lists them):

* ``import_kwh`` / ``export_kwh``: energy through the grid meter, in / out.
* ``peak_import_kw``: the largest 15-minute mean import.
* ``consumption_kwh``: what the site's loads used (base, deferrable, EV charging).
* ``self_sufficiency_pct``: the share of consumption not bought from the grid, time-matched
  (``1 − Σ import ÷ Σ consumption`` over 15-minute intervals: export in one interval never
  offsets import in another). Energy a battery took from the grid counts as import, so it
  cannot come back as "local" supply. Floored at 0.
* ``self_consumption_pct``: the share of local generation (PV + fuel cell) used on site,
  ``1 − Σ export ÷ Σ generation``.
* ``storage_change_kwh``: energy held in the site's batteries at the end minus the start.
* ``sold_apart_kwh``: PV sold whole through its own trading meter (not the site's).
* ``ev_charge_kwh``: energy the chargers delivered (AC side); ``v2g_kwh`` taken back. The
  service cars received (battery side, per stay) is :mod:`cems.accounting.ev`.

Not here: 에너지자립률 (the ZEB certification ratio, primary energy, annual, gross) is
:mod:`cems.accounting.zeb`; it is a different figure and is never mixed with these.
"""

from __future__ import annotations

from typing import Any

from cems.accounting.flows import STEP_H, Flows

#: Decimals every reported energy (kWh), power (kW) and percentage keeps.
DECIMALS = 3


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), DECIMALS)


def self_sufficiency_pct(import_kwh: float, consumption_kwh: float) -> float | None:
    """``100 × (1 − import ÷ consumption)``, floored at 0; None without consumption."""
    if consumption_kwh <= 0:
        return None
    return max(0.0, 100.0 * (1.0 - import_kwh / consumption_kwh))


def self_consumption_pct(export_kwh: float, generation_kwh: float) -> float | None:
    """``100 × (1 − export ÷ generation)``, floored at 0; None without generation."""
    if generation_kwh <= 0:
        return None
    return max(0.0, 100.0 * (1.0 - export_kwh / generation_kwh))


def energy_figures(flows: Flows) -> dict[str, Any]:
    """The period's energy figures (rounded to :data:`DECIMALS`)."""
    f = flows.frame
    imp = float(f["grid_import_kwh"].sum())
    exp = float(f["grid_export_kwh"].sum())
    consumption = float(flows.consumption_kwh.sum())
    generation = float(f["pv_kwh"].sum() + f["fc_kwh"].sum())
    change = (None if flows.storage_start_kwh is None or flows.storage_end_kwh is None
              else flows.storage_end_kwh - flows.storage_start_kwh)
    return {
        "consumption_kwh": _r(consumption),
        "import_kwh": _r(imp),
        "export_kwh": _r(exp),
        "peak_import_kw": _r(float(f["grid_import_kwh"].max()) / STEP_H if len(f) else 0.0),
        "pv_kwh": _r(float(f["pv_kwh"].sum())),
        "fc_kwh": _r(float(f["fc_kwh"].sum())),
        "ess_charge_kwh": _r(float(f["ess_charge_kwh"].sum())),
        "ess_discharge_kwh": _r(float(f["ess_discharge_kwh"].sum())),
        "ev_charge_kwh": _r(float(f["ev_charge_kwh"].sum())),
        "v2g_kwh": _r(float(f["v2g_kwh"].sum())),
        "storage_change_kwh": _r(change),
        "sold_apart_kwh": _r(float(f["sold_apart_kwh"].sum())),
        "self_sufficiency_pct": _r(self_sufficiency_pct(imp, consumption)),
        "self_consumption_pct": _r(self_consumption_pct(exp, generation)),
    }
