"""Library-level checks of interval usage: every problem names the row and the fix."""

from __future__ import annotations

import pandas as pd
import pytest

import tariffs


def _frame(stamps: list[str], values: list[float], tz: str | None = "Asia/Seoul") -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(stamps))
    if tz:
        index = index.tz_localize(tz)
    return pd.DataFrame({"import_kwh": values}, index=index)


@pytest.mark.parametrize(
    "stamps, values, tz, pattern",
    [
        (["2026-03-01 00:00", "2026-03-01 01:00"], [1, 1], None, "no time zone"),
        (["2026-03-01 00:00", "2026-03-01 01:00", "2026-03-01 01:00"], [1, 1, 1], "Asia/Seoul",
         "row 3 .*duplicate timestamp"),
        (["2026-03-01 00:00", "2026-03-01 01:00", "2026-03-01 03:00"], [1, 1, 1], "Asia/Seoul",
         "row 3 .*gap of 120 minutes"),
        (["2026-03-01 00:00", "2026-03-01 01:00"], [1, -1], "Asia/Seoul",
         "row 2 .*import_kwh = -1.0 is negative"),
        (["2026-03-01 00:00", "2026-03-01 01:00"], [1, float("nan")], "Asia/Seoul",
         "row 2 .*import_kwh is missing"),
        (["2026-03-01 00:00", "2026-03-01 00:30"], [1, 1], "Asia/Seoul",
         "30 minutes is not 15 minutes or 1 hour"),
        (["2026-03-01 01:00", "2026-03-01 00:00"], [1, 1], "Asia/Seoul", "row 2 .*backwards"),
    ],
)
def test_bad_usage_is_rejected(stamps, values, tz, pattern) -> None:
    with pytest.raises(tariffs.TariffError, match=pattern):
        tariffs.bill("residential_low", _frame(stamps, values, tz))


def test_contract_power_is_required_for_demand_plans() -> None:
    usage = _frame(["2026-03-02 10:00", "2026-03-02 11:00"], [1, 1])
    with pytest.raises(tariffs.TariffError, match="give contract_kw"):
        tariffs.bill("general_b_high_a_2", usage)
    with pytest.raises(tariffs.TariffError, match="positive number"):
        tariffs.bill("general_b_high_a_2", usage, contract_kw=-5)


def test_bad_history_values_are_rejected() -> None:
    usage = _frame(["2026-03-02 10:00", "2026-03-02 11:00"], [1, 1])
    with pytest.raises(tariffs.TariffError, match="history 2025-08: peak 'x'"):
        tariffs.bill("general_b_high_a_2", usage, contract_kw=10, history={"2025-08": "x"})
    with pytest.raises(tariffs.TariffError, match="YYYY-MM"):
        tariffs.bill("general_b_high_a_2", usage, contract_kw=10, history={"Aug 2025": 5})
