"""Polling benchmark: N simulated meters (21 registers each) polled at 1 Hz.

The simulator runs in a child process (its CPU is not counted); this process polls every
device once per second through the production pipeline (one connection per endpoint,
endpoints concurrently, coalesced reads, decode + validation) and reports the CPU time it
used as a percentage of one core, and the cycle-time distribution.

    python benchmarks/poll_bench.py                 # 100 devices, 60 s
    python benchmarks/poll_bench.py --seconds 10    # shorter run

Target (issue 5): <= 25 % of one core, every cycle finished within its 1 s interval.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device_drivers.modbus_device import ModbusDevice
from device_drivers.profiles import load_profile
from device_drivers.sim import SiteSimulator
from device_drivers.sim.twin import SimDeviceSpec, SiteSpec
from device_drivers.transport import EndpointSpec, ModbusEndpoint
from device_drivers.types import Quality

PROFILE = "generic_meter_3ph"  # 10 float32 + heartbeat = 21 registers, one request per poll


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def site(ports: list[int], per_port: int, devices: int) -> SiteSpec:
    specs = []
    for i in range(devices):
        port = ports[i // per_port]
        specs.append(SimDeviceSpec(f"m{i:03d}", "meter", "127.0.0.1", port,
                                   i % per_port + 1, PROFILE, {"role": "sub"}))
    return SiteSpec(36.5, 127.3, "Asia/Seoul", tuple(specs), base_load_daily_kwh=500)


def serve(spec: SiteSpec, seconds: float, ready: mp.Event) -> None:  # type: ignore[valid-type]
    async def main() -> None:
        async with SiteSimulator(spec, speed=1.0, tick_s=0.5):
            ready.set()
            await asyncio.sleep(seconds)

    asyncio.run(main())


async def poll(spec: SiteSpec, seconds: float) -> tuple[list[float], float, float, int, int]:
    endpoints: dict[int, ModbusEndpoint] = {}
    devices = []
    for d in spec.devices:
        ep = endpoints.setdefault(d.port, ModbusEndpoint(
            EndpointSpec("modbus_tcp", host=d.host, port=d.port), timeout_s=1.0))
        devices.append(ModbusDevice(name=d.name, endpoint=ep, device_id=d.device_id,
                                    profile=load_profile(PROFILE)))
    cycles: list[float] = []
    bad = 0
    reads = 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    next_tick = wall0
    while time.monotonic() - wall0 < seconds:
        started = time.monotonic()
        results = await asyncio.gather(*(dev.poll() for dev in devices))
        cycles.append(time.monotonic() - started)
        reads += len(results)
        bad += sum(any(r.quality is not Quality.GOOD for r in res.values()) for res in results)
        next_tick += 1.0
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    for ep in endpoints.values():
        await ep.close()
    return cycles, cpu, wall, bad, reads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--per-port", type=int, default=10,
                        help="device ids per port, as on a gateway (default 10)")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    n_ports = -(-args.devices // args.per_port)
    spec = site(free_ports(n_ports), args.per_port, args.devices)
    ready = mp.get_context("spawn").Event()
    child = mp.get_context("spawn").Process(target=serve, args=(spec, args.seconds + 15, ready))
    child.start()
    try:
        if not ready.wait(30):
            print("simulator did not start", file=sys.stderr)
            return 1
        cycles, cpu, wall, bad, reads = asyncio.run(poll(spec, args.seconds))
    finally:
        child.terminate()
        child.join(10)
    cycles_ms = sorted(c * 1000 for c in cycles)
    p99 = cycles_ms[min(len(cycles_ms) - 1, int(0.99 * len(cycles_ms)))]
    cpu_pct = cpu / wall * 100
    load = os.getloadavg()
    print(f"devices {args.devices} x 21 registers on {n_ports} ports, 1 Hz, {wall:.1f} s, "
          f"{len(cycles)} cycles, {reads} device reads, {bad} not good")
    print(f"poller CPU: {cpu:.2f} s = {cpu_pct:.1f} % of one core (target <= 25 %, "
          f"ratio {cpu_pct / 25:.2f} of target)")
    print(f"cycle time ms: median {statistics.median(cycles_ms):.1f}, p99 {p99:.1f}, "
          f"max {cycles_ms[-1]:.1f} (interval 1000; overruns "
          f"{sum(c > 1000 for c in cycles_ms)})")
    print(f"machine load average (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
