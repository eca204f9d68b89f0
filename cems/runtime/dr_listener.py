"""The running site's OpenADR VEN: received DR events are decided, committed and stored.

``cems run`` starts a :class:`DrListener` when the site has
``demand_response.openadr_vtn_url``. It registers an :class:`cems.markets.openadr_ven.OpenAdrVen`
with the VTN (retrying every ``retry_s`` while the VTN cannot be reached, with a
``dr_ven_offline`` alarm open meanwhile) and answers each event by the site's rules
(:func:`cems.markets.openadr_ven.decide`). Before an optIn it

1. reads the participants' 15-minute usage from the store (or their AMI files,
   :func:`cems.reports.data.household_usage`) and computes the event's CBL and import cap
   (:func:`cems.markets.dr_workflow.commitment_for`);
2. checks that a plan from the live state can keep the cap
   (:func:`cems.markets.dr_workflow.plan_for_event`); a failure opts out;
3. stores the event as ``accepted`` with its commitment
   (:func:`cems.markets.dr_workflow.record_event`).

After an optIn it asks the runtime for a re-plan at once; from then on every re-plan takes
the cap from the store (:mod:`cems.runtime.dr_commitments`). Opted-out events are stored as
``opted_out``; a cancellation from the VTN marks the stored event ``cancelled`` and asks for
a re-plan, which drops its cap. :meth:`DrListener.stop` stops the VEN and waits for a re-plan it
started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import pandas as pd

from cems.errors import CemsError
from cems.markets.dr_accept import commitment_from_store, stored_events
from cems.markets.dr_workflow import (
    close_event,
    plan_for_event,
    record_event,
)
from cems.markets.events import DrEvent
from cems.markets.openadr_ven import Decision, OpenAdrVen
from cems.runtime.planner import horizon
from cems.runtime.runtime import Runtime

log = logging.getLogger(__name__)

#: Alarm open while the VEN is not registered with its VTN.
VEN_ALARM = "dr_ven_offline"


class DrListener:
    """The VEN of a running site, wired to its runtime and store."""

    def __init__(self, runtime: Runtime, *, vtn_url: str, ven_name: str,
                 register_timeout_s: float = 10.0, retry_s: float = 60.0,
                 callback_timeout_s: float = 60.0) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.store = runtime.store
        self.vtn_url = vtn_url
        self.ven_name = ven_name
        self.register_timeout_s = register_timeout_s
        self.retry_s = retry_s
        self.callback_timeout_s = callback_timeout_s
        self.ven: OpenAdrVen | None = None
        self.decisions: list[Decision] = []
        self.registered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._replans: set[asyncio.Task[None]] = set()

    def _now(self) -> pd.Timestamp:
        return pd.Timestamp(self.runtime.clock.now()).tz_convert(self.config.site.timezone)

    def _new_ven(self) -> OpenAdrVen:
        tz = self.config.site.timezone
        now = self._now()
        known = [e for e in stored_events(self.store, statuses=("accepted",),
                                          default_program=self.config.demand_response.program)
                 if e.end > now]
        return OpenAdrVen(self.config, vtn_url=self.vtn_url, ven_name=self.ven_name,
                          on_accept=self._on_accept, clock=self._now,
                          callback_timeout_s=self.callback_timeout_s,
                          known_events=[DrEvent(e.event_id, e.program, e.start.tz_convert(tz),
                                                e.end.tz_convert(tz),
                                                e.notified_at.tz_convert(tz), e.committed_kw,
                                                e.source) for e in known],
                          on_decision=self._on_decision)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Register with the VTN in the background (retrying); returns at once."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._register(),
                                                                name="dr-ven-register")

    async def _register(self) -> None:
        while True:
            ven = self._new_ven()
            try:
                await ven.start(timeout_s=self.register_timeout_s)
            except Exception as exc:  # an unreachable VTN must not stop the site
                with contextlib.suppress(Exception):
                    await ven.stop()
                self.store.raise_alarm(
                    at=self.runtime.clock.now(), code=VEN_ALARM, severity="warning",
                    message=f"OpenADR VEN {self.ven_name!r} not registered with "
                    f"{self.vtn_url}: {exc}; DR events are not received (retry every "
                    f"{self.retry_s:g} s)")
                log.warning("VEN registration failed (%s); retrying in %g s", exc,
                            self.retry_s)
                await asyncio.sleep(self.retry_s)
                continue
            self.ven = ven
            self.store.clear_alarms(at=self.runtime.clock.now(), code=VEN_ALARM)
            log.info("VEN %s registered with %s as %s", self.ven_name, self.vtn_url,
                     ven.ven_id)
            self.registered.set()
            return

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop registering/polling, close the VEN's session, let a started re-plan end."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.ven is not None:
            await self.ven.stop()
        if self._replans:
            _, pending = await asyncio.wait(self._replans, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._replans, return_exceptions=True)

    # ------------------------------------------------------------------ callbacks

    async def _on_accept(self, event: DrEvent) -> None:
        """Commit to ``event`` (CBL, cap, a plan that keeps it) and store it; raising here
        makes the VEN opt out."""
        await asyncio.to_thread(self._commit, event, self._now())

    def _commit(self, event: DrEvent, now: pd.Timestamp) -> None:
        config = self.config
        commitment = commitment_from_store(config, self.store, event, now=now)
        step_min = config.scheduler.step_min
        hours = max(self.runtime.options.horizon_h, math.ceil(
            (event.end - now.floor(f"{step_min}min")).total_seconds() / 3600.0))
        index = horizon(now.to_pydatetime(), step_min, hours)
        plan = plan_for_event(config, self.runtime.state, now.to_pydatetime(), commitment,
                              horizon_h=hours, load_forecast_kw=self.runtime.load_forecast(index),
                              time_limit_s=self.runtime.options.solve_time_limit_s)
        record_event(self.store, event, opted_in=True, status="accepted", commitment=commitment,
                     detail={"accepted_at": now.isoformat(), "plan_status": plan.status})

    def _on_decision(self, decision: Decision) -> None:
        self.decisions.append(decision)
        extra = self.runtime.counters.extra
        key = "dr_opt_in" if decision.opt_in else "dr_opt_out"
        extra[key] = extra.get(key, 0) + 1
        if decision.opt_in:
            self._start_replan(decision.openadr_id, "accepted: re-planning with its cap")
            return
        try:
            if decision.event is not None:
                record_event(self.store, decision.event, opted_in=False, status="opted_out",
                             detail={"reason": decision.reason})
            elif decision.status == "cancelled" and close_event(
                    self.store, decision.openadr_id, status="cancelled", reason=decision.reason):
                self._start_replan(decision.openadr_id, "cancelled: re-planning without it")
        except CemsError as exc:
            log.error("DR event %s: could not store the optOut: %s", decision.openadr_id, exc)

    def _start_replan(self, event_id: str, why: str) -> None:
        log.info("DR event %s %s", event_id, why)
        task = asyncio.get_running_loop().create_task(self.runtime.replan())
        self._replans.add(task)
        task.add_done_callback(self._replans.discard)


def listener_for(runtime: Runtime, **options: float) -> DrListener | None:
    """The site's VEN listener (``options``: :class:`DrListener` timeouts), or None when the
    site has no ``demand_response.openadr_vtn_url``."""
    dr = runtime.config.demand_response
    if dr.openadr_vtn_url is None:
        return None
    return DrListener(runtime, vtn_url=dr.openadr_vtn_url,
                      ven_name=dr.ven_name or runtime.config.site.id, **options)


__all__ = ["VEN_ALARM", "DrListener", "listener_for"]
