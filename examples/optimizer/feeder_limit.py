"""A site-specific constraint through the optimiser's Pyomo hook: a feeder transformer limit.

The dispatch model knows the grid connection's import limit, but not that the site's
feeder transformer is rated below it. A hook adds the rule to the Pyomo model of the plan
(built from the same layout as the fast path, so it is the same model), and the plan is
solved through that model: ``result.stats["route"]`` says ``pyomo+highspy``.

Hand arithmetic (4 one-hour steps, import 100 KRW/kWh, load 50/50/120/50 kW, a 40 kWh /
40 kW battery that starts empty, loses 20 % when charging, and may end empty):

* without the hook nothing pays for the battery: import = load, 270 kWh x 100 = 27,000 KRW;
* with a 100 kW feeder limit step 2 may import only 100 kW: the battery delivers 20 kWh
  there, charged as 20 / 0.8 = 25 kWh before it: 27,000 + 5 x 100 = 27,500 KRW.

Run: ``python examples/optimizer/feeder_limit.py`` (prints both plans' step-2 import).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from optimizer import DispatchProblem, Grid, Storage, solve

FEEDER_KW = 100.0


def feeder_limit(model, problem):  # type: ignore[no-untyped-def]
    """The hook: net import through the feeder at most FEEDER_KW in every step.

    ``model.grid_import_kw`` / ``model.grid_export_kw`` are the plan's indexed variables
    (one per step); any Pyomo variable, constraint or expression may be added here, and an
    expression returned is added to the objective (KRW)."""
    from pyomo.environ import Constraint

    model.feeder_limit = Constraint(
        range(problem.n_steps),
        rule=lambda m, t: m.grid_import_kw[t] - m.grid_export_kw[t] <= FEEDER_KW)


def site() -> DispatchProblem:
    return DispatchProblem(
        n_steps=4, step_h=1.0, load_kw=[50.0, 50.0, 120.0, 50.0],
        grid=Grid(import_price_krw_per_kwh=100.0),
        storage=(Storage("b", capacity_kwh=40, max_charge_kw=40, max_discharge_kw=40,
                         charge_efficiency=0.8, discharge_efficiency=1.0, soc_min=0.0,
                         soc_initial=0.0, terminal_soc=0.0),))


def main() -> None:
    plain = solve(site())
    limited = solve(site(), pyomo_hook=feeder_limit)
    for name, r in (("no feeder limit", plain), (f"feeder <= {FEEDER_KW:g} kW", limited)):
        print(f"{name:>18}: {r.objective_krw:9,.0f} KRW, step-2 import "
              f"{r.schedule['grid_import_kw'].iloc[2]:6.1f} kW, route {r.stats['route']}")


if __name__ == "__main__":
    main()
