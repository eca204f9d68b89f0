"""A writer killed with SIGKILL loses no committed reading (real process, real file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from cems.store import open_store

BATCH = 1_000

WRITER = textwrap.dedent(
    f"""
    import sys
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo
    from cems.store import open_store

    store = open_store(sys.argv[1])
    t0 = datetime(2026, 7, 1, tzinfo=ZoneInfo("Asia/Seoul"))
    total = 0
    for batch in range(10_000):
        rows = [(t0 + timedelta(seconds=batch * {BATCH} + i), "meter", "active_power_kw",
                 float(i), "good") for i in range({BATCH})]
        total += store.write_readings(rows)
        print(total, flush=True)
    """
)


def test_sigkill_mid_run_loses_no_committed_reading(tmp_path, repo_root):
    url = f"sqlite:///{tmp_path / 'cems.sqlite'}"
    open_store(url).engine.dispose()  # create the schema before the race starts
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True, env=env
    )
    reported = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            reported = int(line)
            if reported >= 20 * BATCH:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    stored = open_store(url).count_readings()
    # Every batch the writer reported as committed is there; at most the batches it
    # committed after our last read (before the kill landed) are extra, never partial.
    assert stored >= reported
    assert stored % BATCH == 0
