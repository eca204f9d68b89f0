"""The web benchmark runs as one command and, with ``--json``, prints one strict JSON
document: tiny counts, a real ``cems serve`` (benchmarks/web_bench.py). Figures are not
judged here (they depend on the machine); that they are measured and complete is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from strict_json import strict_json


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_web_bench_prints_its_figures(repo_root) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    done = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "web_bench.py"), "--clients", "2",
         "--requests", "3", "--json"],
        capture_output=True, text=True, env=env, timeout=230, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = strict_json(done.stdout)
    assert "/api/kpis p95" in done.stderr
    assert set(doc["figures"]) == set(doc["targets"]) == set(doc["ratios"]) == {
        "kpis_p95_ms", "report_p95_ms", "live_p95_ms", "memory_growth_mb"}
    assert doc["statuses"]["kpis"] == {"200": 6}
    assert doc["statuses"]["report_page"] == {"200": 6}
    assert set(doc["statuses"]["live"]) == {"200"}
    logins = doc["statuses"]["logins"]
    assert sum(logins.values()) == 50 and set(logins) <= {"401", "429"}
    assert logins.get("401", 0) <= 20  # one address: at most 20 failures are checked
