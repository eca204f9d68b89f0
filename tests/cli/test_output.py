"""The stdout guard of ``--json`` commands (:mod:`cems.cli.output`) and a banner-free HiGHS,
in real processes: bytes written to descriptor 1 by native code must not reach stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_native_writes_and_prints_go_to_stderr_inside_the_guard() -> None:
    proc = _python(
        "import os, sys\n"
        "from cems.cli.output import emit_json, json_output\n"
        "print('before')\n"
        "with json_output():\n"
        "    os.write(1, b'native banner\\n')\n"
        "    print('a stray print')\n"
        "    emit_json({'ok': 1, 'name': '세종'})\n"
        "print('after')\n")
    assert proc.returncode == 0, proc.stderr
    before, *document, after = proc.stdout.splitlines()
    assert (before, after) == ("before", "after")
    assert json.loads("\n".join(document)) == {"ok": 1, "name": "세종"}
    assert proc.stderr.splitlines() == ["native banner", "a stray print"]


def test_emit_json_refuses_nan() -> None:
    proc = _python("from cems.cli.output import emit_json\nemit_json({'x': float('nan')})\n")
    assert proc.returncode != 0 and "NonFiniteFigureError" in proc.stderr
    assert "figure x is nan, not a finite number" in proc.stderr  # the figure is named
    assert proc.stdout == ""


def test_highs_is_constructed_without_its_banner() -> None:
    proc = _python(
        "import highspy\n"
        "from optimizer.highs_instance import quiet_highs\n"
        "first, second = quiet_highs(), quiet_highs()\n"
        "first.run()\n"  # an empty model: with the log on, this would print
        "print('constructed')\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "constructed\n"
    assert "HiGHS" not in proc.stderr


def test_plain_highs_prints_the_banner_that_quiet_highs_hides() -> None:
    """What quiet_highs guards against, on the installed highspy: 1.16 (the locked release)
    prints a banner on the first construction; what older releases do is not pinned here."""
    major, minor = (int(x) for x in version("highspy").split(".")[:2])
    proc = _python("import highspy\nhighspy.Highs()\n")
    assert proc.returncode == 0, proc.stderr
    if (major, minor) >= (1, 16):
        assert proc.stdout.startswith("Running HiGHS"), proc.stdout
