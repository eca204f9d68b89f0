"""Fixtures for tariff tests: build interval usage for a month and write it as CSV."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import pytest

UsageBuilder = Callable[..., pd.DataFrame]


def _month_index(month: str, freq: str) -> pd.DatetimeIndex:
    start = pd.Timestamp(f"{month}-01", tz="Asia/Seoul")
    return pd.date_range(start, start + pd.offsets.MonthBegin(1), freq=freq, inclusive="left")


@pytest.fixture
def month_usage() -> UsageBuilder:
    """``month_usage('2026-03', freq='1h', base=0.0, at={'2026-03-03 10:00': 120})``.

    Every interval gets ``base`` kWh; keys of ``at`` (local time) override single
    intervals; ``export`` does the same for export_kwh.
    """

    def build(month: str, *, freq: str = "1h", base: float = 0.0,
              at: Mapping[str, float] | None = None,
              export: Mapping[str, float] | None = None) -> pd.DataFrame:
        index = _month_index(month, freq)
        frame = pd.DataFrame({"import_kwh": base, "export_kwh": 0.0}, index=index)
        for key, value in (at or {}).items():
            frame.loc[pd.Timestamp(key, tz="Asia/Seoul"), "import_kwh"] = value
        for key, value in (export or {}).items():
            frame.loc[pd.Timestamp(key, tz="Asia/Seoul"), "export_kwh"] = value
        return frame

    return build


@pytest.fixture
def write_usage_csv(tmp_path: Path) -> Callable[[pd.DataFrame, str], Path]:
    """Write a usage frame as ``timestamp,import_kwh,export_kwh`` CSV; return its path."""

    def write(frame: pd.DataFrame, name: str = "usage.csv") -> Path:
        path = tmp_path / name
        lines = ["timestamp,import_kwh,export_kwh"]
        lines += [f"{ts.isoformat()},{row.import_kwh:g},{row.export_kwh:g}"
                  for ts, row in frame.iterrows()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write
