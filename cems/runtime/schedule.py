"""Running the runtime's jobs: with APScheduler in real time, or stepped in simulated time.

Both modes use the same job list and the same APScheduler triggers (interval and cron, in
the site's time zone). Real time (``cems run``) hands them to an ``AsyncIOScheduler`` with
no overlapping runs of one job (``max_instances=1``) and missed runs coalesced. Simulated
time (``cems demo``, tests) asks each trigger for its next fire time, advances the clock
(and the simulator) to the earliest, and runs the due jobs in list order, so a simulated
day takes only as long as its work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

log = logging.getLogger(__name__)

JobFunc = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class JobSpec:
    """One recurring job."""

    name: str
    trigger: BaseTrigger
    func: JobFunc


@dataclass
class JobStats:
    """How often a job ran and how long it took (wall seconds)."""

    runs: int = 0
    failures: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    running: int = 0


def timed(name: str, func: JobFunc, stats: dict[str, JobStats]) -> JobFunc:
    """Wrap a job so every run is logged with its duration; failures are logged, not raised."""

    async def run() -> None:
        started = time.perf_counter()
        entry = stats.setdefault(name, JobStats())
        entry.running += 1
        try:
            await func()
        except Exception:
            entry.failures += 1
            log.exception("job %s failed", name)
        finally:
            entry.running -= 1
            elapsed = time.perf_counter() - started
            entry.runs += 1
            entry.total_s += elapsed
            entry.max_s = max(entry.max_s, elapsed)
            log.info("job %s ran in %.3f s", name, elapsed)

    return run


def start_realtime(jobs: Sequence[JobSpec], *, timezone: str,
                   stats: dict[str, JobStats]) -> AsyncIOScheduler:
    """Start an AsyncIOScheduler running ``jobs`` (call inside a running event loop)."""
    scheduler = AsyncIOScheduler(timezone=timezone)
    for job in jobs:
        scheduler.add_job(
            timed(job.name, job.func, stats), job.trigger, id=job.name, name=job.name,
            max_instances=1, coalesce=True, misfire_grace_time=30,
        )
    scheduler.start()
    return scheduler


async def stop_realtime(scheduler: AsyncIOScheduler, stats: dict[str, JobStats], *,
                        timeout_s: float = 10.0) -> None:
    """Pause, let running jobs finish (up to ``timeout_s``), then shut the scheduler down."""
    scheduler.pause()
    deadline = time.monotonic() + timeout_s
    while any(s.running for s in stats.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    scheduler.shutdown(wait=False)


async def run_simulated(
    jobs: Sequence[JobSpec],
    *,
    start: datetime,
    end: datetime,
    advance_to: Callable[[datetime], None],
    stats: dict[str, JobStats],
    on_progress: Callable[[datetime], None] | None = None,
) -> None:
    """Run ``jobs`` in simulated time from ``start`` to ``end``.

    ``advance_to(t)`` moves the clock (and the simulated world) to ``t`` before the jobs
    due at ``t`` run. Jobs due at the same time run in the order of ``jobs``.
    """
    wrapped = [timed(j.name, j.func, stats) for j in jobs]
    next_fire: list[datetime | None] = [j.trigger.get_next_fire_time(None, start) for j in jobs]
    while True:
        due_times = [t for t in next_fire if t is not None and t < end]
        if not due_times:
            break
        now = min(due_times)
        advance_to(now)
        for i, job in enumerate(jobs):
            if next_fire[i] == now:
                await wrapped[i]()
                next_fire[i] = job.trigger.get_next_fire_time(now, now)
                if next_fire[i] is not None and next_fire[i] <= now:  # guard against a stall
                    raise RuntimeError(f"trigger of job {job.name} did not advance past {now}")
        if on_progress is not None:
            on_progress(now)
        await asyncio.sleep(0)  # let servers and clients make progress
    advance_to(end)
