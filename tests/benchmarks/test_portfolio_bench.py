"""The portfolio benchmark runs as one command and prints one strict JSON document, at a
tiny size (benchmarks/portfolio_bench.py; the 1,000-site figures are in docs/portfolio.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from strict_json import strict_json


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_tiny_portfolio_bench_prints_its_figures(repo_root) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    done = subprocess.run(
        [
            sys.executable,
            str(repo_root / "benchmarks" / "portfolio_bench.py"),
            "--sites",
            "4",
            "--sample",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=220,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = strict_json(done.stdout)  # the document alone: progress went to stderr
    assert "3. full portfolio: 4 sites on 2 workers" in done.stderr
    assert (doc["sites"], doc["sample_sites"]) == (4, 2)
    full = doc["full"]
    assert (full["planned"], full["failed"]) == (4, 0)
    assert doc["targets"]["wall_ratio"] == pytest.approx(full["wall_s"] / 600.0, abs=1e-3)
    assert doc["scaling"]["speedup"] == pytest.approx(
        doc["scaling"]["workers_1_s"] / doc["scaling"]["workers_2_s"], rel=0.02
    )
    assert doc["scaling"]["failed"] == 0 and doc["engine_1_worker"]["failed"] == 0
