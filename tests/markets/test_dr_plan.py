"""DR import bounds for the planner."""

from __future__ import annotations

import pandas as pd
import pytest

from cems.errors import InputError
from cems.markets.dr_plan import import_bounds_kw


def _baseline(values: list[float], freq: str = "15min") -> pd.Series:
    index = pd.date_range("2026-07-20T14:00", periods=len(values), freq=freq, tz="Asia/Seoul")
    return pd.Series(values, index=index)


def test_reduction_cap_and_increase_floor() -> None:
    base = _baseline([1.3, 1.2, 0.1, 1.0])  # kWh per 15 min
    # cap = kWh / 0.25 h - 2 kW: 5.2 - 2 = 3.2, 4.8 - 2 = 2.8, 0.4 - 2 -> 0, 4.0 - 2 = 2.0
    assert import_bounds_kw(base, 2.0).tolist() == pytest.approx([3.2, 2.8, 0.0, 2.0])
    # floor = kWh / 0.25 h + 2 kW
    assert import_bounds_kw(base, 2.0, increase=True).tolist() == pytest.approx(
        [7.2, 6.8, 2.4, 6.0])
    hourly = _baseline([5.2, 4.0], freq="h")
    assert import_bounds_kw(hourly, 1.5).tolist() == pytest.approx([3.7, 2.5])


def test_bounds_need_a_complete_baseline() -> None:
    with pytest.raises(InputError, match="without reference days"):
        import_bounds_kw(_baseline([1.0, float("nan")]), 1.0)
