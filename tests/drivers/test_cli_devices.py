"""``cems simulate`` + ``cems devices read`` as real processes on a copy of the example site.

The copy listens on free loopback ports (tests/support/example_sites.py), so the tests pass
while ``cems demo`` or anything else holds the example's own ports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from example_sites import ExampleSite, copy_on_free_ports
from processes import wait_for_line
from strict_json import strict_json

from cems.config import load_site

REPO = Path(__file__).resolve().parents[2]


def _start_simulator(site: Path, duration_s: float) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "cems", "simulate", str(site), "--speed", "60",
         "--duration", str(duration_s)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture
def sejong_copy(sejong_site: Path, tmp_path: Path) -> ExampleSite:
    """The Sejong 5-1 example site, copied with free loopback ports."""
    return copy_on_free_ports(sejong_site, tmp_path)


@pytest.mark.timeout(240)
def test_simulated_sejong_site_reads_all_good(run_cems, sejong_copy: ExampleSite) -> None:
    site = sejong_copy.path
    sim = _start_simulator(site, duration_s=180)
    try:
        ready = wait_for_line(sim, "ready", 60, "cems simulate")
        # sejong: 5 PV + 2 ESS + 1 fuel cell + 40 chargers + 2 Modbus meters = 50
        assert "simulating 50 devices" in ready
        assert all(f"127.0.0.1:{port}" in ready for port in sejong_copy.ports.values()), ready
        result = run_cems("devices", "read", site, "--json", timeout=120)
    finally:
        sim.terminate()
        out, err = sim.communicate(timeout=20)
    assert result.returncode == 0, result.stderr
    data = strict_json(result.stdout)
    assert len(data["devices"]) == 50
    bad = [(d["id"], d["quality"], d["error"]) for d in data["devices"] if d["quality"] != "good"]
    assert bad == []
    assert all(r["quality"] == "good" for d in data["devices"] for r in d["readings"].values())
    assert data["ami_meters"] == {"kepco-ami": 300}
    assert sim.returncode == 0, err
    assert "simulator stopped" in out
    assert "Traceback" not in err


@pytest.mark.timeout(150)
def test_devices_read_without_peers_says_which_and_why(run_cems,
                                                       sejong_copy: ExampleSite) -> None:
    # Nothing listens on the copy's ports (free when allocated, and never served).
    meter = next(m for m in load_site(sejong_copy.path).meters if m.id == "grid-meter")
    meter_port = meter.connection.port
    assert meter_port in sejong_copy.ports.values()
    result = run_cems("devices", "read", sejong_copy.path, "--json", timeout=120)
    assert result.returncode == 1
    doc = strict_json(result.stdout)  # with --json the document is still the whole stdout
    assert {d["quality"] for d in doc["devices"]} == {"comm_lost"}
    assert f"unreachable: grid-meter at modbus_tcp://127.0.0.1:{meter_port} #1" in result.stderr
    assert "connect failed" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(200)
def test_simulate_and_read_reject_bad_input(run_cems, tmp_path: Path,
                                            sejong_copy: ExampleSite) -> None:
    # On the copy: were an input accepted by mistake, the simulator would serve free ports.
    missing = run_cems("devices", "read", tmp_path / "nope.yaml", timeout=60)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    speed = run_cems("simulate", sejong_copy.path, "--speed", "0", timeout=60)
    assert speed.returncode == 2 and "--speed must be > 0" in speed.stderr
    naive = run_cems("simulate", sejong_copy.path, "--start", "2026-07-01T12:00",
                     "--duration", "1", timeout=60)
    assert naive.returncode == 2 and "no time zone" in naive.stderr
