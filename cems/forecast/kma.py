"""The Korea Meteorological Administration's short-range forecast (단기예보) as weather frames.

The service is 기상청_단기예보 조회서비스 on the public data portal (data.go.kr), operation
``getVilageFcst`` of ``VilageFcstInfoService_2.0``: forecasts issued eight times a day (base
times 02, 05, 08, 11, 14, 17, 20, 23 h KST) for about three days ahead, hourly, on KMA's 5 km
Lambert grid (``nx``, ``ny``). A JSON answer is

``{"response": {"header": {"resultCode": "00", "resultMsg": ...}, "body": {"items":
{"item": [{"baseDate", "baseTime", "category", "fcstDate", "fcstTime", "fcstValue",
"nx", "ny"}, ...]}, "totalCount": ...}}}``

Categories used: ``SKY`` (하늘상태 1 맑음 / 3 구름많음 / 4 흐림, i.e. 0-5 / 6-8 / 9-10 tenths
of cover; mapped to 25 / 70 / 95 % cloud cover), ``TMP`` (1-hour temperature, °C), ``PCP``
(1-hour precipitation, text such as ``강수없음``, ``1.0mm 미만``, ``2.5mm``, ``30.0~50.0mm``,
``50.0mm 이상``), ``POP`` (probability %), ``REH`` (humidity %), ``WSD`` (wind m/s).
KMA gives no irradiance: the PV model derives it from the cloud cover.

The service key comes from the environment (:data:`KEY_ENV`), never from the site file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from cems.errors import InputError
from cems.forecast.weather import hourly, validate_frame

#: The operation's address.
URL = "https://apis.data.go.kr/1360000/VilageFcstInfoService_2.0/getVilageFcst"
#: Environment variable holding the data.go.kr service key (decoded form).
KEY_ENV = "KMA_SERVICE_KEY"
#: Hours (KST) at which 단기예보 is issued; results are available about 10 minutes after.
BASE_HOURS = (2, 5, 8, 11, 14, 17, 20, 23)
#: Cloud cover (%) standing for each SKY code: the middle of its range of tenths.
SKY_COVER_PCT = {1: 25.0, 3: 70.0, 4: 95.0}
KST = ZoneInfo("Asia/Seoul")
_CATEGORIES = {"SKY": "cloud_cover_pct", "TMP": "temp_air_c", "PCP": "precipitation_mm",
               "POP": "precip_probability_pct", "REH": "relative_humidity_pct",
               "WSD": "wind_speed_m_s"}


def latlon_to_grid(latitude: float, longitude: float) -> tuple[int, int]:
    """KMA 5 km grid point (nx, ny) of a location: the service's Lambert conformal conic
    projection (standard parallels 30° and 60° N, origin 38° N 126° E at grid (43, 136),
    Earth radius 6371.00877 km), as KMA's conversion guide gives it."""
    re_grid = 6371.00877 / 5.0
    degrad = math.pi / 180.0
    slat1, slat2, olon, olat = 30.0 * degrad, 60.0 * degrad, 126.0 * degrad, 38.0 * degrad
    sn = math.log(math.cos(slat1) / math.cos(slat2)) / math.log(
        math.tan(math.pi * 0.25 + slat2 * 0.5) / math.tan(math.pi * 0.25 + slat1 * 0.5))
    sf = math.tan(math.pi * 0.25 + slat1 * 0.5) ** sn * math.cos(slat1) / sn
    ro = re_grid * sf / math.tan(math.pi * 0.25 + olat * 0.5) ** sn
    ra = re_grid * sf / math.tan(math.pi * 0.25 + latitude * degrad * 0.5) ** sn
    theta = longitude * degrad - olon
    theta = (theta + math.pi) % (2 * math.pi) - math.pi
    theta *= sn
    return int(ra * math.sin(theta) + 43 + 0.5), int(ro - ra * math.cos(theta) + 136 + 0.5)


def parse_pcp_mm(text: str) -> float:
    """Millimetres in the hour from a PCP value: ``강수없음`` 0, ``1.0mm 미만`` 0.5, a range
    its middle, ``50.0mm 이상`` 50; raises ValueError on anything else."""
    value = text.strip()
    if value in ("강수없음", "0", "0.0", "-"):
        return 0.0
    if "미만" in value:
        return 0.5
    numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", value)]
    if not numbers:
        raise ValueError(f"not a precipitation amount: {text!r}")
    if "~" in value and len(numbers) == 2:
        return (numbers[0] + numbers[1]) / 2.0
    return numbers[0]


def _field(mapping: Any, path: str) -> Any:
    node = mapping
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            raise InputError(f"KMA response: field {path} is missing")
        node = node[key]
    return node


def parse_response(data: Any, source: str = "KMA response") -> pd.DataFrame:
    """The weather frame (Asia/Seoul hours) of a getVilageFcst JSON answer; a failed call
    or a malformed answer is an :class:`InputError` naming the field."""
    code = _field(data, "response.header.resultCode")
    if str(code) != "00":
        message = data["response"]["header"].get("resultMsg", "")
        raise InputError(f"{source}: response.header.resultCode is {code!r} ({message})")
    items = _field(data, "response.body.items.item")
    if not isinstance(items, list) or not items:
        raise InputError(f"{source}: response.body.items.item holds no forecast")
    values: dict[str, dict[pd.Timestamp, float]] = {c: {} for c in _CATEGORIES.values()}
    for n, item in enumerate(items):
        where = f"{source}: response.body.items.item[{n}]"
        if not isinstance(item, Mapping):
            raise InputError(f"{where} is not an object")
        for key in ("category", "fcstDate", "fcstTime", "fcstValue"):
            if key not in item:
                raise InputError(f"{where}.{key} is missing")
        category = str(item["category"])
        if category not in _CATEGORIES:
            continue
        try:
            when = datetime.strptime(f"{item['fcstDate']}{int(item['fcstTime']):04d}",
                                     "%Y%m%d%H%M").replace(tzinfo=KST)
        except (ValueError, TypeError):
            raise InputError(f"{where}.fcstDate/fcstTime: {item['fcstDate']!r} "
                             f"{item['fcstTime']!r} is not YYYYMMDD HHMM") from None
        raw = str(item["fcstValue"])
        try:
            if category == "SKY":
                value = SKY_COVER_PCT[int(raw)]
            elif category == "PCP":
                value = parse_pcp_mm(raw)
            else:
                value = float(raw)
        except (ValueError, KeyError):
            raise InputError(f"{where}.fcstValue: {raw!r} is not a valid {category} "
                             "value") from None
        if not math.isfinite(value) or value <= -900:  # KMA marks missing with -999 and up
            raise InputError(f"{where}.fcstValue: {raw!r} is missing ({category})")
        values[_CATEGORIES[category]][pd.Timestamp(when)] = value
    for category in ("SKY", "TMP"):
        if not values[_CATEGORIES[category]]:
            raise InputError(f"{source}: no {category} item in response.body.items.item")
    frame = pd.DataFrame({k: pd.Series(v, dtype=float) for k, v in values.items() if v})
    frame.index = pd.DatetimeIndex(frame.index).tz_convert(KST)
    frame = frame.sort_index()
    gaps = frame[["cloud_cover_pct", "temp_air_c"]].isna().any(axis=1)
    if gaps.any():
        first = frame.index[gaps.to_numpy()][0]
        missing = [c for c in ("SKY", "TMP")
                   if pd.isna(frame.loc[first, _CATEGORIES[c]])]
        raise InputError(f"{source}: no {'/'.join(missing)} item for {first.isoformat()}")
    return validate_frame(frame, source)


def latest_base_time(now: datetime, *, delay_min: int = 15) -> datetime:
    """The newest issue (base time) available at ``now``: results appear about 10 minutes
    after the base time; ``delay_min`` leaves a margin."""
    local = now.astimezone(KST) - timedelta(minutes=delay_min)
    for back in range(0, 49):
        t = (local - timedelta(hours=back)).replace(minute=0, second=0, microsecond=0)
        if t.hour in BASE_HOURS:
            return t
    raise AssertionError("a base time occurs every 3 hours")  # pragma: no cover


class KmaVilageForecast:
    """Weather provider on KMA's 단기예보 over HTTP (``httpx``); the key from ``KMA_SERVICE_KEY``.

    ``weather(start, end, issued=t)`` fetches the newest issue available at ``t`` (default:
    now) for the grid point and returns the hours in ``[start, end)``."""

    def __init__(self, latitude: float, longitude: float, *, service_key: str | None = None,
                 url: str = URL, timeout_s: float = 20.0) -> None:
        self.nx, self.ny = latlon_to_grid(latitude, longitude)
        self.url = url
        self.timeout_s = timeout_s
        self._key = service_key
        self._cache: tuple[datetime, Any] | None = None  # (base time, answer)

    def key(self) -> str:
        """The service key (argument, else the environment)."""
        key = self._key or os.environ.get(KEY_ENV)
        if not key:
            raise InputError(f"KMA forecast: set the data.go.kr service key in the environment "
                             f"variable {KEY_ENV}")
        return key

    def params(self, issued: datetime) -> dict[str, str]:
        """Query parameters of the newest issue at ``issued`` (all forecast hours)."""
        base = latest_base_time(issued)
        return {"serviceKey": self.key(), "pageNo": "1", "numOfRows": "1000",
                "dataType": "JSON", "base_date": base.strftime("%Y%m%d"),
                "base_time": base.strftime("%H%M"), "nx": str(self.nx), "ny": str(self.ny)}

    def fetch(self, issued: datetime) -> Any:
        """The JSON answer of the newest issue at ``issued``."""
        import httpx

        try:
            answer = httpx.get(self.url, params=self.params(issued), timeout=self.timeout_s)
            answer.raise_for_status()
            return answer.json()
        except httpx.HTTPError as exc:
            raise InputError(f"KMA forecast: request failed ({type(exc).__name__}: "
                             f"{exc})") from None
        except ValueError:
            raise InputError("KMA forecast: the answer is not JSON (an expired or wrong "
                             "service key answers in XML)") from None

    def weather(self, start: datetime, end: datetime, *, issued: datetime | None = None
                ) -> pd.DataFrame:
        """The hours in ``[start, end)`` of the newest issue at ``issued``; one request per
        issue (the answer is kept until a newer base time)."""
        when = issued or datetime.now(KST)
        base = latest_base_time(when)
        if self._cache is None or self._cache[0] != base:
            self._cache = (base, self.fetch(when))
        return hourly(parse_response(self._cache[1]), start, end, "KMA forecast")


__all__ = ["BASE_HOURS", "KEY_ENV", "SKY_COVER_PCT", "URL", "KmaVilageForecast",
           "latest_base_time", "latlon_to_grid", "parse_pcp_mm", "parse_response"]
