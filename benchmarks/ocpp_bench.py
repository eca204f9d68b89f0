"""OCPP benchmark: N simulated charge points against ``cems ocpp serve``.

``cems ocpp serve`` runs in a child process on a generated site of N OCPP chargers (half
2.0.1, half 1.6J); this process runs the N charge points (the ``ocpp`` package's own
clients) on one event loop. Each connects, boots, starts a transaction (the 2.0.1 ones also
send ISO 15118 needs), then sends a Heartbeat and MeterValues every 10 s. Once every
transaction has its profile, one charge point sends new needs; the service re-plans the
whole site and pushes every running transaction a new TxProfile. Reported: connect time,
the time until every charge point had its first profile, heartbeat/meter-value round trips
(p50/p95/max) in steady state, and the re-plan: from the new needs to the last of the N
profiles received.

    python benchmarks/ocpp_bench.py                       # 500 charge points, 30 s steady
    python benchmarks/ocpp_bench.py --charge-points 50 --steady-s 10

Target (issue 17): 500 connected, heartbeats and meter values every 10 s, the re-plan's
profiles pushed to all within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ocpp import v16, v201
from ocpp.routing import on
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
TARGET_REPLAN_S = 10.0
INTERVAL_S = 10.0


def site_yaml(n: int, data_dir: Path) -> str:
    lines = [
        "schema_version: 1",
        "site: {id: ocpp-bench, name: OCPP bench, timezone: Asia/Seoul, latitude: 36.5,",
        f"  longitude: 127.3, data_dir: {data_dir},",
        f"  grid: {{contract_power_kw: {n * 8}, import_limit_kw: {n * 8},",
        "         export_limit_kw: 100, tariff_plan: general_a2_high_a_2}}",
        f"loads: {{base: {{peak_kw: {n}, daily_energy_kwh: {n * 12}}}}}",
        "scheduler: {horizon_h: 24}",
        "assets:",
        "  ev_chargers:",
    ]
    for i in range(n):
        version = "2.0.1" if i % 2 == 0 else "1.6"
        lines.append(f"    - {{id: ev-{i:03d}, max_kw: 7.4, connection: {{protocol: ocpp, "
                     f"charge_point_id: CP-{i:03d}, ocpp_version: \"{version}\"}}}}")
    return "\n".join(lines) + "\n"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Profiles:
    """Arrival times of profiles, per charge point."""

    def __init__(self) -> None:
        self.received: dict[str, list[float]] = {}

    def add(self, cp_id: str) -> None:
        self.received.setdefault(cp_id, []).append(time.monotonic())


PROFILES = Profiles()


class Cp201(v201.ChargePoint):
    @on("SetChargingProfile")
    def on_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        PROFILES.add(self.id)
        return v201.call_result.SetChargingProfile(status="Accepted")


class Cp16(v16.ChargePoint):
    @on("SetChargingProfile")
    def on_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        PROFILES.add(self.id)
        return v16.call_result.SetChargingProfile(status="Accepted")


async def needs(cp: Cp201, hours: float, wh: int) -> None:
    departure = datetime.now(UTC) + timedelta(hours=hours)
    await cp.call(v201.call.NotifyEVChargingNeeds(evse_id=1, charging_needs={
        "requested_energy_transfer": "AC_three_phase", "departure_time": departure.isoformat(),
        "ac_charging_parameters": {"energy_amount": wh, "ev_min_current": 6,
                                   "ev_max_current": 10, "ev_max_voltage": 230}}))


async def charge_point(i: int, port: int, stop: asyncio.Event, rtts: list[float],
                       ready: list[str], handles: dict[str, Any]) -> None:
    cp_id = f"CP-{i:03d}"
    is201 = i % 2 == 0
    async with connect(f"ws://127.0.0.1:{port}/{cp_id}",
                       subprotocols=["ocpp2.0.1" if is201 else "ocpp1.6"],
                       open_timeout=60, ping_interval=None) as ws:
        cp: Any = (Cp201 if is201 else Cp16)(cp_id, ws, response_timeout=60)
        handles[cp_id] = cp
        task = asyncio.create_task(cp.start())
        energy = 0
        if is201:
            await cp.call(v201.call.BootNotification(
                charging_station={"model": "Bench", "vendor_name": "Bench"}, reason="PowerUp"))
            await cp.call(v201.call.TransactionEvent(
                event_type="Started", timestamp=now_iso(), trigger_reason="CablePluggedIn",
                seq_no=0, transaction_info={"transaction_id": f"T-{i}"}))
            await needs(cp, 3 + (i % 7), 8000 + 100 * (i % 50))
        else:
            await cp.call(v16.call.BootNotification(charge_point_model="Bench",
                                                    charge_point_vendor="Bench"))
            start = await cp.call(v16.call.StartTransaction(
                connector_id=1, id_tag="B", meter_start=0, timestamp=now_iso()))
            tx16 = start.transaction_id
        ready.append(cp_id)
        await asyncio.sleep((i % 100) / 100 * INTERVAL_S)  # spread the load over the interval
        while not stop.is_set():
            t0 = time.monotonic()
            energy += 100
            if is201:
                await cp.call(v201.call.Heartbeat())
                await cp.call(v201.call.MeterValues(evse_id=1, meter_value=[{
                    "timestamp": now_iso(), "sampled_value": [
                        {"value": energy, "measurand": "Energy.Active.Import.Register"}]}]))
            else:
                await cp.call(v16.call.Heartbeat())
                await cp.call(v16.call.MeterValues(connector_id=1, transaction_id=tx16,
                                                   meter_value=[{"timestamp": now_iso(),
                                                                 "sampled_value": [
                                                                     {"value": str(energy)}]}]))
            rtts.append((time.monotonic() - t0) / 2)
            with_stop = asyncio.create_task(stop.wait())
            await asyncio.wait({with_stop}, timeout=INTERVAL_S)
            with_stop.cancel()
        task.cancel()


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def bench(n: int, port: int, steady_s: float) -> dict[str, float]:
    stop = asyncio.Event()
    rtts: list[float] = []
    ready: list[str] = []
    handles: dict[str, Any] = {}
    t0 = time.monotonic()
    tasks = [asyncio.create_task(charge_point(i, port, stop, rtts, ready, handles))
             for i in range(n)]
    def check() -> None:
        for t in tasks:
            if t.done() and t.exception() is not None:
                raise RuntimeError(f"a charge point failed: {t.exception()!r}")

    while len(ready) < n:
        await asyncio.sleep(0.05)
        check()
    t_connected = time.monotonic() - t0
    print(f"[{t_connected:.1f} s] all connected", file=sys.stderr)
    while len(PROFILES.received) < n:
        await asyncio.sleep(0.05)
        check()
    t_first = time.monotonic() - t0
    print(f"[{t_first:.1f} s] all have a profile", file=sys.stderr)
    rtts.clear()
    await asyncio.sleep(steady_s)
    check()
    steady = list(rtts)
    # re-plan: one car's new needs; every running transaction gets a new profile
    counts = {cp: len(v) for cp, v in PROFILES.received.items()}
    trigger = time.monotonic()
    await needs(handles["CP-000"], 2.5, 12000)
    while any(len(PROFILES.received[cp]) <= counts[cp] for cp in counts):
        await asyncio.sleep(0.02)
        if time.monotonic() - trigger > 120:
            break
    last = max(PROFILES.received[cp][counts[cp]] for cp in counts
               if len(PROFILES.received[cp]) > counts[cp])
    replan_s = last - trigger
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"connected_s": t_connected, "first_profiles_s": t_first, "replan_s": replan_s,
            "rtt_p50_ms": pct(steady, 0.5) * 1000, "rtt_p95_ms": pct(steady, 0.95) * 1000,
            "rtt_max_ms": max(steady) * 1000 if steady else float("nan"),
            "messages_per_s": len(steady) * 2 / steady_s,
            "updated": sum(len(PROFILES.received[cp]) > counts[cp] for cp in counts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--charge-points", type=int, default=500)
    parser.add_argument("--steady-s", type=float, default=30.0)
    args = parser.parse_args()
    n = args.charge_points
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        site = Path(tmp) / "site.yaml"
        site.write_text(site_yaml(n, Path(tmp) / "data"), encoding="utf-8")
        log_path = Path(tmp) / "service.log"
        with log_path.open("w", encoding="utf-8") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cems", "ocpp", "serve", str(site), "--port", str(port)],
                stdout=log_file, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 120
        while "listening on" not in log_path.read_text(encoding="utf-8"):
            if proc.poll() is not None or time.monotonic() > deadline:
                print("cems ocpp serve did not start:\n" + log_path.read_text(encoding="utf-8"),
                      file=sys.stderr)
                return 1
            time.sleep(0.1)
        cpu0 = os.times()
        try:
            figures = asyncio.run(bench(n, port, args.steady_s))
        except Exception as exc:
            print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
            print(log_path.read_text(encoding="utf-8")[-6000:], file=sys.stderr)
            return 1
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        out = log_path.read_text(encoding="utf-8")
        cpu1 = os.times()
    plans = [line for line in out.splitlines() if " plan " in line and "session(s)" in line]
    print(f"{n} charge points ({(n + 1) // 2} OCPP 2.0.1 with ISO 15118 needs, {n // 2} 1.6J)")
    print(f"connected and booted, transactions started: {figures['connected_s']:.1f} s")
    print(f"every transaction had its first profile: {figures['first_profiles_s']:.1f} s "
          "after the first connect")
    print(f"steady state ({args.steady_s:g} s, heartbeat + meter values every {INTERVAL_S:g} s "
          f"each): {figures['messages_per_s']:.0f} messages/s, one-way latency p50 "
          f"{figures['rtt_p50_ms']:.1f} ms, p95 {figures['rtt_p95_ms']:.1f} ms, max "
          f"{figures['rtt_max_ms']:.1f} ms")
    print(f"re-plan after new needs: {int(figures['updated'])}/{n} charge points got a new "
          f"profile within {figures['replan_s']:.2f} s (target <= {TARGET_REPLAN_S:g} s, "
          f"ratio {figures['replan_s'] / TARGET_REPLAN_S:.2f} of target)")
    for line in plans:
        print(f"service: {line.strip()}")
    print(f"charge-point simulator CPU: {cpu1.user + cpu1.system - cpu0.user - cpu0.system:.1f}"
          " s")
    return 0 if figures["replan_s"] <= TARGET_REPLAN_S and figures["updated"] == n else 1


if __name__ == "__main__":
    sys.exit(main())
