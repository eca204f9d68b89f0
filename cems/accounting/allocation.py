"""The community's supply allocated to households, never more than a household used.

Per interval, household ``h`` with asset share ``s_h`` is allocated
``a_h = min(c_h, s_h × S)``: its share of the community's net local supply ``S``
(:attr:`~cems.accounting.flows.Flows.local_supply_kwh`: PV + fuel cell + battery net
discharge + V2G), capped at its own consumption ``c_h``. What is left (``S − Σ a_h``) serves
the common load and is exported. A household inside the complex then buys ``c_h − a_h``
through its own meter.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from cems.errors import InputError


def allocate(consumption_kwh: pd.DataFrame, supply_kwh: pd.Series,
             shares: Mapping[str, float]) -> pd.DataFrame:
    """Allocated supply per interval and household (kWh), the same shape as
    ``consumption_kwh`` (one column per household, intervals as index)."""
    missing = [h for h in consumption_kwh.columns if h not in shares]
    if missing:
        raise InputError(f"no asset share for household(s) {', '.join(map(str, missing))}")
    total = sum(float(shares[h]) for h in consumption_kwh.columns)
    if total > 1.0 + 1e-9:
        raise InputError(f"asset shares sum to {total:.6g} > 1")
    used = consumption_kwh.to_numpy(dtype=float)
    if (used < 0).any() or not np.isfinite(used).all():
        raise InputError("household consumption must be finite and >= 0")
    supply = supply_kwh.reindex(consumption_kwh.index).fillna(0.0).to_numpy(dtype=float)
    share = np.array([float(shares[h]) for h in consumption_kwh.columns])
    allocated = np.minimum(used, np.clip(supply, 0.0, None)[:, None] * share[None, :])
    return pd.DataFrame(allocated, index=consumption_kwh.index, columns=consumption_kwh.columns)
