"""Computed reports kept between requests, recomputed when the data behind them changes.

A daily report (KPIs, plan against actual) reads every plan that covers the day and the
day's flows; a resident report reads a year of the household's meter. Both take from a
fraction of a second to seconds, and every screen asks for them again. :class:`FigureCache`
keeps each answer under a key that holds the *store's version* for it
(:func:`store_version`): the newest plan's id, the time of the newest reading up to the end
of the period and the AMI source files' times. A new plan or a new reading changes the
version of the periods it concerns, and the next request recomputes; the app's own writes
(a DR event entered) clear the cache. What the version cannot see (readings written late,
with a time earlier than the newest one; aggregates rebuilt; alarms, bids and settlements
written by ``cems run``) is picked up when the entry is ``max_age_s`` old (5 minutes).

Requests for the same key while it is being computed wait for that one computation; at
most ``max_running`` different computations run at once (the rest wait their turn), so a
burst of report requests leaves the other routes CPU. Cached objects are shared between
requests: read them, never change them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from cems.config.model import SiteConfig
from cems.reports import data
from cems.store import TelemetryStore

T = TypeVar("T")
#: Readings window (seconds) searched for the newest pulse reading (at least two polls).
PULSE_WINDOW_S = 120.0


def store_version(store: TelemetryStore, config: SiteConfig, until: pd.Timestamp,
                  now: pd.Timestamp, extra_files: tuple[Path, ...] = ()) -> tuple[Any, ...]:
    """A fingerprint of what the reports of a period ending at ``until`` read, through the
    store's own queries: the id of the newest plan; the time of the newest reading of the
    site's *pulse* device (the grid meter, written at every poll) in the last few polls
    before ``until`` (or now, if earlier); and the modification times of ``extra_files``.

    For a period in progress the reading time moves at every poll; for a past period it
    stays put (a reading written late, with an earlier time, is seen through the cache's
    ``max_age_s``)."""
    plan = store.latest_plan()
    end = min(until, now)
    window = pd.Timedelta(seconds=max(PULSE_WINDOW_S, 2 * config.scheduler.poll_interval_s))
    pulse = _pulse_device(config)
    rows = store.readings(device=pulse, start=(end - window).to_pydatetime(),
                          end=end.to_pydatetime()) if pulse else pd.DataFrame()
    newest = None if rows.empty else str(rows["time"].max())
    files = tuple(_mtime(p) for p in extra_files)
    return (None if plan is None else int(plan["id"]), newest, files)


def _pulse_device(config: SiteConfig) -> str | None:
    """The device whose readings show that polling goes on: the grid meter, else the first
    meter or asset of the site."""
    if config.site.grid.meter:
        return config.site.grid.meter
    assets = config.assets
    ids = [m.id for m in config.meters] + [a.id for group in (
        assets.pv, assets.ess, assets.fuel_cells, assets.ev_chargers) for a in group]
    return ids[0] if ids else None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


class _Entry:
    """One cached answer, or the computation of it under way."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.made_at = 0.0


class FigureCache:
    """Reports of one site and store, cached per period and store version (see the
    module)."""

    def __init__(self, config: SiteConfig, store: TelemetryStore, *, max_entries: int = 128,
                 max_age_s: float = 300.0, max_running: int = 2,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self.clock = clock
        self.wall_clock = wall_clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._running = threading.BoundedSemaphore(max_running)
        self.computed = 0  # computations made (for tests and the benchmark)
        self._files = tuple(_ami_files(config))

    # ------------------------------------------------------------------ reports

    def daily_report(self, day: date) -> Any:
        """:func:`cems.reports.daily.daily_report` of the local ``day``."""
        from cems.reports.daily import daily_report

        _, end = data.day_bounds(day, self.config.site.timezone)
        return self.get(("daily", day), end,
                        lambda: daily_report(self.config, self.store, day))

    def resident_report(self, household_id: str, month: str) -> Any:
        """:func:`cems.reports.resident.resident_report` of a household and ``YYYY-MM``."""
        from cems.reports.resident import resident_report

        _, end = data.month_bounds(month, self.config.site.timezone)
        return self.get(("resident", household_id, month), end,
                        lambda: resident_report(self.config, self.store, household_id, month))

    def zeb(self, year: int) -> dict[str, Any]:
        """The ZEB report (:func:`cems.reports.district.zeb_dict`) of a calendar year."""
        from cems.reports.district import district_zeb, zeb_dict

        start = pd.Timestamp(f"{year}-01-01", tz=self.config.site.timezone)
        end = start + pd.DateOffset(years=1)
        return self.get(("zeb", year), end,
                        lambda: zeb_dict(district_zeb(self.config, self.store, start, end)))

    # ------------------------------------------------------------------ machinery

    def get(self, key: Hashable, until: pd.Timestamp, compute: Callable[[], T]) -> T:
        """The cached value of ``key`` for the store's current version up to ``until``,
        computed by ``compute`` when missing, stale or older than ``max_age_s``. An error is
        raised to every waiting caller and not kept."""
        now = pd.Timestamp(self.wall_clock(), unit="s", tz="UTC").floor("us")
        full = (key, store_version(self.store, self.config, until, now, self._files))
        with self._lock:
            entry = self._entries.get(full)
            fresh = entry is not None and (not entry.done.is_set() or (entry.error is None
                                           and self.clock() - entry.made_at < self.max_age_s))
            if fresh:
                self._entries.move_to_end(full)
                owner = False
            else:
                entry = _Entry()
                self._entries[full] = entry
                self._drop_old(key, full)
                owner = True
        if owner:
            try:
                with self._running:
                    entry.value = compute()
                with self._lock:
                    self.computed += 1
            except BaseException as exc:
                entry.error = exc
                with self._lock:
                    if self._entries.get(full) is entry:
                        del self._entries[full]
                raise
            finally:
                entry.made_at = self.clock()
                entry.done.set()
            return entry.value  # type: ignore[no-any-return]
        entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry.value  # type: ignore[no-any-return]

    def _drop_old(self, key: Hashable, keep: Hashable) -> None:
        """Forget other versions of ``key`` and the least recently used beyond the bound
        (entries still being computed stay until done)."""
        for other in [k for k in self._entries if k[0] == key and k != keep]:
            if self._entries[other].done.is_set():
                del self._entries[other]
        while len(self._entries) > self.max_entries:
            oldest = next(iter(self._entries))
            if oldest == keep:
                break
            del self._entries[oldest]

    def clear(self) -> None:
        """Forget every entry (the next requests recompute)."""
        with self._lock:
            self._entries.clear()


def _ami_files(config: SiteConfig) -> list[Path]:
    """The site's AMI source files (reports read household usage from them)."""
    return [Path(source.path) for source in config.ami_sources]
