"""The CSMS: a websockets server accepting the declared charge points, one :class:`Link`
per charge point (its connection, open transaction, last plan) and profile pushes.

Admission happens at the websocket handshake: the path's last segment is the charge point
id; an id that is not declared gets HTTP 404 (logged), a wrong password HTTP 401, and a
connection that agrees on none of the declared version's subprotocol is closed (1002).
Plain ``ws://`` is refused on a non-loopback address unless ``allow_plain_remote`` (OCPP
security profile 1 belongs on a private network); give ``ssl_context`` for ``wss://``
(security profile 2: TLS + Basic auth; 3: TLS with client certificates, which the caller's
context verifies).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from ocpp import v16, v21, v201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from device_drivers.hosts import is_loopback
from device_drivers.ocpp.handlers import SESSION_CLASSES
from device_drivers.ocpp.model import (
    SUBPROTOCOLS,
    ChargePointSpec,
    ChargerEvents,
    ChargingPlan,
    EvNeeds,
    Transaction,
    utc_now,
)
from device_drivers.ocpp.profiles import profile_2x, profile_16
from device_drivers.types import Reading

log = logging.getLogger(__name__)

#: How long a charge point has to answer a call (SetChargingProfile).
RESPONSE_TIMEOUT_S = 30.0



@dataclass(frozen=True)
class PushResult:
    """The outcome of one profile push: ``Accepted``, ``Rejected``, or why none was sent."""

    cp_id: str
    status: str
    profile: dict[str, Any] | None = None


@dataclass
class Link:
    """One declared charge point: its connection (when up), transaction and last plan."""

    spec: ChargePointSpec
    events: ChargerEvents
    heartbeat_s: int
    clock: Callable[[], datetime] = utc_now
    session: Any = None
    connection: Any = None  # the websocket of ``session``
    transaction: Transaction | None = None
    plan: ChargingPlan | None = None
    profile_ids: int = 0
    heartbeats: int = 0
    malformed: int = 0
    boots: int = 0
    pushes: dict[str, int] = field(default_factory=dict)

    def booted(self, vendor: str, model: str) -> None:
        self.boots += 1
        self.events.booted(self.spec.id, vendor, model)

    def started(self, tx: Transaction) -> None:
        self.transaction = tx
        self.events.transaction_started(self.spec.id, tx)

    def resumed(self, tx_id: str, when: datetime) -> None:
        """A 2.x Updated event: a transaction the CSMS lost (restart) is taken up again."""
        if tx_id and (self.transaction is None or self.transaction.id != tx_id):
            self.started(Transaction(tx_id, when))

    def ended(self, tx_id: str, when: datetime, energy_kwh: float | None) -> None:
        tx = self.transaction
        if tx is None or tx.id != tx_id:
            tx = Transaction(tx_id, when)
        if energy_kwh is not None:
            tx.energy_import_kwh = energy_kwh
        tx.ended = when
        self.transaction = None
        self.plan = None
        self.events.transaction_ended(self.spec.id, tx)

    def needs(self, needs: EvNeeds) -> None:
        self.events.needs(self.spec.id, needs)

    def report(self, readings: dict[str, Reading]) -> None:
        energy = readings.get("energy_import_kwh")
        if self.transaction is not None and energy is not None and energy.ok:
            self.transaction.energy_import_kwh = energy.value
            if self.transaction.meter_start_kwh is None:
                self.transaction.meter_start_kwh = energy.value
        if readings:
            self.events.readings(self.spec.id, readings)

    def payload(self, plan: ChargingPlan) -> tuple[Any, dict[str, Any]] | None:
        """The SetChargingProfile call for ``plan`` on the open transaction (None without)."""
        tx = self.transaction
        if tx is None:
            return None
        self.profile_ids += 1
        spec = self.spec
        if spec.version == "1.6":
            profile = profile_16(spec, plan, int(tx.id), self.profile_ids)
            return v16.call.SetChargingProfile(
                connector_id=spec.evse_id, cs_charging_profiles=profile
            ), profile
        profile = profile_2x(spec, plan, tx.id, self.profile_ids)
        module = v21 if spec.version == "2.1" else v201
        return module.call.SetChargingProfile(
            evse_id=spec.evse_id, charging_profile=profile
        ), profile

    async def push(self, plan: ChargingPlan) -> PushResult:
        """Remember ``plan`` and send it now if the charge point is connected."""
        self.plan = plan
        if self.session is None:
            return self._count(PushResult(self.spec.id, "not connected"))
        built = self.payload(plan)
        if built is None:
            return self._count(PushResult(self.spec.id, "no transaction"))
        request, profile = built
        try:
            answer = await self.session.call(request)
        except (TimeoutError, ConnectionClosed) as exc:
            return self._count(
                PushResult(self.spec.id, f"not answered ({type(exc).__name__})", profile)
            )
        status = "CALLERROR" if answer is None else str(answer.status)
        if status != "Accepted":
            log.warning("%s: SetChargingProfile %s", self.spec.id, status)
        return self._count(PushResult(self.spec.id, status, profile))

    def _count(self, result: PushResult) -> PushResult:
        self.pushes[result.status] = self.pushes.get(result.status, 0) + 1
        return result

    async def resend_profile(self) -> None:
        """After a (re)boot: the last plan again, while it is still valid."""
        if self.plan is not None and self.plan.valid_to > self.clock():
            result = await self.push(self.plan)
            log.info("%s: profile re-sent after boot: %s", self.spec.id, result.status)


class Csms:
    """A charging station management server for the declared charge points.

    ``clock`` is "now" for the timestamps it gives and the validity of plans it re-sends
    (default: the wall clock; a simulation passes its own)."""

    def __init__(
        self,
        specs: list[ChargePointSpec],
        events: ChargerEvents,
        *,
        heartbeat_interval_s: int = 300,
        ssl_context: ssl.SSLContext | None = None,
        allow_plain_remote: bool = False,
        response_timeout_s: float = RESPONSE_TIMEOUT_S,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.links = {s.id: Link(s, events, heartbeat_interval_s, clock) for s in specs}
        self.events = events
        self.ssl_context = ssl_context
        self.allow_plain_remote = allow_plain_remote
        self.response_timeout_s = response_timeout_s
        self.rejected: dict[str, int] = {}
        self._server: Server | None = None

    @property
    def connected(self) -> list[str]:
        """Ids of the charge points connected now."""
        return [cp for cp, link in self.links.items() if link.session is not None]

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); return the port."""
        if self.ssl_context is None and not is_loopback(host) and not self.allow_plain_remote:
            raise ValueError(
                f"plain ws:// on {host} would carry charge point traffic unencrypted: listen "
                "on a loopback address, give a TLS context (wss://, OCPP security profile 2 "
                "or 3) or allow plain remote connections explicitly"
            )
        self._server = await serve(
            self._handle,
            host,
            port,
            subprotocols=list(SUBPROTOCOLS.values()),  # type: ignore[arg-type]
            select_subprotocol=self._select,
            process_request=self._admit,
            ssl=self.ssl_context,
            ping_interval=None,
            max_size=2**20,
        )
        return int(next(iter(self._server.sockets)).getsockname()[1])

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def push(self, cp_id: str, plan: ChargingPlan) -> PushResult:
        """Send ``plan`` to ``cp_id``'s running transaction (kept for a reconnect)."""
        return await self.links[cp_id].push(plan)

    def _cp_id(self, path: str) -> str:
        segment = urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1]
        return unquote(segment)

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        cp_id = self._cp_id(request.path)
        link = self.links.get(cp_id)
        if link is None:
            self.rejected[cp_id] = self.rejected.get(cp_id, 0) + 1
            log.warning(
                "unknown charge point %r rejected (from %s)", cp_id[:64], connection.remote_address
            )
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown charge point\n")
        if link.spec.password is not None and not self._authorised(link.spec, request):
            log.warning("charge point %s: wrong or missing Basic auth, rejected", cp_id)
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "authorisation needed\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="OCPP"'
            return response
        return None

    @staticmethod
    def _authorised(spec: ChargePointSpec, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = spec.password or ""
        return user == spec.id and hmac.compare_digest(password.encode(), expected.encode())

    def _select(self, connection: ServerConnection, offered: Any) -> Any:
        link = self.links.get(self._cp_id(connection.request.path))  # type: ignore[union-attr]
        wanted = SUBPROTOCOLS[link.spec.version] if link is not None else None
        return wanted if wanted in offered else None

    async def _handle(self, connection: ServerConnection) -> None:
        link = self.links[self._cp_id(connection.request.path)]  # type: ignore[union-attr]
        cp_id = link.spec.id
        if connection.subprotocol != SUBPROTOCOLS[link.spec.version]:
            log.warning(
                "%s: offered no %s subprotocol, closed", cp_id, SUBPROTOCOLS[link.spec.version]
            )
            await connection.close(1002, f"this charge point speaks {link.spec.version}")
            return
        if link.session is not None:
            log.info("%s: a new connection replaces the previous one", cp_id)
            await link.connection.close(1000, "replaced by a new connection")
        session = SESSION_CLASSES[link.spec.version](link, connection, self.response_timeout_s)
        link.session, link.connection = session, connection
        self.events.connected(cp_id, link.spec.version)
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            if link.session is session:
                link.session = link.connection = None
                self.events.disconnected(cp_id)
