"""The CBL per KPX 별표28 as the rule states it, worked by hand.

* The unit is the trading hour (거래시간): 규칙 제12.5.2.1조 ② "고객기준부하 산정은 거래시간을
  기본 단위로 한다", and 별표28 1.1-1.4 rank the reference days by "감축일의 거래시간별
  사용전력량". An hour is ranked on its energy, not quarter hour by quarter hour.
* 별표28 3.2.4: when the event starts or ends inside a trading hour, that hour is evaluated
  on the event's actual 15-minute intervals in it.
* 규칙 제12.5.2.1조 ① 2호 가목: KPX designates the 국민DR method before each month.
* Usage files are 15-minute or hourly readings, the interval read from the timestamps.
* The cap of a commitment is on the participants' own meters (규칙 제12.5.2.1조 ①, 제12.5.2.3조
  ①): the test sites are 종합계약 complexes (contract composite) whose household meters sit
  behind the grid meter, the only place the community's supply reaches them.

Calendar (2026): Monday 2026-07-20; 07-17 (Fri) is 제헌절. The 평일 before 07-20, most recent
first (k = 1, 2, ...): 07-16, 07-15, 07-14, 07-13, 07-10, 07-09, 07-08, 07-07, 07-06, 07-03.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dr_sites import composite

from cems.config.checks import check_site
from cems.config.model import SiteConfig
from cems.errors import InputError
from cems.markets.cbl import METHODS, compute_cbl, method_for_day, similar_day_mean
from cems.markets.dr_settlement import settle_event
from cems.markets.dr_workflow import commitment_for, commitment_json, method_for
from cems.markets.events import DrEvent
from cems.markets.usage import read_usage
from cems.runtime.dr_commitments import parse_commitment

TZ = "Asia/Seoul"
WEEKDAYS = [date(2026, 7, d) for d in (16, 15, 14, 13, 10, 9, 8, 7, 6, 3)]


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ)


def frame(rows: list[tuple[pd.Timestamp, str, float]]) -> pd.DataFrame:
    usage = pd.DataFrame(rows, columns=["timestamp", "meter_id", "import_kwh"])
    usage["timestamp"] = pd.DatetimeIndex(usage["timestamp"]).tz_convert("UTC")
    return usage


def quarter_rows(day: date, clock: str, values: list[float], meter: str = "h1"
                 ) -> list[tuple[pd.Timestamp, str, float]]:
    start = ts(f"{day.isoformat()}T{clock}")
    return [(start + pd.Timedelta(minutes=15 * q), meter, v) for q, v in enumerate(values)]


# ---- 1. whole-hour event: ranked per trading hour, not per 15 minutes ----------------------

# Quarter readings 14:00, 14:15, 14:30, 14:45 (kWh) on the k-th most recent 평일. Most days
# use 1 kWh a quarter; six days have one heavy quarter, each in another quarter, two days
# are light all hour.
HOUR_CASE = {
    1: [3.0, 1.0, 1.0, 1.0],  # hour 6
    2: [3.0, 1.0, 1.0, 1.0],  # hour 6
    3: [1.0, 3.0, 1.0, 1.0],  # hour 6
    4: [1.0, 3.0, 1.0, 1.0],  # hour 6
    5: [1.0, 1.0, 3.5, 1.0],  # hour 6.5
    6: [1.0, 1.0, 3.5, 1.0],  # hour 6.5
    7: [0.75, 0.75, 0.75, 0.75],  # hour 3
    8: [0.75, 0.75, 0.75, 0.75],  # hour 3
    9: [1.0, 1.0, 1.0, 1.0],  # hour 4
    10: [1.0, 1.0, 1.0, 1.0],  # hour 4
}


def test_whole_hour_is_ranked_on_the_hour_not_on_quarters() -> None:
    rows = []
    for k, values in HOUR_CASE.items():
        rows += quarter_rows(WEEKDAYS[k - 1], "14:00", values)
    usage = frame(rows)
    result = compute_cbl(usage, ts("2026-07-20T14:00"), ts("2026-07-20T15:00"),
                         METHODS["mid6of10"])
    base = result.per_meter["h1"]
    # 별표28 1.2 on the hour's energy: 6, 6, 6, 6, 6.5, 6.5, 3, 3, 4, 4
    # sorted 3, 3, 4, 4, 6, 6, 6, 6, 6.5, 6.5 -> drop 3, 3 (lowest) and 6.5, 6.5 (highest)
    # similar days k = 9, 10, 1, 2, 3, 4: (4 + 4 + 6 + 6 + 6 + 6) / 6 = 32/6 = 5.3333 kWh
    assert base.period_kwh.tolist() == pytest.approx([32 / 6])
    assert base.total_kwh == pytest.approx(32 / 6)
    # The old way, each quarter ranked on its own (similar_day_mean on days x quarters):
    # 14:00: 3, 3, 1, 1, 1, 1, .75, .75, 1, 1 -> drop .75, .75 and 3, 3 -> six 1s -> 1
    # 14:15 and 14:30 likewise 1 (their heavy days are dropped as the highest);
    # 14:45: 1 x 8, .75 x 2 -> drop .75, .75 and 1, 1 -> 1.  Sum 4.0 kWh.
    matrix = np.array([HOUR_CASE[k] for k in range(1, 11)])
    per_quarter = similar_day_mean(matrix, METHODS["mid6of10"])
    assert per_quarter.tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0])
    # per-quarter ranking understates this hour's CBL by (4.0 - 5.3333) / 5.3333 = -25 %
    assert (per_quarter.sum() - 32 / 6) / (32 / 6) == pytest.approx(-0.25)
    # Per 15 minutes (project choice, for the import caps): the same similar days'
    # quarters, k = 9, 10, 1, 2, 3, 4:
    # 14:00 (1+1+3+3+1+1)/6 = 10/6, 14:15 (1+1+1+1+3+3)/6 = 10/6, 14:30 6/6 = 1, 14:45 1
    assert base.kwh.tolist() == pytest.approx([10 / 6, 10 / 6, 1.0, 1.0])
    assert base.kwh.sum() == pytest.approx(32 / 6)  # adds up to the hour's CBL


def test_commitment_caps_follow_the_hours_cbl() -> None:
    """The planner's 15-minute caps (dr_workflow -> stored -> dr_commitments) from the
    hourly CBL of the case above: they add up to the hour's CBL minus the committed energy.
    The caps are on the participant's own meter (h1, asset share 0.5, behind the grid meter
    of a 종합계약 complex)."""
    rows = []
    for k, values in HOUR_CASE.items():
        rows += quarter_rows(WEEKDAYS[k - 1], "14:00", values)
    event = DrEvent("ev-cap", "kukmin_dr", ts("2026-07-20T14:00"), ts("2026-07-20T15:00"),
                    ts("2026-07-20T13:00"), committed_kw=1.0, source="openadr")
    commitment = commitment_for(_site(meters=("h1",), method="mid6of10"), frame(rows), event)
    # quarters 10/6, 10/6, 1, 1 kWh -> 40/6, 40/6, 4, 4 kW; caps minus 1 kW
    assert commitment.baseline_kw.tolist() == pytest.approx([40 / 6, 40 / 6, 4.0, 4.0])
    caps = [40 / 6 - 1, 40 / 6 - 1, 3.0, 3.0]
    assert commitment.import_max_kw.tolist() == pytest.approx(caps)
    # 0.25 h x sum of caps = 32/6 - 1 kWh = the hour's CBL minus the committed 1 kW x 1 h
    assert 0.25 * sum(caps) == pytest.approx(32 / 6 - 1.0)
    # no deliveries in the usage: the expected use is the meter CBL; h1 gets 0.5 of S
    assert commitment.use_kw.tolist() == pytest.approx([40 / 6, 40 / 6, 4.0, 4.0])
    assert commitment.supply_share == 0.5
    stored = commitment_json(commitment)
    assert (stored["measured_on"], stored["supply_share"]) == ("participants_meters", 0.5)
    parsed = parse_commitment({"event_id": "ev-cap", "detail": {"commitment": stored},
                               "start_us": int(event.start.value // 1000),
                               "end_us": int(event.end.value // 1000)})
    assert parsed.import_max_kw.tolist() == pytest.approx(caps)
    assert not parsed.on_site_meter
    assert parsed.use_kw.tolist() == pytest.approx([40 / 6, 40 / 6, 4.0, 4.0])
    assert parsed.supply_share == 0.5


def test_expected_use_is_the_cbl_of_the_consumption_behind_the_meter() -> None:
    """With the community's deliveries in the usage (``community_supply_kwh``: what reached
    the meter from behind on the reference days), the participants' expected use is the same
    method over their consumption (reading + delivery), while the cap stays on the meter."""
    rows = []
    for k, values in HOUR_CASE.items():
        rows += quarter_rows(WEEKDAYS[k - 1], "14:00", values)
    usage = frame(rows)
    # 1 kWh delivered behind the meter in every quarter of the two light days k = 7, 8
    light = {WEEKDAYS[6], WEEKDAYS[7]}
    local = usage["timestamp"].dt.tz_convert(TZ).dt.date
    usage["community_supply_kwh"] = [1.0 if d in light else float("nan") for d in local]
    event = DrEvent("ev-use", "kukmin_dr", ts("2026-07-20T14:00"), ts("2026-07-20T15:00"),
                    ts("2026-07-20T13:00"), committed_kw=1.0, source="openadr")
    commitment = commitment_for(_site(meters=("h1",), method="mid6of10"), usage, event)
    # the meter CBL and caps are those of the readings alone (as above)
    assert commitment.baseline_kw.tolist() == pytest.approx([40 / 6, 40 / 6, 4.0, 4.0])
    assert commitment.import_max_kw.tolist() == pytest.approx(
        [40 / 6 - 1, 40 / 6 - 1, 3.0, 3.0])
    # consumption per hour: k = 1..6 as read (6, 6, 6, 6, 6.5, 6.5), k = 7, 8 3 + 4 = 7,
    # k = 9, 10 4: sorted 4, 4, 6, 6, 6, 6, 6.5, 6.5, 7, 7 -> Mid(6/10) drops 4, 4 and 7, 7:
    # similar days k = 1..6, (6+6+6+6+6.5+6.5)/6 = 37/6 kWh. Their quarters:
    # 14:00 (3+3+1+1+1+1)/6 = 10/6, 14:15 (1+1+3+3+1+1)/6 = 10/6,
    # 14:30 (1+1+1+1+3.5+3.5)/6 = 11/6, 14:45 6/6 = 1 kWh -> x4: 40/6, 40/6, 44/6, 4 kW
    assert commitment.use_kw.tolist() == pytest.approx([40 / 6, 40 / 6, 44 / 6, 4.0])
    assert 0.25 * commitment.use_kw.sum() == pytest.approx(37 / 6)


# ---- 2. an event starting inside an hour: 3.2.4 ----------------------------------------------

# Max(4/5) on the 5 most recent 평일 (k = 1..5), quarter readings of h1:
PART_CASE = {
    #       14:00 14:15 14:30 14:45 15:00 15:15 15:30 15:45
    1: [0.0, 0.0, 5.0, 1.0, 2.0, 1.0, 10.0, 10.0],
    2: [0.0, 0.0, 1.0, 5.0, 2.0, 2.0, 0.0, 0.0],
    3: [10.0, 10.0, 2.0, 2.0, 2.0, 3.0, 0.0, 0.0],
    4: [0.0, 0.0, 3.0, 2.0, 2.0, 4.0, 0.0, 0.0],
    5: [0.0, 0.0, 4.0, 2.0, 2.0, 5.0, 0.0, 0.0],
}


def test_part_hours_are_ranked_on_their_own_quarter_hours() -> None:
    rows = []
    for k, values in PART_CASE.items():
        rows += quarter_rows(WEEKDAYS[k - 1], "14:00", values)
    usage = frame(rows)
    result = compute_cbl(usage, ts("2026-07-20T14:30"), ts("2026-07-20T15:30"),
                         METHODS["max4of5"])
    # two periods: 14:30-15:00 of trading hour 14 and 15:00-15:30 of trading hour 15
    assert list(result.periods.starts) == [ts("2026-07-20T14:30"), ts("2026-07-20T15:00")]
    assert list(result.periods.ends) == [ts("2026-07-20T15:00"), ts("2026-07-20T15:30")]
    assert result.periods.partial.tolist() == [True, True]
    base = result.per_meter["h1"]
    # 14:30-15:00 on its two quarters: 5+1, 1+5, 2+2, 3+2, 4+2 = 6, 6, 4, 5, 6
    #   Max(4/5) drops the lowest (k = 3, 4): (6 + 6 + 5 + 6) / 4 = 23/4 = 5.75
    #   (ranking the whole hour 14 would keep k = 3, whose 14:00-14:30 is 20 kWh:
    #    (6 + 6 + 4 + 6) / 4 = 5.5; ranking each quarter alone: 14:30 (5+2+3+4)/4 = 3.5,
    #    14:45 (5+2+2+2)/4 = 2.75 -> 6.25. Neither is the rule's.)
    # 15:00-15:30: 2+1, 2+2, 2+3, 2+4, 2+5 = 3, 4, 5, 6, 7 -> drop 3 -> 22/4 = 5.5
    #   (15:30-15:45 are outside the event and play no part)
    assert base.period_kwh.tolist() == pytest.approx([5.75, 5.5])
    assert base.total_kwh == pytest.approx(11.25)
    # per 15 minutes, the similar days' quarters: 14:30 (5+1+3+4)/4 = 3.25, 14:45
    # (1+5+2+2)/4 = 2.5; 15:00 (2+2+2+2)/4 = 2, 15:15 (2+3+4+5)/4 = 3.5
    assert base.kwh.tolist() == pytest.approx([3.25, 2.5, 2.0, 3.5])


def test_part_hour_settlement_per_trading_hour() -> None:
    rows = []
    for k, values in PART_CASE.items():
        rows += quarter_rows(WEEKDAYS[k - 1], "14:00", values)
    rows += quarter_rows(date(2026, 7, 20), "14:30", [1.0, 1.0, 2.0, 2.0])
    event = DrEvent("ev-part", "kukmin_dr", ts("2026-07-20T14:30"), ts("2026-07-20T15:30"),
                    ts("2026-07-20T13:30"), committed_kw=2.0)
    result = settle_event(frame(rows), event, METHODS["max4of5"], rbp_krw_per_kw=36_000,
                          mrt_h=60, mgp_krw_per_kwh=120, response_time_min=30)
    # 별표26 Ⅰ.2.나 per trading hour: hour 14 covers 14:30-15:00, hour 15 15:00-15:30
    first, second = result.hours
    assert (first.hour_start, first.start, first.end) == (
        ts("2026-07-20T14:00"), ts("2026-07-20T14:30"), ts("2026-07-20T15:00"))
    assert (second.hour_start, second.start, second.end) == (
        ts("2026-07-20T15:00"), ts("2026-07-20T15:00"), ts("2026-07-20T15:30"))
    # CBL 5.75 - usage 2 = 3.75; CBL 5.5 - usage 4 = 1.5 -> 5.25 kWh
    assert [h.cbl_kwh for h in result.hours] == pytest.approx([5.75, 5.5])
    assert [h.reduction_kwh for h in result.hours] == pytest.approx([3.75, 1.5])
    # 5.25 x (36,000/60 + 120) x RTWF 1.2 = 5.25 x 720 x 1.2 = 4,536 KRW
    assert result.compensation_krw == 4536


# ---- 3. hourly usage ----------------------------------------------------------------------


def test_hourly_usage_settles_whole_hours() -> None:
    rows = []
    for k, day in enumerate(WEEKDAYS, start=1):
        rows += [(ts(f"{day}T14:00"), "a", float(k)), (ts(f"{day}T15:00"), "a", 0.5),
                 (ts(f"{day}T14:00"), "b", 2.0), (ts(f"{day}T15:00"), "b", 0.5)]
    rows += [(ts("2026-07-20T14:00"), "a", 1.0), (ts("2026-07-20T14:00"), "b", 1.0)]
    usage = frame(rows)
    event = DrEvent("ev-h", "kukmin_dr", ts("2026-07-20T14:00"), ts("2026-07-20T15:00"),
                    ts("2026-07-20T13:00"), committed_kw=2.0)
    result = settle_event(usage, event, METHODS["mid6of10"], rbp_krw_per_kw=36_000,
                          mrt_h=60, mgp_krw_per_kwh=120, response_time_min=30)
    # aggregate k + 2 = 3..12 -> drop 3, 4 and 11, 12 -> (5+6+7+8+9+10)/6 = 7.5
    # usage 1 + 1 = 2 -> reduction 5.5; 5.5 x 720 x 1.2 = 4,752 KRW
    (hour,) = result.hours
    assert hour.cbl_kwh == pytest.approx(7.5)
    assert hour.reduction_kwh == pytest.approx(5.5)
    assert result.compensation_krw == 4752
    # a part-hour event cannot be settled from hourly readings (3.2.4)
    part = DrEvent("ev-p", "kukmin_dr", ts("2026-07-20T14:30"), ts("2026-07-20T15:30"),
                   ts("2026-07-20T13:00"), committed_kw=2.0)
    with pytest.raises(InputError, match="hourly"):
        settle_event(usage, part, METHODS["mid6of10"], rbp_krw_per_kw=1, mrt_h=1,
                     mgp_krw_per_kwh=1, response_time_min=30)


# ---- 4. the method KPX designated for the month ----------------------------------------------


def _site_doc(by_month: dict[str, str] | None = None, meters: tuple[str, ...] = ("a", "b"),
              method: str = "max4of5") -> dict[str, object]:
    """Households on their own connections (contract general): out of the site's reach."""
    return {
        "site": {"id": "cbl-month", "name": "CBL month", "timezone": TZ, "latitude": 36.5,
                 "longitude": 127.3, "data_dir": "data",
                 "grid": {"contract_power_kw": 100, "import_limit_kw": 100,
                          "export_limit_kw": 50, "tariff_plan": "general_b_high_a_2"}},
        "loads": {"base": {"daily_energy_kwh": 384.0}},
        "meters": [{"id": m, "kind": "household"} for m in meters],
        "households": [{"id": f"h-{m}", "name": m, "meter": m, "asset_share": 0.5}
                       for m in meters],
        "demand_response": {"enabled": True, "cbl_method": method, "max_reduction_kw": 10,
                            "cbl_method_by_month": by_month or {}},
    }


def _site(by_month: dict[str, str] | None = None, meters: tuple[str, ...] = ("a", "b"),
          method: str = "max4of5") -> SiteConfig:
    """The same households in a 종합계약 complex, their meters behind the grid meter."""
    doc = _site_doc(by_month, meters, method)
    composite(doc, doc["households"])  # type: ignore[arg-type]
    config = SiteConfig.model_validate(doc)
    assert check_site(config) == []
    return config


def test_method_of_the_events_month() -> None:
    # 규칙 제12.5.2.1조 ① 2호 가목: designated per month; the site's cbl_method otherwise
    by_month = {"2026-07": "mid6of10", "2026-08": "mid8of10"}
    assert method_for_day(date(2026, 7, 20), "max4of5", by_month).name == "mid6of10"
    assert method_for_day(date(2026, 8, 3), "max4of5", by_month).name == "mid8of10"
    assert method_for_day(date(2026, 9, 1), "max4of5", by_month).name == "max4of5"
    config = _site(by_month)
    july = DrEvent("ev-7", "kukmin_dr", ts("2026-07-20T14:00"), ts("2026-07-20T15:00"),
                   ts("2026-07-20T13:00"), committed_kw=1.0)
    # the month of the local start: 2026-07-01 06:00 KST is 2026-06-30 21:00 UTC
    first = DrEvent("ev-1", "kukmin_dr", ts("2026-07-01T06:00"), ts("2026-07-01T07:00"),
                    ts("2026-07-01T05:00"), committed_kw=1.0)
    assert method_for(config, july).name == "mid6of10"
    assert method_for(config, first).name == "mid6of10"
    assert method_for(_site(), july).name == "max4of5"
    # the commitment is computed and stored with the month's method:
    # hourly usage a = k, b = 2 -> Mid(6/10) of k + 2 = 7.5 kWh; Max(4/5) would give
    # k = 1..5 -> 3..7 -> top 4 (4+5+6+7)/4 = 5.5
    rows = []
    for k, day in enumerate(WEEKDAYS, start=1):
        rows += [(ts(f"{day}T14:00"), "a", float(k)), (ts(f"{day}T15:00"), "a", float(k)),
                 (ts(f"{day}T14:00"), "b", 2.0), (ts(f"{day}T15:00"), "b", 2.0)]
    commitment = commitment_for(config, frame(rows), july)
    assert commitment.cbl.method.name == "mid6of10"
    assert commitment.cbl.aggregate.period_kwh.tolist() == pytest.approx([7.5])
    # hourly readings: the 15-minute baseline is the hour spread evenly, 7.5 kWh/h = 7.5 kW
    # in each quarter; cap 7.5 - 1 = 6.5 kW
    assert commitment.baseline_kw.tolist() == pytest.approx([7.5] * 4)
    assert commitment.import_max_kw.tolist() == pytest.approx([6.5] * 4)
    stored = commitment_json(commitment)
    assert (stored["cbl_method"], stored["interval_min"]) == ("mid6of10", 15)
    plain = commitment_for(_site(), frame(rows), july)
    assert plain.cbl.aggregate.period_kwh.tolist() == pytest.approx([5.5])


def test_commitment_refused_when_the_site_cannot_reach_the_participants() -> None:
    # The same usage and event on the households' own connections (contract general): KPX
    # measures the reduction on their meters, and nothing the site controls reaches them, so
    # no commitment is made (the VEN opts out, an accept is refused). The CBL itself is fine.
    rows = []
    for k, day in enumerate(WEEKDAYS, start=1):
        rows += [(ts(f"{day}T14:00"), "a", float(k)), (ts(f"{day}T14:00"), "b", 2.0)]
    july = DrEvent("ev-7", "kukmin_dr", ts("2026-07-20T14:00"), ts("2026-07-20T15:00"),
                   ts("2026-07-20T13:00"), committed_kw=1.0)
    apart = SiteConfig.model_validate(_site_doc())
    assert check_site(apart) == []  # a valid site: households on their own KEPCO plans
    assert apart.supply_share_behind(["a", "b"]) == 0
    with pytest.raises(InputError, match=r"국민DR is measured on the participants' own meters"):
        commitment_for(apart, frame(rows), july)
    # dwellings behind the grid meter under one general contract (sub-meters, billed
    # through the site) are not delivered to either: only a 종합계약 bills each dwelling on
    # its own meter with the community's supply behind it (SiteConfig.delivers_behind)
    doc = _site_doc()
    doc["site"]["grid"]["meter"] = "grid-meter"  # type: ignore[index]
    doc["meters"] = [{"id": "grid-meter", "kind": "grid"},
                     *({"id": m, "kind": "household", "behind": "grid-meter"}
                       for m in ("a", "b"))]
    doc["households"] = [dict(h, tariff_plan=None) for h in doc["households"]]  # type: ignore
    inside = SiteConfig.model_validate(doc)
    assert check_site(inside) == []
    with pytest.raises(InputError, match=r"nothing this site controls reaches them"):
        commitment_for(inside, frame(rows), july)


def test_month_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        _site({"2026-7": "mid6of10"})
    with pytest.raises(ValueError, match="mid6of10"):  # lists the allowed methods
        _site({"2026-07": "mid5of9"})


# ---- 5. the interval of a usage file ------------------------------------------------------


def _csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("timestamp,meter_id,import_kwh\n"
                    + "".join(f"{a},{b},{c}\n" for a, b, c in rows), encoding="utf-8")
    return path


def test_interval_is_read_from_the_timestamps(tmp_path: Path) -> None:
    quarter = _csv(tmp_path / "q.csv", [(f"2026-07-16T14:{m:02d}:00+09:00", "m1", "0.25")
                                        for m in (0, 15, 30, 45)])
    assert read_usage(quarter).attrs["interval"] == "15min"
    hourly = _csv(tmp_path / "h.csv", [(f"2026-07-16T{h:02d}:00:00+09:00", m, "1")
                                       for h in (13, 14, 15) for m in ("m1", "m2")])
    assert read_usage(hourly).attrs["interval"] == "1h"
    # one reading a day (an extract of the event hour) shows no spacing: hourly unless
    # 15 minutes are asked for
    daily = _csv(tmp_path / "d.csv", [(f"2026-07-{d}T14:00:00+09:00", "m1", "1")
                                      for d in (14, 15, 16)])
    assert read_usage(daily).attrs["interval"] == "1h"
    assert read_usage(daily, interval="15min").attrs["interval"] == "15min"
    # 15-minute readings may be used as hourly ones; hourly ones never as 15-minute ones
    assert read_usage(quarter, interval="1h").attrs["interval"] == "15min"
    with pytest.raises(InputError, match=r"h\.csv:4: the readings are hourly"):
        read_usage(hourly, interval="15min")


def test_mixed_and_other_intervals_are_refused_naming_the_line(tmp_path: Path) -> None:
    # m1 reads every 15 minutes, m2 every hour: line 7 is m2's second reading
    mixed = _csv(tmp_path / "mixed.csv", [
        ("2026-07-16T14:00:00+09:00", "m1", "0.25"),  # line 2
        ("2026-07-16T14:15:00+09:00", "m1", "0.25"),  # line 3: the first inside an hour
        ("2026-07-16T14:30:00+09:00", "m1", "0.25"),
        ("2026-07-16T14:45:00+09:00", "m1", "0.25"),
        ("2026-07-16T14:00:00+09:00", "m2", "1.0"),  # line 6
        ("2026-07-16T15:00:00+09:00", "m2", "1.0"),  # line 7
    ])
    with pytest.raises(InputError) as err:
        read_usage(mixed)
    message = str(err.value)
    assert message.startswith(f"{mixed}:7: meter 'm2' has hourly readings")
    assert f"({mixed}:3)" in message and "mixed intervals" in message
    # one meter switching from hourly to 15-minute readings: three on the hour, an hour apart
    switch = _csv(tmp_path / "switch.csv", [
        ("2026-07-15T10:00:00+09:00", "m1", "1"),  # line 2
        ("2026-07-15T11:00:00+09:00", "m1", "1"),
        ("2026-07-15T12:00:00+09:00", "m1", "1"),
        ("2026-07-16T10:00:00+09:00", "m1", "0.25"),
        ("2026-07-16T10:15:00+09:00", "m1", "0.25"),
    ])
    with pytest.raises(InputError, match=rf"^{switch}:2: meter 'm1' has hourly readings"):
        read_usage(switch)
    # 30-minute readings are neither
    half = _csv(tmp_path / "half.csv", [(f"2026-07-16T14:{m:02d}:00+09:00", "m1", "0.5")
                                        for m in (0, 30)])
    with pytest.raises(InputError, match=rf"^{half}:3: .*30 minutes apart"):
        read_usage(half)
    # nor are readings two hours apart
    two = _csv(tmp_path / "two.csv", [(f"2026-07-16T{h}:00:00+09:00", "m1", "2")
                                      for h in (12, 14, 16)])
    with pytest.raises(InputError, match=rf"^{two}:3: .*2 hours apart"):
        read_usage(two)
