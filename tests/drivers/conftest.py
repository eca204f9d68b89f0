"""Fixtures for the driver tests: free loopback ports, a leak check, and an async runner.

The leak check (after pymodbus's own ``system_health_check``) fails a test that leaves
threads, open sockets or pending asyncio tasks behind.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback_ports import free_port as _free_port


def _open_sockets() -> set[str]:
    fd_dir = Path("/proc/self/fd")
    out = set()
    for fd in fd_dir.iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(f"{fd}->{target}")
    return out


@pytest.fixture(autouse=True)
def leak_check() -> Iterator[None]:
    """Fail the test if it leaves threads or sockets behind (after up to 5 s for them to go;
    a clean test passes at once, a busy machine may take a moment to close them)."""
    threads_before = set(threading.enumerate())
    sockets_before = _open_sockets()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        sockets = _open_sockets() - sockets_before
        if not threads and not sockets:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    pytest.fail(f"leaked threads {threads} / sockets {sorted(sockets)}")


#: Wall-time bound of one ``run_async`` scenario: below the tests' pytest-timeout (20 s
#: and up), so a hang fails with a message saying so rather than a stack dump.
RUN_ASYNC_TIMEOUT_S = 15.0


@pytest.fixture
def run_async() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine in a fresh loop, bounded to 15 s; fail if it leaves tasks pending."""

    def _run(coro: Coroutine[Any, Any, Any]) -> Any:
        async def wrapper() -> Any:
            try:
                result = await asyncio.wait_for(coro, RUN_ASYNC_TIMEOUT_S)
            except TimeoutError:
                raise AssertionError(f"the scenario did not finish within "
                                     f"{RUN_ASYNC_TIMEOUT_S:.0f} s of wall time") from None
            deadline = time.monotonic() + 2.0  # grace for cancelled handlers to finish
            while True:
                await asyncio.sleep(0.01)
                pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                if not pending or time.monotonic() > deadline:
                    break
            if pending:
                for task in pending:
                    task.cancel()
                raise AssertionError(f"leaked asyncio tasks: {pending}")
            return result

        return asyncio.run(wrapper())

    return _run




@pytest.fixture
def free_port() -> Callable[[], int]:
    """Return a function giving a currently free loopback TCP port."""
    return _free_port
