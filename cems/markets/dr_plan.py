"""What an accepted DR event asks of the planner: a grid-import cap (or floor) per step.

For a 국민DR reduction the community promised to cut ``committed_kw`` below its baseline, so
the planned import in each event step must not exceed ``CBL / step_h - committed_kw``. For
a 플러스DR increase the import must reach at least ``CBL / step_h + committed_kw``. The
optimiser (built separately) takes these as per-step bounds on its grid-import variable;
this module only turns a baseline into the bounds, so the arithmetic is testable alone.
"""

from __future__ import annotations

import pandas as pd

from cems.errors import InputError


def import_bounds_kw(baseline_kwh: pd.Series, committed_kw: float, *, increase: bool = False
                     ) -> pd.Series:
    """Per-step import cap (reduction) or floor (``increase=True``) in kW.

    ``baseline_kwh`` is indexed by tz-aware interval starts at a regular step (15 minutes or
    one hour); the step length comes from the index. A reduction cap never goes below 0 kW.
    """
    if committed_kw < 0:
        raise InputError(f"committed_kw must not be negative, got {committed_kw:g}")
    if baseline_kwh.isna().any():
        raise InputError("the baseline has intervals without reference days; no DR bound can "
                         "be set (규칙 제12.5.2.3조 ④)")
    if len(baseline_kwh) > 1:
        step_h = (baseline_kwh.index[1] - baseline_kwh.index[0]).total_seconds() / 3600.0
    else:
        freq = getattr(baseline_kwh.index, "freq", None)
        step_h = pd.Timedelta(freq).total_seconds() / 3600.0 if freq is not None else 0.25
    baseline_kw = baseline_kwh / step_h
    if increase:
        return (baseline_kw + committed_kw).rename("import_min_kw")
    return (baseline_kw - committed_kw).clip(lower=0.0).rename("import_max_kw")
