"""Benchmark the start-up of the light ``cems`` commands (target: median <= 0.7 s each).

Run from the repository root: ``python benchmarks/cli_startup_bench.py [--repeats N]``.
Each command runs as a fresh process (``python -m cems ...``), as a user types it; the
figure is the median wall time over the repeats, with the ratio to the target. A light
command imports neither Pyomo nor HiGHS (``tests/cli/test_startup.py`` checks that); this
measures what is left. Prints figures only; no assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEJONG = REPO / "examples" / "sejong_5_1" / "site.yaml"
TARGET_S = 0.7


def _usage_csv(folder: Path) -> Path:
    """A month of hourly household usage (March 2026, 0.5 kWh an hour)."""
    path = folder / "usage.csv"
    rows = [f"2026-03-{d:02d}T{h:02d}:00:00+09:00,0.5,0" for d in range(1, 32) for h in range(24)]
    path.write_text("timestamp,import_kwh,export_kwh\n" + "\n".join(rows) + "\n",
                    encoding="utf-8")
    return path


def _median_s(argv: list[str], repeats: int, env: dict[str, str]) -> float:
    """Median wall time of ``python ARGV`` in a fresh process."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, *argv], cwd=REPO, env=env,
                              capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"python {' '.join(argv)} failed:\n{proc.stderr.decode()[-2000:]}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per command (default 7)")
    args = parser.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        usage = _usage_csv(Path(tmp))
        commands = [
            ["--help"],
            ["tariff", "list"],
            ["bill", "--plan", "residential_low", "--usage", str(usage)],
            ["validate", str(SEJONG)],
        ]
        bare = _median_s(["-c", "import cems.cli"], args.repeats, env)
        print(f"floor: interpreter + `import cems.cli`: {bare:.3f} s")
        print(f"{'command':<52} {'median s':>9} {'ratio to 0.7 s':>15}")
        for argv in commands:
            median = _median_s(["-m", "cems", *argv], args.repeats, env)
            shown = " ".join(a if not a.startswith("/") else Path(a).name for a in argv)
            print(f"cems {shown:<47} {median:9.3f} {median / TARGET_S:15.2f}")
    print(f"({args.repeats} runs each, {os.cpu_count()} cores, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
