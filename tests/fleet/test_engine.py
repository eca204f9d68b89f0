"""The engine's isolation on real Dask worker processes: a task that kills its worker."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from fleet_tasks import die_on_marked_site

from cems.fleet.engine import ATTEMPTS, SiteError, run_batch
from cems.fleet.work import SitePlan


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_lost_worker_fails_its_site_alone(tmp_path: Path) -> None:
    files = [str(tmp_path / name) for name in ("a.yaml", "die.yaml", "b.yaml", "c.yaml")]
    seen: list[SitePlan | SiteError] = []
    result = run_batch(
        files, date(2026, 7, 21), workers=2, task=die_on_marked_site, on_result=seen.append
    )
    assert sorted(p.site_id for p in result.planned) == ["a", "b", "c"]
    (failure,) = result.failed
    assert failure.site_file.endswith("die.yaml") and failure.attempts == ATTEMPTS
    assert failure.reason.startswith(f"worker lost on every attempt ({ATTEMPTS})")
    assert len(seen) == 4  # every outcome was handed over as it arrived
