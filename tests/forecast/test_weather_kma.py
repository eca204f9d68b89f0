"""Weather inputs: the KMA 단기예보 adapter on stored answers, the file adapter, and the
errors naming the field.

``tests/data/kma/vilagefcst_sejong_20261206_2300.json`` is a getVilageFcst answer for the
Sejong grid point (66, 103), issue 2026-12-06 23:00, 48 hours x 12 categories plus TMN/TMX,
written in the service's documented JSON layout and value formats; it was not captured from
the live service (no network here)."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from cems.errors import InputError
from cems.forecast.kma import (
    KmaVilageForecast,
    latest_base_time,
    latlon_to_grid,
    parse_pcp_mm,
    parse_response,
)
from cems.forecast.weather import FileWeather, read_weather_file

DATA = Path(__file__).resolve().parents[1] / "data" / "kma"
KST = ZoneInfo("Asia/Seoul")


@pytest.fixture
def answer() -> dict:
    return json.loads((DATA / "vilagefcst_sejong_20261206_2300.json").read_text("utf-8"))


def test_parses_recorded_answer_into_weather_frame(answer: dict) -> None:
    frame = parse_response(answer)
    assert len(frame) == 48
    assert str(frame.index.tz) == "Asia/Seoul"
    assert frame.index[0] == pd.Timestamp("2026-12-07T00:00", tz=KST)
    first = frame.iloc[0]
    assert first["cloud_cover_pct"] == 25.0  # SKY 1 (맑음, 0-5 tenths)
    assert first["temp_air_c"] == -2.0
    assert first["precipitation_mm"] == 0.0  # 강수없음
    noon_next = frame.loc[pd.Timestamp("2026-12-08T03:00", tz=KST)]
    assert noon_next["cloud_cover_pct"] == 95.0  # SKY 4 (흐림)
    assert noon_next["precipitation_mm"] == 3.5
    assert noon_next["precip_probability_pct"] == 60.0
    assert frame.loc[pd.Timestamp("2026-12-08T01:00", tz=KST), "precipitation_mm"] == 0.5


@pytest.mark.parametrize(("text", "mm"), [("강수없음", 0.0), ("1.0mm 미만", 0.5),
                                           ("2.5mm", 2.5), ("30.0~50.0mm", 40.0),
                                           ("50.0mm 이상", 50.0)])
def test_pcp_texts(text: str, mm: float) -> None:
    assert parse_pcp_mm(text) == mm


def test_failed_call_names_the_result_code() -> None:
    data = json.loads((DATA / "vilagefcst_no_data.json").read_text("utf-8"))
    with pytest.raises(InputError, match=r"response.header.resultCode is '03' \(NO_DATA\)"):
        parse_response(data)


def test_malformed_answers_name_the_field(answer: dict) -> None:
    broken = copy.deepcopy(answer)
    del broken["response"]["body"]["items"]
    with pytest.raises(InputError, match=r"field response\.body\.items\.item is missing"):
        parse_response(broken)
    broken = copy.deepcopy(answer)
    broken["response"]["body"]["items"]["item"][5]["fcstValue"] = "x"
    category = broken["response"]["body"]["items"]["item"][5]["category"]
    with pytest.raises(InputError, match=rf"item\[5\].fcstValue: 'x' is not a valid {category}"):
        parse_response(broken)
    broken = copy.deepcopy(answer)
    del broken["response"]["body"]["items"]["item"][0]["fcstTime"]
    with pytest.raises(InputError, match=r"item\[0\].fcstTime is missing"):
        parse_response(broken)
    broken = copy.deepcopy(answer)
    sky = [i for i in broken["response"]["body"]["items"]["item"] if i["category"] == "SKY"]
    sky[3]["fcstValue"] = "2"  # retired code
    with pytest.raises(InputError, match="not a valid SKY value"):
        parse_response(broken)


def test_grid_of_known_points() -> None:
    # KMA's grid table: 서울특별시 종로구 (60, 127); 세종특별자치시 (66, 103)
    assert latlon_to_grid(37.5730, 126.9794) == (60, 127)
    assert latlon_to_grid(36.4800, 127.2890) == (66, 103)


def test_issue_times_and_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert latest_base_time(datetime(2026, 12, 7, 9, 30, tzinfo=KST)).hour == 8
    assert latest_base_time(datetime(2026, 12, 7, 8, 5, tzinfo=KST)).hour == 5
    assert latest_base_time(datetime(2026, 12, 7, 1, 0, tzinfo=KST)) == datetime(
        2026, 12, 6, 23, 0, tzinfo=KST)
    monkeypatch.delenv("KMA_SERVICE_KEY", raising=False)
    provider = KmaVilageForecast(36.515, 127.305)
    with pytest.raises(InputError, match="KMA_SERVICE_KEY"):
        provider.params(datetime(2026, 12, 7, 9, 30, tzinfo=KST))
    monkeypatch.setenv("KMA_SERVICE_KEY", "k")
    params = provider.params(datetime(2026, 12, 7, 16, 30, tzinfo=KST))
    assert params["base_date"] == "20261207" and params["base_time"] == "1400"
    assert (params["nx"], params["ny"]) == ("66", "104")  # the site is 4 km north of (66, 103)


def test_kma_provider_answers_from_a_recorded_response(answer: dict,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    provider = KmaVilageForecast(36.515, 127.305, service_key="k")
    monkeypatch.setattr(provider, "fetch", lambda issued: answer)  # no network in tests
    frame = provider.weather(datetime(2026, 12, 8, tzinfo=KST), datetime(2026, 12, 9, tzinfo=KST))
    assert len(frame) == 24 and frame.index[0].hour == 0


def test_file_weather_csv_json_and_errors(tmp_path: Path) -> None:
    csv = tmp_path / "w.csv"
    csv.write_text("time,cloud_cover_pct,temp_air_c\n2026-07-01T00:00+09:00,10,20\n"
                   "2026-07-01T03:00+09:00,40,23\n", encoding="utf-8")
    frame = FileWeather(csv).weather(datetime(2026, 7, 1, 0, tzinfo=KST),
                                     datetime(2026, 7, 1, 4, tzinfo=KST))
    assert list(frame["cloud_cover_pct"]) == [10.0, 20.0, 30.0, 40.0]  # 3-hourly to hourly
    js = tmp_path / "w.json"
    js.write_text(json.dumps({"hours": [{"time": "2026-07-01T00:00", "cloud_cover_pct": 5,
                                         "temp_air_c": 19, "ghi_w_m2": 0}]}), encoding="utf-8")
    assert read_weather_file(js).index[0] == pd.Timestamp("2026-07-01T00:00", tz=KST)
    bad = tmp_path / "bad.csv"
    bad.write_text("time,cloud_cover_pct,temp_air_c\n2026-07-01T00:00+09:00,140,20\n",
                   encoding="utf-8")
    with pytest.raises(InputError, match=r"field cloud_cover_pct .* is 140, outside 0\.\.100"):
        read_weather_file(bad)
    bad.write_text("time,temp_air_c\n2026-07-01T00:00+09:00,20\n", encoding="utf-8")
    with pytest.raises(InputError, match="needs column\\(s\\) cloud_cover_pct"):
        read_weather_file(bad)
    with pytest.raises(InputError, match="weather covers"):
        FileWeather(csv).weather(datetime(2026, 7, 2, tzinfo=KST),
                                 datetime(2026, 7, 3, tzinfo=KST))


def test_one_request_per_issue(answer: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = KmaVilageForecast(36.515, 127.305, service_key="k")
    calls: list[datetime] = []

    def fetch(issued: datetime) -> dict:
        calls.append(issued)
        return answer

    monkeypatch.setattr(provider, "fetch", fetch)
    start, end = datetime(2026, 12, 7, 12, tzinfo=KST), datetime(2026, 12, 8, tzinfo=KST)
    provider.weather(start, end, issued=datetime(2026, 12, 7, 9, 30, tzinfo=KST))
    provider.weather(start, end, issued=datetime(2026, 12, 7, 10, 30, tzinfo=KST))  # same 08 h
    assert len(calls) == 1
    provider.weather(start, end, issued=datetime(2026, 12, 7, 11, 30, tzinfo=KST))  # 11 h issue
    assert len(calls) == 2
