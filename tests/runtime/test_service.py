"""``cems run`` in real time (APScheduler) against ``cems simulate``, both real processes.

SIGKILL mid-run loses no committed reading and the schedule resumes on restart; SIGTERM
reverts every controllable device to its safe state before exit.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import wait_for_line

# Waits of up to 60 s for the first run's plan and readings, then a second run bounded to
# 90 s: generous for a busy machine, bounded all the same.
pytestmark = pytest.mark.timeout(240)

CONTROLLABLE = {"ess-1", "fc-1", "pv-1"}


def _env(repo_root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(repo_root), "PYTHONIOENCODING": "utf-8"}


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=5) as conn:
        try:
            return int(conn.execute(sql).fetchone()[0])
        except sqlite3.OperationalError:  # schema not created yet
            return 0


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def simulator(small_site_path, repo_root):
    """``cems simulate`` serving the small site (free ports) until the test ends (at most
    the module's timeout: it stops by itself then)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cems", "simulate", str(small_site_path), "--duration", "240"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(repo_root),
    )
    wait_for_line(proc, "ready", 60, "cems simulate")
    yield proc
    proc.terminate()
    proc.wait(timeout=15)


def _run_cmd(site: Path, db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cems", "run", str(site), "--db", f"sqlite:///{db}",
            "--poll-s", "0.5", "--expiry-s", "2", *extra]


def test_sigkill_loses_no_committed_reading_and_schedule_resumes(
        simulator, small_site_path, tmp_path, repo_root):
    db = tmp_path / "cems.sqlite"
    first = subprocess.Popen(_run_cmd(small_site_path, db), env=_env(repo_root),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: _count(db, "select count(*) from plans") >= 1
                         and _count(db, "select count(*) from readings") >= 200, 60), (
            "cems run stored no plan and 200 readings within 60 s")
        committed = _count(db, "select count(*) from readings")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    after_kill = _count(db, "select count(*) from readings")
    assert after_kill >= committed  # nothing committed was lost
    plans_before = _count(db, "select count(*) from plans")

    second = subprocess.run(_run_cmd(small_site_path, db, "--duration", "6"),
                            env=_env(repo_root), capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stderr[-2000:]
    assert _count(db, "select count(*) from readings") > after_kill  # polling resumed
    assert _count(db, "select count(*) from plans") > plans_before  # planning resumed


def test_sigterm_reverts_devices_to_safe_state(simulator, small_site_path, tmp_path, repo_root):
    db = tmp_path / "cems.sqlite"
    proc = subprocess.Popen(_run_cmd(small_site_path, db), env=_env(repo_root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: _count(db, "select count(*) from plans") >= 1, 60), (
            "cems run stored no plan within 60 s")
        stop_us = int(time.time() * 1e6)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "stopped:" in out
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select device, value from setpoints where reason = 'safety' and created_us >= ?",
            (stop_us,),
        ).fetchall()
    safe = dict(rows)
    assert set(safe) >= CONTROLLABLE, f"no safe-state setpoint for {CONTROLLABLE - set(safe)}"
    assert safe["ess-1"] == 0.0  # batteries idle
    assert safe["fc-1"] == 10.0  # the fuel cell's safe_kw
    assert safe["pv-1"] == 55.0  # PV uncapped (its inverter limit)
