"""``cems bill`` refuses numbers no meter can produce, naming the file, line and field.

Through a real ``python -m cems`` process: exit 2, the message on stderr, no traceback and
nothing on stdout (with ``--json`` too). The bound is 10 x ``--contract-kw`` averaged over
the interval, or 10 GW (10,000,000 kW) without a contract power; the library refuses
the same values itself (``tariffs.TariffError``) so its exact money arithmetic never sees
them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from strict_json import strict_json

import tariffs
from tariffs import TariffError

pytestmark = pytest.mark.timeout(120)

HEADER = "timestamp,import_kwh,export_kwh\n"


def _usage(tmp_path: Path, rows: list[tuple[str, str, str]], name: str = "usage.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(f"{t},{i},{e}\n" for t, i, e in rows), encoding="utf-8")
    return path


def _quarter_hours(values: list[str]) -> list[tuple[str, str, str]]:
    start = pd.Timestamp("2026-07-01T00:00:00+09:00")
    return [((start + pd.Timedelta(minutes=15 * k)).isoformat(), v, "0")
            for k, v in enumerate(values)]


def _user_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "InvalidOperation" not in proc.stderr
    assert proc.stdout == ""
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
def test_a_1e308_row_exits_2_naming_the_row(run_cems, tmp_path: Path, json_flag) -> None:
    usage = _usage(tmp_path, _quarter_hours(["0.5", "1e308", "0.5"]))
    proc = run_cems("bill", "--plan", "residential_low", "--usage", usage, *json_flag)
    # the header is line 1, so the second data row is line 3
    _user_error(proc, f"{usage}: line 3: field 'import_kwh'", "1e+308 kWh",
                "10,000,000 kW")


def test_a_1e12_row_is_refused_not_billed(run_cems, tmp_path: Path) -> None:
    usage = _usage(tmp_path, _quarter_hours(["0.5", "0.5", "1e12"]))
    proc = run_cems("bill", "--plan", "residential_low", "--usage", usage, "--json")
    _user_error(proc, f"{usage}: line 4: field 'import_kwh'", "1e+12 kWh")


def test_the_contract_power_bounds_a_row(run_cems, tmp_path: Path) -> None:
    # contract 5 kW -> at most 50 kW on average: 12.5 kWh in 15 minutes.
    # 12.5 kWh passes, 12.6 kWh (50.4 kW) is refused.
    ok = _usage(tmp_path, _quarter_hours(["12.5", "1"]), "ok.csv")
    bad = _usage(tmp_path, _quarter_hours(["1", "12.6"]), "bad.csv")
    proc = run_cems("bill", "--plan", "general_b_high_a_2", "--usage", ok, "--contract-kw", "5",
                    "--json")
    assert proc.returncode == 0, proc.stderr
    assert strict_json(proc.stdout)["import_kwh"] == pytest.approx(13.5)
    proc = run_cems("bill", "--plan", "general_b_high_a_2", "--usage", bad,
                    "--contract-kw", "5")
    _user_error(proc, f"{bad}: line 3: field 'import_kwh'", "50 kW",
                "10 x the contract power of 5 kW")


@pytest.mark.parametrize(("value", "needle"), [
    ("nan", "is not a finite number"),
    ("inf", "is not a finite number"),
    ("-Infinity", "is not a finite number"),
    ("-0.5", "is negative"),
])
def test_non_finite_and_negative_rows_are_named(run_cems, tmp_path: Path, value: str,
                                                 needle: str) -> None:
    rows = _quarter_hours(["0.5", "0.5"])
    rows[1] = (rows[1][0], "0.5", value)  # export_kwh of line 3
    usage = _usage(tmp_path, rows)
    proc = run_cems("bill", "--plan", "residential_low", "--usage", usage)
    _user_error(proc, f"{usage}: line 3: field 'export_kwh'", needle)


def test_a_history_peak_beyond_any_meter_is_named(run_cems, tmp_path: Path) -> None:
    usage = _usage(tmp_path, _quarter_hours(["1", "1"]))
    history = tmp_path / "history.csv"
    history.write_text("month,peak_kw\n2025-08,410\n2025-09,1e308\n", encoding="utf-8")
    proc = run_cems("bill", "--plan", "general_b_high_a_2", "--usage", usage,
                    "--contract-kw", "500", "--history", history)
    _user_error(proc, f"{history}: line 3: field 'peak_kw'", "1e+308 kW")


def test_an_absurd_contract_power_is_refused(run_cems, tmp_path: Path) -> None:
    usage = _usage(tmp_path, _quarter_hours(["1", "1"]))
    proc = run_cems("bill", "--plan", "general_b_high_a_2", "--usage", usage,
                    "--contract-kw", "1e308")
    _user_error(proc, "--contract-kw 1e+308", "10,000,000 kW")


def test_the_library_refuses_the_same_values() -> None:
    index = pd.date_range("2026-07-01", periods=4, freq="15min", tz="Asia/Seoul")
    usage = pd.DataFrame({"import_kwh": [1.0, 1e308, 1.0, 1.0]}, index=index)
    with pytest.raises(TariffError, match=r"row 2 .*import_kwh = 1e\+308 kWh"):
        tariffs.bill("residential_low", usage)
    with pytest.raises(TariffError, match="import_kwh = 1e"):
        tariffs.bill_from_totals("residential_low", "2026-07", import_kwh=1e308)
    ok = pd.DataFrame({"import_kwh": [1.0] * 4}, index=index)
    with pytest.raises(TariffError, match="contract_kw = 1e"):
        tariffs.bill("general_b_high_a_2", ok, contract_kw=1e308)
    with pytest.raises(TariffError, match="history 2025-08: peak 1e"):
        tariffs.bill("general_b_high_a_2", ok, contract_kw=500, history={"2025-08": 1e308})
