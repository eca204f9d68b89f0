"""``cems tariff list|show`` and ``cems bill`` through a real ``python -m cems`` process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import tariffs

DATA = Path(tariffs.__file__).resolve().parent / "data"


def _user_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_tariff_list_one_plan_per_line(run_cems) -> None:
    proc = run_cems("tariff", "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(tariffs.known_plan_ids())
    general = next(line for line in lines if line.startswith("general_b_high_a_2 "))
    assert "일반용(을) 고압A 선택Ⅱ" in general and "General service" in general
    assert "2023-05-16" in general
    assert "[UNVERIFIED]" in next(line for line in lines if line.startswith("ev_self_low "))


def test_tariff_list_and_show_the_general_a_plans(run_cems) -> None:
    proc = run_cems("tariff", "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    low = next(line for line in lines if line.startswith("general_a1_low "))
    assert "일반용(갑)Ⅰ 저압" in low and "General service (A) I, low voltage" in low
    assert "2023-05-16 .. open  (1 version)" in low and "[UNVERIFIED]" not in low
    a2 = next(line for line in lines if line.startswith("general_a2_high_a_2 "))
    assert "일반용(갑)Ⅱ 고압A 선택Ⅱ" in a2 and "(2 versions)" in a2 and "[UNVERIFIED]" not in a2
    show = run_cems("tariff", "show", "general_a2_high_a_2", "--date", "2026-07-01")
    assert show.returncode == 0, show.stderr
    assert "general_a2_high_a_2@2026-06-01" in show.stdout and "table 'new'" in show.stdout
    assert "8230" in show.stdout and "157.8" in show.stdout


def test_tariff_list_json(run_cems) -> None:
    proc = run_cems("tariff", "list", "--json")
    assert proc.returncode == 0
    rows = json.loads(proc.stdout)
    assert {r["plan_id"] for r in rows} == set(tariffs.known_plan_ids())
    assert all({"name_ko", "name_en", "effective_from", "verified"} <= set(r) for r in rows)


def _cells(doc: dict) -> list[str]:
    """Every rate cell of a data file, as text, read straight from the YAML."""
    out: list[str] = []
    if doc["kind"] == "tou":
        out.append(str(doc["demand_charge_krw_per_kw"]))
        for row in doc["energy_krw_per_kwh"].values():
            out += [str(row[p]) for p in ("light", "mid", "peak")]
    elif doc["kind"] == "seasonal":
        out.append(str(doc["demand_charge_krw_per_kw"]))
        out += [str(rate) for rate in doc["energy_krw_per_kwh"].values()]
    else:
        for tiers in doc["tiers"].values():
            for t in tiers:
                out += [str(t["base_krw"]), str(t["rate_krw_per_kwh"])]
        out.append(str(doc["super_user"]["rate_krw_per_kwh"]))
    return out


@pytest.mark.parametrize("plan", sorted(tariffs.known_plan_ids()))
def test_tariff_show_prints_every_cell_and_source(run_cems, plan: str) -> None:
    proc = run_cems("tariff", "show", plan)
    assert proc.returncode == 0, proc.stderr
    files = sorted(DATA.glob(f"{plan}@*.yaml"))
    assert files
    blocks = proc.stdout.split("== ")[1:]
    assert len(blocks) == len(files)
    for path, block in zip(files, blocks, strict=True):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc["source"] and f"source: {doc['source']}" in block
        assert ("verified: yes" in block) == bool(doc["verified"])
        cells = [c for c in _cells(doc) if c not in block]
        assert not cells, f"{path.name}: cells {cells} not shown"


def test_tariff_show_date_picks_version_and_flags_unverified(run_cems) -> None:
    proc = run_cems("tariff", "show", "industrial_b_high_a_1", "--date", "2026-05-01")
    assert proc.returncode == 0, proc.stderr
    assert "industrial_b_high_a_1@2026-04-16" in proc.stdout
    assert "@2024-10-24" not in proc.stdout
    assert "verified: NO [?]" in proc.stdout
    assert "UNVERIFIED [?]" in proc.stdout  # the 2026Q2 fuel adjustment


def test_tariff_show_errors(run_cems) -> None:
    _user_error(run_cems("tariff", "show", "nope"), "unknown tariff plan 'nope'")
    _user_error(run_cems("tariff", "show", "industrial_b_high_a_2", "--date", "2023-01-01"),
                "no version in force on 2023-01-01")
    _user_error(run_cems("tariff", "show", "residential_low", "--date", "01/02/2026"),
                "YYYY-MM-DD")


def test_bill_json(run_cems, month_usage, write_usage_csv) -> None:
    # Hand-computed in test_bills_hand.py: May 2025, flat 10 kW, contract 30 kW.
    path = write_usage_csv(month_usage("2025-05", base=10.0))
    proc = run_cems("bill", "--plan", "general_b_high_a_2", "--usage", path,
                    "--contract-kw", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("base_krw", "energy_krw", "climate_krw", "fuel_adjustment_krw", "subtotal_krw",
                "vat_krw", "fund_krw", "total_krw", "billing_demand_kw", "kwh_by_period"):
        assert key in out
    assert out["total_krw"] == 1078170
    assert out["kwh_by_period"] == {"light": 3940, "mid": 2300, "peak": 1200}


def test_bill_seasonal_plan_json(run_cems, month_usage, write_usage_csv) -> None:
    # Hand-computed in test_general_a.py: 일반용(갑)Ⅰ 저압, 2025-07, flat 10 kWh an hour,
    # contract 50 kW without a demand meter: total 1,574,650 KRW.
    path = write_usage_csv(month_usage("2025-07", base=10.0))
    proc = run_cems("bill", "--plan", "general_a1_low", "--usage", path, "--contract-kw", "50",
                    "--no-demand-meter", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["total_krw"], out["billing_demand_kw"]) == (1574650, 50)
    assert out["kwh_by_period"] == {"flat": 7440}
    assert out["plan_name_ko"] == "일반용(갑)Ⅰ 저압"


def test_bill_text_with_history_file(run_cems, month_usage, write_usage_csv,
                                     tmp_path: Path) -> None:
    # Same as test_general_ratchet_from_past_summer_month: total 3,767,390 KRW, 400 kW.
    usage = write_usage_csv(month_usage("2026-03", at={"2026-03-03 10:00": 120}))
    hist = tmp_path / "hist.csv"
    hist.write_text("month,peak_kw\n2025-08,400\n2025-05,900\n2025-03,950\n", encoding="utf-8")
    proc = run_cems("bill", "--plan", "general_b_high_a_2", "--usage", usage,
                    "--contract-kw", "1000", "--history", hist)
    assert proc.returncode == 0, proc.stderr
    assert "3,767,390 KRW" in proc.stdout and "400 kW" in proc.stdout


def test_bill_residential_tiers_in_json(run_cems, month_usage, write_usage_csv) -> None:
    path = write_usage_csv(month_usage("2026-03", at={"2026-03-10 20:00": 350}))
    proc = run_cems("bill", "--plan", "residential_low", "--usage", path, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["total_krw"] == 70640
    assert out["kwh_by_tier"]["0-200"] == 200


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,import_kwh,export_kwh\n" + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "body, needles",
    [
        ("2026-03-01T00:00:00+09:00,1,0\n2026-03-01T01:00:00,1,0\n",
         ("line 3", "'timestamp'", "no time zone")),
        ("2026-03-01T00:00:00+09:00,1,0\n2026-03-01T01:00:00+09:00,1,0\n"
         "2026-03-01T03:00:00+09:00,1,0\n", ("line 4", "gap of 120 minutes")),
        ("2026-03-01T00:00:00+09:00,1,0\n2026-03-01T01:00:00+09:00,1,0\n"
         "2026-03-01T01:00:00+09:00,1,0\n", ("line 4", "duplicate of line 3")),
        ("2026-03-01T00:00:00+09:00,1,0\n2026-03-01T01:00:00+09:00,-2,0\n",
         ("line 3", "'import_kwh'", "negative")),
        ("2026-03-01T00:00:00+09:00,abc,0\n", ("line 2", "'import_kwh'", "not a number")),
    ],
)
def test_bill_bad_usage_rows(run_cems, tmp_path: Path, body: str, needles) -> None:
    proc = run_cems("bill", "--plan", "residential_low", "--usage", _csv(tmp_path, body))
    _user_error(proc, *needles)


def test_bill_bad_arguments(run_cems, tmp_path: Path) -> None:
    ok = _csv(tmp_path, "2026-03-01T00:00:00+09:00,1,0\n2026-03-01T01:00:00+09:00,1,0\n")
    _user_error(run_cems("bill", "--plan", "nope", "--usage", ok), "unknown tariff plan 'nope'")
    _user_error(run_cems("bill", "--plan", "general_b_high_a_2", "--usage", ok),
                "--contract-kw")
    _user_error(run_cems("bill", "--plan", "residential_low", "--usage", ok, "--month", "2026-3x"),
                "YYYY-MM")
    _user_error(run_cems("bill", "--plan", "residential_low", "--usage", tmp_path / "none.csv"),
                "no such file")
    old = _csv(tmp_path, "2023-01-01T00:00:00+09:00,1,0\n2023-01-01T01:00:00+09:00,1,0\n")
    _user_error(run_cems("bill", "--plan", "residential_low", "--usage", old),
                "no version in force on 2023-01-01")


def test_bill_bad_history_row(run_cems, tmp_path: Path) -> None:
    ok = _csv(tmp_path, "2026-03-01T00:00:00+09:00,1,0\n2026-03-01T01:00:00+09:00,1,0\n")
    hist = tmp_path / "h.csv"
    hist.write_text("month,peak_kw\n2025-08,400\n2025/09,10\n", encoding="utf-8")
    _user_error(run_cems("bill", "--plan", "general_b_high_a_2", "--usage", ok,
                         "--contract-kw", "100", "--history", hist),
                "line 3", "'month'", "YYYY-MM")
