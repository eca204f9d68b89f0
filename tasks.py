#!/usr/bin/env python3
"""Set up and run the project with nothing but Python 3.11+ and pip.

    python3 tasks.py demo         # create .venv from the lock, run the main job (cems demo)
    python3 tasks.py test         # create .venv from the lock (with test tools), ruff + pytest
    python3 tasks.py lock         # refresh the lock files from pyproject.toml's ranges
    python3 tasks.py test-latest  # the suite on the newest releases pyproject.toml allows

The lock is ``requirements/main.txt`` (what the application needs) and
``requirements/test.txt`` (that plus the test tools, same versions): every package pinned
with its hashes, for Python 3.11 and newer on every platform (a universal resolution by uv).
``demo`` and ``test`` install exactly the lock with ``pip --require-hashes``, then the project
itself without dependencies, so a fresh clone gets the versions CI passed with.
``pyproject.toml`` keeps the compatible ranges for people who ``pip install`` the package.

``.venv`` is rebuilt from scratch whenever the lock or ``pyproject.toml`` changes. Extra
arguments after ``test`` or ``test-latest`` go to pytest, after ``demo`` to ``cems demo``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
LOCK_DIR = ROOT / "requirements"
LOCKS = {"main": LOCK_DIR / "main.txt", "test": LOCK_DIR / "test.txt"}
TOOLS_IN = LOCK_DIR / "tools.in"
#: The uv release that ``lock`` uses to resolve (it lives in its own venv, .venv-tools).
UV_VERSION = "0.13.9"
STAMP_NAME = ".cems-installed"


def _bin(env: Path, name: str) -> Path:
    scripts = env / ("Scripts" if os.name == "nt" else "bin")
    return scripts / (f"{name}.exe" if os.name == "nt" else name)


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, check=False, env=env)
    if result.returncode:
        sys.exit(result.returncode)


def _check_python() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py may be run by an older python3
        sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]})")


def _digest(kind: str) -> str:
    """What an install of lock ``kind`` depends on: the lock and pyproject.toml."""
    data = (ROOT / "pyproject.toml").read_bytes() + LOCKS[kind].read_bytes()
    return f"{kind}:{hashlib.sha256(data).hexdigest()}"


def _create(env: Path) -> None:
    if env.exists():
        print(f"re-creating {env} (the lock or pyproject.toml changed)", flush=True)
        shutil.rmtree(env)
    else:
        print(f"creating {env}", flush=True)
    venv.EnvBuilder(with_pip=True).create(env)


def ensure_venv(kind: str, env: Path = ROOT / ".venv") -> Path:
    """Make ``env`` hold exactly lock ``kind`` ("main" or "test") plus the project.

    A test install also serves ``demo`` (the test lock is the main lock plus test tools, at
    the same versions). Returns the environment's python.
    """
    _check_python()
    python, stamp = _bin(env, "python"), env / STAMP_NAME
    for path in LOCKS.values():
        if not path.exists():
            sys.exit(f"{path.relative_to(ROOT)} is missing; run: python3 tasks.py lock")
    wanted = _digest(kind)
    installed = stamp.read_text() if python.exists() and stamp.exists() else ""
    if installed == wanted or (kind == "main" and installed == _digest("test")):
        return python
    if installed != _digest("main"):  # stale or foreign: start clean so nothing extra stays
        _create(env)
    _run(python, "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps",
         "-r", LOCKS[kind])
    # -qq: setuptools' "Editable installation ... be careful with folders" notice is printed
    # on every editable install; errors still show.
    _run(python, "-m", "pip", "install", "-qq", "--no-deps", "--no-build-isolation", "-e", ".")
    _run(python, "-m", "pip", "check")
    stamp.write_text(wanted)
    return python


def demo(args: list[str]) -> None:
    """The main job: ``cems demo`` (simulated Sejong 5-1 site, one day); args go to it."""
    python = ensure_venv("main")
    _run(python, "-m", "cems", "demo", *args)


def _services() -> None:
    """Under CI, make the real services ready that some tests use."""
    if os.environ.get("CI"):
        _run("bash", ROOT / ".ci" / "ensure-postgres")
        _run("bash", ROOT / ".ci" / "ensure-browser")


def test(args: list[str]) -> None:
    """Lint and run the whole test suite on the locked versions.

    Under CI (``CI`` set) the real services some tests need are made ready first:
    PostgreSQL for the store tests, Chromium and a Korean font for the browser and PDF
    tests (started, or installed from Debian's packages). Elsewhere those tests skip with
    the reason when the service is absent.
    """
    _services()
    python = ensure_venv("test")
    _run(python, "-m", "ruff", "check", ".")
    _run(python, "-m", "pytest", *args)


def test_latest(args: list[str]) -> None:
    """Run the suite in ``.venv-latest`` on the newest releases pyproject.toml allows.

    Not CI (CI tests the lock): a look ahead at what ``pip install cems`` gives today, to
    refresh the lock with confidence. The environment is rebuilt on every run.
    """
    _check_python()
    _services()
    env = ROOT / ".venv-latest"
    _create(env)
    python = _bin(env, "python")
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "--upgrade-strategy",
         "eager", "-e", ".[test,postgres]")
    _run(python, "-m", "pip", "freeze", "--exclude-editable")
    _run(python, "-m", "pytest", *args)


def lock(args: list[str]) -> None:
    """Re-resolve ``requirements/test.txt`` and ``requirements/main.txt`` with uv.

    Universal (Python 3.11+, every platform), fewest versions across Python versions, with
    hashes; the main lock is constrained by the test lock so both pin the same versions.
    Extra arguments go to both ``uv pip compile`` runs (e.g. ``--upgrade-package numpy``);
    without ``--upgrade``/``--upgrade-package`` the pins already in the files are kept where
    the ranges still allow them.
    """
    _check_python()
    tools = ROOT / ".venv-tools"
    uv = _bin(tools, "uv")
    marker = tools / f".uv-{UV_VERSION}"
    if not marker.exists():
        _create(tools)
        _run(_bin(tools, "python"), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}")
        marker.write_text(UV_VERSION)
    common = ["--universal", "--fork-strategy", "fewest", "--python-version", "3.11",
              "--generate-hashes", "--quiet", "--custom-compile-command",
              "python3 tasks.py lock", *args]
    env = dict(os.environ, UV_NO_CONFIG="1")
    _run(uv, "pip", "compile", "pyproject.toml", TOOLS_IN.relative_to(ROOT),
         "--extra", "test", "--extra", "postgres", "-o", LOCKS["test"].relative_to(ROOT),
         *common, env=env)
    _run(uv, "pip", "compile", "pyproject.toml", TOOLS_IN.relative_to(ROOT),
         "-c", LOCKS["test"].relative_to(ROOT), "-o", LOCKS["main"].relative_to(ROOT),
         *common, env=env)
    print("lock refreshed: review `git diff requirements/`, run `python3 tasks.py test`, "
          "commit the two files", flush=True)


def main() -> None:
    tasks = {"demo": demo, "test": test, "lock": lock, "test-latest": test_latest}
    if len(sys.argv) < 2 or sys.argv[1] not in tasks:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(tasks)}}} [args...]")
    tasks[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
