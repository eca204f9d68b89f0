"""``cems simulate`` + ``cems devices read`` as real processes on the example site's ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _start_simulator(site: Path, duration_s: float) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "cems", "simulate", str(site), "--speed", "60",
         "--duration", str(duration_s)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_ready(proc: subprocess.Popen[str], timeout_s: float = 30) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "ready" in line:
            return line
        if proc.poll() is not None:
            break
    proc.kill()
    _, err = proc.communicate(timeout=10)
    raise AssertionError(f"simulator did not become ready: {err}")


@pytest.mark.timeout(120)
def test_simulated_sejong_site_reads_all_good(run_cems, sejong_site: Path) -> None:
    sim = _start_simulator(sejong_site, duration_s=60)
    try:
        ready = _wait_ready(sim)
        # sejong: 5 PV + 2 ESS + 1 fuel cell + 40 chargers + 2 Modbus meters = 50
        assert "simulating 50 devices" in ready
        result = run_cems("devices", "read", sejong_site, "--json", timeout=60)
    finally:
        sim.terminate()
        out, err = sim.communicate(timeout=20)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["devices"]) == 50
    bad = [(d["id"], d["quality"], d["error"]) for d in data["devices"] if d["quality"] != "good"]
    assert bad == []
    assert all(r["quality"] == "good" for d in data["devices"] for r in d["readings"].values())
    assert data["ami_meters"] == {"kepco-ami": 300}
    assert sim.returncode == 0, err
    assert "simulator stopped" in out
    assert "Traceback" not in err


@pytest.mark.timeout(60)
def test_devices_read_without_peers_says_which_and_why(run_cems, sejong_site: Path) -> None:
    result = run_cems("devices", "read", sejong_site, timeout=60)
    assert result.returncode == 1
    assert "unreachable: grid-meter at modbus_tcp://127.0.0.1:15020 #1" in result.stderr
    assert "connect failed" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(60)
def test_simulate_and_read_reject_bad_input(run_cems, tmp_path: Path, sejong_site: Path) -> None:
    missing = run_cems("devices", "read", tmp_path / "nope.yaml", timeout=60)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    speed = run_cems("simulate", sejong_site, "--speed", "0", timeout=60)
    assert speed.returncode == 2 and "--speed must be > 0" in speed.stderr
    naive = run_cems("simulate", sejong_site, "--start", "2026-07-01T12:00", "--duration", "1",
                     timeout=60)
    assert naive.returncode == 2 and "no time zone" in naive.stderr
