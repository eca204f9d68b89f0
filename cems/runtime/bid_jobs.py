"""The runtime's brokerage bid jobs: the round-1 and round-2 bids and their watch.

:class:`BidJobs` is owned by :class:`cems.runtime.runtime.Runtime`, which keeps the job
methods the scheduler calls (``bid``, ``bid_round2``, ``bid_watch``) as thin delegations.
A bid plans over the whole delivery day through the runtime's plan path
(:meth:`Runtime.plan_locked`: stored and adopted like any plan), falls back to the forecast when the
optimiser fails, and is stored and written by :mod:`cems.runtime.bidding` and
:mod:`cems.markets.bids`. A bid that cannot be made raises ``bid_failed`` and is retried by
:meth:`BidJobs.watch` until its deadline, after which ``bid_missed`` says what KPX does
without it; a failure never raises out of a job (docs/runtime.md, "Brokerage bids").
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from cems.errors import CemsError
from cems.markets.bids import bids_dir, deadline, write_bid_files
from cems.markets.portfolio import site_portfolio
from cems.runtime import bidding
from cems.runtime.planner import horizon, stored_schedule

if TYPE_CHECKING:
    from cems.runtime.runtime import Runtime

log = logging.getLogger(__name__)


class BidJobs:
    """Round-1 and round-2 brokerage bids of one runtime, at most one per day and round."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = asyncio.Lock()
        self._tries: dict[tuple[date, int], datetime] = {}  # last attempt per (D, round)
        self._missed: set[tuple[date, int]] = set()

    async def bid(self, round_no: int) -> bool:
        """Plan over tomorrow, then store and write the round's bid; True when it is made
        (or was already). Failures raise a ``bid_failed`` alarm (device ``bid_rN``) and are
        retried by :meth:`watch`; a passed deadline raises ``bid_missed``."""
        rt = self.runtime
        async with self._lock:
            now = rt.clock.now()
            tz = rt.config.site.timezone
            delivery = bidding.delivery_day(now, tz)
            if self.made(delivery, round_no):
                return True
            closes = deadline(delivery, round_no, tz).to_pydatetime()
            if now >= closes:
                self.missed(delivery, round_no, closes, now)
                return False
            self._tries[(delivery, round_no)] = now
            try:
                await self._make(delivery, round_no, now)
            except Exception as exc:  # a bid failure must never stop the site
                rt.counters.extra["bid_failures"] = \
                    rt.counters.extra.get("bid_failures", 0) + 1
                log.exception("round %d bid for %s failed", round_no, delivery)
                rt.store.raise_alarm(
                    at=now, device=f"bid_r{round_no}", code="bid_failed", severity="critical",
                    message=f"round {round_no} bid for {delivery} not made ({exc}); retrying "
                    f"every {rt.options.bid_retry_min} min until the deadline "
                    f"{closes.isoformat()}")
                return False
            rt.store.clear_alarms(at=now, device=f"bid_r{round_no}")
            rt.counters.extra["bids"] = rt.counters.extra.get("bids", 0) + 1
            return True

    async def _make(self, delivery: date, round_no: int, now: datetime) -> None:
        rt = self.runtime
        config = rt.config
        tz = config.site.timezone
        portfolio = site_portfolio(config)
        horizon_h = bidding.horizon_covering(now, delivery, tz, config.scheduler.step_min,
                                             rt.options.horizon_h)
        plan, plan_id, error = await rt.plan_locked("day_ahead", horizon_h)
        if plan is not None:
            schedule = bidding.with_sold_apart(
                config, stored_schedule(plan.schedule, config, plan.pv_arrays_kw),
                plan.pv_arrays_kw)
            source = "plan"
        else:
            index = horizon(now, config.scheduler.step_min, horizon_h)
            schedule = bidding.forecast_schedule(config, rt.state, now, horizon_h,
                                                 rt.load_forecast(index), rt.pv_forecast(index))
            source = "forecast"
        bid, notes = bidding.bid_from_schedule(config, schedule, portfolio, delivery,
                                               round_no)
        if error is not None:
            notes.insert(0, f"plan failed ({error}): bid from the forecast, storage and V2G 0")
        closes = deadline(delivery, round_no, tz).to_pydatetime()
        if rt.clock.now() >= closes:
            raise CemsError(f"the bid was ready only after the deadline {closes.isoformat()}")
        folder = rt.options.bid_dir or bids_dir(config)
        json_path, csv_path = await asyncio.to_thread(write_bid_files, bid, portfolio, folder,
                                                      submitted_at=rt.clock.now())
        rt.store.record_bid(
            market=bidding.MARKET, trade_date=delivery.isoformat(), round_no=round_no,
            submitted=rt.clock.now(), payload={**bid.to_json(portfolio), "source": source,
                                  "plan_id": plan_id, "notes": notes,
                                  "files": [str(json_path), str(csv_path)]})
        for note in notes:
            log.warning("round %d bid for %s: %s", round_no, delivery, note)
        log.info("round %d bid for %s from the %s: %.1f kWh; wrote %s", round_no, delivery,
                 source, float(bid.aggregate_kwh.sum()), json_path)

    async def watch(self) -> None:
        """Make a bid still owed for tomorrow: retry a failed one (at most every
        ``bid_retry_min``) or one whose time passed while the runtime was down, until its
        deadline; after the deadline raise ``bid_missed``."""
        rt = self.runtime
        now = rt.clock.now()
        tz = ZoneInfo(rt.config.site.timezone)
        delivery = bidding.delivery_day(now, rt.config.site.timezone)
        retry = timedelta(minutes=rt.options.bid_retry_min)
        for round_no, at in ((1, rt.options.day_ahead_time),
                             (2, rt.options.bid_round2_time)):
            if self.made(delivery, round_no):
                continue
            hour, minute = (int(x) for x in at.split(":"))
            opens = datetime.combine(delivery - timedelta(days=1), time(hour, minute), tz)
            closes = deadline(delivery, round_no, rt.config.site.timezone).to_pydatetime()
            last = self._tries.get((delivery, round_no))
            if now >= closes:
                self.missed(delivery, round_no, closes, now)
            elif now >= opens and (last is None or now - last >= retry):
                await rt.bid(round_no)

    def made(self, delivery: date, round_no: int) -> bool:
        """True when the store holds the round's bid for ``delivery``."""
        return not self.runtime.store.bids(market=bidding.MARKET,
                                           trade_date=delivery.isoformat(),
                                           round_no=round_no).empty

    def missed(self, delivery: date, round_no: int, closes: datetime, now: datetime) -> None:
        """Raise ``bid_missed`` saying what KPX does without the round (logged once)."""
        effect = ("KPX counts round 1 for both rounds (규칙 제14.4.1조 ② 4호)" if round_no == 2
                  else "the day cannot be settled from the bids (round 1 is required)")
        self.runtime.store.raise_alarm(
            at=now, device=f"bid_r{round_no}", code="bid_missed", severity="critical",
            message=f"no round {round_no} bid for {delivery} before the deadline "
            f"{closes.isoformat()}; {effect}")
        if (delivery, round_no) not in self._missed:
            self._missed.add((delivery, round_no))
            log.error("round %d bid for %s missed its deadline %s", round_no, delivery, closes)


__all__ = ["BidJobs"]
