"""The demo's OCPP chargers: simulated charge points against the CSMS and its planning.

Every OCPP charger of the site gets one simulated car
(:class:`device_drivers.sim.ocpp_station.SimStation`) over the version the site declares:
cars on 2.1 stations and two in three on 2.0.1 stations tell their needs (ISO 15118, V2X
on a bidirectional 2.1 charger), the rest tell nothing (the planner's assumptions apply). The CSMS
(:func:`cems.runtime.ocpp_service.serve_ocpp`) and the stations share an accelerated clock,
so a visit of hours plays in seconds. Reported per session: the energy the car wanted, what
the plan was told (or assumed), and what it got.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cems.config.connections import OcppConnection
from cems.config.model import SiteConfig
from cems.runtime.ocpp_service import serve_ocpp
from cems.store.telemetry import TelemetryStore
from device_drivers.sim.ocpp_station import SimCar, SimStation

#: Simulated seconds per wall second (a 4 h visit in 20 s).
DEMO_SPEED = 720.0


@dataclass
class AcceleratedClock:
    """Now, running ``speed`` times faster than the wall clock from ``start``."""

    start: datetime
    speed: float

    def __post_init__(self) -> None:
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)


def demo_cars(config: SiteConfig, start: datetime, seed: int = 1) -> dict[str, SimCar]:
    """One car per OCPP charger: arrival in the first half hour, a 3-6 h stay, an energy
    it can get at the charger's power in 70 % of its stay."""
    rng = random.Random(seed)
    cars = {}
    plain = 0  # 2.0.1 stations so far: every third one's car has no ISO 15118
    for charger in config.assets.ev_chargers:
        conn = charger.connection
        if not isinstance(conn, OcppConnection):
            continue
        arrival = start + timedelta(minutes=rng.uniform(1, 30))
        stay_h = rng.uniform(3.0, 6.0)
        max_kw = min(charger.max_kw, rng.choice((7.4, 11.0, 22.0)))
        energy = round(rng.uniform(0.3, 0.7) * max_kw * stay_h, 1)
        v2x = conn.ocpp_version == "2.1" and charger.bidirectional
        tells = conn.ocpp_version == "2.1" or (conn.ocpp_version == "2.0.1" and plain % 3 != 2)
        plain += conn.ocpp_version == "2.0.1"
        cars[conn.charge_point_id] = SimCar(
            arrival, arrival + timedelta(hours=stay_h), energy, max_kw, iso15118=tells,
            max_discharge_kw=charger.max_discharge_kw if v2x else 0.0)
    return cars


async def run_ocpp_demo(config: SiteConfig, store: TelemetryStore | None, *,
                        speed: float = DEMO_SPEED, seed: int = 1,
                        say: Callable[[str], None] = lambda _line: None,
                        start: datetime | None = None) -> list[dict[str, Any]]:
    """Play one visit per OCPP charger from ``start`` (default now); return each session's
    figures. The plans depend on the hour (prices), so a test passes a fixed start."""
    clock = AcceleratedClock(start or datetime.now(UTC).replace(microsecond=0), speed)
    cars = demo_cars(config, clock(), seed)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve_ocpp(
        config, store, host="127.0.0.1", port=0, say=say, ready=ready.set_result, clock=clock,
        replan_interval_s=3600.0 / speed, stop=stop))
    try:
        port = await asyncio.wait_for(asyncio.shield(ready), 60)
        versions = {c.connection.charge_point_id: c.connection.ocpp_version
                    for c in config.assets.ev_chargers if isinstance(c.connection, OcppConnection)}
        stations = [SimStation(cp_id, versions[cp_id], f"ws://127.0.0.1:{port}/{cp_id}", car,
                               clock) for cp_id, car in cars.items()]
        results = await asyncio.gather(*(s.run(speed) for s in stations))
    finally:
        stop.set()
        run = await server
    planned = {str(s["charge_point_id"]): s for s in run.sessions}
    rows = []
    for result in results:
        told = planned.get(result.cp_id, {}).get("requested_kwh")
        rows.append({
            "charge_point_id": result.cp_id, "ocpp_version": versions[result.cp_id],
            "iso15118_needs": result.told_needs,
            "requested_kwh": round(result.requested_kwh, 2),
            "planned_for_kwh": None if told is None else round(float(told), 2),
            "delivered_kwh": round(result.delivered_kwh, 2),
            "profiles": result.profiles,
        })
    return rows


def format_sessions(rows: list[dict[str, Any]]) -> str:
    """The sessions as the demo prints them."""
    lines = ["OCPP sessions (simulated charge points, accelerated clock):",
             "  charge point   version  needs told   requested  delivered  profiles"]
    for r in rows:
        lines.append(f"  {r['charge_point_id']:<14} {r['ocpp_version']:<8} "
                     f"{'ISO 15118' if r['iso15118_needs'] else 'none':<12} "
                     f"{r['requested_kwh']:>7.2f} kWh {r['delivered_kwh']:>7.2f} kWh "
                     f"{r['profiles']:>5}")
    told = [r for r in rows if r["iso15118_needs"]]
    blind = [r for r in rows if not r["iso15118_needs"]]
    for name, group in (("with needs told", told), ("without needs (assumed)", blind)):
        if group:
            want = sum(r["requested_kwh"] for r in group)
            got = sum(r["delivered_kwh"] for r in group)
            lines.append(f"  {name}: {got:.1f} of {want:.1f} kWh delivered "
                         f"({got / want:.0%})" if want else f"  {name}: nothing requested")
    return "\n".join(lines)
