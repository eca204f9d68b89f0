"""Shared fixtures: paths of the repository and its examples, and a real ``cems`` process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SEJONG_SITE = EXAMPLES / "sejong_5_1" / "site.yaml"
BUSAN_SITE = EXAMPLES / "busan_eco_delta" / "site.yaml"

CemsRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def sejong_site() -> Path:
    return SEJONG_SITE


@pytest.fixture(scope="session")
def busan_site() -> Path:
    return BUSAN_SITE


@pytest.fixture(scope="session")
def run_cems() -> CemsRunner:
    """Run ``python -m cems ARGS`` in a real subprocess; return the completed process.

    Keyword ``timeout`` (seconds, default 120) bounds the run; ``cwd`` defaults to the repo.
    """

    def _run(*args: str | Path, timeout: float = 120, cwd: Path | None = None,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.setdefault("PYTHONIOENCODING", "utf-8")
        return subprocess.run(
            [sys.executable, "-m", "cems", *map(str, args)],
            cwd=cwd or REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )

    return _run
