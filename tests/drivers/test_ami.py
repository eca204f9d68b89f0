"""AMI importers: Green Button samples, CSV exports, IEC 62056-21 readouts, and the CLI."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device_drivers import AmiFormatError
from device_drivers.ami import parse_readout, read_csv, read_greenbutton, readouts_to_frame
from device_drivers.ami.iec62056_21 import bcc

GB_DIR = Path(__file__).resolve().parents[1] / "data" / "greenbutton"
SAMPLES = sorted(GB_DIR.glob("*.xml"))


def independent_total_kwh(path: Path) -> tuple[float, int]:
    """sum(IntervalReading value) x 10^powerOfTenMultiplier / 1000, by plain regex.

    Both samples have one MeterReading with uom 72 (Wh) and a single multiplier value.
    """
    text = path.read_text(encoding="utf-8")
    readings = re.findall(r"<IntervalReading>(.*?)</IntervalReading>", text, re.S)
    values = [int(re.search(r"<value>\s*(-?\d+)\s*</value>", r).group(1)) for r in readings]
    multipliers = set(re.findall(r"<powerOfTenMultiplier>\s*(-?\d+)", text))
    assert len(multipliers) == 1
    return sum(values) * 10 ** int(multipliers.pop()) / 1000.0, len(values)


def test_greenbutton_reference_samples_are_present() -> None:
    # the parametrised test below would silently collect nothing without them
    assert [p.name for p in SAMPLES] == ["15minLP_15Days.xml", "1hrLP_32Days.xml"]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_greenbutton_samples_total_equals_sum_of_values(path: Path) -> None:
    expected_kwh, count = independent_total_kwh(path)
    data = read_greenbutton(path)
    assert list(data.meters) == ["RetailCustomer/9b6c7063/UsagePoint/01"]
    frame = data.meters["RetailCustomer/9b6c7063/UsagePoint/01"]
    assert len(frame) == count
    assert frame["import_kwh"].sum() == pytest.approx(expected_kwh, rel=1e-12)
    assert str(frame.index.tz) == "UTC"
    assert frame.index.is_monotonic_increasing


def test_greenbutton_multiplier_direction_and_usage_points(tmp_path: Path) -> None:
    # Two usage points; UP 01 delivers (flow 1) with multiplier 1 (x10 Wh), UP 02 receives
    # (flow 19, export) with multiplier 0.
    feed = tmp_path / "two.xml"
    feed.write_text(f"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom">
 {_up("01")}{_up("02")}
 {_mr("01", "07")}{_mr("02", "08")}
 {_rt("07", flow=1, p10=1)}{_rt("08", flow=19, p10=0)}
 {_ib("01", [(1751328000, 12), (1751328900, 30)])}
 {_ib("02", [(1751328000, 500)])}
</feed>""", encoding="utf-8")
    data = read_greenbutton(feed)
    up1 = data.meters["User/1/UsagePoint/01"]
    up2 = data.meters["User/1/UsagePoint/02"]
    # (12 + 30) x 10^1 Wh = 420 Wh = 0.42 kWh; 500 x 10^0 Wh = 0.5 kWh exported
    assert up1["import_kwh"].sum() == pytest.approx(0.42)
    assert up2["export_kwh"].sum() == pytest.approx(0.5)
    assert "import_kwh" not in up2
    assert up1.index[0] == datetime(2025, 7, 1, tzinfo=UTC)


def _up(n: str) -> str:
    return (f'<entry><link rel="self" href="/User/1/UsagePoint/{n}"/><content>'
            '<UsagePoint xmlns="http://naesb.org/espi"><ServiceCategory><kind>0</kind>'
            '</ServiceCategory></UsagePoint></content></entry>')


def _mr(n: str, rt: str) -> str:
    return (f'<entry><link rel="self" href="/User/1/UsagePoint/{n}/MeterReading/01"/>'
            f'<link rel="related" href="/ReadingType/{rt}"/><content>'
            '<MeterReading xmlns="http://naesb.org/espi"/></content></entry>')


def _rt(n: str, *, flow: int, p10: int) -> str:
    return (f'<entry><link rel="self" href="/ReadingType/{n}"/><content>'
            '<ReadingType xmlns="http://naesb.org/espi"><accumulationBehaviour>4'
            f'</accumulationBehaviour><flowDirection>{flow}</flowDirection><intervalLength>900'
            f'</intervalLength><powerOfTenMultiplier>{p10}</powerOfTenMultiplier><uom>72</uom>'
            '</ReadingType></content></entry>')


def _ib(n: str, rows: list[tuple[int, int]]) -> str:
    readings = "".join(
        f"<IntervalReading><timePeriod><duration>900</duration><start>{s}</start></timePeriod>"
        f"<value>{v}</value></IntervalReading>" for s, v in rows)
    return (f'<entry><link rel="self" href="/User/1/UsagePoint/{n}/MeterReading/01/'
            'IntervalBlock/01"/><content><IntervalBlock xmlns="http://naesb.org/espi">'
            f'{readings}</IntervalBlock></content></entry>')


def test_greenbutton_rejects_entity_expansion(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE f [<!ENTITY a "aaaa">]>'
                    '<feed xmlns="http://www.w3.org/2005/Atom">&a;</feed>', encoding="utf-8")
    with pytest.raises(AmiFormatError, match="not valid XML"):
        read_greenbutton(bomb)


def test_csv_import_totals_and_interval(tmp_path: Path) -> None:
    f = tmp_path / "ami.csv"
    f.write_text(
        "timestamp,meter_id,import_kwh,export_kwh\n"
        "2026-07-01T00:00:00+09:00,m1,0.25,0\n"
        "2026-07-01T00:15:00+09:00,m1,0.50,0.10\n"
        "2026-07-01T00:30:00+09:00,m1,0.75,0.20\n"
        "2026-07-01T00:00:00+09:00,m2,1.00,0\n", encoding="utf-8")
    data = read_csv(f)
    m1 = data.meters["m1"]
    assert m1["import_kwh"].sum() == pytest.approx(1.5)   # 0.25 + 0.50 + 0.75
    assert m1["export_kwh"].sum() == pytest.approx(0.3)   # 0 + 0.10 + 0.20
    assert int(m1["duration_s"].iloc[0]) == 900
    assert m1.index[0] == datetime(2026, 6, 30, 15, 0, tzinfo=UTC)  # 00:00 KST


@pytest.mark.parametrize(("row", "message"), [
    ("2026-07-01T00:00:00,m1,0.25", "line 2: timestamp .* has no time zone"),
    ("2026-07-01T00:00:00+09:00,m1,abc", "line 2: import_kwh 'abc' is not a number"),
    ("2026-07-01T00:00:00+09:00,,1", "line 2: meter_id is empty"),
])
def test_csv_bad_rows_name_the_line(tmp_path: Path, row: str, message: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(f"timestamp,meter_id,import_kwh\n{row}\n", encoding="utf-8")
    with pytest.raises(AmiFormatError, match=message):
        read_csv(f)


def _telegram(body: bytes) -> bytes:
    return b"\x02" + body + bytes([bcc(body)])


def test_iec62056_21_readout_and_intervals() -> None:
    body1 = b"0.0.0(12345678)\r\n1.8.0(001234.567*kWh)\r\n2.8.0(000345.678*kWh)\r\n!\r\n\x03"
    body2 = b"0.0.0(12345678)\r\n1.8.0(001235.067*kWh)\r\n2.8.0(000345.778*kWh)\r\n!\r\n\x03"
    r1, r2 = parse_readout(_telegram(body1)), parse_readout(_telegram(body2))
    assert r1.meter_id == "12345678"
    assert r1.values["1.8.0"] == (1234.567, "kWh")
    t0 = datetime(2026, 7, 1, tzinfo=UTC)
    data = readouts_to_frame([(t0, r1), (t0 + timedelta(minutes=15), r2)], meter_id="12345678")
    frame = data.meters["12345678"]
    assert frame["import_kwh"].iloc[0] == pytest.approx(0.5)   # 1235.067 - 1234.567
    assert frame["export_kwh"].iloc[0] == pytest.approx(0.1)   # 345.778 - 345.678
    assert int(frame["duration_s"].iloc[0]) == 900


def test_iec62056_21_bad_bcc_is_rejected() -> None:
    body = b"1.8.0(001234.567*kWh)\r\n!\r\n\x03"
    broken = b"\x02" + body + bytes([bcc(body) ^ 0x01])
    with pytest.raises(AmiFormatError, match="BCC"):
        parse_readout(broken)


@pytest.mark.timeout(60)
def test_cli_ami_import_greenbutton_json(run_cems) -> None:
    import json

    path = GB_DIR / "1hrLP_32Days.xml"
    expected_kwh, count = independent_total_kwh(path)
    result = run_cems("ami", "import", path, "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    (meter,) = out["meters"]
    assert meter["count"] == count
    assert meter["interval_s"] == 3600
    assert meter["totals_kwh"]["import_kwh"] == pytest.approx(expected_kwh)


@pytest.mark.timeout(60)
def test_cli_ami_import_bad_csv_is_a_user_error(run_cems, tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("timestamp,meter_id,import_kwh\n2026-07-01T00:00:00,m1,1\n", encoding="utf-8")
    result = run_cems("ami", "import", f, timeout=60)
    assert result.returncode == 2
    assert "line 2" in result.stderr and "no time zone" in result.stderr
    assert "Traceback" not in result.stderr


def _write_readout(path: Path, clock: str, date: str, import_kwh: str) -> None:
    body = (f"0.0.0(87654321)\r\n0.9.1({clock})\r\n0.9.2({date})\r\n"
            f"1.8.0({import_kwh}*kWh)\r\n!\r\n").encode() + b"\x03"
    path.write_bytes(_telegram(body))


@pytest.mark.timeout(60)
def test_cli_imports_a_folder_of_iec62056_21_readouts(run_cems, tmp_path: Path) -> None:
    import json

    _write_readout(tmp_path / "a.dat", "000000", "1260701", "000100.000")
    _write_readout(tmp_path / "b.dat", "001500", "260701", "000100.750")
    _write_readout(tmp_path / "c.dat", "003000", "1260701", "000101.000")
    result = run_cems("ami", "import", tmp_path, "--format", "iec62056_21", "--json",
                      timeout=60)
    assert result.returncode == 0, result.stderr
    (meter,) = json.loads(result.stdout)["meters"]
    assert meter["meter_id"] == "87654321"
    assert meter["count"] == 2 and meter["interval_s"] == 900
    assert meter["totals_kwh"]["import_kwh"] == pytest.approx(1.0)  # 101.000 - 100.000
    assert meter["first_start"] == "2026-06-30T15:00:00+00:00"    # 00:00 KST
    bad = run_cems("ami", "import", tmp_path, "--format", "iec62056_21", "--timezone", "Mars/Base",
                   timeout=60)
    assert bad.returncode == 2 and "unknown time zone" in bad.stderr
    assert "Traceback" not in bad.stderr
