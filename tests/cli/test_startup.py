"""Light commands stay light: ``cems --help`` and the commands that do not optimise import
neither Pyomo nor HiGHS nor the other heavy stacks (their start-up time is measured in
``benchmarks/cli_startup_bench.py``, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SEJONG = REPO / "examples" / "sejong_5_1" / "site.yaml"

#: Top-level packages no light command may import.
HEAVY = ("pyomo", "highspy", "scipy", "alembic", "sqlalchemy", "openleadr", "aiohttp",
         "pymodbus", "matplotlib", "weasyprint", "fastapi", "uvicorn", "apscheduler",
         "pvlib", "signxml", "cryptography")

_PROBE = """
import json, sys
from cems.cli import main
argv = json.loads(sys.argv[1])
try:
    status = main(argv)
except SystemExit as exc:  # --help exits through argparse
    status = exc.code
heavy = json.loads(sys.argv[2])
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(heavy))
sys.stderr.write("LOADED " + json.dumps({"status": status, "loaded": loaded}) + "\\n")
"""


def _loaded(argv: list[str], tmp_path: Path) -> dict[str, object]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv), json.dumps(HEAVY)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    marker = [line for line in proc.stderr.splitlines() if line.startswith("LOADED ")]
    assert marker, proc.stderr[-2000:]
    return json.loads(marker[-1].removeprefix("LOADED "))


def _usage(tmp_path: Path) -> Path:
    path = tmp_path / "usage.csv"
    rows = [f"2026-03-01T{h:02d}:00:00+09:00,1.0,0" for h in range(24)]
    path.write_text("timestamp,import_kwh,export_kwh\n" + "\n".join(rows) + "\n",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["tariff", "list"],
    ["tariff", "show", "residential_low", "--json"],
    ["validate", str(SEJONG)],
    ["bill", "--plan", "residential_low", "--usage", "USAGE", "--json"],
    ["dr", "--help"],
    ["report", "--help"],
], ids=lambda argv: " ".join(argv[:2]))
def test_light_commands_import_no_heavy_stack(argv: list[str], tmp_path: Path) -> None:
    argv = [str(_usage(tmp_path)) if a == "USAGE" else a for a in argv]
    result = _loaded(argv, tmp_path)
    assert result["status"] in (0, None), result
    assert result["loaded"] == [], f"{' '.join(argv)} imported {result['loaded']}"


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """The check above can fail: a command that optimises does import HiGHS (the hot path
    hands the model straight to highspy; Pyomo only for users' own constraints)."""
    result = _loaded(["optimize", str(SEJONG), "--start", "2026-07-15", "--json"], tmp_path)
    assert result["status"] == 0
    assert "highspy" in set(result["loaded"])
