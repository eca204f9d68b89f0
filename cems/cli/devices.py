"""``cems devices read SITE.yaml``: read every device of a site once and show the values.

A device that misbehaves never stops the command: its values that fail the drivers'
checks are shown ``invalid`` with the point and the reason (and listed on standard error),
the other devices with their readings. Exit status: 0 if every device answered (even with
invalid values), 1 if any is unreachable, 2 for a bad site file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

from cems.cli.output import emit_json
from cems.errors import translate_library_errors

if TYPE_CHECKING:
    from cems.devices import DeviceResult


def register(subparsers: Any) -> None:
    """Add the ``devices`` command (sub-command ``read``)."""
    parser = subparsers.add_parser(
        "devices", help="read the site's devices over Modbus",
        description="Talk to the devices named in a site file's connection blocks.",
    )
    sub = parser.add_subparsers(dest="devices_command", metavar="ACTION")
    sub.required = True
    read = sub.add_parser(
        "read", help="read every device once",
        description="Read every Modbus device of the site once and print each value with "
        "its unit and quality; values a device reports but that fail the checks are shown "
        "'invalid' with the reason. Exit 0 if every device answered, 1 if any device is "
        "unreachable (saying which and why), 2 on a bad site file.",
    )
    read.add_argument("site", help="path to the site YAML file")
    read.add_argument("--json", action="store_true", help="print the readings as JSON")
    read.set_defaults(handler=run_read)


def _as_json(results: list[DeviceResult], ami: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "devices": [
            {"id": r.id, "address": r.address, "quality": r.quality.value, "error": r.error,
             "readings": {name: {"value": rd.value, "unit": rd.unit, "quality": rd.quality.value,
                                 "reason": rd.reason, "timestamp": rd.timestamp.isoformat()}
                          for name, rd in r.readings.items()}}
            for r in results
        ],
        "ami_meters": {source: len(ids) for source, ids in ami.items()},
    }


def run_read(args: argparse.Namespace) -> int:
    """Read all devices; print them; exit 1 if any is unreachable."""
    from cems.config import load_site
    from cems.devices import ami_meters, build_devices, read_all
    from device_drivers.types import Quality

    quiet_pymodbus(args)
    config = load_site(args.site)
    with translate_library_errors():
        devices = build_devices(config)
        results = asyncio.run(read_all(devices))
    ami = ami_meters(config)
    if args.json:
        emit_json(_as_json(results, ami))
    else:
        width = max((len(r.id) for r in results), default=10)
        for r in results:
            print(f"{r.id:<{width}}  {r.address:<34} {r.quality.value}")
            if r.quality is Quality.COMM_LOST:
                continue
            for name, rd in r.readings.items():
                value = "-" if rd.value is None else f"{rd.value:.6g}"
                note = f"  ({rd.reason})" if rd.reason else ""
                print(f"    {name:<24} {value:>12} {rd.unit:<4} {rd.quality.value}{note}")
        for source, ids in ami.items():
            print(f"AMI source {source}: {len(ids)} meters, interval data from files "
                  "(not polled; see `cems ami import`)")
    lost = [r for r in results if r.quality is Quality.COMM_LOST]
    invalid = [r for r in results if r.quality is Quality.INVALID]
    good = sum(r.quality is Quality.GOOD for r in results)
    print(f"{good} of {len(results)} devices good, {len(lost)} unreachable, "
          f"{len(invalid)} with invalid values", file=sys.stderr)
    for r in lost:
        print(f"unreachable: {r.id} at {r.address}: {r.error}", file=sys.stderr)
    for r in invalid:
        for name, rd in r.readings.items():
            if rd.quality is Quality.INVALID:
                print(f"invalid: {r.id} at {r.address}: {name}: {_reason(r.id, rd.reason)}",
                      file=sys.stderr)
    return 1 if lost else 0


def _reason(device_id: str, reason: str) -> str:
    """The reason without a leading ``device_id: `` (the line names the device already)."""
    prefix = f"{device_id}: "
    return reason[len(prefix):] if reason.startswith(prefix) else reason


def quiet_pymodbus(args: argparse.Namespace) -> None:
    """Keep pymodbus's own log lines out of normal output (``-v`` shows them)."""
    if not getattr(args, "verbose", 0):
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
