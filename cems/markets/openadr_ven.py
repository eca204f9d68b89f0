"""An OpenADR 2.0b VEN (openleadr 0.5.36) that turns received events into DR events.

Each ``oadrDistributeEvent`` becomes a :class:`cems.markets.events.DrEvent` with
``source="openadr"`` (:func:`event_from_openadr`), is checked against the KPX rules
(:func:`cems.markets.events.check_event`, :func:`~cems.markets.events.check_against`) and the
site's opt-in rules (:func:`decide`), and is answered optIn or optOut. An accepted event is
handed to the ``on_accept`` callback (the planner) *before* the VEN answers: if the callback
fails (for instance the plan cannot meet the cap), the VEN opts out instead.

Signal mapping (project convention, see docs/markets.md; KPX publishes no OpenADR profile):

* ``LOAD_CONTROL`` / ``x-loadControlCapacity``: the payload is the requested reduction in kW;
  the committed reduction is the largest payload of the intervals.
* ``SIMPLE`` / ``level``: level 1-3 asks for the registered reduction
  (``demand_response.max_reduction_kw``); level 0 in every interval asks for nothing.
* The program is the last path segment of the market context when it names one
  (``oadr://kpx/kukmin_dr``), else ``demand_response.program``.

Transport: plain HTTP without XML signatures, so the VTN must be on a loopback address
(127.0.0.1, ::1, localhost); TLS with certificates is not wired up yet. Start and callbacks
have bounded timeouts; :meth:`OpenAdrVen.stop` cancels the client's jobs and closes its
HTTP session.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from cems.config.base import LOOPBACK_HOSTS
from cems.config.model import DemandResponse, SiteConfig
from cems.errors import CemsError, InputError
from cems.markets.calendar import DrCalendar
from cems.markets.events import PROGRAMS, DrEvent, check_against, check_event
from cems.quiet import ignore_known_dependency_warnings

ignore_known_dependency_warnings()

from openleadr import OpenADRClient  # noqa: E402 - after the warning filter
from openleadr.enums import OPT  # noqa: E402

log = logging.getLogger(__name__)

SUPPORTED_SIGNALS = (("LOAD_CONTROL", "x-loadControlCapacity"), ("SIMPLE", "level"))

AcceptCallback = Callable[[DrEvent], Awaitable[Any] | Any]
Clock = Callable[[], pd.Timestamp]


class VenError(CemsError):
    """The VEN could not reach or register with its VTN."""


@dataclass(frozen=True)
class Decision:
    """The answer to one received event; ``event`` is None when it could not be read."""

    openadr_id: str
    opt_in: bool
    reason: str
    event: DrEvent | None = None
    status: str | None = None  # the VTN's event_status when it ends the event (cancelled)


def _aware(value: Any, tz: str, where: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise InputError(f"{where}: {value!r} has no time zone")
    return ts.tz_convert(tz)


def event_from_openadr(event: Mapping[str, Any], *, notified_at: pd.Timestamp,
                       dr: DemandResponse, tz: str = "Asia/Seoul") -> DrEvent:
    """Map an openleadr event dict onto a :class:`DrEvent` (``source="openadr"``)."""
    descriptor = event.get("event_descriptor") or {}
    event_id = str(descriptor.get("event_id") or "")
    if not event_id:
        raise InputError("OpenADR event without event_id")
    name = f"OpenADR event {event_id!r}"
    signals = event.get("event_signals") or []
    if isinstance(signals, Mapping):
        signals = signals.get("event_signals") or []
    chosen = next((s for s in signals
                   if (s.get("signal_name"), s.get("signal_type")) in SUPPORTED_SIGNALS), None)
    if chosen is None:
        found = ", ".join(f"{s.get('signal_name')}/{s.get('signal_type')}" for s in signals)
        raise InputError(f"{name}: no supported signal (found {found or 'none'}; supported: "
                         + ", ".join(f"{n}/{t}" for n, t in SUPPORTED_SIGNALS) + ")")
    intervals = sorted(chosen.get("intervals") or [],
                       key=lambda i: _aware(i["dtstart"], tz, f"{name}: dtstart"))
    if not intervals:
        raise InputError(f"{name}: the signal has no intervals")
    start = _aware(intervals[0]["dtstart"], tz, f"{name}: dtstart")
    end = start
    payloads = []
    for interval in intervals:
        begin = _aware(interval["dtstart"], tz, f"{name}: dtstart")
        if begin != end:
            raise InputError(f"{name}: intervals are not contiguous ({end.isoformat()} to "
                             f"{begin.isoformat()})")
        end = begin + pd.Timedelta(interval["duration"])
        payloads.append(float(interval["signal_payload"]))
    if chosen["signal_name"] == "SIMPLE":
        committed = dr.max_reduction_kw if max(payloads) >= 1 else 0.0
    else:
        committed = max(payloads)
    context = str(descriptor.get("market_context") or "").rstrip("/")
    segment = context.rsplit("/", 1)[-1]
    program = segment if segment in PROGRAMS else dr.program
    return DrEvent(event_id=event_id, program=program, start=start, end=end,  # type: ignore[arg-type]
                   notified_at=notified_at.tz_convert(tz), committed_kw=committed,
                   source="openadr")


def decide(event: DrEvent, dr: DemandResponse, *, known: Iterable[DrEvent] = (),
           tz: str = "Asia/Seoul", calendar: DrCalendar | None = None) -> Decision:
    """Opt in or out by the site's rules, in this order: DR enabled, automatic opt-in,
    the site's program, KPX event rules, the site's minimum notice, a positive reduction
    within ``max_reduction_kw``, no clash with accepted events."""
    def no(reason: str) -> Decision:
        return Decision(event.event_id, False, reason, event)

    if not dr.enabled:
        return no("demand_response.enabled is false")
    if not dr.auto_opt_in:
        return no("demand_response.auto_opt_in is false: events need a manual opt-in")
    if event.program != dr.program:
        return no(f"event is {event.program}; the site takes part in {dr.program}")
    try:
        check_event(event, tz=tz, calendar=calendar)
    except InputError as exc:
        return no(str(exc))
    if event.notice_min < dr.min_notice_min:
        return no(f"notice {event.notice_min:g} min is shorter than "
                  f"demand_response.min_notice_min {dr.min_notice_min}")
    committed = event.committed_kw or 0.0
    if committed <= 0:
        return no("the event asks for no reduction")
    if committed > dr.max_reduction_kw:
        return no(f"requested reduction {committed:g} kW exceeds "
                  f"demand_response.max_reduction_kw {dr.max_reduction_kw:g}")
    try:
        check_against(event, known, tz=tz)
    except InputError as exc:
        return no(str(exc))
    return Decision(event.event_id, True, "accepted", event)


def check_vtn_url(url: str) -> None:
    """Refuse a VTN URL that is not plain HTTP on a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        raise InputError(
            f"VTN URL {url!r}: this VEN speaks plain HTTP without signatures, which is only "
            "allowed to a VTN on a loopback address (http://127.0.0.1:PORT/OpenADR2/Simple/2.0b)")


class OpenAdrVen:
    """An openleadr VEN wired to the site's DR rules and a planner callback.

    ``on_accept`` (sync or async) receives each accepted :class:`DrEvent`; a sync callback
    runs in a worker thread. ``clock`` gives "now" for the notice (default: wall clock).
    ``on_decision`` (sync, quick) sees every answer, e.g. to print or store it.
    """

    def __init__(self, config: SiteConfig, *, vtn_url: str, ven_name: str,
                 on_accept: AcceptCallback | None = None, clock: Clock | None = None,
                 callback_timeout_s: float = 60.0, known_events: Iterable[DrEvent] = (),
                 on_decision: Callable[[Decision], None] | None = None) -> None:
        check_vtn_url(vtn_url)
        self.config = config
        self.vtn_url = vtn_url
        self.on_accept = on_accept
        self.on_decision = on_decision
        self.callback_timeout_s = callback_timeout_s
        self.tz = config.site.timezone
        self._clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))
        self._calendar = DrCalendar(
            count_temporary_holidays=config.demand_response.count_temporary_holidays)
        self.accepted: dict[str, DrEvent] = {e.event_id: e for e in known_events}
        self.decisions: list[Decision] = []
        self._client = OpenADRClient(ven_name=ven_name, vtn_url=vtn_url,
                                     disable_signature=True, show_fingerprint=False,
                                     allow_jitter=False)
        self._client.add_handler("on_event", self.handle_event)
        self._client.add_handler("on_update_event", self.handle_event)
        self._running = False

    @property
    def ven_id(self) -> str | None:
        """The id the VTN assigned at registration."""
        return self._client.ven_id

    async def start(self, timeout_s: float = 10.0) -> None:
        """Register with the VTN and start polling; :class:`VenError` on failure/timeout."""
        try:
            await asyncio.wait_for(self._client.run(), timeout_s)
        except TimeoutError:
            await self.stop()
            raise VenError(
                f"VTN {self.vtn_url}: no registration within {timeout_s:g} s") from None
        if not self._client.registration_id:
            await self.stop()
            raise VenError(f"VTN {self.vtn_url}: registration refused or VTN unreachable")
        self._running = True

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop polling and close the HTTP session (idempotent).

        A poll in flight (which may be sending an optIn/optOut) gets up to ``grace_s``
        seconds to finish before it is cancelled.
        """
        client = self._client
        scheduler = client.scheduler
        if scheduler.running:
            scheduler.pause()  # no new polls
            # APScheduler 3's AsyncIOExecutor keeps its running job tasks here; shutdown()
            # would cancel them, so let them finish first (bounded).
            executor = scheduler._executors.get("default")
            pending = [f for f in getattr(executor, "_pending_futures", ())
                       if not f.done() and f is not asyncio.current_task()]
            if pending:
                await asyncio.wait(pending, timeout=grace_s)
            scheduler.shutdown(wait=False)
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        task = client.report_queue_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if client.client_session is not None and not client.client_session.closed:
            await client.client_session.close()
        await asyncio.sleep(0)
        self._running = False

    async def __aenter__(self) -> OpenAdrVen:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def handle_event(self, raw: dict[str, Any]) -> str:
        """openleadr's ``on_event``: decide, hand accepted events on, answer optIn/optOut."""
        openadr_id = str((raw.get("event_descriptor") or {}).get("event_id", "?"))
        status = (raw.get("event_descriptor") or {}).get("event_status")
        if status in ("cancelled", "completed"):
            self.accepted.pop(openadr_id, None)
            return self._answer(Decision(openadr_id, False, f"event is {status}",
                                         status=status))
        try:
            event = event_from_openadr(raw, notified_at=self._clock(),
                                       dr=self.config.demand_response, tz=self.tz)
        except CemsError as exc:
            return self._answer(Decision(openadr_id, False, str(exc)))
        known = [e for k, e in self.accepted.items() if k != event.event_id]
        decision = decide(event, self.config.demand_response, known=known, tz=self.tz,
                          calendar=self._calendar)
        if decision.opt_in and self.on_accept is not None:
            try:
                await asyncio.wait_for(self._call(event), self.callback_timeout_s)
            except TimeoutError:
                decision = Decision(event.event_id, False,
                                    f"planner gave no answer within {self.callback_timeout_s:g} s",
                                    event)
            except Exception as exc:  # the planner's failure must become an optOut
                decision = Decision(event.event_id, False, f"planner failed: {exc}", event)
        if decision.opt_in:
            self.accepted[event.event_id] = event
        else:  # an update we no longer take part in frees its slot
            self.accepted.pop(event.event_id, None)
        return self._answer(decision)

    async def _call(self, event: DrEvent) -> None:
        assert self.on_accept is not None
        if inspect.iscoroutinefunction(self.on_accept):
            await self.on_accept(event)
        else:
            result = await asyncio.to_thread(self.on_accept, event)
            if inspect.isawaitable(result):
                await result

    def _answer(self, decision: Decision) -> str:
        self.decisions.append(decision)
        log.info("OpenADR event %s: %s (%s)", decision.openadr_id,
                 "optIn" if decision.opt_in else "optOut", decision.reason)
        if self.on_decision is not None:
            try:
                self.on_decision(decision)
            except Exception:  # a failing observer must not change the answer
                log.exception("on_decision failed for OpenADR event %s", decision.openadr_id)
        return OPT.OPT_IN if decision.opt_in else OPT.OPT_OUT

