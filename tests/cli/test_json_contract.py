"""The ``--json`` output contract, checked on real ``cems`` processes.

For every command that writes a document to standard output (``--json``, or a report or bid
sent to stdout): stdout holds exactly that document and nothing else (strict JSON: no NaN or
Infinity, nothing before or after it), standard error carries no tracebacks and no
third-party warnings, and the exit status is the documented one. A meta-test keeps the list
complete: a new ``--json`` command without a case here fails it.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from strict_json import strict_json, strict_json_lines

from cems.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
SEJONG = REPO / "examples" / "sejong_5_1" / "site.yaml"
BUSAN = REPO / "examples" / "busan_eco_delta" / "site.yaml"
MARKETS = REPO / "examples" / "markets"
USAGE = MARKETS / "usage.csv"
EVENT_START = "2026-07-20T14:00:00+09:00"
BROKER_DATE = "2026-07-21"

#: Lines a dependency would print on stderr: warnings and tracebacks.
NOISE = re.compile(r"Warning\b|Traceback|^\s+File \"", re.MULTILINE)

#: Commands whose document contract is tested elsewhere, with where.
COVERED_ELSEWHERE = {
    "dr listen": "tests/markets/test_openadr_e2e.py::test_cli_listen_opts_in_replans_and_stores",
    "demo": "tests/runtime/test_demo.py::test_demo_runs_and_beats_the_baseline",
    "devices read": "tests/drivers/test_cli_devices.py (JSON with and without peers)",
    "portfolio plan": "tests/fleet/test_portfolio_plan.py (all planned; a broken site, exit 1)",
}


@dataclass(frozen=True)
class Case:
    """One command line (built in a temporary folder) and the exit status it must have."""

    command: str
    argv: Callable[[Path], list[str | Path]]
    status: int = 0
    kind: str = "json"  # "json", "jsonlines", "html" or "csv"


def _portfolio(folder: Path) -> Path:
    """A synthetic three-site portfolio (cems portfolio make)."""
    from cems.fleet.synthetic import make_portfolio

    return make_portfolio(folder / "pf", 3, seed=1).path


def _usage_month_csv(folder: Path) -> Path:
    """A household's March 2026: 0.5 kWh every hour (372 kWh)."""
    path = folder / "usage.csv"
    lines = ["timestamp,import_kwh,export_kwh"]
    lines += [f"2026-03-{day:02d}T{hour:02d}:00:00+09:00,0.5,0"
              for day in range(1, 32) for hour in range(24)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _event_store(folder: Path) -> Path:
    """An event store with one 국민DR event (2026-07-20 14:00, 2 kW committed)."""
    from cems.markets.calendar import DrCalendar
    from cems.markets.events import DrEvent, EventStore
    from cems.markets.usage import parse_aware

    store = EventStore(folder / "events.json")
    start = parse_aware(EVENT_START, "start")
    store.add(DrEvent(event_id="ev-0720", program="kukmin_dr", start=start,
                      end=parse_aware("2026-07-20T15:00:00+09:00", "end"),
                      notified_at=parse_aware("2026-07-20T13:00:00+09:00", "notified"),
                      committed_kw=2.0),
              tz="Asia/Seoul", calendar=DrCalendar())
    return folder / "events.json"


def _bids(folder: Path) -> Path:
    from cems.cli import main

    for n in (1, 2):
        assert main(["broker", "bid", "--portfolio", str(MARKETS / "portfolio.csv"), "--date",
                     BROKER_DATE, "--round", str(n), "--forecast",
                     str(MARKETS / f"forecast_round{n}.csv"), "--out", str(folder)]) == 0
    return folder


def _report_site(folder: Path) -> Path:
    """The reports' hand-solvable site with its seeded April 2026 store."""
    from reports_site import SITE_YAML, seed_store

    site = folder / "site.yaml"
    site.write_text(SITE_YAML, encoding="utf-8")
    seed_store(folder / "data")
    return site


CASES = [
    Case("validate", lambda d: ["validate", SEJONG, "--json"]),
    Case("validate", lambda d: ["validate", d / "missing.yaml", "--json"], status=2),
    Case("optimize", lambda d: ["optimize", SEJONG, "--start", "2026-07-15", "--json"]),
    Case("portfolio make", lambda d: ["portfolio", "make", "--sites", "3", "--seed", "1",
                                      "--out", d / "pf", "--json"]),
    Case("portfolio validate", lambda d: ["portfolio", "validate", _portfolio(d), "--json"]),
    Case("tariff list", lambda d: ["tariff", "list", "--json"]),
    Case("tariff show", lambda d: ["tariff", "show", "general_b_high_a_2", "--date",
                                   "2026-07-15", "--json"]),
    Case("bill", lambda d: ["bill", "--plan", "residential_low", "--usage",
                            _usage_month_csv(d), "--json"]),
    Case("ami import", lambda d: ["ami", "import", USAGE, "--json"]),
    Case("dr cbl", lambda d: ["dr", "cbl", "--usage", USAGE, "--event-start", EVENT_START,
                              "--method", "mid6of10", "--json"]),
    Case("dr event list", lambda d: ["dr", "event", "list", "--store", _event_store(d),
                                     "--json"]),
    Case("dr settle", lambda d: ["dr", "settle", "--usage", USAGE, "--event", "ev-0720",
                                 "--store", _event_store(d), "--rbp-krw-per-kw", "36000",
                                 "--mrt-h", "60", "--mgp-krw-per-kwh", "120", "--json"]),
    Case("broker bid", lambda d: ["broker", "bid", "--portfolio", MARKETS / "portfolio.csv",
                                  "--date", BROKER_DATE, "--round", "1", "--forecast",
                                  MARKETS / "forecast_round1.csv"]),
    Case("broker bid", lambda d: ["broker", "bid", "--portfolio", MARKETS / "portfolio.csv",
                                  "--date", BROKER_DATE, "--round", "1", "--forecast",
                                  MARKETS / "forecast_round1.csv", "--format", "csv"],
         kind="csv"),
    Case("broker settle", lambda d: ["broker", "settle", "--portfolio",
                                     MARKETS / "portfolio.csv", "--date", BROKER_DATE,
                                     "--actual", MARKETS / "actual.csv", "--smp",
                                     MARKETS / "smp.csv", "--bids", _bids(d), "--json"]),
    Case("report resident", lambda d: ["report", "resident", _report_site(d), "--household",
                                       "h-a", "--month", "2026-04", "--format", "json"]),
    Case("report resident", lambda d: ["report", "resident", _report_site(d), "--household",
                                       "h-a", "--month", "2026-04", "--format", "html"],
         kind="html"),
    Case("report daily", lambda d: ["report", "daily", _report_site(d), "--date",
                                    "2026-04-10", "--format", "json"]),
    Case("report zeb", lambda d: ["report", "zeb", _report_site(d), "--year", "2026"]),
    Case("forecast backtest", lambda d: ["forecast", "backtest", SEJONG, "--start",
                                         "2026-07-15", "--days", "1", "--warm-up-days", "3",
                                         "--json"]),
]


def _case_id(case: Case) -> str:
    return f"{case.command}-{case.kind}-{case.status}"


def _check_stdout(kind: str, stdout: str) -> None:
    if kind == "json":
        strict_json(stdout)
    elif kind == "jsonlines":
        strict_json_lines(stdout)
    elif kind == "html":
        assert stdout.lstrip().lower().startswith("<!doctype html"), stdout[:200]
        assert stdout.rstrip().lower().endswith("</html>"), stdout[-200:]
    elif kind == "csv":
        header, *rows = list(csv.reader(io.StringIO(stdout)))
        assert "resource_id" in header and rows, stdout[:200]
        assert {len(row) for row in rows} == {len(header)}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_stdout_is_the_document_alone(case: Case, run_cems, tmp_path: Path) -> None:
    proc = run_cems(*case.argv(tmp_path), timeout=150, cwd=tmp_path)
    assert proc.returncode == case.status, proc.stderr[-3000:]
    assert not NOISE.search(proc.stderr), proc.stderr[-3000:]
    _check_stdout(case.kind, proc.stdout)


def test_validate_json_lists_the_problems_of_an_invalid_file(run_cems, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SEJONG.read_text(encoding="utf-8").replace("soc_max: 0.9", "soc_max: 1.2",
                                                                1), encoding="utf-8")
    proc = run_cems("validate", site, "--json", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    doc = strict_json(proc.stdout)
    assert doc["valid"] is False and doc["source"] == str(site)
    (problem,) = doc["problems"]
    assert problem["path"].endswith(".soc_max") and "1.2" in problem["message"]
    assert isinstance(problem["line"], int)


def test_a_user_error_leaves_stdout_empty(run_cems, tmp_path: Path) -> None:
    proc = run_cems("optimize", SEJONG, "--start", "2026-13-01", "--json", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_dr_cbl_stderr_holds_only_the_projects_notes(run_cems, tmp_path: Path) -> None:
    proc = run_cems("dr", "cbl", "--usage", USAGE, "--event-start", EVENT_START, "--json",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    strict_json(proc.stdout)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, "expected the note that no event store was given"
    assert all(line.startswith("note: ") for line in lines), proc.stderr


def _document_commands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    """Every command path whose parser has ``--json`` or declares a document output."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= _document_commands(sub, f"{prefix} {name}".strip())
    options = {opt for action in parser._actions for opt in action.option_strings}
    if "--json" in options or parser.get_default("writes_document") is not None:
        found.add(prefix)
    return found


def test_every_document_command_has_a_contract_case() -> None:
    commands = _document_commands(build_parser())
    assert "optimize" in commands and "report resident" in commands  # the walk works
    covered = {case.command for case in CASES} | set(COVERED_ELSEWHERE)
    assert commands - covered == set(), "add a Case for each new --json command"
    assert covered - commands == set(), "a Case names a command that has no --json"
