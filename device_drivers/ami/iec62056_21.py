"""IEC 62056-21 mode C data readouts: parse a telegram, check its BCC, build intervals.

A readout is ``STX data-lines "!" CR LF ETX BCC`` where BCC is the XOR of every byte after
STX up to and including ETX; data lines look like ``1.8.0(001234.567*kWh)``. Successive
readouts of the cumulative registers 1.8.0 (import) and 2.8.0 (export) become intervals;
:func:`read_readouts` reads a folder of telegrams, timed by the meter clock (0.9.1/0.9.2).
The serial sign-on (``/?!``, baud switch, ACK) is not implemented here.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from device_drivers import AmiFormatError
from device_drivers.ami.frame import AmiData, check_energy, make_frame

STX, ETX = 0x02, 0x03
_LINE = re.compile(rb"([0-9A-Za-z.:*\-]+)\(([^)*]*)(?:\*([^)]*))?\)")
_UNIT_TO_KWH = {"kWh": 1.0, "Wh": 1e-3, "MWh": 1e3}


def bcc(data: bytes) -> int:
    """XOR of ``data`` (the block check character)."""
    value = 0
    for byte in data:
        value ^= byte
    return value


@dataclass(frozen=True)
class Readout:
    """One parsed readout: meter id (OBIS 0.0.0 / C.1.0) and values by OBIS code."""

    meter_id: str | None
    values: dict[str, tuple[float | str, str | None]]

    def energy_kwh(self, obis: str) -> float | None:
        """Register ``obis`` in kWh, or None if absent."""
        for key in (obis, f"1-0:{obis}", f"{obis}*255"):
            if key in self.values:
                value, unit = self.values[key]
                if not isinstance(value, float) or unit not in _UNIT_TO_KWH:
                    raise AmiFormatError(f"OBIS {obis}: {value!r} {unit} is not an energy")
                return value * _UNIT_TO_KWH[unit]
        return None


def parse_readout(telegram: bytes) -> Readout:
    """Parse a mode C data block (bytes from STX to BCC); verify the BCC."""
    try:
        start = telegram.index(bytes([STX])) + 1
        end = telegram.index(bytes([ETX]), start)
    except ValueError:
        raise AmiFormatError("IEC 62056-21 readout: no STX ... ETX data block") from None
    if len(telegram) <= end + 1:
        raise AmiFormatError("IEC 62056-21 readout: BCC byte missing after ETX")
    expected = bcc(telegram[start : end + 1])
    if telegram[end + 1] != expected:
        raise AmiFormatError(
            f"IEC 62056-21 readout: BCC {telegram[end + 1]:#04x} != computed {expected:#04x}"
        )
    values: dict[str, tuple[float | str, str | None]] = {}
    for match in _LINE.finditer(telegram[start:end]):
        obis, raw, unit = (g.decode("ascii", "replace") if g is not None else None
                           for g in match.groups())
        assert obis is not None and raw is not None
        if unit:
            try:
                number = float(raw)
            except ValueError:
                raise AmiFormatError(f"OBIS {obis}: value {raw!r} is not a number") from None
            if not math.isfinite(number):
                raise AmiFormatError(f"OBIS {obis}: value {raw!r} is not a finite number")
            values[obis] = (number, unit)
        else:
            values[obis] = (raw, None)
    meter = next((str(values[k][0]) for k in ("0.0.0", "C.1.0", "0.0.1") if k in values), None)
    return Readout(meter, values)


def readouts_to_frame(readouts: list[tuple[datetime, Readout]], *, meter_id: str) -> AmiData:
    """Turn timestamped readouts of one meter into intervals (differences of 1.8.0/2.8.0)."""
    if len(readouts) < 2:
        raise AmiFormatError(f"meter {meter_id}: at least two readouts are needed for intervals")
    for ts, _ in readouts:
        if ts.tzinfo is None:
            raise AmiFormatError(f"meter {meter_id}: readout time {ts} has no time zone")
    ordered = sorted(readouts, key=lambda r: r[0])
    starts, durations, imports, exports = [], [], [], []
    for (t0, r0), (t1, r1) in itertools.pairwise(ordered):
        i0, i1 = r0.energy_kwh("1.8.0"), r1.energy_kwh("1.8.0")
        if i0 is None or i1 is None:
            raise AmiFormatError(f"meter {meter_id}: readout lacks 1.8.0 (import energy)")
        if i1 < i0:
            raise AmiFormatError(f"meter {meter_id}: 1.8.0 decreased at {t1.isoformat()}")
        e0, e1 = r0.energy_kwh("2.8.0"), r1.energy_kwh("2.8.0")
        duration = int((t1 - t0).total_seconds())
        where = f"meter {meter_id}: readouts at {t0.isoformat()} and {t1.isoformat()}"
        if duration <= 0:
            raise AmiFormatError(f"{where}: two readouts at one time; keep one")
        starts.append(int(t0.timestamp()))
        durations.append(duration)
        imports.append(check_energy(i1 - i0, duration, where=where, column="1.8.0 import"))
        if e0 is not None and e1 is not None:
            if e1 < e0:
                raise AmiFormatError(f"meter {meter_id}: 2.8.0 decreased at {t1.isoformat()}")
            exports.append(check_energy(e1 - e0, duration, where=where, column="2.8.0 export"))
        else:
            exports.append(float("nan"))
    columns = {"import_kwh": imports}
    if any(e == e for e in exports):
        columns["export_kwh"] = exports
    data = AmiData()
    data.meters[meter_id] = make_frame(starts, durations, columns, what=f"meter {meter_id}")
    return data


def readout_time(readout: Readout, tz: tzinfo) -> datetime:
    """The meter's clock from OBIS 0.9.2 (date, [1]YYMMDD) and 0.9.1 (time, hhmmss), in ``tz``."""
    date = readout.values.get("0.9.2")
    clock = readout.values.get("0.9.1")
    if date is None or clock is None:
        raise AmiFormatError("readout lacks the meter clock (0.9.1 time and 0.9.2 date)")
    d, t = str(date[0]).strip(), str(clock[0]).strip()
    if len(d) == 7:  # leading century flag: 1YYMMDD = 20YY
        d = d[1:]
    try:
        return datetime(2000 + int(d[0:2]), int(d[2:4]), int(d[4:6]),
                        int(t[0:2]), int(t[2:4]), int(t[4:6]), tzinfo=tz)
    except (ValueError, IndexError):
        raise AmiFormatError(f"meter clock 0.9.2({d}) 0.9.1({t}) is not a valid time") from None


def read_readouts(path: Path | str, *, timezone: str) -> AmiData:
    """Import a directory (or file) of mode C readouts, one telegram per file.

    Each telegram must carry the meter id (0.0.0 or C.1.0) and its clock (0.9.1, 0.9.2),
    read in the meter's local ``timezone``; consecutive readouts of a meter become intervals.
    """
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise AmiFormatError(f"unknown time zone {timezone!r}; use e.g. Asia/Seoul") from None
    by_meter: dict[str, list[tuple[datetime, Readout]]] = {}
    for file in files:
        try:
            readout = parse_readout(file.read_bytes())
            when = readout_time(readout, tz)
        except AmiFormatError as exc:
            raise AmiFormatError(f"{file}: {exc}") from None
        except OSError as exc:
            raise AmiFormatError(f"cannot read {file}: {exc.strerror}") from None
        if readout.meter_id is None:
            raise AmiFormatError(f"{file}: readout has no meter id (0.0.0 or C.1.0)")
        by_meter.setdefault(readout.meter_id, []).append((when, readout))
    data = AmiData()
    for meter_id, readouts in by_meter.items():
        data.meters.update(readouts_to_frame(readouts, meter_id=meter_id).meters)
    return data
