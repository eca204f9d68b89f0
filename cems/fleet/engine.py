"""Plan many sites at once on Dask distributed: local workers by default, a cluster on request.

:func:`run_batch` hands one task per site (:func:`cems.fleet.work.plan_site`) to Dask and
collects them as they finish (``as_completed``), calling ``on_result`` for each so results
reach the store while the rest still run. Without ``address`` it starts a local cluster of
``workers`` single-threaded worker processes (HiGHS holds the GIL while it solves, so one
thread per process) and stops it at the end; with ``address`` (``tcp://host:8786``) it uses
a running scheduler and its workers.

Isolation: a site's task that raises is retried once (Dask ``retries=1``), then reported
with its reason; a worker that dies mid-task makes the scheduler run the task elsewhere, and
a task that loses a second worker is reported (``allowed-failures`` = 1, and
``worker-saturation`` = 1.0 so a dying worker holds no queued site; on a remote cluster set
both in the scheduler's Dask configuration, docs/portfolio.md). Neither stops the other
sites.

Why Dask and not Ray: measured on the project's 2-core machine (docs/portfolio.md).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TextIO

from cems.errors import InputError
from cems.fleet.work import SITE_TIME_LIMIT_S, SitePlan, SitePlanningError, plan_site, warm_up

#: Attempts a site gets: the first and one retry.
ATTEMPTS = 2
#: How long to wait for a remote scheduler's first worker (s).
WORKER_WAIT_S = 30.0


@dataclass(frozen=True)
class SiteError:
    """A site that failed every attempt."""

    site_file: str
    reason: str
    attempts: int


@dataclass(frozen=True)
class BatchResult:
    """Every site's outcome, in completion order, and the batch's wall time."""

    planned: tuple[SitePlan, ...]
    failed: tuple[SiteError, ...]
    wall_s: float
    start_s: float
    workers: int
    address: str | None


@contextlib.contextmanager
def dask_client(address: str | None, workers: int) -> Iterator[Any]:
    """A Dask client: on a local cluster of ``workers`` processes (stopped afterwards) or on
    the scheduler at ``address``."""
    import dask
    from distributed import Client, LocalCluster

    # the engine's own lines (scheduler and nannies starting, each failed task's traceback:
    # its reason is reported with the site) only with -v
    verbose = logging.getLogger().getEffectiveLevel() <= logging.INFO
    if not verbose:
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if address is None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    with dask.config.set(
        {
            "distributed.scheduler.allowed-failures": ATTEMPTS - 1,
            # one task on a single-threaded worker at a time: a worker that dies takes only
            # the site it was planning with it (a queued site would count as a failure too)
            "distributed.scheduler.worker-saturation": 1.0,
        }
    ):
        if address is None:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # no dashboard; the scheduler's small HTTP server (health, metrics) on a free
                # loopback port rather than 8787, which another cluster may hold
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.INFO if verbose else logging.CRITICAL,
            )
            try:
                with Client(cluster) as client:
                    yield client
            finally:
                cluster.close()
        else:
            try:
                client = Client(address, timeout=10)
            except (OSError, TimeoutError) as exc:
                raise InputError(
                    f"--address {address}: no Dask scheduler answers there ({exc})"
                ) from exc
            try:
                yield client
            finally:
                client.close()


def _reason(exc: BaseException) -> str:
    """One line on why a task failed (a SitePlanningError's message, or the engine's error)."""
    if isinstance(exc, SitePlanningError):
        return str(exc)
    name = type(exc).__name__
    if name == "KilledWorker":
        return f"worker lost on every attempt ({ATTEMPTS}): {exc}"
    return f"{name}: {exc}"


class Progress:
    """A console progress bar on standard error: a redrawn line on a terminal, a line per
    tenth of the batch otherwise."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.last_tenth = -1

    def update(self, done: int, failed: int) -> None:
        now = time.perf_counter()
        tenth = done * 10 // max(self.total, 1)
        final = done == self.total
        if self.tty and not final and now - self.last_draw < 0.2:
            return
        if not self.tty and tenth == self.last_tenth and not final:
            return
        self.last_draw, self.last_tenth = now, tenth
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        filled = int(self.WIDTH * done / max(self.total, 1))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        eta_text = f"{eta:4.0f} s left" if eta == eta else "   ? s left"
        line = (
            f"[{bar}] {done}/{self.total} sites, {failed} failed, {rate:5.1f} sites/s, {eta_text}"
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run_batch(
    site_files: Sequence[str],
    delivery: date,
    round_no: int = 1,
    *,
    address: str | None = None,
    workers: int = 2,
    time_limit_s: float = SITE_TIME_LIMIT_S,
    on_result: Callable[[SitePlan | SiteError], None] | None = None,
    progress: Progress | None = None,
    task: Callable[..., SitePlan] = plan_site,
) -> BatchResult:
    """Plan every site of ``site_files`` for ``delivery``; failures are isolated, retried
    once and returned with their reasons. ``on_result`` sees each outcome as it arrives."""
    from distributed import as_completed

    # keys are global on a scheduler: each batch's own, so two runs never share a result
    batch = uuid.uuid4().hex[:12]
    planned: list[SitePlan] = []
    failed: list[SiteError] = []
    started = time.perf_counter()
    with dask_client(address, workers) as client:
        if address is not None:
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError as exc:
                raise InputError(
                    f"--address {address}: the scheduler has no worker (waited "
                    f"{WORKER_WAIT_S:g} s); start `dask worker` on a machine"
                ) from exc
        try:  # every worker imports the planning code now, not in its first site
            client.run(warm_up)
        except Exception as exc:  # a worker without the project (or another version of it)
            raise InputError(
                f"the workers cannot load the planning code ({type(exc).__name__}: "
                f"{exc}); install the same cems on every worker"
            ) from exc
        start_s = time.perf_counter() - started
        n_workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        futures = client.map(
            task,
            list(site_files),
            delivery=delivery,
            round_no=round_no,
            time_limit_s=time_limit_s,
            retries=ATTEMPTS - 1,
            pure=False,
            key=[f"cems-site-{batch}-{i}" for i in range(len(site_files))],
        )
        by_key = {f.key: path for f, path in zip(futures, site_files, strict=True)}
        for future in as_completed(futures):
            outcome: SitePlan | SiteError
            if future.status == "finished":
                outcome = future.result()
                planned.append(outcome)
            else:
                exc = future.exception()
                outcome = SiteError(by_key[future.key], _reason(exc), ATTEMPTS)
                failed.append(outcome)
            future.release()
            if on_result is not None:
                on_result(outcome)
            if progress is not None:
                progress.update(len(planned) + len(failed), len(failed))
    return BatchResult(
        tuple(planned), tuple(failed), time.perf_counter() - started, start_s, n_workers, address
    )
