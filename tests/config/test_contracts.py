"""KEPCO contracts in the site model (약관 제67조): no kWh billed under two contracts, each
contract on the plans KEPCO applies, meters behind meters without loops."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cems.config import load_site_text
from cems.errors import ConfigError

COMPLEX: dict[str, Any] = {
    "site": {"id": "apt", "name": "Apartment complex", "latitude": 36.5, "longitude": 127.3,
             "grid": {"contract": "composite", "contract_power_kw": 500,
                      "import_limit_kw": 500, "export_limit_kw": 100,
                      "tariff_plan": "general_a2_high_a_2", "meter": "grid-meter"}},
    "meters": [
        {"id": "grid-meter", "kind": "grid"},
        {"id": "m-1", "kind": "household", "behind": "grid-meter"},
        {"id": "m-2", "kind": "household", "behind": "grid-meter"},
    ],
    "households": [
        {"id": "h-1", "name": "101호", "meter": "m-1", "tariff_plan": "residential_low",
         "asset_share": 0.5},
        {"id": "h-2", "name": "102호", "meter": "m-2", "tariff_plan": "residential_low",
         "asset_share": 0.5},
    ],
}


def _problems(doc: dict[str, Any]) -> list[str]:
    try:
        load_site_text(yaml.safe_dump(doc, allow_unicode=True))
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


def _with(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(COMPLEX)
    for path, value in changes.items():
        node = doc
        *parents, last = path.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return doc


def test_the_composite_complex_is_valid() -> None:
    assert _problems(COMPLEX) == []


def test_validate_names_both_contracts_of_a_double_billed_meter(run_cems, tmp_path: Path
                                                                  ) -> None:
    doc = _with(site__grid__contract="general", site__grid__tariff_plan="general_b_high_a_2")
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    result = run_cems("validate", path)
    assert result.returncode == 2
    line = next(x for x in result.stderr.splitlines() if "households[0].tariff_plan" in x)
    # both contracts named: the household's own plan and the site's plan over it
    assert "meter 'm-1' is billed twice" in line
    assert "residential_low" in line and "general_b_high_a_2" in line
    assert "households[1].tariff_plan" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("changes", "where", "fragment"), [
    # 단일계약 is a residential plan over all dwellings (제67조 ③)
    ({"site__grid__contract": "single", "households__0__tariff_plan": None,
      "households__1__tariff_plan": None}, "site.grid.tariff_plan",
     "bills the complex on a residential (주택용) plan"),
    # 종합계약's shared facilities are on 일반용(갑) 고압 (제67조 ④ 2호)
    ({"site__grid__tariff_plan": "general_b_high_a_2"}, "site.grid.tariff_plan",
     "일반용(갑) 고압; 'general_b_high_a_2' is 일반용(을)"),
    ({"site__grid__tariff_plan": "general_a1_low"}, "site.grid.tariff_plan",
     "'general_a1_low' is 일반용(갑)Ⅰ 저압"),
    # a dwelling of the complex on a non-residential plan (제67조 ④ 1호)
    ({"households__0__tariff_plan": "general_a2_high_a_1"}, "households[0].tariff_plan",
     "bills dwellings at 주택용 저압"),
    # a household outside the complex cannot be in its 종합계약
    ({"meters__1__behind": None}, "households[0].meter", "is not behind 'grid-meter'"),
    # a household nobody bills
    ({"site__grid__contract": "general", "site__grid__tariff_plan": "general_b_high_a_2",
      "meters__1__behind": None, "households__0__tariff_plan": None,
      "households__1__tariff_plan": None}, "households[0].tariff_plan", "nothing bills it"),
    # meters behind each other
    ({"meters__1__behind": "m-2", "meters__2__behind": "m-1"}, "meters[1].behind", "loop"),
    ({"meters__1__behind": "nope"}, "meters[1].behind", "unknown meter 'nope'"),
])
def test_contract_rules(changes: dict[str, Any], where: str, fragment: str) -> None:
    problems = _problems(_with(**changes))
    assert any(p.startswith(f"{where}: ") and fragment in p for p in problems), problems


def test_single_contract_with_dwellings_behind_the_meter_is_valid() -> None:
    doc = _with(site__grid__contract="single", site__grid__tariff_plan="residential_high",
                households__0__tariff_plan=None, households__1__tariff_plan=None)
    assert _problems(doc) == []


def test_own_connection_households_beside_a_general_contract_are_valid() -> None:
    doc = _with(site__grid__contract="general", site__grid__tariff_plan="general_b_high_a_2",
                meters__1__behind=None, meters__2__behind=None)
    assert _problems(doc) == []


def test_default_data_dir_is_next_to_the_site_file(tmp_path: Path) -> None:
    # a site file without data_dir keeps its data beside it, not in the current directory
    from cems.config import load_site

    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(COMPLEX, allow_unicode=True), encoding="utf-8")
    assert load_site(path).site.data_dir == (tmp_path / "data").resolve()
