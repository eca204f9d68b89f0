"""Worker tasks for the portfolio engine tests (importable by Dask worker processes)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from cems.fleet.work import SitePlan


def die_on_marked_site(
    site_file: str, delivery: date, round_no: int = 1, time_limit_s: float = 60.0
) -> SitePlan:
    """Kill the worker process (a lost worker) for a site file whose name says ``die``;
    return a tiny plan for the others."""
    if "die" in Path(site_file).name:
        os._exit(3)
    return SitePlan(
        Path(site_file).stem,
        site_file,
        "optimal",
        0.0,
        ("pv-1",),
        (tuple([0.0] * 24),),
        (),
        0.0,
        str(os.getpid()),
    )
