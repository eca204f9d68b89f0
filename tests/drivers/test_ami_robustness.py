"""AMI imports under bad data: nothing lost silently, every problem named in local terms.

Through real ``python -m cems ami import`` processes. The Green Button input is a public
sample year (``tests/data/greenbutton``, Apache-2.0; see its NOTICE.md): as published, and
re-labelled the way an exporter that writes local wall-clock times does it, which gives
the repeated hour of the autumn DST change (2011-11-06 01:00 PST) the start of the hour
before it (01:00 PDT). Expected totals are computed independently from the XML text:
sum of IntervalReading values x 10^powerOfTenMultiplier Wh.
"""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from strict_json import strict_json

from device_drivers.ami.greenbutton import DstRule, FeedClock

pytestmark = pytest.mark.timeout(120)

YEAR = (Path(__file__).resolve().parents[1] / "data" / "greenbutton"
        / "Coastal_Multi_Family_Jan_1_2011_to_Jan_1_2012_RetailCustomer_5.xml.gz")
METER = "RetailCustomer/5/UsagePoint/1"
PACIFIC = ZoneInfo("America/Los_Angeles")
READING = re.compile(r"<IntervalReading>.*?<start>(\d+)</start>.*?<value>\s*(-?\d+)\s*</value>",
                     re.S)
# 2011-11-06 01:00 PDT (08:00 UTC) and 01:00 PST (09:00 UTC), the repeated local hour
PDT_0100, PST_0100 = 1320566400, 1320570000


def _year_text() -> str:
    return gzip.decompress(YEAR.read_bytes()).decode("utf-8")


def _independent(text: str) -> tuple[float, list[tuple[int, int]]]:
    """Total kWh and (start, value) of every reading, by regex over the XML text."""
    (p10,) = set(re.findall(r"<powerOfTenMultiplier>\s*(-?\d+)", text))
    readings = [(int(s), int(v)) for s, v in READING.findall(text)]
    return sum(v for _, v in readings) * 10 ** int(p10) / 1000.0, readings


def _wall_clock_relabel(text: str) -> str:
    """Each reading's start re-derived from its Pacific wall-clock time, fold dropped."""

    def relabel(match: re.Match[str]) -> str:
        wall = datetime.fromtimestamp(int(match["start"]), PACIFIC).replace(fold=0)
        return f"{match['head']}{int(wall.timestamp())}</start>"

    return re.sub(r"(?P<head><timePeriod>\s*<duration>\d+</duration>\s*<start>)(?P<start>\d+)"
                  r"</start>", relabel, text)


@pytest.fixture(scope="module")
def dst_year(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gb") / "coastal_2011_wall_clock.xml"
    path.write_text(_wall_clock_relabel(_year_text()), encoding="utf-8")
    return path


def test_the_published_year_imports_whole_without_warnings(run_cems, tmp_path: Path) -> None:
    text = _year_text()
    expected_kwh, readings = _independent(text)
    assert len(readings) == 8760
    path = tmp_path / "coastal_2011.xml"
    path.write_text(text, encoding="utf-8")
    proc = run_cems("ami", "import", path, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = strict_json(proc.stdout)
    assert doc["warnings"] == [] and "warning" not in proc.stderr
    (meter,) = doc["meters"]
    assert meter["count"] == 8760 and meter["interval_s"] == 3600
    assert meter["totals_kwh"]["import_kwh"] == pytest.approx(expected_kwh, rel=1e-12)


def test_dst_duplicate_starts_import_with_a_warning_and_the_files_total(run_cems,
                                                                        dst_year: Path) -> None:
    text = dst_year.read_text(encoding="utf-8")
    expected_kwh, readings = _independent(text)
    starts = [s for s, _ in readings]
    # the re-labelled year really has one shared start, and it is the DST one
    assert len(starts) - len(set(starts)) == 1 and starts.count(PDT_0100) == 2
    assert PST_0100 not in starts
    first = starts.index(PDT_0100) + 1  # 1-based reading numbers, document order
    proc = run_cems("ami", "import", dst_year, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = strict_json(proc.stdout)  # stdout is one strict JSON document
    (meter,) = doc["meters"]
    assert meter["meter_id"] == METER
    assert meter["count"] == 8759
    # the default policy sums the two readings: the file's total energy is kept
    assert meter["totals_kwh"]["import_kwh"] == pytest.approx(expected_kwh, rel=1e-12)
    shared = [w for w in doc["warnings"] if "share a start" in w]
    assert len(shared) == 1
    # both readings named, by position and local start (the feed's own Pacific time)
    assert f"reading #{first} (2011-11-06T01:00:00-07:00)" in shared[0]
    assert f"reading #{first + 1} (2011-11-06T01:00:00-07:00)" in shared[0]
    assert "summed" in shared[0] and str(dst_year) in shared[0]
    # the hour the exporter lost is flagged as a hole, not imported silently
    assert any("hole of 1 h" in w and "2011-11-06T02:00:00-08:00" in w for w in doc["warnings"])
    # the same warnings on stderr; never a raw epoch
    assert f"warning: {shared[0]}" in proc.stderr
    assert str(PDT_0100) not in proc.stderr + proc.stdout


def test_duplicates_error_names_the_file_and_both_readings(run_cems, dst_year: Path) -> None:
    starts = [s for s, _ in _independent(dst_year.read_text(encoding="utf-8"))[1]]
    first = starts.index(PDT_0100) + 1
    proc = run_cems("ami", "import", dst_year, "--duplicates", "error", "--json")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert str(dst_year) in proc.stderr
    assert f"reading #{first} (2011-11-06T01:00:00-07:00)" in proc.stderr
    assert f"reading #{first + 1} (2011-11-06T01:00:00-07:00)" in proc.stderr
    assert str(PDT_0100) not in proc.stderr


@pytest.mark.parametrize("policy", ["first", "last"])
def test_first_and_last_keep_one_reading_and_say_what_was_dropped(run_cems, dst_year: Path,
                                                                  policy: str) -> None:
    total, readings = _independent(dst_year.read_text(encoding="utf-8"))
    a, b = (v / 1000.0 for s, v in readings if s == PDT_0100)  # p10 = 0: Wh -> kWh
    dropped = b if policy == "first" else a
    proc = run_cems("ami", "import", dst_year, "--duplicates", policy, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = strict_json(proc.stdout)
    assert doc["meters"][0]["totals_kwh"]["import_kwh"] == pytest.approx(total - dropped)
    (shared,) = [w for w in doc["warnings"] if "share a start" in w]
    assert f"--duplicates {policy}" in shared and f"{dropped:g} kWh of the file dropped" in shared


def test_feed_clock_follows_the_north_american_dst_rules() -> None:
    # the sample's LocalTimeParameters: tzOffset -28800, dstOffset 3600, 360E2000/B40E2000
    clock = FeedClock(-28800, 3600, DstRule.decode(0x360E2000), DstRule.decode(0xB40E2000))
    for year in (2011, 2024, 2026):
        for month in range(1, 13):
            for day in (1, 6, 13, 28):
                for hour in range(24):
                    t = int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())
                    assert clock.local(t).utcoffset() == datetime.fromtimestamp(
                        t, PACIFIC).utcoffset(), (year, month, day, hour)


def _csv(tmp_path: Path, rows: list[str], name: str = "ami.csv") -> Path:
    path = tmp_path / name
    path.write_text("timestamp,meter_id,import_kwh\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_csv_mixed_offsets_are_flagged_with_the_hole_they_make(run_cems, tmp_path: Path) -> None:
    # hourly rows; the exporter switches to UTC labels at line 5 but keeps counting local
    # hours: 02:00+09:00 is followed by 03:00+00:00, nine hours later than meant
    path = _csv(tmp_path, [
        "2026-07-01T00:00:00+09:00,m1,1", "2026-07-01T01:00:00+09:00,m1,1",
        "2026-07-01T02:00:00+09:00,m1,1", "2026-07-01T03:00:00+00:00,m1,1",
        "2026-07-01T04:00:00+00:00,m1,1", "2026-07-01T05:00:00+00:00,m1,1"])
    proc = run_cems("ami", "import", path, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = strict_json(proc.stdout)
    assert doc["meters"][0]["totals_kwh"]["import_kwh"] == pytest.approx(6.0)
    offsets = next(w for w in doc["warnings"] if "different UTC offsets" in w)
    assert "+09:00 at ami.csv lines 2-4" in offsets and "+00:00 at ami.csv lines 5-7" in offsets
    hole = next(w for w in doc["warnings"] if "hole of" in w)
    # 02:00+09:00 (17:00 UTC) + 1 h to 03:00+00:00: 9 hours with no data
    assert "hole of 9 h" in hole and "line 4 (2026-07-01T02:00:00+09:00)" in hole
    assert "line 5 (2026-07-01T03:00:00+00:00)" in hole
    assert f"warning: {hole}" in proc.stderr


def test_csv_gaps_and_irregular_spacing_are_warnings(run_cems, tmp_path: Path) -> None:
    path = _csv(tmp_path, [
        "2026-07-01T00:00:00+09:00,m1,0.25", "2026-07-01T00:15:00+09:00,m1,0.25",
        "2026-07-01T01:00:00+09:00,m1,0.25", "2026-07-01T01:15:00+09:00,m1,0.25",
        "2026-07-01T01:40:00+09:00,m1,0.25", "2026-07-01T01:55:00+09:00,m1,0.25"])
    proc = run_cems("ami", "import", path)
    assert proc.returncode == 0, proc.stderr
    warnings = [x for x in proc.stderr.splitlines() if x.startswith("warning: ")]
    # 00:15 -> 01:00: two 15-minute intervals missing; 01:15 -> 01:40: 25 minutes
    assert any("hole of 30 min" in w and "line 3 (2026-07-01T00:15:00+09:00)" in w
               for w in warnings), warnings
    assert any("line 6 (2026-07-01T01:40:00+09:00) starts 25 minutes after line 5" in w
               and "irregular spacing" in w for w in warnings), warnings
    assert "6 intervals of 900 s" in proc.stdout


@pytest.mark.parametrize(("rows", "needle"), [
    # spacings 15, 10, 20, 15, 15 min: 15-minute intervals, and line 4 starts inside
    # line 3's interval
    pytest.param(["2026-07-01T00:00:00+09:00,m1,1", "2026-07-01T00:15:00+09:00,m1,1",
                  "2026-07-01T00:25:00+09:00,m1,1", "2026-07-01T00:45:00+09:00,m1,1",
                  "2026-07-01T01:00:00+09:00,m1,1", "2026-07-01T01:15:00+09:00,m1,1"],
                 "line 4 (2026-07-01T00:25:00+09:00) starts 10 minutes after line 3",
                 id="row-inside-the-previous-interval"),
    # spacings 15, 15, 60, 60 min: 15-minute or hourly data?
    pytest.param(["2026-07-01T00:00:00+09:00,m1,1", "2026-07-01T00:15:00+09:00,m1,1",
                  "2026-07-01T00:30:00+09:00,m1,1", "2026-07-01T01:30:00+09:00,m1,1",
                  "2026-07-01T02:30:00+09:00,m1,1"],
                 "spacings of 15 and 60 minutes are equally common (2 each)",
                 id="two-spacings-equally-common"),
])
def test_csv_an_ambiguous_interval_is_an_error(run_cems, tmp_path: Path, rows: list[str],
                                               needle: str) -> None:
    proc = run_cems("ami", "import", _csv(tmp_path, rows), "--json")
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert needle in proc.stderr and "ambiguous" in proc.stderr


@pytest.mark.parametrize(("value", "needle"), [
    ("1e308", "import_kwh 1e+308 kWh in 900 s is more than"),
    ("1e12", "import_kwh 1e+12 kWh in 900 s is more than"),
    ("nan", "must be a finite number >= 0"),
    ("inf", "must be a finite number >= 0"),
])
def test_csv_values_no_meter_can_produce_are_named(run_cems, tmp_path: Path, value: str,
                                                   needle: str) -> None:
    path = _csv(tmp_path, ["2026-07-01T00:00:00+09:00,m1,1",
                           f"2026-07-01T00:15:00+09:00,m1,{value}",
                           "2026-07-01T00:30:00+09:00,m1,1"])
    proc = run_cems("ami", "import", path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path} line 3" in proc.stderr and needle in proc.stderr


def test_greenbutton_values_beyond_any_meter_name_the_reading(run_cems, tmp_path: Path) -> None:
    # the published year with a powerOfTenMultiplier of 12: 703 x 10^12 Wh in an hour
    text = _year_text().replace("<powerOfTenMultiplier>0</powerOfTenMultiplier>",
                                "<powerOfTenMultiplier>12</powerOfTenMultiplier>")
    path = tmp_path / "huge.xml"
    path.write_text(text, encoding="utf-8")
    proc = run_cems("ami", "import", path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # the first reading: 2011-01-01 00:00 Pacific standard time
    assert f"{path}: {METER} reading #1 (2011-01-01T00:00:00-08:00)" in proc.stderr
    assert "is more than" in proc.stderr
