#!/usr/bin/env python3
"""Set up and run the project with nothing but Python 3.11+ and pip.

    python3 tasks.py demo    # create .venv, install, run the main job (cems demo)
    python3 tasks.py test    # create .venv, install with test extras, run ruff and pytest

The virtual environment lives in ``.venv``; it is (re)installed whenever
``pyproject.toml`` changes. Extra arguments after ``test`` go to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".cems-installed"


def _run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def _digest(extras: str) -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()


def ensure_venv(extras: str) -> None:
    """Create .venv and install the project (editable) with ``extras`` if out of date.

    An install with the ``test`` extras also satisfies a plain install.
    """
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py may be run by an older python3
        sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]})")
    digest = _digest(extras)
    accepted = {digest, _digest("test")}
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text() in accepted:
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    target = f".[{extras}]" if extras else "."
    _run(PYTHON, "-m", "pip", "install", "--quiet", "-e", target)
    STAMP.write_text(digest)


def demo(args: list[str]) -> None:
    """The main job: ``cems demo`` (simulated Sejong 5-1 site, one day); args go to it."""
    ensure_venv("")
    _run(PYTHON, "-m", "cems", "demo", *args)


def test(args: list[str]) -> None:
    """Lint and run the whole test suite.

    Under CI (``CI`` set) the real services some tests need are made ready first:
    PostgreSQL for the store tests, Chromium and a Korean font for the browser and PDF
    tests (started, or installed from Debian's packages). Elsewhere those tests skip with
    the reason when the service is absent.
    """
    if os.environ.get("CI"):
        _run("bash", ROOT / ".ci" / "ensure-postgres")
        _run("bash", ROOT / ".ci" / "ensure-browser")
    ensure_venv("test")
    _run(PYTHON, "-m", "ruff", "check", ".")
    _run(PYTHON, "-m", "pytest", *args)


def main() -> None:
    tasks = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in tasks:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(tasks)}}} [args...]")
    tasks[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
