"""Invalid site files: each gives exit 2, the YAML path of the fault, and no traceback.

Every case starts from a small valid site (``MINIMAL``, checked valid by its own test),
applies one mutation, and runs the real ``cems validate`` process on the result.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

MINIMAL: dict[str, Any] = {
    "site": {
        "id": "test-site",
        "name": "Test site",
        "latitude": 36.5,
        "longitude": 127.3,
        "grid": {
            "contract_power_kw": 500,
            "import_limit_kw": 500,
            "export_limit_kw": 300,
            "tariff_plan": "general_b_high_a_2",
            "meter": "grid-meter",
        },
    },
    "assets": {
        "pv": [
            {"id": "pv-1", "kwp": 100, "tilt_deg": 20, "azimuth_deg": 180, "inverter_ac_kw": 90}
        ],
        "ess": [
            {
                "id": "ess-1",
                "capacity_kwh": 200,
                "max_charge_kw": 100,
                "max_discharge_kw": 100,
                "connection": {
                    "protocol": "modbus_tcp",
                    "host": "127.0.0.1",
                    "port": 502,
                    "device_id": 1,
                    "profile": "generic_ess",
                },
            }
        ],
        "ev_charger_groups": [{"id": "garage", "max_kw": 30}],
        "ev_chargers": [
            {
                "id": "evc-1",
                "max_kw": 11,
                "bidirectional": True,
                "max_discharge_kw": 11,
                "group": "garage",
            },
            {"id": "evc-2", "max_kw": 7, "group": "garage"},
        ],
    },
    "loads": {
        "deferrable": [
            {
                "id": "dhw",
                "energy_kwh": 20,
                "window_start": "22:00",
                "window_end": "06:00",
                "max_kw": 5,
            }
        ]
    },
    "ami_sources": [{"id": "ami", "format": "csv", "path": "ami"}],
    "meters": [
        {"id": "grid-meter", "kind": "grid"},
        {"id": "m-1", "kind": "household", "connection": {"protocol": "ami", "source": "ami"}},
    ],
    "households": [
        {
            "id": "h-1",
            "name": "101호",
            "meter": "m-1",
            "asset_share": 0.5,
            "joined_at": "2026-03-01T00:00:00+09:00",
        }
    ],
}

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """Return a mutation setting the value at a dotted path (``a.b[0].c``)."""

    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = _split(path)
        node: Any = doc
        for part in parents:
            node = node[part]
        node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = _split(path)
        node: Any = doc
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


def _split(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for chunk in path.split("."):
        name, _, rest = chunk.partition("[")
        parts.append(name)
        if rest:
            parts.append(int(rest.rstrip("]")))
    return parts


def _rename(path: str, new_key: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = _split(path)
        node: Any = doc
        for part in parents:
            node = node[part]
        node[new_key] = node.pop(last)

    return mutate


def _append(path: str, item: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for part in _split(path):
            node = node[part]
        node.append(item)

    return mutate


# (case id, mutation, expected YAML path, expected fragment of the message)
CASES: list[tuple[str, Mutation, str, str]] = [
    (
        "missing-field",
        _delete("site.grid.contract_power_kw"),
        "site.grid.contract_power_kw",
        "required field is missing",
    ),
    (
        "wrong-type",
        _set("assets.ess[0].capacity_kwh", "lots"),
        "assets.ess[0].capacity_kwh",
        "must be a number (got 'lots')",
    ),
    (
        "soc-out-of-range",
        _set("assets.ess[0].soc_max", 1.2),
        "assets.ess[0].soc_max",
        "must be <= 1.0 (got 1.2)",
    ),
    (
        "efficiency-zero",
        _set("assets.ess[0].charge_efficiency", 0),
        "assets.ess[0].charge_efficiency",
        "must be > 0.0 (got 0)",
    ),
    (
        "soc-window-inverted",
        lambda d: (_set("assets.ess[0].soc_min", 0.8)(d), _set("assets.ess[0].soc_max", 0.3)(d)),
        "assets.ess[0].soc_max",
        "must be > soc_min (0.8) (got 0.3)",
    ),
    (
        "typo-key",
        _rename("assets.pv[0].tilt_deg", "tilt_degs"),
        "assets.pv[0].tilt_degs",
        "unknown field; did you mean 'tilt_deg'?",
    ),
    (
        "unknown-top-level-key",
        _set("asset", {}),
        "asset",
        "unknown field; did you mean 'assets'?",
    ),
    (
        "unknown-meter",
        _set("households[0].meter", "m-404"),
        "households[0].meter",
        "unknown meter 'm-404'",
    ),
    (
        "unknown-charger-group",
        _set("assets.ev_chargers[1].group", "roof"),
        "assets.ev_chargers[1].group",
        "unknown charger group 'roof' (known: garage)",
    ),
    (
        "unknown-profile",
        _set("assets.ess[0].connection.profile", "acme_ess"),
        "assets.ess[0].connection.profile",
        "unknown device profile 'acme_ess'",
    ),
    (
        "unknown-ami-source",
        _set("meters[1].connection.source", "nowhere"),
        "meters[1].connection.source",
        "unknown AMI source 'nowhere' (known: ami)",
    ),
    (
        "duplicate-id",
        _set("assets.ev_chargers[1].id", "evc-1"),
        "assets.ev_chargers[1].id",
        "duplicate id 'evc-1' (first used at assets.ev_chargers[0].id)",
    ),
    (
        "naive-timestamp",
        _set("households[0].joined_at", "2026-03-01T00:00:00"),
        "households[0].joined_at",
        "timestamp needs a UTC offset",
    ),
    (
        "unknown-tariff-plan",
        _set("site.grid.tariff_plan", "general_z"),
        "site.grid.tariff_plan",
        "unknown tariff plan 'general_z'",
    ),
    (
        "unknown-timezone",
        _set("site.timezone", "Asia/Sejong"),
        "site.timezone",
        "unknown time zone 'Asia/Sejong'",
    ),
    (
        "v2g-on-unidirectional-charger",
        _set("assets.ev_chargers[1].max_discharge_kw", 7),
        "assets.ev_chargers[1].max_discharge_kw",
        "must be 0 unless bidirectional is true (got 7.0)",
    ),
    (
        "undeliverable-deferrable-load",
        _set("loads.deferrable[0].energy_kwh", 50),
        "loads.deferrable[0].energy_kwh",
        # 22:00 -> 06:00 is 8 h; 5 kW x 8 h = 40 kWh < 50 kWh
        "cannot be delivered: max_kw 5.0 x window 8 h = 40 kWh (got 50.0)",
    ),
    (
        "import-above-contract",
        _set("site.grid.import_limit_kw", 800),
        "site.grid.import_limit_kw",
        "must be <= site.grid.contract_power_kw (500.0) (got 800.0)",
    ),
    (
        "duplicate-modbus-endpoint",
        _set(
            "assets.ev_chargers[0].connection",
            {"protocol": "modbus_tcp", "host": "127.0.0.1", "port": 502, "device_id": 1,
             "profile": "generic_ev_charger"},
        ),
        "assets.ev_chargers[0].connection.device_id",
        "endpoint 127.0.0.1:502 device_id 1 is already used by assets.ess[0]",
    ),
    (
        "bad-protocol",
        _set("assets.ess[0].connection.protocol", "bacnet"),
        "assets.ess[0].connection",
        "protocol must be one of",
    ),
    (
        "port-out-of-range",
        _set("assets.ess[0].connection.port", 70000),
        "assets.ess[0].connection.port",
        "must be <= 65535 (got 70000)",
    ),
    (
        "ami-on-a-device",
        _set("assets.pv[0].connection", {"protocol": "ami", "source": "ami"}),
        "assets.pv[0].connection.protocol",
        "'ami' is only allowed for meters",
    ),
    (
        "shares-above-one",
        lambda d: (
            _append("meters", {"id": "m-2", "kind": "household"})(d),
            _append(
                "households", {"id": "h-2", "name": "102호", "meter": "m-2", "asset_share": 0.6}
            )(d),
        ),
        "households",
        "asset_share values must sum to <= 1.0 (got 1.1)",
    ),
    (
        "meter-shared-by-two-households",
        _append("households", {"id": "h-2", "name": "102호", "meter": "m-1", "asset_share": 0.1}),
        "households[1].meter",
        "meter 'm-1' already belongs to households[0]",
    ),
    (
        "unknown-dr-participant",
        _set("demand_response", {"participants": ["m-1", "m-9"]}),
        "demand_response.participants[1]",
        "unknown meter 'm-9'",
    ),
    (
        "remote-openadr-vtn",
        _set("demand_response", {"enabled": True, "max_reduction_kw": 5,
                                 "openadr_vtn_url": "http://vtn.example.com/OpenADR2/Simple/2.0b"}),
        "demand_response.openadr_vtn_url",
        "the VTN must be on a loopback address",
    ),
    (
        "openadr-vtn-with-dr-disabled",
        _set("demand_response", {"openadr_vtn_url": "http://127.0.0.1:8080/OpenADR2/Simple/2.0b"}),
        "demand_response.openadr_vtn_url",
        "is set but demand_response.enabled is false",
    ),
    (
        "bad-clock-time",
        _set("loads.deferrable[0].window_start", "25:00"),
        "loads.deferrable[0].window_start",
        "must be a clock time HH:MM",
    ),
    (
        "bad-id-characters",
        _set("assets.pv[0].id", "pv 1"),
        "assets.pv[0].id",
        "must be an id made of letters",
    ),
    (
        "infinite-kwp",
        _set("assets.pv[0].kwp", float("inf")),
        "assets.pv[0].kwp",
        "must be a finite number, not infinity or NaN (got inf)",
    ),
    (
        "nan-soc",
        _set("assets.ess[0].soc_max", float("nan")),
        "assets.ess[0].soc_max",
        "must be a finite number, not infinity or NaN (got nan)",
    ),
    (
        "implausible-kwp",
        _set("assets.pv[0].kwp", 5.0e7),
        "assets.pv[0].kwp",
        "must be <= 10,000,000 kWp (10 GW)",
    ),
    (
        "implausible-price",
        _set("assets.ess[0].degradation_cost_krw_per_kwh", 1.0e9),
        "assets.ess[0].degradation_cost_krw_per_kwh",
        "must be <= 1,000,000 KRW/kWh",
    ),
    (
        "missing-ami-path",
        _set("ami_sources[0].path", "no-such-folder"),
        "ami_sources[0].path",
        "no-such-folder does not exist",
    ),
    (
        "missing-portfolio-file",
        _set("brokerage", {"portfolio_file": "no-such-portfolio.csv"}),
        "brokerage.portfolio_file",
        "no-such-portfolio.csv does not exist",
    ),
    (
        "ocpp-version-unknown",
        _set(
            "assets.ev_chargers[1].connection",
            {"protocol": "ocpp", "charge_point_id": "CP-2", "ocpp_version": "1.5"},
        ),
        "assets.ev_chargers[1].connection.ocpp_version",
        "must be one of '1.6', '2.0.1' or '2.1' (got '1.5')",
    ),
    (
        "ocpp-id-missing",
        _set("assets.ev_chargers[1].connection", {"protocol": "ocpp", "ocpp_version": "2.0.1"}),
        "assets.ev_chargers[1].connection.charge_point_id",
        "required field is missing",
    ),
    (
        "ocpp-id-with-slash",
        _set(
            "assets.ev_chargers[1].connection",
            {"protocol": "ocpp", "charge_point_id": "a/b", "ocpp_version": "2.0.1"},
        ),
        "assets.ev_chargers[1].connection.charge_point_id",
        "got 'a/b'",
    ),
    (
        "ocpp-phases",
        _set(
            "assets.ev_chargers[1].connection",
            {"protocol": "ocpp", "charge_point_id": "CP-2", "ocpp_version": "2.0.1", "phases": 2},
        ),
        "assets.ev_chargers[1].connection.phases",
        "must be one of 1 or 3 (got 2)",
    ),
    (
        "ocpp-on-an-ess",
        _set(
            "assets.ess[0].connection",
            {"protocol": "ocpp", "charge_point_id": "CP-9", "ocpp_version": "2.0.1"},
        ),
        "assets.ess[0].connection.protocol",
        "'ocpp' is only allowed for EV chargers",
    ),
    (
        "ocpp-duplicate-id",
        lambda d: [
            _set(
                f"assets.ev_chargers[{i}].connection",
                {"protocol": "ocpp", "charge_point_id": "CP-1", "ocpp_version": "2.1"},
            )(d)
            for i in (0, 1)
        ],
        "assets.ev_chargers[1].connection.charge_point_id",
        "charge point id 'CP-1' is already used by assets.ev_chargers[0]",
    ),
    (
        "ocpp-bidirectional-needs-2.1",
        _set(
            "assets.ev_chargers[0].connection",
            {"protocol": "ocpp", "charge_point_id": "CP-1", "ocpp_version": "2.0.1"},
        ),
        "assets.ev_chargers[0].connection.ocpp_version",
        "a bidirectional charger discharges over OCPP 2.1 only",
    ),
    (
        "ocpp-plain-remote",
        _set("ocpp", {"host": "0.0.0.0"}),
        "ocpp.host",
        "plain ws:// on '0.0.0.0'",
    ),
]


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    (tmp_path / "ami").mkdir(exist_ok=True)  # MINIMAL's AMI source folder
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_minimal_site_is_valid(run_cems, tmp_path):
    result = run_cems("validate", _write(tmp_path, MINIMAL))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("mutation", "path", "fragment"),
    [pytest.param(m, p, f, id=case) for case, m, p, f in CASES],
)
def test_invalid_site_reports_path_and_exits_2(run_cems, tmp_path, mutation, path, fragment):
    doc = copy.deepcopy(MINIMAL)
    mutation(doc)
    result = run_cems("validate", _write(tmp_path, doc))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line.strip() for line in result.stderr.splitlines()]
    matching = [line for line in lines if line.startswith(f"{path}: ")]
    assert matching, f"no line for {path!r} in:\n{result.stderr}"
    assert any(fragment in line for line in matching), result.stderr


def test_problem_line_numbers_point_at_the_value(run_cems, tmp_path):
    doc = copy.deepcopy(MINIMAL)
    doc["assets"]["ess"][0]["soc_max"] = 1.2
    path = _write(tmp_path, doc)
    expected_line = next(
        i for i, text in enumerate(path.read_text().splitlines(), start=1) if "soc_max" in text
    )
    result = run_cems("validate", path)
    assert result.returncode == 2
    assert f"assets.ess[0].soc_max: must be <= 1.0 (got 1.2)  (line {expected_line})" in (
        result.stderr
    )


def test_every_problem_is_reported_at_once(run_cems, tmp_path):
    doc = copy.deepcopy(MINIMAL)
    doc["assets"]["ess"][0]["soc_max"] = 1.2
    doc["assets"]["pv"][0]["kwp"] = -5
    result = run_cems("validate", _write(tmp_path, doc))
    assert result.returncode == 2
    assert "assets.ess[0].soc_max:" in result.stderr
    assert "assets.pv[0].kwp: must be > 0.0 (got -5)" in result.stderr
    assert "2 problem(s)" in result.stderr


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("site:\n  id: [a, b\n", "malformed YAML at line 3, column 1", id="unclosed"),
        pytest.param(
            "site:\n  id: a\n  id: b\n",
            "duplicate key 'id' (first at line 2)",
            id="duplicate-key",
        ),
        pytest.param("site:\n\tid: a\n", "malformed YAML at line 2, column 1", id="tab-indent"),
        pytest.param("- just\n- a list\n", "must hold a mapping with a 'site' key", id="list"),
        pytest.param("", "must hold a mapping with a 'site' key", id="empty"),
    ],
)
def test_malformed_yaml_reports_line_and_column(run_cems, tmp_path, text, fragment):
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_cems("validate", path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr


def test_missing_file_is_a_user_error(run_cems, tmp_path):
    result = run_cems("validate", tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert "file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_json_names_an_infinite_kwp_and_a_missing_ami_folder(run_cems, tmp_path):
    from strict_json import strict_json

    # kwp written as YAML's own infinity; the AMI folder never created
    site = tmp_path / "site.yaml"
    site.write_text(
        yaml.safe_dump(MINIMAL, allow_unicode=True, sort_keys=False).replace(
            "kwp: 100", "kwp: .inf"
        ),
        encoding="utf-8",
    )
    result = run_cems("validate", site, "--json")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (problem,) = strict_json(result.stdout)["problems"]
    assert problem["path"] == "assets.pv[0].kwp" and "finite" in problem["message"]
    # with kwp fixed, the missing folder is the one problem, named with its full path
    site.write_text(yaml.safe_dump(MINIMAL, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = run_cems("validate", site, "--json")
    assert result.returncode == 2
    (problem,) = strict_json(result.stdout)["problems"]
    assert problem["path"] == "ami_sources[0].path"
    assert f"{tmp_path / 'ami'} does not exist" in problem["message"]
    assert isinstance(problem["line"], int)
    (tmp_path / "ami").mkdir()
    assert run_cems("validate", site).returncode == 0
