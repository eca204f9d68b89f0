"""CBL methods of KPX 별표28 against hand-computed baselines.

Calendar used (2026): 2026-07-20 is a Monday; 2026-07-17 (Fri) is 제헌절, a public holiday
from 2026. The 평일 before 07-20, most recent first, are
07-16, 07-15, 07-14, 07-13, 07-10, 07-09, 07-08, 07-07, 07-06, 07-03, 07-02, 07-01, 06-30 ...

The CBL is per trading hour (규칙 제12.5.2.1조 ②): ``period_kwh`` holds one figure per hour
of the event, ``kwh`` the same split over the hour's quarter hours. More on the trading-hour
ranking, part hours (3.2.4), the month's method and the usage interval in
``test_cbl_rule.py`` and ``test_cbl_cli.py``.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cems.errors import InputError
from cems.markets.calendar import DrCalendar
from cems.markets.cbl import METHODS, compute_cbl, drop_counts, similar_day_mean

TZ = "Asia/Seoul"
EVENT_DAY = "2026-07-20"
WEEKDAYS = [date(2026, 7, d) for d in (16, 15, 14, 13, 10, 9, 8, 7, 6, 3, 2, 1)] + [
    date(2026, 6, 30)
]


def usage_frame(values: dict[tuple[str, date], float | None], clock: str = "14:00",
                quarters: bool = True) -> pd.DataFrame:
    """Usage rows for one hour per (meter, day): four quarters of value/4, or one hourly row.

    ``None`` writes no row at all for that meter and day (a missing reading).
    """
    rows = []
    for (meter, day), value in values.items():
        if value is None:
            continue
        start = pd.Timestamp(f"{day.isoformat()}T{clock}", tz=TZ)
        if quarters:
            for q in range(4):
                rows.append((start + pd.Timedelta(minutes=15 * q), meter, value / 4))
        else:
            rows.append((start, meter, value))
    frame = pd.DataFrame(rows, columns=["timestamp", "meter_id", "import_kwh"])
    frame["timestamp"] = pd.DatetimeIndex(frame["timestamp"]).tz_convert("UTC")
    return frame


def event(start: str = "14:00", end: str = "15:00", day: str = EVENT_DAY):
    return pd.Timestamp(f"{day}T{start}", tz=TZ), pd.Timestamp(f"{day}T{end}", tz=TZ)


def test_drop_counts_follow_3_2_1_lowest_first() -> None:
    mid610 = METHODS["mid6of10"]
    # 10 days: drop 2 low + 2 high; 9 days: 3 to drop -> 2 low, 1 high; 7 days: 1 low
    assert drop_counts(mid610, 10) == (2, 2)
    assert drop_counts(mid610, 9) == (2, 1)
    assert drop_counts(mid610, 8) == (1, 1)
    assert drop_counts(mid610, 7) == (1, 0)
    assert drop_counts(mid610, 6) == (0, 0)
    # Max(4/5): keep the top min(4, n)
    assert drop_counts(METHODS["max4of5"], 5) == (1, 0)
    assert drop_counts(METHODS["max4of5"], 3) == (0, 0)


def test_max4of5_excludes_past_event_day_and_holiday() -> None:
    values = {
        ("h1", date(2026, 7, 17)): 50.0,  # 제헌절 (holiday): never a reference day
        ("h1", date(2026, 7, 18)): 40.0,  # Saturday
        ("h1", date(2026, 7, 19)): 40.0,  # Sunday
        ("h1", date(2026, 7, 16)): 1.0,
        ("h1", date(2026, 7, 15)): 2.0,
        ("h1", date(2026, 7, 14)): 9.0,  # a past event day
        ("h1", date(2026, 7, 13)): 3.0,
        ("h1", date(2026, 7, 10)): 4.0,
        ("h1", date(2026, 7, 9)): 5.0,
        ("h1", date(2026, 7, 8)): 6.0,
    }
    usage = usage_frame(values)
    start, end = event()
    result = compute_cbl(usage, start, end, METHODS["max4of5"], event_days={date(2026, 7, 14)})
    # reference days: 07-16, 07-15, 07-13, 07-10, 07-09 -> 1, 2, 3, 4, 5 kWh in the hour
    # top 4: 2 + 3 + 4 + 5 = 14 -> 14 / 4 = 3.5 kWh
    base = result.per_meter["h1"]
    assert base.reference_days == (date(2026, 7, 16), date(2026, 7, 15), date(2026, 7, 13),
                                   date(2026, 7, 10), date(2026, 7, 9))
    assert base.period_kwh.tolist() == pytest.approx([3.5])
    # without the event-day exclusion 07-14 (9) is a reference day instead of 07-09:
    # days 1, 2, 9, 3, 4 -> top 4: 9 + 4 + 3 + 2 = 18 -> 4.5
    plain = compute_cbl(usage, start, end, METHODS["max4of5"])
    assert plain.per_meter["h1"].period_kwh.tolist() == pytest.approx([4.5])
    # per 15 minutes: each quarter of the similar days is value/4 -> 3.5 / 4 = 0.875
    assert base.kwh.tolist() == pytest.approx([0.875] * 4)
    assert result.interval == result.data_interval == "15min"


def test_mid6of10_ranks_each_trading_hour_separately() -> None:
    # hourly readings: 14:00 on the k-th most recent weekday = k kWh; 15:00 = (11 - k) * 2
    rows = []
    for k, day in enumerate(WEEKDAYS[:10], start=1):
        for clock, kwh in (("14:00", float(k)), ("15:00", float((11 - k) * 2))):
            rows.append((pd.Timestamp(f"{day}T{clock}", tz=TZ), "h1", kwh))
    usage = pd.DataFrame(rows, columns=["timestamp", "meter_id", "import_kwh"])
    start, end = event("14:00", "16:00")  # a 2-hour (표준DR-like) window
    result = compute_cbl(usage, start, end, METHODS["mid6of10"])
    # 별표28 1.2, per trading hour (거래시간별):
    # 14-15: 1..10, drop 1, 2 and 9, 10 -> (3+4+5+6+7+8)/6 = 33/6 = 5.5
    # 15-16: 20, 18, ..., 2, drop 2, 4 and 18, 20 -> (6+8+10+12+14+16)/6 = 66/6 = 11
    base = result.per_meter["h1"]
    assert base.period_kwh.tolist() == pytest.approx([5.5, 11.0])
    assert result.data_interval == "1h"
    # hourly readings give no shape inside the hour: each quarter is a quarter of the hour
    assert base.kwh.tolist() == pytest.approx([5.5 / 4] * 4 + [11.0 / 4] * 4)


def test_mid6of10_missing_kukmin_reading_counts_as_zero_and_aggregate_sums_first() -> None:
    values: dict[tuple[str, date], float | None] = {}
    for k, day in enumerate(WEEKDAYS[:10], start=1):
        values[("h1", day)] = float(k)
        values[("h2", day)] = float(11 - k)
    values[("h1", WEEKDAYS[4])] = None  # h1 has no reading on 07-10 (k = 5)
    usage = usage_frame(values, quarters=False)
    start, end = event()
    result = compute_cbl(usage, start, end, METHODS["mid6of10"], missing="zero")
    # h1: 1, 2, 3, 4, 0, 6, 7, 8, 9, 10 -> sorted 0,1,2,3,4,6,7,8,9,10
    #     drop 0, 1 and 9, 10 -> (2+3+4+6+7+8)/6 = 30/6 = 5.0
    assert result.per_meter["h1"].period_kwh.tolist() == pytest.approx([5.0])
    assert result.per_meter["h1"].zero_filled == 1  # one hourly reading counted as 0
    # h2: 10..1 -> drop 1, 2 and 9, 10 -> 33/6 = 5.5
    assert result.per_meter["h2"].period_kwh.tolist() == pytest.approx([5.5])
    # aggregate (국민DR, 제12.5.2.1조 ① 2호 나목: sum first): 11 every day except 07-10 = 0 + 6
    # sorted 6, 11 x 9 -> drop 6, 11 and 11, 11 -> six 11s -> 11.0 (not 5.0 + 5.5 = 10.5)
    assert result.aggregate_rule == "sum_then_baseline"
    assert result.aggregate.period_kwh.tolist() == pytest.approx([11.0])


def test_exclude_day_policy_skips_day_with_missing_data_within_look_back() -> None:
    values: dict[tuple[str, date], float | None] = {}
    for k, day in enumerate(WEEKDAYS[:11], start=1):
        values[("h1", day)] = float(k)
    values[("h1", WEEKDAYS[4])] = None  # 07-10 missing -> not a reference day (3.4.2)
    usage = usage_frame(values, quarters=False)
    start, end = event()
    result = compute_cbl(usage, start, end, METHODS["mid6of10"], missing="exclude_day")
    # days k = 1..4, 6..11 -> 1,2,3,4,6,7,8,9,10,11; drop 1, 2 and 10, 11
    # -> (3+4+6+7+8+9)/6 = 37/6
    assert result.per_meter["h1"].period_kwh.tolist() == pytest.approx([37 / 6])
    assert date(2026, 7, 10) not in result.per_meter["h1"].reference_days
    assert result.per_meter["h1"].reference_days[-1] == date(2026, 7, 2)


def test_max4of5_look_back_limit_of_10_weekdays() -> None:
    events = set(WEEKDAYS[:7])  # 07-16 .. 07-08 were event days
    values = {("h1", d): 1000.0 for d in events}
    values.update({("h1", date(2026, 7, 7)): 8.0, ("h1", date(2026, 7, 6)): 9.0,
                   ("h1", date(2026, 7, 3)): 10.0,
                   ("h1", date(2026, 7, 2)): 100.0})  # 11th weekday back: beyond the limit
    usage = usage_frame(values, quarters=False)
    start, end = event()
    result = compute_cbl(usage, start, end, METHODS["max4of5"], event_days=events)
    # only 07-07, 07-06, 07-03 are left within 10 weekdays -> top min(4, 3): (8+9+10)/3 = 9
    assert result.per_meter["h1"].reference_days == (date(2026, 7, 7), date(2026, 7, 6),
                                                     date(2026, 7, 3))
    assert result.per_meter["h1"].period_kwh.tolist() == pytest.approx([9.0])


def test_mid4of6_with_five_days_drops_the_lowest_first() -> None:
    events = set(WEEKDAYS[:7])  # 07-16 .. 07-08
    values = {("h1", d): 1000.0 for d in events}
    values.update({("h1", date(2026, 7, 7)): 10.0, ("h1", date(2026, 7, 6)): 20.0,
                   ("h1", date(2026, 7, 3)): 30.0, ("h1", date(2026, 7, 2)): 40.0,
                   ("h1", date(2026, 7, 1)): 50.0,
                   ("h1", date(2026, 6, 30)): 999.0})  # 13th weekday back: beyond 12
    usage = usage_frame(values, quarters=False)
    start, end = event()
    result = compute_cbl(usage, start, end, METHODS["mid4of6"], event_days=events)
    # 5 days 10, 20, 30, 40, 50; one to drop -> the lowest: (20+30+40+50)/4 = 35
    assert result.per_meter["h1"].period_kwh.tolist() == pytest.approx([35.0])


def test_mid4of6_and_mid8of10_basic() -> None:
    values = {("h1", d): float(k * k) for k, d in enumerate(WEEKDAYS[:10], start=1)}
    usage = usage_frame(values, quarters=False)
    start, end = event()
    # Mid(4/6): 1, 4, 9, 16, 25, 36 -> drop 1 and 36 -> (4+9+16+25)/4 = 54/4 = 13.5
    mid46 = compute_cbl(usage, start, end, METHODS["mid4of6"])
    assert mid46.per_meter["h1"].period_kwh.tolist() == pytest.approx([13.5])
    # Mid(8/10): 1 .. 100 -> drop 1 and 100 -> (4+9+16+25+36+49+64+81)/8 = 284/8 = 35.5
    mid810 = compute_cbl(usage, start, end, METHODS["mid8of10"])
    assert mid810.per_meter["h1"].period_kwh.tolist() == pytest.approx([35.5])


def test_hmid4of6_uses_saturdays_sundays_and_holidays() -> None:
    values = {
        ("h1", date(2026, 7, 19)): 4.0,  # Sunday
        ("h1", date(2026, 7, 18)): 8.0,  # Saturday
        ("h1", date(2026, 7, 17)): 6.0,  # 제헌절 (Friday holiday)
        ("h1", date(2026, 7, 12)): 2.0,
        ("h1", date(2026, 7, 11)): 10.0,
        ("h1", date(2026, 7, 5)): 12.0,
        ("h1", date(2026, 7, 24)): 100.0,  # a weekday: ignored
        ("h1", date(2026, 7, 4)): 500.0,  # 7th such day back: not needed
    }
    usage = usage_frame(values, quarters=False)
    start, end = event(day="2026-07-25")  # a Saturday (플러스DR increase day)
    result = compute_cbl(usage, start, end, METHODS["hmid4of6"], missing="exclude_day")
    # 4, 8, 6, 2, 10, 12 -> drop 2 and 12 -> (4+6+8+10)/4 = 7
    assert result.per_meter["h1"].period_kwh.tolist() == pytest.approx([7.0])


def test_temporary_holiday_is_a_holiday_unless_asked_otherwise() -> None:
    # 2024-10-04 (Fri); 10-03 개천절; 10-01 was a designated 임시공휴일 (국군의 날), a 공휴일
    # under 「관공서의 공휴일에 관한 규정」 제2조 11호, so not a KPX 평일 (규칙 제12.4.3.1조 ①)
    values = {("h1", date(2024, 10, 2)): 1.0, ("h1", date(2024, 10, 1)): 100.0,
              ("h1", date(2024, 9, 30)): 2.0, ("h1", date(2024, 9, 27)): 3.0,
              ("h1", date(2024, 9, 26)): 4.0, ("h1", date(2024, 9, 25)): 5.0}
    usage = usage_frame(values, quarters=False)
    start, end = event(day="2024-10-04")
    # default: a holiday -> 10-02, 09-30, 09-27, 09-26, 09-25 = 1, 2, 3, 4, 5
    # top 4 = (2+3+4+5)/4 = 14/4 = 3.5
    default = compute_cbl(usage, start, end, METHODS["max4of5"])
    assert default.per_meter["h1"].period_kwh.tolist() == pytest.approx([3.5])
    assert date(2024, 10, 1) not in default.aggregate.reference_days
    # treated as a weekday (KEPCO's reading): 1, 100, 2, 3, 4 -> top 4 = 109/4 = 27.25
    weekday = compute_cbl(usage, start, end, METHODS["max4of5"],
                          calendar=DrCalendar(count_temporary_holidays=False))
    assert weekday.per_meter["h1"].period_kwh.tolist() == pytest.approx([27.25])


def test_usage_not_reaching_back_is_an_error() -> None:
    values = {("h1", d): 1.0 for d in WEEKDAYS[:3]}  # only 3 of 5 reference days present
    usage = usage_frame(values, quarters=False)
    start, end = event()
    with pytest.raises(InputError, match="no reading at all on reference day"):
        compute_cbl(usage, start, end, METHODS["max4of5"])


def test_part_hour_event_needs_15_minute_readings() -> None:
    # 14:15-15:15 covers 14:15-15:00 of one trading hour and 15:00-15:15 of the next:
    # 별표28 3.2.4 evaluates both parts on their 15-minute readings
    start, end = event("14:15", "15:15")
    hourly = usage_frame({("h1", d): 1.0 for d in WEEKDAYS[:5]}, quarters=False)
    with pytest.raises(InputError, match=r"3\.2\.4.*this usage is hourly"):
        compute_cbl(hourly, start, end, METHODS["max4of5"])
    # 15-minute readings used as hourly sums cannot either
    quarters = usage_frame({("h1", d): 1.0 for d in WEEKDAYS[:5]})
    with pytest.raises(InputError, match=r"3\.2\.4.*used hourly"):
        compute_cbl(quarters, start, end, METHODS["max4of5"], interval="1h")


def test_hourly_readings_cannot_be_used_at_15_minutes() -> None:
    values = {("h1", d): 1.0 for d in WEEKDAYS[:5]}
    usage = pd.concat([usage_frame(values, quarters=False),
                       usage_frame(values, clock="15:00", quarters=False)])  # 14:00 and 15:00
    start, end = event()
    with pytest.raises(InputError, match=r"readings are hourly.*cannot be used at 15 minutes"):
        compute_cbl(usage, start, end, METHODS["max4of5"], interval="15min")


@given(st.data(), st.sampled_from(sorted(METHODS)))
def test_similar_day_mean_is_within_the_kept_days(data: st.DataObject, name: str) -> None:
    method = METHODS[name]
    # at most the nominal number of reference days reaches the averaging step
    values = data.draw(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False),
                                min_size=1, max_size=method.reference_days))
    result = similar_day_mean(np.array(values)[:, None], method)[0]
    low, high = drop_counts(method, len(values))
    kept = sorted(values)[low: len(values) - high]
    assert len(kept) == min(len(values), method.similar_days)
    assert min(kept) - 1e-9 <= result <= max(kept) + 1e-9
