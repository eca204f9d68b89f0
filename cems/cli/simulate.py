"""``cems simulate SITE.yaml``: serve a site's devices as a Modbus digital twin on loopback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cems.cli.devices import quiet_pymodbus
from cems.errors import InputError, translate_library_errors
from device_drivers.timetext import parse_aware_time

if TYPE_CHECKING:
    from device_drivers.sim import SiteSimulator
    from device_drivers.sim.faults import FaultRunner


def register(subparsers: Any) -> None:
    """Add the ``simulate`` command."""
    parser = subparsers.add_parser(
        "simulate", help="serve the site's devices as simulated Modbus TCP servers",
        description="Run a physical simulation of the site (PV on a clear-sky profile with "
        "clouds, ESS, fuel cells, EV sessions, meters) and serve every Modbus TCP device "
        "at the host/port/device id of its connection block. Ctrl-C stops it. With "
        "--faults, a timeline of faults (docs/faults.md) is injected at simulated times.",
    )
    parser.add_argument("site", help="path to the site YAML file")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per real second (default 1)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many real seconds (default: run until Ctrl-C)")
    parser.add_argument("--start", default=None,
                        help="simulated start time, ISO 8601 with offset (default: now)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (clouds, EV sessions)")
    parser.add_argument("--status-every", type=float, default=0.0, metavar="S",
                        help="print a status line every S real seconds (default: never)")
    parser.add_argument("--faults", metavar="SCENARIO.yaml", default=None,
                        help="inject the faults of this timeline file at their simulated "
                        "times (drop, restore, delay, freeze, invalid, scale_factor, clear; "
                        "see docs/faults.md); each is printed on stderr as it fires")
    parser.set_defaults(handler=run)


def _start_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_aware_time(text)
    except ValueError as exc:
        raise InputError(f"--start: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Serve the site until Ctrl-C/SIGTERM or ``--duration`` seconds."""
    if args.speed <= 0:
        raise InputError(f"--speed must be > 0, got {args.speed}")
    if args.duration is not None and args.duration <= 0:
        raise InputError(f"--duration must be > 0 seconds, got {args.duration}")
    from cems.config import load_site
    from cems.devices import simulation_spec
    from device_drivers.sim import SiteSimulator

    quiet_pymodbus(args)
    config = load_site(args.site)
    start = _start_time(args.start)
    spec, skipped = simulation_spec(config, seed=args.seed)
    for line in skipped:
        print(f"not simulated: {line}", file=sys.stderr)
    if not spec.devices:
        raise InputError(f"{args.site}: no Modbus TCP device to simulate")
    with translate_library_errors():
        sim = SiteSimulator(spec, speed=args.speed, start=start)
        runner = _fault_runner(sim, args.faults)
        asyncio.run(_serve(sim, args, runner))
    return 0


def _fault_runner(sim: SiteSimulator, path: str | None) -> FaultRunner | None:
    """The runner of ``--faults``, checked against the site before anything is served."""
    if path is None:
        return None
    from device_drivers.sim.faults import FaultEvent, FaultRunner, load_timeline

    def announce(event: FaultEvent) -> None:
        print(f"fault: {runner.describe(event)}", file=sys.stderr, flush=True)

    runner = FaultRunner(sim, load_timeline(path), start=sim.clock.start, on_fire=announce)
    runner.check()
    return runner


async def _serve(sim: SiteSimulator, args: argparse.Namespace,
                 runner: FaultRunner | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    faults: asyncio.Task[None] | None = None
    async with sim:
        ports = ", ".join(f"{h}:{p}" for h, p in sim.endpoints)
        if runner is not None:
            last = runner.events[-1].when.isoformat(timespec="seconds")
            print(f"{len(runner.events)} fault events from {args.faults}, the last at {last}",
                  file=sys.stderr, flush=True)
            faults = asyncio.create_task(runner.run(), name="fault-timeline")
        print(f"simulating {len(sim.twin.models)} devices on {ports} at {args.speed:g}x, "
              f"simulated time {sim.twin.time.isoformat(timespec='seconds')}; ready",
              flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set():
            wait = args.status_every or 1.0
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if args.status_every and not stop.is_set():
                print(_status(sim), flush=True)
            if faults is not None and faults.done():
                faults.result()  # a fault that failed to apply ends the run with its error
        if faults is not None and not faults.done():
            faults.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await faults
    print("simulator stopped", flush=True)


def _status(sim: SiteSimulator) -> str:
    state = sim.state()
    kinds: dict[str, float] = {}
    for name, spec in sim.twin.specs.items():
        kinds[spec.kind] = kinds.get(spec.kind, 0.0) + state[name].get("active_power_kw", 0.0)
    parts = " ".join(f"{k}={v:.1f}kW" for k, v in sorted(kinds.items()) if k != "meter")
    return f"{sim.twin.time.isoformat(timespec='seconds')} {parts}"
