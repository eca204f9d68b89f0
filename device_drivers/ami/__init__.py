"""AMI interval data importers: Green Button ESPI XML, CSV exports, IEC 62056-21 readouts.

Every importer returns an :class:`~device_drivers.ami.frame.AmiData`: one pandas frame per
meter id, indexed by tz-aware (UTC) interval start, with ``duration_s`` and energy columns
``import_kwh`` / ``export_kwh`` for the directions the source carries.
"""

from __future__ import annotations

from pathlib import Path

from device_drivers import AmiFormatError
from device_drivers.ami.csv_export import read_csv
from device_drivers.ami.frame import AmiData, MeterSummary, summarize
from device_drivers.ami.greenbutton import DUPLICATE_POLICIES, read_greenbutton
from device_drivers.ami.iec62056_21 import (
    Readout,
    parse_readout,
    read_readouts,
    readouts_to_frame,
)


def load_ami(format: str, path: Path | str, *, timezone: str = "Asia/Seoul",
             duplicates: str = "sum") -> AmiData:
    """Import an AMI source by its site-file format: greenbutton, csv or iec62056_21.

    ``timezone`` is the meter clock's zone for IEC 62056-21 readouts and the zone Green
    Button readings are named in when the feed has no LocalTimeParameters; ``duplicates``
    is the Green Button policy for readings sharing a start (:data:`DUPLICATE_POLICIES`).
    An existing directory holding no file of the format is an empty source (with a note).
    """
    if format == "greenbutton":
        p = Path(path)
        files = sorted(p.glob("*.xml")) if p.is_dir() else [p]
        data = AmiData()
        if not files:
            data.notes.append(f"{p}: no .xml files")
        for file in files:
            part = read_greenbutton(file, duplicates=duplicates, timezone=timezone)
            for meter_id in part.meters:
                if meter_id in data.meters:
                    raise AmiFormatError(f"{file}: meter {meter_id} also in an earlier file")
            data.meters.update(part.meters)
            data.notes += part.notes
            data.warnings += part.warnings
        return data
    if format == "csv":
        return read_csv(path)
    if format == "iec62056_21":
        return read_readouts(path, timezone=timezone)
    raise AmiFormatError(f"unknown AMI format {format!r}; use greenbutton, csv or iec62056_21")


__all__ = [
    "DUPLICATE_POLICIES", "AmiData", "MeterSummary", "Readout", "load_ami", "parse_readout",
    "read_csv", "read_greenbutton", "read_readouts", "readouts_to_frame", "summarize",
]
