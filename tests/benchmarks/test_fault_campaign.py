"""The fault campaign benchmark runs as one command and prints one strict JSON document:
parts (b) and (c) with tiny counts, in a real process (benchmarks/fault_campaign.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from strict_json import strict_json


@pytest.mark.timeout(120)
def test_quick_campaign_parts_b_and_c_print_strict_json(repo_root) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    done = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "fault_campaign.py"), "--quick",
         "--json", "--parts", "bc", "--cases", "150", "--kills", "2"],
        capture_output=True, text=True, env=env, timeout=110, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = strict_json(done.stdout)  # the document alone: progress went to stderr
    assert "(b) safety_layer" in done.stderr
    assert doc["quick"] is True and set(doc) >= {"safety_layer", "crash", "all_met", "wall_s"}
    assert "comm_loss" not in doc and "grid_meter_lost" not in doc

    layer = doc["safety_layer"]
    assert layer["cases"] == 150
    assert layer["violations"] == sum(layer["by_category"].values())
    assert set(layer["examples"]) == set(layer["by_category"])
    assert layer["met"] is (layer["violations"] == 0)

    crash = doc["crash"]
    sqlite = crash["sqlite"]
    assert sqlite["kills"] == 2 and sqlite["committed_reported"] > 0
    assert sqlite["lost"] == 0  # the store keeps every committed reading (WAL)
    postgres = crash["postgresql"]
    if "skipped" in postgres:
        assert not os.environ.get("CI"), f"CI must run PostgreSQL: {postgres['skipped']}"
    else:
        assert postgres["kills"] == 2 and postgres["lost"] == 0
    assert crash["met"] is True
