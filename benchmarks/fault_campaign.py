"""Fault campaign (issue 14, "safe under faults"): four measurements against their targets.

    python benchmarks/fault_campaign.py [--quick] [--json] [--parts abcd] [--seed N]
                                        [--postgres URL|none]

(a) comm loss: each controllable device of a small simulated site (ESS, fuel cell, two EV
    chargers, PV; each on a port of its own) is dropped in turn, several rounds, while the
    runtime runs in stepped time against the Modbus simulator; the share of drops after
    which the device is physically in its safe state two poll intervals later. A device
    already in its safe state at the drop is first given a non-safe last command (written
    into the twin as the runtime's last Modbus write would be), so no drop passes trivially.
    Target 100 %.
(b) safety layer: N random cases (hypothesis when installed, else numpy with the seed) of
    ``clamp``, ``safe_state`` and ``hold_grid_limits`` with random limits, statuses, plans
    and grid readings; counts commands outside the device's limits, and predicted import
    above the limit where the documented levers (EV charging cut, deferrable loads off, ESS
    discharge within its live limits) could have held it. Target 0.
(c) crash: N SIGKILLs of a writer process at random moments (it prints its committed count
    after each commit), on SQLite and PostgreSQL; lost = committed and reported - present.
    Target 0.
(d) grid meter lost: a site with a 20 kW import limit on the self-consumption fallback
    (every plan fails), EV cars plugged in; the grid meter frozen; simulated seconds the
    true import (the twin's physics) is above the limit. A control run keeps the meter
    good. Target 0 s.

Everything runs on allocated loopback ports and temporary files; PostgreSQL in a schema of
its own (default ``CEMS_TEST_POSTGRES_URL`` or ``postgresql+psycopg://root@127.0.0.1:5432/
test``; unreachable -> that half of (c) is reported as skipped). ``--quick`` uses small
counts (about a minute); ``--json`` prints one strict JSON document on stdout and nothing
else (progress goes to stderr). Each part is an importable function.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SEOUL = ZoneInfo("Asia/Seoul")
POSTGRES_URL = os.environ.get("CEMS_TEST_POSTGRES_URL",
                              "postgresql+psycopg://root@127.0.0.1:5432/test")

TARGET_SAFE_SHARE_PCT = 100.0
TARGET_VIOLATIONS = 0
TARGET_LOST_READINGS = 0
TARGET_EXCEEDANCE_S = 0.0

T = TypeVar("T")


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


# ============================================================================ ports, sites

_issued: set[int] = set()


def free_port() -> int:
    """A free loopback port, never the same twice in this process."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _issued:
            _issued.add(port)
            return port
    raise RuntimeError("no free loopback port")


def _tcp(port: int, device_id: int, profile: str) -> dict[str, Any]:
    return {"protocol": "modbus_tcp", "host": "127.0.0.1", "port": port,
            "device_id": device_id, "profile": profile, "timeout_s": 0.5}


def comm_loss_site_doc() -> dict[str, Any]:
    """Grid and load meters (one port), PV, ESS, fuel cell, two EV chargers (a port each)."""
    meters = free_port()
    return {
        "site": {"id": "campaign-a", "name": "Fault campaign, comm loss", "latitude": 36.5,
                 "longitude": 127.3, "data_dir": "data",
                 "grid": {"contract_power_kw": 300, "import_limit_kw": 300,
                          "export_limit_kw": 200, "tariff_plan": "general_b_high_a_2",
                          "meter": "grid-meter"}},
        "assets": {
            "pv": [{"id": "pv-1", "kwp": 60, "tilt_deg": 20, "azimuth_deg": 180,
                    "inverter_ac_kw": 55,
                    "connection": _tcp(free_port(), 1, "generic_pv_inverter")}],
            "ess": [{"id": "ess-1", "capacity_kwh": 100, "max_charge_kw": 50,
                     "max_discharge_kw": 50, "soc_initial": 0.5,
                     "connection": _tcp(free_port(), 1, "generic_ess")}],
            "fuel_cells": [{"id": "fc-1", "min_kw": 10, "max_kw": 40,
                            "electrical_efficiency": 0.45, "fuel_price_krw_per_kwh": 60,
                            "safe_kw": 10,
                            "connection": _tcp(free_port(), 1, "generic_fuel_cell")}],
            "ev_chargers": [
                {"id": f"evc-{i}", "max_kw": 11, "min_kw": 1.4,
                 "connection": _tcp(free_port(), 1, "generic_ev_charger")} for i in (1, 2)],
        },
        "loads": {"base": {"meter": "load-meter", "peak_kw": 150, "daily_energy_kwh": 2000}},
        "meters": [
            {"id": "grid-meter", "kind": "grid", "connection": _tcp(meters, 1,
                                                                      "generic_meter_3ph")},
            {"id": "load-meter", "kind": "sub", "connection": _tcp(meters, 2,
                                                                     "generic_meter_3ph")},
        ],
        "scheduler": {"poll_interval_s": 5, "setpoint_expiry_s": 8, "replan_interval_min": 15,
                      "horizon_h": 2},
    }


#: Part (d): the import limit, and an evening load that the ESS alone keeps below it.
GRID_LIMIT_KW = 20.0


def grid_limit_site_doc() -> dict[str, Any]:
    """A 20 kW import limit; evening base load ~42 kW at 19:00; a 30 kW ESS covers most of
    it; three EV chargers with a 4 kW minimum rate push import over the limit unless cut."""
    meters = free_port()
    return {
        "site": {"id": "campaign-d", "name": "Fault campaign, grid meter lost",
                 "latitude": 36.5, "longitude": 127.3, "data_dir": "data",
                 "grid": {"contract_power_kw": 100, "import_limit_kw": GRID_LIMIT_KW,
                          "export_limit_kw": 50, "tariff_plan": "general_b_high_a_2",
                          "meter": "grid-meter"}},
        "assets": {
            "ess": [{"id": "ess-1", "capacity_kwh": 200, "max_charge_kw": 30,
                     "max_discharge_kw": 30, "soc_initial": 0.8,
                     "connection": _tcp(free_port(), 1, "generic_ess")}],
            "ev_chargers": [
                {"id": f"evc-{i}", "max_kw": 11, "min_kw": 4,
                 "connection": _tcp(free_port(), 1, "generic_ev_charger")} for i in (1, 2, 3)],
        },
        "loads": {"base": {"meter": "load-meter", "peak_kw": 60, "daily_energy_kwh": 670}},
        "meters": [
            {"id": "grid-meter", "kind": "grid", "connection": _tcp(meters, 1,
                                                                      "generic_meter_3ph")},
            {"id": "load-meter", "kind": "sub", "connection": _tcp(meters, 2,
                                                                     "generic_meter_3ph")},
        ],
        "scheduler": {"poll_interval_s": 5, "setpoint_expiry_s": 8, "replan_interval_min": 15,
                      "horizon_h": 2},
    }


def load_site_doc(doc: dict[str, Any], folder: Path) -> Any:
    """Write a site document into ``folder`` and load it (validated)."""
    import yaml

    from cems.config import load_site

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_site(path)


# ============================================================================ stepped runtime

class SteppedSite:
    """The runtime and the simulator of one site, stepped together in simulated time (the
    idea of tests/support/runtime_harness.py, without pytest)."""

    def __init__(self, config: Any, folder: Path, start: datetime,
                 planner: Callable[..., Any] | None = None) -> None:
        from cems.devices import build_devices, simulation_spec
        from cems.runtime.clock import SteppedClock
        from cems.runtime.device_io import DeviceIO
        from cems.runtime.planner import make_plan
        from cems.runtime.runtime import Runtime
        from cems.store import open_store
        from device_drivers.sim import SiteSimulator
        from device_drivers.transport import ModbusEndpoint

        spec, _ = simulation_spec(config)
        self.config = config
        self.sim = SiteSimulator(spec, start=start, autorun=False)
        self.clock = SteppedClock(start)
        self.store = open_store(f"sqlite:///{folder / 'cems.sqlite'}")
        devices = build_devices(config, clock=self.clock.now)
        # Reconnect at the next request: the endpoints' wall-clock back-off would swallow
        # many stepped polls (runtime_harness._without_reconnect_backoff).
        replaced: dict[int, Any] = {}
        for device in devices:
            old = device.driver.endpoint
            if id(old) not in replaced:
                replaced[id(old)] = ModbusEndpoint(old.spec, timeout_s=old.timeout_s,
                                                   retries=old.retries, reconnect_delay_s=0.0,
                                                   reconnect_delay_max_s=0.0)
            device.driver.endpoint = replaced[id(old)]
        self.io = DeviceIO(devices)
        self.runtime = Runtime(config, self.store, self.io, self.clock,
                               Runtime.options_for(config), planner=planner or make_plan)
        self.jobs = self.runtime.jobs(start)
        self.stats: dict[str, Any] = {}
        self.watchers: list[Callable[[datetime], None]] = []

    def advance(self, when: datetime) -> None:
        self.clock.advance_to(when)
        self.sim.advance_to(when)
        for watch in self.watchers:
            watch(when)

    async def run_until(self, when: datetime) -> None:
        from cems.runtime.schedule import run_simulated

        await run_simulated(self.jobs, start=self.clock.now(), end=when,
                            advance_to=self.advance, stats=self.stats)

    def now(self) -> datetime:
        return self.clock.now()

    async def close(self) -> None:
        await self.io.close()
        await self.sim.stop()
        self.store.engine.dispose()


# ============================================================================ (a) comm loss

def is_physically_safe(kind: str, state: dict[str, float], asset: Any) -> bool:
    """The device's true state is its safe state (docs/runtime.md, "Safety")."""
    if kind == "ess":
        return abs(state["active_power_kw"]) <= 0.01
    if kind == "fuel_cell":
        return abs(state["power_setpoint_kw"] - asset.safe_kw) <= 0.05
    if kind == "ev_charger":
        connected = state["session_state"] in (1.0, 2.0, 3.0)
        ceiling = asset.min_kw if connected else 0.0
        return -0.01 <= state["active_power_kw"] <= ceiling + 0.01
    if kind == "pv_inverter":
        return state["power_limit_pct"] >= 99.9
    raise ValueError(kind)


def _unsafe_last_command(kind: str, asset: Any, state: dict[str, float]) -> tuple[str, float]:
    """A non-safe command the runtime could have written last."""
    if kind == "ess":
        soc = state["soc_pct"] / 100
        return "power_setpoint_kw", 20.0 if soc > asset.soc_min + 0.05 else -20.0
    if kind == "fuel_cell":
        return "power_setpoint_kw", asset.max_kw
    if kind == "ev_charger":
        return "power_setpoint_kw", asset.max_kw
    return "power_limit_pct", 50.0


@dataclass
class DropTrial:
    """One drop of one device."""

    device: str
    kind: str
    injected: bool  # a non-safe last command was written before the drop
    safe: bool  # safe two poll intervals after the drop
    safe_after_s: float | None  # first step at which it was safe (None: not within the watch)


async def _comm_loss(rounds: int, folder: Path, seed: int) -> list[DropTrial]:
    config = load_site_doc(comm_loss_site_doc(), folder)
    start = datetime(2026, 7, 15, 12, 0, tzinfo=SEOUL)
    site = SteppedSite(config, folder, start)
    rng = random.Random(seed)
    poll_s = float(config.scheduler.poll_interval_s)
    assets = {a.id: a for a in (*config.assets.ess, *config.assets.fuel_cells,
                                *config.assets.ev_chargers, *config.assets.pv)}
    kinds = {d.name: d.kind for d in site.sim.twin.site.devices}
    controllable = [d for d in assets if d in kinds]
    trials: list[DropTrial] = []
    await site.sim.start()
    try:
        for charger in config.assets.ev_chargers:  # a car in every charger, for hours
            site.sim.twin.models[charger.id].arrive(30.0, 10.0, 90.0)
        await site.run_until(start + timedelta(minutes=2))  # first plan, first commands
        for round_no in range(rounds):
            order = list(controllable)
            rng.shuffle(order)
            for device in order:
                kind, asset = kinds[device], assets[device]
                await site.run_until(site.now() + timedelta(seconds=rng.uniform(20, 60)))
                injected = False
                if is_physically_safe(kind, site.sim.state()[device], asset):
                    register, value = _unsafe_last_command(kind, asset,
                                                           site.sim.state()[device])
                    site.sim.twin.apply_write(device, register, value)
                    site.sim.twin.advance_to(site.now() + timedelta(milliseconds=1))
                    injected = True
                dropped_at = site.now()
                first_safe: list[float] = []

                def watch(when: datetime, device: str = device, kind: str = kind,
                          asset: Any = asset, dropped_at: datetime = dropped_at,
                          first_safe: list[float] = first_safe) -> None:
                    if not first_safe and is_physically_safe(kind, site.sim.state()[device],
                                                             asset):
                        first_safe.append((when - dropped_at).total_seconds())

                site.watchers.append(watch)
                await site.sim.drop(device)
                await site.run_until(dropped_at + timedelta(seconds=2 * poll_s + 0.001))
                safe = is_physically_safe(kind, site.sim.state()[device], asset)
                site.watchers.remove(watch)
                trials.append(DropTrial(device, kind, injected, safe,
                                        first_safe[0] if first_safe else None))
                log(f"  (a) round {round_no + 1} {device:8s} {'safe' if safe else 'NOT SAFE'}"
                    f"{' (non-safe command injected)' if injected else ''}")
                await site.sim.restore(device)
                await site.run_until(site.now() + timedelta(seconds=60))  # recovery
    finally:
        await site.close()
    return trials


def comm_loss_campaign(rounds: int = 4, seed: int = 14) -> dict[str, Any]:
    """Part (a): drop each controllable device ``rounds`` times; share driven safe."""
    with tempfile.TemporaryDirectory(prefix="cems-campaign-a-") as tmp:
        trials = asyncio.run(_comm_loss(rounds, Path(tmp), seed))
    safe = sum(t.safe for t in trials)
    per_kind: dict[str, list[int]] = {}
    for t in trials:
        per_kind.setdefault(t.kind, [0, 0])
        per_kind[t.kind][0] += t.safe
        per_kind[t.kind][1] += 1
    share = 100.0 * safe / len(trials) if trials else 0.0
    return {
        "drops": len(trials), "safe": safe, "safe_share_pct": round(share, 2),
        "target_pct": TARGET_SAFE_SHARE_PCT, "ratio": round(share / TARGET_SAFE_SHARE_PCT, 4),
        "met": safe == len(trials) and bool(trials),
        "injected_non_safe_command": sum(t.injected for t in trials),
        "by_kind": {k: {"safe": v[0], "drops": v[1]} for k, v in sorted(per_kind.items())},
        "not_safe": sorted({t.device for t in trials if not t.safe}),
        "slowest_to_safe_s": max((t.safe_after_s for t in trials
                                  if t.safe and t.safe_after_s is not None), default=None),
    }


# ============================================================================ (b) safety layer

class Source(Protocol):
    """Where the random case values come from (numpy or hypothesis)."""

    def uniform(self, lo: float, hi: float) -> float: ...

    def choice(self, options: Sequence[T]) -> T: ...

    def chance(self, p: float) -> bool: ...


class NumpySource:
    """Seeded numpy draws; values snap to the interval ends now and then (edge cases)."""

    def __init__(self, seed: int) -> None:
        import numpy as np

        self.rng = np.random.default_rng(seed)

    def uniform(self, lo: float, hi: float) -> float:
        u = self.rng.random()
        if u < 0.05:
            return lo
        if u < 0.10:
            return hi
        return float(lo + (hi - lo) * self.rng.random())

    def choice(self, options: Sequence[T]) -> T:
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)


class UnitSource:
    """Values from a given sequence of numbers in [0, 1] (hypothesis draws them: its floats
    favour the ends, 0, 1 and tiny values, which become limits hit exactly)."""

    def __init__(self, units: Sequence[float]) -> None:
        self.units, self.i = units, 0

    def _next(self) -> float:
        u = self.units[self.i % len(self.units)]
        self.i += 1
        return min(max(float(u), 0.0), 1.0)

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self._next()

    def choice(self, options: Sequence[T]) -> T:
        return options[min(int(self._next() * len(options)), len(options) - 1)]

    def chance(self, p: float) -> bool:
        return self._next() < p


@dataclass
class Tally:
    """Cases run and violations found, by category, with the first example of each."""

    cases: int = 0
    violations: dict[str, int] = field(default_factory=dict)
    info: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, category: str, example: str, *, counted: bool = True) -> None:
        target = self.violations if counted else self.info
        target[category] = target.get(category, 0) + 1
        self.examples.setdefault(category, example)


TOL = 1e-6
#: Numbers drawn per case: enough for 6 devices (a case uses at most about 150).
UNITS_PER_CASE = 160


def _limits(src: Source, device_id: str, kind: str) -> Any:
    from cems.dispatch.safety import DeviceLimits

    if kind == "ess":
        soc_min = src.uniform(0.0, 0.5)
        return DeviceLimits(device_id, "ess", max_charge_kw=src.uniform(0, 500),
                            max_discharge_kw=src.uniform(0, 500),
                            capacity_kwh=src.choice([0.0, src.uniform(1, 2000)]),
                            soc_min=soc_min, soc_max=src.uniform(soc_min, 1.0),
                            charge_efficiency=src.uniform(0.8, 1.0),
                            discharge_efficiency=src.uniform(0.8, 1.0))
    if kind == "ev_charger":
        max_kw = src.uniform(1, 50)
        return DeviceLimits(device_id, "ev_charger", max_charge_kw=max_kw,
                            max_discharge_kw=src.choice([0.0, src.uniform(0, 50)]),
                            min_kw=src.choice([0.0, src.uniform(0, max_kw)]),
                            soc_min=src.uniform(0, 0.6))
    if kind == "fuel_cell":
        max_kw = src.uniform(1, 500)
        min_kw = src.uniform(0, max_kw)
        return DeviceLimits(device_id, "fuel_cell", max_charge_kw=max_kw, min_kw=min_kw,
                            safe_kw=src.choice([0.0, min_kw, src.uniform(min_kw, max_kw)]),
                            ramp_kw_per_min=src.choice([None, src.uniform(0.1, 100)]))
    return DeviceLimits(device_id, kind, max_charge_kw=src.uniform(0, 500))  # type: ignore[arg-type]


def _static_bounds(limits: Any) -> tuple[float, float]:
    if limits.kind in ("ess", "ev_charger"):
        return -(limits.max_charge_kw if limits.kind == "ess" else limits.max_discharge_kw), (
            limits.max_discharge_kw if limits.kind == "ess" else limits.max_charge_kw)
    return 0.0, limits.max_charge_kw


def _status(src: Source, limits: Any, now: datetime, fresh: bool) -> Any:
    from cems.dispatch.safety import DeviceStatus

    low, high = _static_bounds(limits)
    span = max(high - low, 1.0)
    last_good = (now - timedelta(seconds=src.uniform(0, 9.9)) if fresh
                 else src.choice([None, now - timedelta(seconds=src.uniform(10.1, 600))]))
    if limits.kind in ("pv", "fuel_cell", "deferrable"):
        present = src.uniform(0.0, high * 1.02)
    else:
        present = src.uniform(low - 0.02 * span, high + 0.02 * span)
    return DeviceStatus(
        limits.device_id, last_good=last_good, comm_ok=fresh or src.chance(0.5),
        soc=src.choice([None, src.uniform(0, 1)]),
        available_charge_kw=src.choice([None, src.uniform(-5, 1.2 * max(limits.max_charge_kw,
                                                                       1))]),
        available_discharge_kw=src.choice([None, src.uniform(-5, 1.2 * max(
            limits.max_discharge_kw, 1))]),
        power_kw=present if fresh else src.choice([None, present]),
        ev_connected=src.choice([None, True, False]) if limits.kind == "ev_charger" else None)


def live_bounds(limits: Any, status: Any, dt_h: float) -> tuple[float, float]:
    """The device's limits now, from the documented contract (docs/runtime.md, "Safety"):
    static limits, live available power, the SOC window over the command's lifetime; an
    EV charger without a car takes nothing; V2G stops at the vehicle's minimum SOC."""
    low, high = _static_bounds(limits)
    if limits.kind not in ("ess", "ev_charger"):
        return low, high
    if limits.kind == "ev_charger" and status.ev_connected is False:
        return 0.0, 0.0
    charge = limits.max_charge_kw
    discharge = limits.max_discharge_kw
    if status.available_charge_kw is not None:
        charge = min(charge, max(status.available_charge_kw, 0.0))
    if status.available_discharge_kw is not None:
        discharge = min(discharge, max(status.available_discharge_kw, 0.0))
    if status.soc is not None and limits.capacity_kwh > 0 and dt_h > 0:
        discharge = min(discharge, max(status.soc - limits.soc_min, 0) * limits.capacity_kwh
                        * limits.discharge_efficiency / dt_h)
        charge = min(charge, max(limits.soc_max - status.soc, 0) * limits.capacity_kwh
                     / limits.charge_efficiency / dt_h)
    if limits.kind == "ess":
        return -charge, discharge
    if status.soc is not None and status.soc <= limits.soc_min:
        discharge = 0.0
    return -discharge, charge


def _outside(p: float, bounds: tuple[float, float]) -> bool:
    return not (bounds[0] - TOL <= p <= bounds[1] + TOL)


def _below_running_minimum(limits: Any, p: float) -> bool:
    return limits.kind in ("fuel_cell", "ev_charger") and TOL < p < limits.min_kw - TOL


def _safe_kw(limits: Any, status: Any) -> float:
    if limits.kind == "ev_charger":
        return limits.min_kw if status is not None and status.ev_connected else 0.0
    if limits.kind == "fuel_cell":
        return limits.safe_kw
    if limits.kind == "pv":
        return limits.max_charge_kw
    return 0.0


def _effect(kind: str, command_kw: float, present_kw: float) -> float:
    """Change of grid import when a device goes from ``present_kw`` to ``command_kw``."""
    if kind in ("ess", "fuel_cell"):
        return -(command_kw - present_kw)
    if kind in ("ev_charger", "deferrable"):
        return command_kw - present_kw
    if kind == "pv":
        return max(present_kw - command_kw, 0.0)
    return 0.0


def check_case(src: Source, tally: Tally) -> None:
    """One random case of the safety layer; adds what it finds to ``tally``."""
    from cems.dispatch.safety import clamp, hold_grid_limits, is_stale, safe_state

    now = datetime(2026, 7, 15, 12, tzinfo=SEOUL)
    expiry = timedelta(seconds=src.uniform(1, 900))
    dt_h = expiry.total_seconds() / 3600
    poll_s = 5.0
    kinds = ("ess", "ev_charger", "fuel_cell", "pv", "deferrable")
    limits, statuses, commands, bounds = {}, {}, [], {}
    for i in range(int(src.uniform(1, 6.999))):
        kind = src.choice(kinds)
        device_id = f"{kind}-{i}"
        lim = _limits(src, device_id, kind)
        status = _status(src, lim, now, fresh=src.chance(0.85))
        limits[device_id], statuses[device_id] = lim, status
        low, high = _static_bounds(lim)
        span = max(high - low, 1.0)
        requested = src.choice([src.uniform(low - 0.5 * span, high + 0.5 * span), low, high,
                                0.0, math.nan, math.inf])
        example = f"{lim} {status} requested={requested} dt_h={dt_h:.5f}"
        if is_stale(status, now, poll_s):
            command = safe_state(lim, status, now, expiry, "stale")
            expected = _safe_kw(lim, status)
            if abs(command.power_kw - expected) > TOL or command.reason != "safety":
                tally.add("safe_state: not the documented safe state", example)
            if _outside(command.power_kw, (low, high)) or _below_running_minimum(
                    lim, command.power_kw):
                tally.add("safe_state: outside static limits", example)
            bounds[device_id] = None
        else:
            command = clamp(requested, lim, status, now=now, expiry=expiry, dt_h=dt_h)
            live = live_bounds(lim, status, dt_h)
            bounds[device_id] = live
            safe_kw = _safe_kw(lim, status)
            if not math.isfinite(requested) and (command.reason != "safety"
                                                 or abs(command.power_kw - safe_kw) > TOL):
                tally.add("clamp: a non-finite request not answered by the safe state", example)
            ramp = " (after the ramp limit)" if any("ramp" in n for n in command.notes) else ""
            if math.isfinite(requested) and _outside(command.power_kw, (low, high)):
                tally.add(f"clamp: outside static limits{ramp}",
                          f"{example} -> {command.power_kw}")
            elif math.isfinite(requested) and _outside(command.power_kw, live):
                tally.add(f"clamp: outside live limits (available power, SOC window){ramp}",
                          f"{example} -> {command.power_kw} not in {live}")
            if _below_running_minimum(lim, command.power_kw):
                tally.add(f"clamp: between 0 and the running minimum{ramp}",
                          f"{example} -> {command.power_kw}")
        commands.append(command)
    present = {d: s.power_kw for d, s in statuses.items()}
    grid_kw = src.uniform(-600, 1200)
    import_limit = src.uniform(0, 800)
    export_limit = src.uniform(0, 800)
    held = hold_grid_limits(commands, limits, grid_kw=grid_kw, import_limit_kw=import_limit,
                            export_limit_kw=export_limit, present_kw=present)
    case = (f"grid_kw={grid_kw:.3f} import_limit={import_limit:.3f} commands="
            f"{[(c.device_id, round(c.power_kw, 3), c.reason) for c in commands]} -> "
            f"{[(c.device_id, round(c.power_kw, 3), c.reason) for c in held]}")
    for before, after in zip(commands, held, strict=True):
        lim = limits[after.device_id]
        if before.reason == "safety" and after.power_kw != before.power_kw:
            tally.add("hold: moved a device in its safe state", case)
        if after.power_kw == before.power_kw:
            continue
        if _outside(after.power_kw, _static_bounds(lim)):
            tally.add("hold: outside static limits", case)
        elif bounds[after.device_id] is not None and _outside(after.power_kw,
                                                              bounds[after.device_id]):
            tally.add("hold: outside live limits (available power, SOC window)",
                      f"{case}; {after.device_id} live {bounds[after.device_id]}")
        if _below_running_minimum(lim, after.power_kw):
            tally.add("hold: between 0 and the running minimum", case)
    # Import after the hold vs the best the documented levers could do within live limits.
    after_kw = best_kw = grid_kw
    for before, after in zip(commands, held, strict=True):
        lim, p0 = limits[after.device_id], present[after.device_id]
        if p0 is None or not math.isfinite(p0):
            continue  # an unknown output: neither the hold nor this check can predict it
        after_kw += _effect(lim.kind, after.power_kw, p0)
        lever = before.power_kw
        if before.reason != "safety":
            if lim.kind in ("ev_charger", "deferrable"):
                lever = min(before.power_kw, 0.0)
            elif lim.kind == "ess" and bounds[after.device_id] is not None:
                lever = max(before.power_kw, bounds[after.device_id][1])
        best_kw += _effect(lim.kind, lever, p0)
    if after_kw > import_limit + 1e-6 and best_kw <= import_limit - 1e-6:
        tally.add("hold: import above the limit though the levers could hold it",
                  f"{case}; predicted {after_kw:.3f} kW, achievable {best_kw:.3f} kW")
    tally.cases += 1


def safety_layer_cases(n: int = 10_000, seed: int = 14,
                       generator: str = "auto") -> dict[str, Any]:
    """Part (b): ``n`` random property cases of the safety layer."""
    tally = Tally()
    used = generator
    if generator in ("auto", "hypothesis"):
        try:
            import hypothesis  # noqa: F401

            used = "hypothesis"
        except ImportError:
            if generator == "hypothesis":
                raise
            used = "numpy"
    started = time.perf_counter()
    if used == "hypothesis":
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as hyp_seed
        from hypothesis import strategies as st

        # One draw per case (a list of unit floats): drawing value by value costs ~12 ms a
        # case in hypothesis' engine, a list ~4 ms.
        @hyp_seed(seed)
        @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(st.floats(0, 1), min_size=UNITS_PER_CASE, max_size=UNITS_PER_CASE))
        def prop(units: list[float]) -> None:
            check_case(UnitSource(units), tally)

        prop()
    else:
        source = NumpySource(seed)
        for _ in range(n):
            check_case(source, tally)
    total = sum(tally.violations.values())
    return {
        "cases": tally.cases, "generator": used, "seconds": round(time.perf_counter() - started,
                                                                 2),
        "violations": total, "target": TARGET_VIOLATIONS, "met": total == TARGET_VIOLATIONS,
        "by_category": dict(sorted(tally.violations.items())),
        "examples": {k: tally.examples[k][:600] for k in sorted(tally.violations)},
    }


# ============================================================================ (c) crash

WRITER = """
import sys
from datetime import datetime, timedelta, timezone
from cems.store import open_store

store = open_store(sys.argv[1])
offset_s, batch = int(sys.argv[2]), int(sys.argv[3])
t0 = datetime(2026, 7, 1, tzinfo=timezone.utc) + timedelta(seconds=offset_s)
total = 0
for b in range(1_000_000):
    rows = [(t0 + timedelta(seconds=b * batch + i), "meter", "active_power_kw", float(i),
             "good") for i in range(batch)]
    total += store.write_readings(rows)
    print(total, flush=True)
"""


def _kill_one(url: str, offset_s: int, batch: int, delay_s: float) -> int:
    """Start a writer, SIGKILL it ``delay_s`` after its first commit; return the count it
    reported as committed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                      os.environ.get(
                                                                          "PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url, str(offset_s), str(batch)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    reported = [0]
    first = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                reported[0] = int(line)
                first.set()
        first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not first.wait(timeout=120):
            raise RuntimeError("the writer printed nothing within 120 s")
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"the writer ended early ({proc.returncode}): {err[-2000:]}")
        time.sleep(delay_s)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
    return reported[0]


def crash_campaign(n: int = 50, seed: int = 14, url: str = "", batch: int = 500,
                   max_delay_s: float = 0.4) -> dict[str, Any]:
    """Part (c) on one database: ``n`` writers killed at random moments; readings lost."""
    from cems.store import open_store

    rng = random.Random(seed)
    store = open_store(url)
    lost = extra = reported_total = 0
    started = time.perf_counter()
    try:
        for run in range(n):
            before = store.count_readings()
            reported = _kill_one(url, run * 10_000_000, batch, rng.uniform(0.0, max_delay_s))
            after = store.count_readings()
            lost += max(before + reported - after, 0)
            extra += max(after - before - reported, 0)
            reported_total += reported
        present = store.count_readings()
    finally:
        store.engine.dispose()
    return {"kills": n, "committed_reported": reported_total, "present": present,
            "lost": lost, "committed_not_yet_reported": extra,
            "seconds": round(time.perf_counter() - started, 1)}


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A URL whose search path is a fresh schema, dropped afterwards."""
    import sqlalchemy as sa

    schema = f"cems_campaign_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, connect_args={"connect_timeout": 3})
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


def crash_campaigns(n: int = 50, seed: int = 14,
                    postgres_url: str | None = POSTGRES_URL) -> dict[str, Any]:
    """Part (c) on SQLite and (if reachable) PostgreSQL."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cems-campaign-c-") as tmp:
        log(f"  (c) SQLite: {n} kills")
        out["sqlite"] = crash_campaign(n, seed, f"sqlite:///{Path(tmp) / 'crash.sqlite'}")
    if postgres_url:
        try:
            with postgres_schema(postgres_url) as url:
                log(f"  (c) PostgreSQL: {n} kills")
                out["postgresql"] = crash_campaign(n, seed + 1, url)
        except Exception as exc:  # unreachable server: reported, not fatal
            if "postgresql" in out:
                raise
            out["postgresql"] = {"skipped": f"no PostgreSQL at {postgres_url}: "
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    else:
        out["postgresql"] = {"skipped": "--postgres none"}
    measured = [v for v in out.values() if "lost" in v]
    lost = sum(v["lost"] for v in measured)
    out.update({"lost": lost, "target": TARGET_LOST_READINGS,
                "met": lost == TARGET_LOST_READINGS and bool(measured)})
    return out


# ============================================================================ (d) grid meter

def _failing_planner(*_args: Any, **_kwargs: Any) -> Any:
    import optimizer

    raise optimizer.OptimizerError("no plan (the campaign runs the self-consumption fallback)")


async def _grid_meter_run(folder: Path, minutes: float, freeze: bool,
                          warm_up_min: float = 5.0) -> dict[str, Any]:
    config = load_site_doc(grid_limit_site_doc(), folder)
    start = datetime(2026, 7, 15, 19, 0, tzinfo=SEOUL)
    site = SteppedSite(config, folder, start, planner=_failing_planner)
    limit = float(config.site.grid.import_limit_kw)
    window_start = start + timedelta(minutes=warm_up_min)
    samples: list[tuple[datetime, float]] = []

    def watch(when: datetime) -> None:
        if when > window_start:
            samples.append((when, site.sim.state()["grid-meter"]["active_power_kw"]))

    site.watchers.append(watch)
    await site.sim.start()
    try:
        for charger in config.assets.ev_chargers:
            site.sim.twin.models[charger.id].arrive(20.0, 8.0, 90.0)
        await site.run_until(window_start)
        if freeze:
            site.sim.freeze("grid-meter")
        await site.run_until(window_start + timedelta(minutes=minutes))
    finally:
        await site.close()
    above_s = above_5pct_s = energy_kwh = 0.0
    peak = -math.inf
    previous = window_start
    for when, grid_kw in samples:
        dt_s = (when - previous).total_seconds()
        previous = when
        peak = max(peak, grid_kw)
        if grid_kw > limit:
            above_s += dt_s
            energy_kwh += (grid_kw - limit) * dt_s / 3600
        if grid_kw > limit * 1.05:
            above_5pct_s += dt_s
    return {"seconds_above_limit": round(above_s, 1),
            "seconds_above_limit_plus_5pct": round(above_5pct_s, 1),
            "energy_above_limit_kwh": round(energy_kwh, 4),
            "peak_import_kw": round(peak, 2) if samples else None,
            "window_s": round(minutes * 60, 1)}


def grid_meter_lost(minutes: float = 20.0) -> dict[str, Any]:
    """Part (d): simulated seconds above the import limit with the grid meter frozen, and
    the same run with the meter good (control)."""
    with tempfile.TemporaryDirectory(prefix="cems-campaign-d-") as tmp:
        log(f"  (d) grid meter frozen for {minutes:g} simulated minutes")
        lost = asyncio.run(_grid_meter_run(Path(tmp) / "frozen", minutes, freeze=True))
        log("  (d) control: the same with the meter good")
        control = asyncio.run(_grid_meter_run(Path(tmp) / "control", minutes, freeze=False))
    return {"import_limit_kw": GRID_LIMIT_KW, "meter_frozen": lost, "control_meter_good":
            control, "exceedance_s": lost["seconds_above_limit"],
            "target_s": TARGET_EXCEEDANCE_S,
            "met": lost["seconds_above_limit"] <= TARGET_EXCEEDANCE_S}


# ============================================================================ main

@dataclass(frozen=True)
class Sizes:
    """How much each part does."""

    rounds: int
    cases: int
    kills: int
    grid_minutes: float


FULL = Sizes(rounds=4, cases=10_000, kills=50, grid_minutes=20.0)
QUICK = Sizes(rounds=1, cases=300, kills=3, grid_minutes=3.0)


def run_campaign(parts: str, sizes: Sizes, seed: int, postgres_url: str | None,
                 generator: str = "auto") -> dict[str, Any]:
    """Run the chosen parts; a part that fails is reported with its error."""
    jobs: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
        "a": ("comm_loss", lambda: comm_loss_campaign(sizes.rounds, seed)),
        "b": ("safety_layer", lambda: safety_layer_cases(sizes.cases, seed, generator)),
        "c": ("crash", lambda: crash_campaigns(sizes.kills, seed, postgres_url)),
        "d": ("grid_meter_lost", lambda: grid_meter_lost(sizes.grid_minutes)),
    }
    out: dict[str, Any] = {}
    for key in parts:
        name, job = jobs[key]
        log(f"({key}) {name} ...")
        started = time.perf_counter()
        try:
            out[name] = job()
        except Exception as exc:
            logging.getLogger(__name__).exception("part %s failed", key)
            out[name] = {"error": f"{type(exc).__name__}: {exc}", "met": False}
        out[name]["wall_s"] = round(time.perf_counter() - started, 1)
    return out


def _report(result: dict[str, Any]) -> None:
    a, b = result.get("comm_loss"), result.get("safety_layer")
    c, d = result.get("crash"), result.get("grid_meter_lost")
    verdict = {True: "met", False: "NOT met"}
    if a is not None:
        if "error" in a:
            print(f"(a) comm loss: failed: {a['error']}")
        else:
            kinds = ", ".join(f"{k} {v['safe']}/{v['drops']}" for k, v in a["by_kind"].items())
            print(f"(a) comm loss: {a['safe']}/{a['drops']} drops driven safe within 2 poll "
                  f"intervals = {a['safe_share_pct']:.1f} % ({a['ratio']:.2f}x the 100 % "
                  f"target, {verdict[a['met']]}); {kinds}; "
                  f"{a['injected_non_safe_command']} started from an injected non-safe "
                  f"command; slowest {a['slowest_to_safe_s']} s to safe")
    if b is not None:
        if "error" in b:
            print(f"(b) safety layer: failed: {b['error']}")
        else:
            print(f"(b) safety layer: {b['violations']} limit violations in {b['cases']:,} "
                  f"random cases ({b['generator']}, {b['seconds']:.1f} s; target 0, "
                  f"{verdict[b['met']]})")
            for category, count in b["by_category"].items():
                print(f"      {count:6d}  {category}")
    if c is not None:
        if "error" in c:
            print(f"(c) crash: failed: {c['error']}")
        else:
            for db in ("sqlite", "postgresql"):
                v = c[db]
                if "skipped" in v:
                    print(f"(c) crash, {db}: skipped ({v['skipped']})")
                else:
                    print(f"(c) crash, {db}: {v['kills']} SIGKILLs, {v['committed_reported']:,} "
                          f"readings reported committed, {v['lost']} lost "
                          f"({v['committed_not_yet_reported']:,} committed but not yet "
                          f"reported, kept; {v['seconds']:.0f} s)")
            print(f"(c) crash: {c['lost']} committed readings lost (target 0, "
                  f"{verdict[c['met']]})")
    if d is not None:
        if "error" in d:
            print(f"(d) grid meter lost: failed: {d['error']}")
        else:
            lost, ctl = d["meter_frozen"], d["control_meter_good"]
            print(f"(d) grid meter lost: {lost['seconds_above_limit']:.0f} of "
                  f"{lost['window_s']:.0f} simulated s above the {d['import_limit_kw']:g} kW "
                  f"import limit (target 0, {verdict[d['met']]}); peak "
                  f"{lost['peak_import_kw']} kW, {lost['energy_above_limit_kwh']} kWh above, "
                  f"{lost['seconds_above_limit_plus_5pct']:.0f} s more than 5 % above")
            print(f"    control, meter good: {ctl['seconds_above_limit']:.0f} s above, peak "
                  f"{ctl['peak_import_kw']} kW, {ctl['seconds_above_limit_plus_5pct']:.0f} s "
                  "more than 5 % above")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--parts", default="abcd", help="which parts to run (default abcd)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--cases", type=int, help="part (b) cases (default 10,000; quick 300)")
    parser.add_argument("--kills", type=int, help="part (c) kills per database (50; quick 3)")
    parser.add_argument("--rounds", type=int, help="part (a) rounds of drops (4; quick 1)")
    parser.add_argument("--grid-minutes", type=float,
                        help="part (d) simulated minutes with the meter frozen (20; quick 3)")
    parser.add_argument("--generator", choices=("auto", "hypothesis", "numpy"), default="auto",
                        help="part (b) case source (auto: hypothesis when installed)")
    parser.add_argument("--postgres", default=POSTGRES_URL,
                        help="PostgreSQL URL for part (c), or 'none'")
    args = parser.parse_args(argv)
    if set(args.parts) - set("abcd") or not args.parts:
        parser.error(f"--parts takes letters of abcd, got {args.parts!r}")
    base = QUICK if args.quick else FULL
    sizes = Sizes(rounds=args.rounds or base.rounds, cases=args.cases or base.cases,
                  kills=args.kills or base.kills,
                  grid_minutes=args.grid_minutes or base.grid_minutes)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for noisy in ("pymodbus", "cems", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    postgres = None if args.postgres.lower() == "none" else args.postgres
    started = time.perf_counter()
    stdout_fd = None
    if args.json:  # nothing but the document on stdout, whatever a library prints
        sys.stdout.flush()
        stdout_fd = os.dup(1)
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            result = run_campaign("".join(dict.fromkeys(args.parts)), sizes, args.seed,
                                  postgres, args.generator)
    finally:
        if stdout_fd is not None:
            sys.stdout.flush()
            os.dup2(stdout_fd, 1)
            os.close(stdout_fd)
    document = {"quick": args.quick, "seed": args.seed, "sizes": sizes.__dict__, **result,
                "all_met": all(part.get("met") for part in result.values()),
                "wall_s": round(time.perf_counter() - started, 1)}
    if args.json:
        print(json.dumps(document, indent=2, allow_nan=False))
    else:
        _report(result)
        print(f"wall time {document['wall_s']:.0f} s")
    return 1 if any("error" in part for part in result.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
