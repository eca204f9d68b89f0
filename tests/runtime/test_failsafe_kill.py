"""Acceptance: a SIGKILLed runtime leaves no device holding its setpoint.

``cems simulate`` and ``cems run`` run as real processes on loopback (a copy of the Busan
example on free ports). Once the runtime has the battery discharging, the fuel cells above
their safe output and cars charging at planned rates, it is killed with SIGKILL: nothing of
it runs any more, no shutdown path, no safe-state write. Every controllable device must then
fall back by itself, through the communication timeout every write armed (``--expiry-s``):
battery idle, fuel cells at ``safe_kw``, chargers at their ``min_kw`` failsafe, PV uncapped.

Time is measured in simulated seconds, read from the devices' own heartbeat counters (whole
simulated seconds), so a slow machine can delay when the test *sees* a device safe, never
make a correct device look late: the check is that no device is ever seen unsafe later than
its timeout after the kill, and that all of them are seen safe.

The copy is changed so that the runtime's commands are not a matter of the time of day:
the simulated world's base load (its own site file, ``sim.yaml``, at 03:00) runs well above
the runtime's forecast and its import limit is 1 kW, so the plan must run the fuel cells at
full output and discharge the battery now (the forecast falls back to its level within a few
hours, when the battery recharges). Fuel-cell ramps are off (outputs follow at once);
deferrable loads (not simulated) and brokerage are left out to keep the plans small.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from example_sites import copy_on_free_ports
from processes import wait_for_line

from cems.config import load_site
from cems.config.model import SiteConfig
from cems.devices import DeviceResult, build_devices, read_all
from cems.dispatch.safety import DeviceLimits
from cems.runtime.limits import device_limits

pytestmark = pytest.mark.timeout(300)

#: The runtime's setpoint expiry (s): each write arms the device's timeout with it.
EXPIRY_S = 4
#: Simulated start: night (no PV), the simulated load near its daily minimum.
SIM_START = "2026-12-07T03:00:00+09:00"
#: The simulated world's base load: about 2,250 kW at 03:00, against the runtime's forecast
#: of 825-1,625 kW (30,000 kWh/day, no peak_kw) and 2,000 kW of fuel cells + 1 kW import.
SIM_DAILY_KWH = 72_000
#: One simulated second of slack: heartbeats are whole seconds.
HEARTBEAT_SLACK_S = 1


def _env(repo_root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(repo_root), "PYTHONIOENCODING": "utf-8"}


def _sites(busan_site: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The runtime's site file and the simulator's (same devices and ports, more load)."""
    site = copy_on_free_ports(busan_site, tmp_path).path
    doc = yaml.safe_load(site.read_text(encoding="utf-8"))
    doc["site"]["grid"]["import_limit_kw"] = 1
    doc["brokerage"]["enabled"] = False
    doc["loads"].pop("deferrable", None)
    doc["loads"]["base"].pop("peak_kw", None)
    for fc in doc["assets"]["fuel_cells"]:
        fc.pop("ramp_kw_per_min", None)
    doc["scheduler"]["horizon_h"] = 6
    site.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    doc["loads"]["base"]["daily_energy_kwh"] = SIM_DAILY_KWH
    sim_site = site.with_name("sim.yaml")
    sim_site.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
                        encoding="utf-8")
    return site, sim_site


def _read(config: SiteConfig) -> dict[str, DeviceResult]:
    results = asyncio.run(read_all(build_devices(config)))
    return {r.id: r for r in results}


def _value(result: DeviceResult, name: str) -> float | None:
    reading = result.readings.get(name)
    return reading.value if reading is not None and reading.ok else None


def _is_safe(limits: DeviceLimits, result: DeviceResult) -> bool | None:
    """True in the safe state, False out of it, None if the device could not be read."""
    power = _value(result, "active_power_kw")
    if limits.kind == "pv":
        limit = _value(result, "power_limit_pct")
        return None if limit is None else limit >= 99.95
    setpoint = _value(result, "power_setpoint_kw")
    if setpoint is None or power is None:
        return None
    if limits.kind == "ess":
        return abs(setpoint) < 0.05 and abs(power) < 0.5
    if limits.kind == "fuel_cell":
        return abs(setpoint - limits.safe_kw) < 0.05 and abs(power - limits.safe_kw) < 0.5
    # charger: its failsafe (min_kw) at most, never V2G
    return abs(setpoint - limits.min_kw) < 0.01 and -0.01 <= power <= limits.min_kw + 0.01


def _commanded_away(limits: dict[str, DeviceLimits], results: dict[str, DeviceResult]
                    ) -> dict[str, list[str]]:
    """Per kind, the devices the runtime has out of their safe state (chargers: with a car)."""
    out: dict[str, list[str]] = {"ess": [], "fuel_cell": [], "ev_charger": []}
    for device_id, lim in limits.items():
        result = results.get(device_id)
        if lim.kind not in out or result is None or _is_safe(lim, result) is not False:
            continue
        if lim.kind == "ev_charger" and not _value(result, "session_state"):
            continue
        out[lim.kind].append(device_id)
    return out


def _armed(limits: dict[str, DeviceLimits], results: dict[str, DeviceResult]) -> bool:
    """Every controllable device has a timeout armed by the runtime (<= the expiry)."""
    for device_id in limits:
        timeout = _value(results[device_id], "setpoint_timeout_s")
        if timeout is None or not 0 < timeout <= EXPIRY_S:
            return False
    return True


def _heartbeat(result: DeviceResult) -> int:
    value = _value(result, "heartbeat_count")
    assert value is not None, f"{result.id}: no heartbeat ({result.error})"
    return int(value)


def test_sigkilled_runtime_every_device_falls_back_within_its_timeout(
        busan_site, tmp_path, repo_root):
    site, sim_site = _sites(busan_site, tmp_path)
    config = load_site(site)
    limits = {d: lim for d, lim in device_limits(config).items() if lim.kind != "deferrable"}
    assert {lim.kind for lim in limits.values()} == {"ess", "fuel_cell", "ev_charger", "pv"}
    sim = subprocess.Popen(
        [sys.executable, "-m", "cems", "simulate", str(sim_site), "--start", SIM_START,
         "--duration", "280"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(repo_root))
    runtime: subprocess.Popen[str] | None = None
    log_path = tmp_path / "cems-run.log"  # a file: a full pipe would stall the runtime
    try:
        wait_for_line(sim, "ready", 60, "cems simulate")
        with log_path.open("w", encoding="utf-8") as log_file:
            runtime = subprocess.Popen(
                [sys.executable, "-m", "cems", "run", str(site), "--db",
                 f"sqlite:///{tmp_path / 'cems.sqlite'}", "--poll-s", "1",
                 "--expiry-s", str(EXPIRY_S)],
                stdout=log_file, stderr=subprocess.STDOUT, text=True, env=_env(repo_root))

        # 1. the runtime in control: setpoints out of the safe state, every timeout armed
        deadline = time.monotonic() + 150
        away: dict[str, list[str]] = {}
        while time.monotonic() < deadline:
            assert runtime.poll() is None, (
                f"cems run exited: {log_path.read_text(encoding='utf-8')[-2000:]}")
            results = _read(config)
            away = _commanded_away(limits, results)
            if all(away.values()) and _armed(limits, results):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the runtime did not take control within 150 s: out of safe state "
                        f"{away}; its log:\n{log_path.read_text(encoding='utf-8')[-2000:]}")

        # 2. SIGKILL: no shutdown, no safe-state write
        runtime.send_signal(signal.SIGKILL)
        runtime.wait(timeout=10)
        assert runtime.returncode == -signal.SIGKILL
        after_kill = _read(config)
        t_kill = {d: _heartbeat(after_kill[d]) for d in limits}

        # 3. every device falls back by itself, within its timeout (simulated seconds)
        seen_unsafe_at: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while True:
            results = _read(config)
            safe = {}
            for device_id, lim in limits.items():
                result = results[device_id]
                safe[device_id] = _is_safe(lim, result)
                if safe[device_id] is False:
                    since = (_heartbeat(result) - t_kill[device_id]) % 65536
                    seen_unsafe_at[device_id] = max(seen_unsafe_at.get(device_id, 0), since)
            if all(safe.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for proc in (runtime, sim):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=15)
        if sim.stdout is not None:
            sim.stdout.close()

    not_safe = sorted(d for d, ok in safe.items() if not ok)
    assert not not_safe, f"still not in their safe state 60 s after the kill: {not_safe}"
    late = {d: s for d, s in seen_unsafe_at.items() if s > EXPIRY_S + HEARTBEAT_SLACK_S}
    assert not late, (f"seen out of the safe state later than {EXPIRY_S} s (+ "
                      f"{HEARTBEAT_SLACK_S} s) after the kill, in simulated seconds: {late}")
    # what was driven back: the battery, the fuel cells and the cars' chargers
    assert away["ess"] and away["fuel_cell"] and away["ev_charger"]
