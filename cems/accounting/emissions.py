"""CO2 of a period: grid import at the grid factor plus fuel-cell fuel at its fuel factor.

Both factors come from the site file with their sources (``site.grid.emission_factor_*``,
``assets.fuel_cells[].fuel_emission_factor_*``). Export earns no credit (the grid factor is
an average, not the margin the export displaces). Amounts in kg CO2eq.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cems.accounting.flows import Flows
from cems.config.model import SiteConfig


def co2(config: SiteConfig, flows: Flows) -> dict[str, Any]:
    """``co2_kg`` (total) and ``co2_breakdown`` (kg by source, and the factors used)."""
    grid = config.site.grid
    grid_kg = float(flows.frame["grid_import_kwh"].sum()) * grid.emission_factor_kg_per_kwh
    fuel_kg = 0.0
    for fc in config.assets.fuel_cells:
        if fc.id in flows.assets:
            fuel_kwh = float(np.clip(flows.assets[fc.id].to_numpy(dtype=float), 0.0, None)
                             .sum()) / fc.electrical_efficiency
            fuel_kg += fuel_kwh * fc.fuel_emission_factor_kg_per_kwh
    return {
        "co2_kg": round(grid_kg + fuel_kg, 1),
        "co2_breakdown": {
            "grid_import_kg": round(grid_kg, 1),
            "fuel_cell_fuel_kg": round(fuel_kg, 1),
            "grid_factor_kg_per_kwh": grid.emission_factor_kg_per_kwh,
            "grid_factor_source": grid.emission_factor_source,
            "fuel_factors_kg_per_kwh": {fc.id: fc.fuel_emission_factor_kg_per_kwh
                                        for fc in config.assets.fuel_cells},
        },
    }
