"""Which submission counts for each round (규칙 제14.4.1조 ② 3호, 4호).

3호: per round, the value submitted closest to (before) the deadline counts: the round's own
file. 4호: a round with no submission takes "이전 제출 값 중 가장 최근의 제출값", the most
recent earlier submission, whatever day it was made for. Delivery D = 2026-07-21: round 1
closes 2026-07-20 10:00, round 2 2026-07-20 17:00 (Asia/Seoul).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from cems.errors import InputError
from cems.markets.bids import make_bid, valid_bids, write_bid_files
from cems.markets.portfolio import Portfolio, Resource

SEOUL = ZoneInfo("Asia/Seoul")
TZ = "Asia/Seoul"
D = date(2026, 7, 21)
PORTFOLIO = Portfolio((Resource("pv-1", "s", "pv", 45.0, "o", 1.0),
                       Resource("ess-1", "s", "ess", 20.0, "o", 0.0)))


def submit(folder: Path, day: date, round_no: int, noon_kwh: float,
           at: datetime | None) -> Path:
    """A bid whose only non-zero value is pv-1 at 12:00; ``at`` None: no submitted_at."""
    values = np.zeros((2, 24))
    values[0, 12] = noon_kwh
    json_path, _ = write_bid_files(make_bid(PORTFOLIO, day, round_no, TZ, values), PORTFOLIO,
                                   folder, submitted_at=at or datetime(2000, 1, 1, tzinfo=SEOUL))
    if at is None:  # an older file: no submitted_at, it stands at its deadline
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        del doc["submitted_at"]
        json_path.write_text(json.dumps(doc), encoding="utf-8")
    return json_path


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 7, day, hour, minute, tzinfo=SEOUL)


def noon(bids) -> tuple[float, float]:
    return (bids.rounds[0].forecast_kwh[0, 12], bids.rounds[1].forecast_kwh[0, 12])


def test_own_files_count(tmp_path: Path) -> None:
    submit(tmp_path, D, 1, 10, at(20, 9, 30))
    submit(tmp_path, D, 2, 20, at(20, 16, 30))
    bids = valid_bids(tmp_path, PORTFOLIO, D, TZ)
    assert noon(bids) == (10, 20) and bids.notes == ()
    assert [p.name for p in bids.sources] == ["bid_2026-07-21_r1.json", "bid_2026-07-21_r2.json"]
    assert [(b.delivery, b.round_no) for b in bids.rounds] == [(D, 1), (D, 2)]


def test_missing_round_2_takes_round_1(tmp_path: Path) -> None:
    submit(tmp_path, D, 1, 10, at(20, 9, 30))
    bids = valid_bids(tmp_path, PORTFOLIO, D, TZ)
    assert noon(bids) == (10, 10)
    assert bids.notes == ("no round 2 bid (bid_2026-07-21_r2.json); the latest earlier "
                          "submission counts: round 1 for 2026-07-21 (bid_2026-07-21_r1.json, "
                          "submitted by 2026-07-20T09:30:00+09:00) (규칙 제14.4.1조 ② 4호)",)


def test_missing_round_1_takes_the_days_round_2_if_it_came_before_10(tmp_path: Path) -> None:
    # D's only file was submitted at 09:00 on D-1: the latest submission before 10:00
    submit(tmp_path, date(2026, 7, 20), 2, 5, at(19, 16, 30))  # D-1's round 2
    submit(tmp_path, D, 2, 20, at(20, 9, 0))
    bids = valid_bids(tmp_path, PORTFOLIO, D, TZ)
    assert noon(bids) == (20, 20)
    assert "round 2 for 2026-07-21" in bids.notes[0]


def test_missing_round_1_takes_the_previous_days_latest(tmp_path: Path) -> None:
    # D's round 2 came at 16:00, after round 1 closed: round 1 takes the latest submission
    # before 2026-07-20 10:00, D-1's round 2 (submitted 2026-07-19 16:30), not its round 1
    submit(tmp_path, date(2026, 7, 20), 1, 3, at(19, 9, 30))
    submit(tmp_path, date(2026, 7, 20), 2, 4, at(19, 16, 30))
    submit(tmp_path, D, 2, 20, at(20, 16, 0))
    bids = valid_bids(tmp_path, PORTFOLIO, D, TZ)
    assert noon(bids) == (4, 20)
    assert bids.rounds[0].delivery == D and bids.rounds[0].round_no == 1
    assert bids.sources[0].name == "bid_2026-07-20_r2.json"
    # a file without submitted_at stands at its own deadline: D-4's round 1 closes on
    # 2026-07-16 10:00, before the D-1 files, so it does not win
    submit(tmp_path, date(2026, 7, 17), 1, 9, None)
    assert noon(valid_bids(tmp_path, PORTFOLIO, D, TZ)) == (4, 20)


def test_late_file_stands_at_its_deadline(tmp_path: Path) -> None:
    # D-1's round 2 written late (2026-07-19 18:00) still counts as made at 2026-07-19 17:00,
    # before round 1 of D closes; with no other file it is D's round 1 and round 2
    submit(tmp_path, date(2026, 7, 20), 2, 7, at(19, 18, 0))
    bids = valid_bids(tmp_path, PORTFOLIO, D, TZ)
    assert noon(bids) == (7, 7)
    assert "submitted by 2026-07-19T17:00:00+09:00" in bids.notes[0]


def test_nothing_before_the_deadline_is_an_error(tmp_path: Path) -> None:
    submit(tmp_path, D, 2, 20, at(20, 16, 0))
    with pytest.raises(InputError, match=r"bid_2026-07-21_r1.json: bid file not found, and no "
                                         r"earlier submission"):
        valid_bids(tmp_path, PORTFOLIO, D, TZ)


def test_a_fallback_for_another_portfolio_is_an_error(tmp_path: Path) -> None:
    submit(tmp_path, date(2026, 7, 20), 2, 4, at(19, 16, 30))
    bigger = Portfolio((*PORTFOLIO.resources, Resource("pv-2", "s", "pv", 30.0, "o", 1.0)))
    with pytest.raises(InputError, match=r"round 1 for 2026-07-21 falls back on "
                                         r"bid_2026-07-20_r2.json .* no forecast for resource "
                                         r"'pv-2'"):
        valid_bids(tmp_path, bigger, D, TZ)
