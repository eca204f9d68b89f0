"""Waiting for a line from a test's subprocess, bounded in wall time.

``proc.stdout.readline()`` alone blocks for as long as a silent process lives, so a
deadline checked between lines does not bound it. Here a helper thread reads the lines and
the caller waits on them with a timeout; on a timeout or an early exit the process is
killed and the test fails with what it printed.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout_s: float,
                  what: str = "the process") -> str:
    """Return the first line of ``proc``'s stdout (a text pipe) containing ``needle``.

    Raises AssertionError, after killing ``proc``, if no such line comes within
    ``timeout_s`` seconds or the output ends first; the message holds the output. The
    reading thread stops at the line found, so the caller may go on reading the pipe.
    """
    stdout = proc.stdout
    assert stdout is not None, "start the process with stdout=subprocess.PIPE, text=True"
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in iter(stdout.readline, ""):
            lines.put(line)
            if needle in line:
                return
        lines.put(None)  # end of output

    reader = threading.Thread(target=read, name=f"wait-for-{needle}", daemon=True)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    outcome = f"did not print {needle!r} within {timeout_s:g} s"
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            break
        if line is None:
            outcome = f"ended (exit status {proc.wait(timeout=10)}) without printing {needle!r}"
            break
        seen.append(line)
        if needle in line:
            reader.join()
            return line
    proc.kill()
    proc.wait(timeout=10)
    reader.join(timeout=10)
    rest = ""
    if proc.stderr is not None:
        rest = proc.stderr.read()
    output = "".join(seen)[-3000:] + rest[-3000:]
    raise AssertionError(f"{what} {outcome}; its output:\n{output}")
