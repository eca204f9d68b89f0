"""``cems dr cbl`` / ``dr settle`` / ``dr event add`` in real processes: the KPX calendar's
임시공휴일, hourly usage files without ``--resolution``, mixed intervals, the month's method.

임시공휴일: 2025-06-03 (Tue), the 21st presidential by-election, was designated a 공휴일 under
「관공서의 공휴일에 관한 규정」 제2조 11호 (not a regular-term election day, 10호의2). KPX's
평일 excludes every 공휴일 of that regulation (규칙 제12.4.3.1조 ①; 별표28 1.1 "최근 평일"), so
it is no reference day of an event on Wednesday 2025-06-04; only KEPCO's 약관 (별표3 단서)
carves 임시공휴일 out, for its tariffs.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
USAGE = EXAMPLES / "markets" / "usage.csv"
BUSAN = EXAMPLES / "busan_eco_delta" / "site.yaml"


def strict_json(text: str) -> Any:
    """stdout must be one JSON document, without NaN/Infinity."""
    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant} on stdout")
    return json.loads(text, parse_constant=refuse)


def _error(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


# ---- 2025-06-03 ---------------------------------------------------------------------------

# Energy of the three meters together in 14:00-15:00 (kWh); every other weekday 2.0.
HOUR_14 = {date(2025, 5, 27): 3.0, date(2025, 5, 28): 3.5, date(2025, 5, 29): 4.0,
           date(2025, 5, 30): 4.5, date(2025, 6, 2): 5.0, date(2025, 6, 3): 9.0}


def _june_2025_usage(path: Path) -> Path:
    """15-minute readings of m1-m3 from Monday 2025-05-19 to Tuesday 2025-06-03.

    In 14:00-15:00, m1 uses 1.0 kWh, m2 0.5 and m3 the rest of ``HOUR_14`` (a quarter of
    each in every 15 minutes); 0.1 kWh per quarter at all other times.
    """
    lines = ["timestamp,meter_id,import_kwh"]
    day = date(2025, 5, 19)
    while day <= date(2025, 6, 3):
        total = HOUR_14.get(day, 2.0)
        for quarter in range(96):
            clock = f"{quarter // 4:02d}:{15 * (quarter % 4):02d}"
            stamp = f"{day.isoformat()}T{clock}:00+09:00"
            in_hour = quarter // 4 == 14
            for meter, hour_kwh in (("m1", 1.0), ("m2", 0.5), ("m3", total - 1.5)):
                kwh = hour_kwh / 4 if in_hour else 0.1
                lines.append(f"{stamp},{meter},{kwh:g}")
        day += timedelta(days=1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_temporary_holiday_2025_06_03_is_no_reference_day(run_cems, tmp_path: Path) -> None:
    usage = _june_2025_usage(tmp_path / "usage.csv")
    args = ["dr", "cbl", "--usage", usage, "--event-start", "2025-06-04T14:00:00+09:00",
            "--method", "max4of5", "--json"]
    proc = run_cems(*args)
    assert proc.returncode == 0, proc.stderr
    out = strict_json(proc.stdout)
    # Max(4/5), 별표28 1.1: the 5 most recent 평일 before 06-04, 06-03 being a 공휴일
    days = ["2025-06-02", "2025-05-30", "2025-05-29", "2025-05-28", "2025-05-27"]
    assert out["aggregate"]["reference_days"] == days
    assert "2025-06-03" not in out["aggregate"]["reference_days"]
    # 국민DR: the method on the summed usage (제12.5.2.1조 ① 2호 나목), per trading hour:
    # 5.0, 4.5, 4.0, 3.5, 3.0 -> top 4 = (5.0 + 4.5 + 4.0 + 3.5) / 4 = 17/4 = 4.25 kWh
    assert out["aggregate"]["total_kwh"] == pytest.approx(4.25)
    assert [p["cbl_kwh"] for p in out["aggregate"]["periods"]] == pytest.approx([4.25])
    assert all(m["reference_days"] == days for m in out["meters"].values())

    # KEPCO's reading, on request: 06-03 a weekday -> 9.0, 5.0, 4.5, 4.0, 3.5
    # top 4 = (9.0 + 5.0 + 4.5 + 4.0) / 4 = 22.5/4 = 5.625 kWh
    weekday = run_cems(*args, "--temporary-holidays-as-weekdays")
    assert weekday.returncode == 0, weekday.stderr
    as_weekday = strict_json(weekday.stdout)
    assert as_weekday["aggregate"]["reference_days"][0] == "2025-06-03"
    assert as_weekday["aggregate"]["total_kwh"] == pytest.approx(5.625)

    # the site option does the same; the command line overrides it
    site = tmp_path / "site.yaml"
    site.write_text(BUSAN.read_text(encoding="utf-8").replace(
        "  cbl_method: max4of5\n",
        "  cbl_method: max4of5\n  count_temporary_holidays: false\n"), encoding="utf-8")
    renamed = tmp_path / "usage-sv.csv"
    renamed.write_text(usage.read_text(encoding="utf-8").replace(",m1,", ",m-sv-01,")
                       .replace(",m2,", ",m-sv-02,").replace(",m3,", ",m-sv-03,"),
                       encoding="utf-8")
    by_site = run_cems("dr", "cbl", "--usage", renamed, "--event-start",
                       "2025-06-04T14:00:00+09:00", "--site", site, "--json")
    assert by_site.returncode == 0, by_site.stderr
    assert strict_json(by_site.stdout)["aggregate"]["total_kwh"] == pytest.approx(5.625)
    counted = run_cems("dr", "cbl", "--usage", renamed, "--event-start",
                       "2025-06-04T14:00:00+09:00", "--site", site,
                       "--count-temporary-holidays", "--json")
    assert counted.returncode == 0, counted.stderr
    assert strict_json(counted.stdout)["aggregate"]["total_kwh"] == pytest.approx(4.25)


def test_no_kukmin_dr_event_on_the_temporary_holiday(run_cems, tmp_path: Path) -> None:
    store = tmp_path / "ev.json"
    add = ["dr", "event", "add", "--id", "ev-0603", "--start", "2025-06-03T14:00:00+09:00",
           "--notified-at", "2025-06-03T13:00:00+09:00", "--store", store]
    _error(run_cems(*add), "2025-06-03", "public holiday", "제12.4.3.1조")
    assert not store.exists()
    assert run_cems(*add, "--temporary-holidays-as-weekdays").returncode == 0


# ---- hourly files, mixed files --------------------------------------------------------------

WEEKDAYS_2026 = [date(2026, 7, d) for d in (16, 15, 14, 13, 10, 9, 8, 7, 6, 3)]


def _hourly_usage(path: Path) -> Path:
    """Hourly readings of meters a and b, 2026-06-29 to 2026-07-20 15:00, every hour.

    14:00-15:00 on the k-th most recent 평일 before 07-20: a = k kWh, b = 2 kWh; on 07-17
    (제헌절) and weekends 50 kWh each; on 07-20 1 kWh each; 0.5 kWh in every other hour.
    """
    lines = ["timestamp,meter_id,import_kwh"]
    rank = {d: k for k, d in enumerate(WEEKDAYS_2026, start=1)}
    day = date(2026, 6, 29)
    while day <= date(2026, 7, 20):
        for hour in range(24):
            if day == date(2026, 7, 20) and hour > 14:
                break
            for meter in ("a", "b"):
                kwh = 0.5
                if hour == 14:
                    if day == date(2026, 7, 20):
                        kwh = 1.0
                    elif day in rank:
                        kwh = float(rank[day]) if meter == "a" else 2.0
                    else:
                        kwh = 50.0
                lines.append(f"{day.isoformat()}T{hour:02d}:00:00+09:00,{meter},{kwh:g}")
        day += timedelta(days=1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_hourly_file_needs_no_resolution_option(run_cems, tmp_path: Path) -> None:
    usage = _hourly_usage(tmp_path / "hourly.csv")
    proc = run_cems("dr", "cbl", "--usage", usage, "--event-start",
                    "2026-07-20T14:00:00+09:00", "--method", "mid6of10", "--json")
    assert proc.returncode == 0, proc.stderr
    out = strict_json(proc.stdout)
    assert (out["usage_interval"], out["resolution"]) == ("1h", "1h")
    # Mid(6/10), 별표28 1.2, on a + b = k + 2 = 3..12: drop 3, 4 and 11, 12
    # -> (5 + 6 + 7 + 8 + 9 + 10) / 6 = 45/6 = 7.5 kWh; 07-17 (제헌절) is no reference day
    assert out["aggregate"]["total_kwh"] == pytest.approx(7.5)
    assert "2026-07-17" not in out["aggregate"]["reference_days"]
    # the 15-minute figures spread the hour evenly: 7.5 / 4 = 1.875
    assert [i["cbl_kwh"] for i in out["aggregate"]["intervals"]] == pytest.approx([1.875] * 4)

    # settle the hour from the same file (no --resolution either)
    store = tmp_path / "ev.json"
    add = run_cems("dr", "event", "add", "--id", "ev-h", "--start",
                   "2026-07-20T14:00:00+09:00", "--notified-at", "2026-07-20T13:00:00+09:00",
                   "--store", store)
    assert add.returncode == 0, add.stderr
    settle = run_cems("dr", "settle", "--usage", usage, "--event", "ev-h", "--store", store,
                      "--method", "mid6of10", "--rbp-krw-per-kw", "36000", "--mrt-h", "60",
                      "--mgp-krw-per-kwh", "120", "--json")
    assert settle.returncode == 0, settle.stderr
    result = strict_json(settle.stdout)
    # usage 1 + 1 = 2 -> 5.5 kWh x (36,000/60 + 120) x RTWF(30 min) 1.2 = 5.5 x 864 = 4,752
    assert result["reduction_kwh"] == pytest.approx(5.5)
    assert result["compensation_krw"] == 4752
    # own CBLs: a = Mid(6/10) of 1..10 = 5.5 -> cut 4.5; b = 2 -> cut 1
    # 4,752 split 4.5 : 1 -> 3,888 and 864 exactly
    assert {h["meter_id"]: h["reward_krw"] for h in result["households"]} == {"a": 3888,
                                                                              "b": 864}

    # an event from 14:30 needs the 15-minute readings of its part hours (3.2.4)
    part = run_cems("dr", "cbl", "--usage", usage, "--event-start",
                    "2026-07-20T14:30:00+09:00", "--method", "mid6of10")
    _error(part, "14:30-15:00 of the trading hour 14:00-15:00", "3.2.4",
           "give 15-minute usage")
    # and hourly readings cannot be used as 15-minute ones
    _error(run_cems("dr", "cbl", "--usage", usage, "--event-start",
                    "2026-07-20T14:00:00+09:00", "--resolution", "15min"),
           f"{usage}:4: the readings are hourly")  # line 4: a at 01:00, after 00:00


def test_mixed_intervals_are_refused_with_the_file_and_line(run_cems, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        "timestamp,meter_id,import_kwh\n"
        "2026-07-16T14:00:00+09:00,m1,0.25\n"
        "2026-07-16T14:15:00+09:00,m1,0.25\n"  # line 3: 15-minute readings
        "2026-07-16T14:30:00+09:00,m1,0.25\n"
        "2026-07-16T14:45:00+09:00,m1,0.25\n"
        "2026-07-16T14:00:00+09:00,m2,1.0\n"
        "2026-07-16T15:00:00+09:00,m2,1.0\n",  # line 7: m2 an hour after its last
        encoding="utf-8")
    store = tmp_path / "ev.json"
    add = run_cems("dr", "event", "add", "--id", "x", "--start", "2026-07-20T14:00:00+09:00",
                   "--notified-at", "2026-07-20T13:00:00+09:00", "--store", store)
    assert add.returncode == 0, add.stderr
    for command in (["dr", "cbl", "--usage", mixed, "--event-start",
                     "2026-07-20T14:00:00+09:00"],
                    ["dr", "settle", "--usage", mixed, "--event", "x", "--store", store,
                     "--rbp-krw-per-kw", "1", "--mrt-h", "1",
                     "--mgp-krw-per-kwh", "1"]):
        _error(run_cems(*command), f"{mixed}:7: meter 'm2' has hourly readings",
               f"({mixed}:3)", "mixed intervals")


# ---- the month's method from the site ---------------------------------------------------------


def test_site_method_of_the_events_month(run_cems, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(BUSAN.read_text(encoding="utf-8").replace(
        "  cbl_method: max4of5\n",
        '  cbl_method: max4of5\n  cbl_method_by_month: {"2026-07": mid6of10, '
        '"2026-08": mid8of10}\n'), encoding="utf-8")
    store = tmp_path / "ev.json"
    proc = run_cems("dr", "cbl", "--usage", USAGE, "--event-start",
                    "2026-07-20T14:00:00+09:00", "--site", site, "--store", store, "--json")
    assert proc.returncode == 0, proc.stderr
    out = strict_json(proc.stdout)
    # July is designated Mid(6/10) (규칙 제12.5.2.1조 ① 2호 가목); the site default is Max(4/5)
    assert out["method"] == "mid6of10"
    # examples/markets/usage.csv (test_cli_dr.py): m-sv-01 0.4k kWh in the hour on the k-th
    # 평일 -> Mid(6/10) 0.4 x (3+...+8)/6 = 2.2 (Max(4/5) would give 0.4 x 14/4 = 1.4)
    assert out["meters"]["m-sv-01"]["total_kwh"] == pytest.approx(2.2)
    add = run_cems("dr", "event", "add", "--id", "ev-0720", "--start",
                   "2026-07-20T14:00:00+09:00", "--notified-at", "2026-07-20T13:00:00+09:00",
                   "--site", site, "--store", store)
    assert add.returncode == 0, add.stderr
    settle = run_cems("dr", "settle", "--usage", USAGE, "--event", "ev-0720", "--site", site,
                      "--store", store, "--rbp-krw-per-kw", "36000", "--mrt-h", "60",
                      "--mgp-krw-per-kwh", "120", "--json")
    assert settle.returncode == 0, settle.stderr
    result = strict_json(settle.stdout)
    assert result["method"] == "mid6of10"
    # own CBLs under Mid(6/10): m-sv-01 2.2, m-sv-02 0.8, m-sv-03 2.2 (test_cli_dr.py);
    # usage 0.2, 0.6, 1.2 -> 2.0, 0.2, 1.0
    cuts = {h["meter_id"]: h["reduction_kwh"] for h in result["households"]}
    assert cuts == pytest.approx({"m-sv-01": 2.0, "m-sv-02": 0.2, "m-sv-03": 1.0})
    # an explicit --method still wins
    forced = run_cems("dr", "cbl", "--usage", USAGE, "--event-start",
                      "2026-07-20T14:00:00+09:00", "--site", site, "--store", store,
                      "--method", "max4of5", "--json")
    assert strict_json(forced.stdout)["meters"]["m-sv-01"]["total_kwh"] == pytest.approx(1.4)
