"""``cems ami import FILE``: import AMI interval data and summarise it per meter.

Warnings (readings sharing a start and how they were resolved, mixed UTC offsets, holes,
irregular spacing) go to standard error as ``warning: ...`` lines and, with ``--json``, into
the document's ``warnings`` list; the data is imported as described there, never silently
filled or dropped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cems.cli.output import emit_json
from cems.errors import InputError, translate_library_errors
from device_drivers.ami import AmiData, load_ami, summarize

FORMATS = ("greenbutton", "csv", "iec62056_21")
#: Green Button readings that share a start (kept in step with device_drivers.ami).
DUPLICATES = ("sum", "first", "last", "error")


def register(subparsers: Any) -> None:
    """Add the ``ami`` command (sub-command ``import``)."""
    parser = subparsers.add_parser("ami", help="import AMI interval data",
                                   description="AMI (smart meter) interval data.")
    sub = parser.add_subparsers(dest="ami_command", metavar="ACTION")
    sub.required = True
    imp = sub.add_parser(
        "import", help="import a Green Button XML or CSV interval file",
        description="Read a Green Button ESPI XML feed or a CSV export "
        "(timestamp,meter_id,import_kwh[,export_kwh]) or a folder of IEC 62056-21 mode C "
        "readouts and print, per meter, the interval "
        "length, first and last interval, count and total kWh by direction.",
    )
    imp.add_argument("file", help="the file, or a directory of such files")
    imp.add_argument("--format", choices=FORMATS, default=None,
                     help="format (default: from the extension, .xml or .csv; a directory: "
                     "csv)")
    imp.add_argument("--timezone", default="Asia/Seoul",
                     help="meter clock zone for iec62056_21 readouts, and the zone Green Button "
                     "readings are named in when the feed has no LocalTimeParameters "
                     "(default Asia/Seoul)")
    imp.add_argument("--duplicates", choices=DUPLICATES, default="sum",
                     help="Green Button readings that share a start (a local-time exporter "
                     "repeats one at the autumn DST change): sum them (default: keeps the "
                     "file's total energy), keep the first or last, or refuse the file; each "
                     "case is named in a warning")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.set_defaults(handler=run_import)


def _format(path: Path, given: str | None) -> str:
    if given:
        return given
    if path.is_dir() or path.suffix.lower() == ".csv":
        return "csv"
    if path.suffix.lower() == ".xml":
        return "greenbutton"
    raise InputError(f"{path}: cannot tell the format from the extension; "
                     "pass --format greenbutton or --format csv")


def run_import(args: argparse.Namespace) -> int:
    """Import ``args.file`` and print its per-meter summary."""
    path = Path(args.file)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    fmt = _format(path, args.format)
    with translate_library_errors():
        data: AmiData = load_ami(fmt, path, timezone=args.timezone, duplicates=args.duplicates)
    rows = summarize(data)
    if not rows:
        why = "; ".join(data.notes)
        raise InputError(f"{path}: no electricity interval data found" + (f" ({why})" if why
                                                                          else ""))
    for warning in data.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        emit_json({
            "file": str(path), "format": fmt, "notes": data.notes, "warnings": data.warnings,
            "meters": [{"meter_id": r.meter_id, "interval_s": r.interval_s,
                        "first_start": r.first_start.isoformat(),
                        "last_start": r.last_start.isoformat(), "count": r.count,
                        "totals_kwh": r.totals_kwh} for r in rows],
        })
        return 0
    print(f"{path} ({fmt}): {len(rows)} meter(s)")
    for r in rows:
        totals = ", ".join(f"{k.removesuffix('_kwh')} {v:.3f} kWh" for k, v in r.totals_kwh.items())
        print(f"  {r.meter_id}: {r.count} intervals of {r.interval_s} s, "
              f"{r.first_start.isoformat()} .. {r.last_start.isoformat()}; {totals}")
    for note in data.notes:
        print(f"  note: {note}")
    return 0
