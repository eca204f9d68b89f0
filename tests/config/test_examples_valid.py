"""Both example sites validate, and the summary totals match the files' own numbers."""

from __future__ import annotations

import json

from cems.config import load_site


def test_sejong_validates(run_cems, sejong_site):
    result = run_cems("validate", sejong_site, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # Totals as described in examples/sejong_5_1/site.yaml: 5 x 100 kWp, 2 x 500 kWh.
    assert summary["pv"] == {"count": 5, "kwp": 500.0, "inverter_ac_kw": 5 * 92.0}
    assert summary["ess"]["capacity_kwh"] == 1000.0
    assert summary["ess"]["max_discharge_kw"] == 500.0
    assert summary["fuel_cells"] == {"count": 1, "max_kw": 200.0}
    assert summary["ev_chargers"]["count"] == 40
    assert summary["ev_chargers"]["bidirectional"] == 10
    # 10 bidirectional x 11 kW + 30 x 7 kW
    assert summary["ev_chargers"]["max_kw"] == 10 * 11 + 30 * 7
    assert summary["households"]["count"] == 300
    assert summary["households"]["asset_share_sum"] == round(300 * 0.0033, 6)


def test_busan_validates(run_cems, busan_site):
    result = run_cems("validate", busan_site)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    config = load_site(busan_site)
    # The ~2 MW hydrogen plant: four 500 kW blocks.
    assert sum(fc.max_kw for fc in config.assets.fuel_cells) == 2000.0
    assert config.site.grid.tariff_plan.startswith("industrial_")
    assert config.site.timezone == "Asia/Seoul"


def test_config_is_immutable(sejong_site):
    config = load_site(sejong_site)
    try:
        config.site.grid.contract_power_kw = 1.0  # type: ignore[misc]
    except Exception as exc:  # pydantic raises ValidationError for frozen models
        assert "frozen" in str(exc)
    else:
        raise AssertionError("site config must be immutable")


def test_relative_paths_resolve_against_the_site_file(sejong_site):
    config = load_site(sejong_site)
    assert config.site.data_dir == (sejong_site.parent / "data").resolve()
    assert config.ami_sources[0].path == (sejong_site.parent / "ami").resolve()
