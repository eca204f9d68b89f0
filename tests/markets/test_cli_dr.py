"""``cems dr`` end to end on examples/markets/usage.csv, in a real subprocess.

The example usage (15-minute readings 12:00-16:00, constant within a day) for the 평일 k days
before Monday 2026-07-20 (k = 1 is 07-16; 07-17 is 제헌절, 07-14 is k = 3, 07-10 is k = 5):
m-sv-01 0.1k kWh per quarter (0.4k per hour), m-sv-02 0.2 (0.8 per hour) but no readings on
07-10, m-sv-03 0.1(11 - k) (0.4(11 - k) per hour) for k <= 10 and 0.1 for k = 11. Weekends and
holidays 0.5 per quarter. On 07-20 14:00-15:00: 0.05, 0.15 and 0.3 per quarter
(0.2, 0.6 and 1.2 kWh in the hour).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EX = Path(__file__).resolve().parents[2] / "examples" / "markets"
USAGE = EX / "usage.csv"
START = "2026-07-20T14:00:00+09:00"


def test_cbl_mid6of10_hourly_json(run_cems, tmp_path: Path) -> None:
    proc = run_cems("dr", "cbl", "--usage", USAGE, "--event-start", START, "--method",
                    "mid6of10", "--resolution", "1h", "--store", tmp_path / "ev.json", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    meters = {m: v["total_kwh"] for m, v in out["meters"].items()}
    # m-sv-01: 0.4k for k = 1..10, drop k = 1, 2, 9, 10 -> 0.4 x (3+...+8)/6 = 0.4 x 5.5 = 2.2
    # m-sv-02: 0.8 x 9 and 0 (07-10 missing -> 0) -> drop 0, 0.8 and 0.8, 0.8 -> 0.8
    # m-sv-03: 0.4(11-k) -> 4.0 .. 0.4 -> also 2.2
    assert meters == pytest.approx({"m-sv-01": 2.2, "m-sv-02": 0.8, "m-sv-03": 2.2})
    # the four 15-minute readings of 07-10 14:00-14:45 are missing and count as 0 (3.4.6)
    assert out["meters"]["m-sv-02"]["zero_filled_readings"] == 4
    assert (out["usage_interval"], out["resolution"]) == ("15min", "1h")
    assert [p["minutes"] for p in out["periods"]] == [60]
    # aggregate (sum first): 0.4k + 0.8 + 0.4(11-k) = 5.2, but 07-10: 2.0 + 0 + 2.4 = 4.4
    # sorted 4.4, 5.2 x 9 -> drop 4.4, 5.2 and 5.2, 5.2 -> 5.2
    assert out["aggregate"]["total_kwh"] == pytest.approx(5.2)
    assert out["aggregate"]["reference_days"][0] == "2026-07-16"
    assert "2026-07-17" not in out["aggregate"]["reference_days"]  # 제헌절
    # without --resolution: the same trading-hour figures from the 15-minute readings
    # (제12.5.2.1조 ②); only the per-15-minute split follows the similar days' quarters
    auto = run_cems("dr", "cbl", "--usage", USAGE, "--event-start", START, "--method",
                    "mid6of10", "--store", tmp_path / "ev.json", "--json")
    assert auto.returncode == 0, auto.stderr
    again = json.loads(auto.stdout)
    assert (again["usage_interval"], again["resolution"]) == ("15min", "15min")
    assert {m: v["total_kwh"] for m, v in again["meters"].items()} == pytest.approx(meters)
    assert again["aggregate"]["periods"][0]["cbl_kwh"] == pytest.approx(5.2)


def test_cbl_excludes_stored_event_day(run_cems, tmp_path: Path) -> None:
    store = tmp_path / "ev.json"
    add = run_cems("dr", "event", "add", "--id", "ev-0714", "--start",
                   "2026-07-14T14:00:00+09:00", "--notified-at", "2026-07-14T13:00:00+09:00",
                   "--store", store)
    assert add.returncode == 0, add.stderr
    proc = run_cems("dr", "cbl", "--usage", USAGE, "--event-start", START, "--method",
                    "mid6of10", "--resolution", "1h", "--store", store, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "2026-07-14" not in out["aggregate"]["reference_days"]
    # k = 1, 2, 4..11. m-sv-01: 0.4 x {1,2,4..11}, drop 1, 2 and 10, 11 -> 0.4 x 6.5 = 2.6
    # m-sv-03: 4.0, 3.6, 2.8, 2.4, 2.0, 1.6, 1.2, 0.8, 0.4, 0.4 (k = 11: 0.1 x 4)
    #          drop 0.4, 0.4 and 3.6, 4.0 -> (0.8+1.2+1.6+2.0+2.4+2.8)/6 = 10.8/6 = 1.8
    assert out["meters"]["m-sv-01"]["total_kwh"] == pytest.approx(2.6)
    assert out["meters"]["m-sv-03"]["total_kwh"] == pytest.approx(1.8)


def test_event_and_settlement_with_site(run_cems, busan_site: Path, tmp_path: Path) -> None:
    store = tmp_path / "events.json"
    add = run_cems("dr", "event", "add", "--id", "ev-0720", "--start", START, "--notified-at",
                   "2026-07-20T13:00:00+09:00", "--committed-kw", "2", "--site", busan_site,
                   "--store", store)
    assert add.returncode == 0, add.stderr
    assert json.loads(store.read_text())["events"][0]["start"] == "2026-07-20T05:00:00+00:00"
    proc = run_cems("dr", "settle", "--usage", USAGE, "--event", "ev-0720", "--site",
                    busan_site, "--store", store, "--rbp-krw-per-kw", "36000", "--mrt-h", "60",
                    "--mgp-krw-per-kwh", "120", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # site: cbl_method max4of5, min_notice_min 60 -> RTWF 1 + (60/60)/10 = 1.1, share 1.0
    assert out["method"] == "max4of5"
    # aggregate reference days k = 1..5: 5.2, 5.2, 5.2, 5.2, 4.4 -> top 4 = 5.2
    # usage 0.2 + 0.6 + 1.2 = 2.0 -> reduction 3.2 kWh
    (hour,) = out["hours"]
    assert hour["cbl_kwh"] == pytest.approx(5.2)
    assert hour["reduction_kwh"] == pytest.approx(3.2)
    # 3.2 x (36,000/60 + 120) x 1.1 = 3.2 x 720 x 1.1 = 2,534.4 -> 2,534 KRW
    assert out["unit_price_krw_per_kwh"] == pytest.approx(720.0)
    assert out["compensation_krw"] == 2534
    # own CBLs (top 4 of k = 1..5): m-sv-01 (0.8+1.2+1.6+2.0)/4 = 1.4 -> 1.4 - 0.2 = 1.2
    # m-sv-02 0.8 -> 0.8 - 0.6 = 0.2; m-sv-03 (4.0+3.6+3.2+2.8)/4 = 3.4 -> 3.4 - 1.2 = 2.2
    # 2534 x 1.2/3.6 = 844.67, x 0.2/3.6 = 140.78, x 2.2/3.6 = 1548.56 -> 844 + 140 + 1548 =
    # 2532; 2 won left -> largest remainders m-sv-02 (.78), m-sv-01 (.67)
    rewards = {h["meter_id"]: h["reward_krw"] for h in out["households"]}
    assert rewards == {"m-sv-01": 845, "m-sv-02": 141, "m-sv-03": 1548}
    assert sum(rewards.values()) == out["household_pool_krw"] == 2534


def _assert_user_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("start", "end", "notified", "needles"),
    [
        # 21:00-22:00 is outside 06:00-21:00
        ("2026-07-20T21:00:00+09:00", None, "2026-07-20T20:00:00+09:00",
         ("outside the 06:00-21:00 window",)),
        # Saturday
        ("2026-07-25T14:00:00+09:00", None, "2026-07-25T13:00:00+09:00", ("평일",)),
        # 제헌절 (Friday holiday)
        ("2026-07-17T14:00:00+09:00", None, "2026-07-17T13:00:00+09:00", ("public holiday",)),
        # 15 minutes of notice
        ("2026-07-20T14:00:00+09:00", None, "2026-07-20T13:45:00+09:00",
         ("notice is 15 min", "at least 30 min")),
        # naive start
        ("2026-07-20T14:00:00", None, "2026-07-20T13:00:00+09:00", ("--start", "no time zone")),
        # not on the quarter hour
        ("2026-07-20T14:10:00+09:00", None, "2026-07-20T13:00:00+09:00", (":00, :15, :30",)),
        # two hours
        ("2026-07-20T14:00:00+09:00", "2026-07-20T16:00:00+09:00", "2026-07-20T13:00:00+09:00",
         ("lasts 2 h",)),
    ],
)
def test_event_add_rejects_bad_events(run_cems, tmp_path: Path, start: str, end: str | None,
                                      notified: str, needles: tuple[str, ...]) -> None:
    args = ["dr", "event", "add", "--id", "ev", "--start", start, "--notified-at", notified,
            "--store", tmp_path / "ev.json"]
    if end:
        args += ["--end", end]
    _assert_user_error(run_cems(*args), *needles)
    assert not (tmp_path / "ev.json").exists()


def test_event_add_rejects_overlap_and_back_to_back(run_cems, tmp_path: Path) -> None:
    store = tmp_path / "ev.json"
    first = run_cems("dr", "event", "add", "--id", "ev-a", "--start", START, "--notified-at",
                     "2026-07-20T13:00:00+09:00", "--store", store)
    assert first.returncode == 0, first.stderr
    overlap = run_cems("dr", "event", "add", "--id", "ev-b", "--start",
                       "2026-07-20T14:30:00+09:00", "--notified-at",
                       "2026-07-20T13:00:00+09:00", "--store", store)
    _assert_user_error(overlap, "overlaps stored event 'ev-a'")
    follow = run_cems("dr", "event", "add", "--id", "ev-c", "--start",
                      "2026-07-20T15:00:00+09:00", "--notified-at",
                      "2026-07-20T13:00:00+09:00", "--store", store)
    _assert_user_error(follow, "must not be consecutive")
    listing = run_cems("dr", "event", "list", "--store", store, "--json")
    assert [e["event_id"] for e in json.loads(listing.stdout)] == ["ev-a"]


def test_cbl_rejects_unknown_meter_and_naive_time(run_cems, busan_site: Path,
                                                  tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("timestamp,meter_id,import_kwh\n"
                       "2026-07-16T14:00:00+09:00,m-sv-01,0.1\n"
                       "2026-07-16T14:00:00+09:00,m-zz-99,0.1\n", encoding="utf-8")
    proc = run_cems("dr", "cbl", "--usage", unknown, "--event-start", START, "--site",
                    busan_site, "--store", tmp_path / "ev.json")
    _assert_user_error(proc, "unknown.csv:3", "m-zz-99", "not a household meter")
    naive = tmp_path / "naive.csv"
    naive.write_text("timestamp,meter_id,import_kwh\n2026-07-16T14:00:00,m-sv-01,0.1\n",
                     encoding="utf-8")
    proc = run_cems("dr", "cbl", "--usage", naive, "--event-start", START, "--store",
                    tmp_path / "ev.json")
    _assert_user_error(proc, "naive.csv:2: timestamp", "no time zone")
    proc = run_cems("dr", "cbl", "--usage", USAGE, "--event-start", "2026-07-20T14:00:00",
                    "--store", tmp_path / "ev.json")
    _assert_user_error(proc, "--event-start", "no time zone")


def test_settle_unknown_event_and_participant(run_cems, tmp_path: Path) -> None:
    store = tmp_path / "ev.json"
    run_cems("dr", "event", "add", "--id", "ev-a", "--start", START, "--notified-at",
             "2026-07-20T13:00:00+09:00", "--store", store)
    common = ["--usage", USAGE, "--store", store, "--rbp-krw-per-kw", "1", "--mrt-h", "1",
              "--mgp-krw-per-kwh", "1"]
    _assert_user_error(run_cems("dr", "settle", "--event", "nope", *common), "no event 'nope'")
    _assert_user_error(run_cems("dr", "settle", "--event", "ev-a", "--participants",
                                "m-sv-01,m-xx", *common), "unknown meter(s) m-xx")


def test_plus_dr_saturday_defaults_to_hmid4of6(run_cems) -> None:
    proc = run_cems("dr", "cbl", "--usage", USAGE, "--event-start", "2026-07-18T14:00:00+09:00",
                    "--program", "plus_dr", "--exclude-days", "2026-07-11", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "no event store given" in proc.stderr
    out = json.loads(proc.stdout)
    assert out["method"] == "hmid4of6"
    # Saturdays, Sundays and holidays before Sat 07-18, minus the excluded 07-11:
    # 07-17 (제헌절), 07-12, 07-05, 07-04, 06-28, 06-27
    assert out["aggregate"]["reference_days"] == [
        "2026-07-17", "2026-07-12", "2026-07-05", "2026-07-04", "2026-06-28", "2026-06-27"]
    # every meter uses 0.5 kWh per quarter on those days -> sum of baselines 3 x 0.5 = 1.5
    # per quarter, 6.0 kWh over the hour
    assert out["aggregate"]["total_kwh"] == pytest.approx(6.0)
    # a weekday method on a Saturday is refused
    bad = run_cems("dr", "cbl", "--usage", USAGE, "--event-start", "2026-07-18T14:00:00+09:00",
                   "--method", "mid6of10")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "use --method hmid4of6" in bad.stderr
