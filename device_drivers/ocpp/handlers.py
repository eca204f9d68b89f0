"""The CSMS's side of one charge point's connection, per OCPP version.

Each class answers the messages a charge point sends (BootNotification, Heartbeat,
StatusNotification, transactions, MeterValues, NotifyEVChargingNeeds) and reports them to
its :class:`Link`. Frames that are not OCPP (bad JSON, not a list, a missing element, an
unknown message type) are answered with a CALLERROR (``FormatViolation``, in 1.6
``FormationViolation``; message id ``-1`` when it cannot be read), as OCPP-J asks, instead
of the ``ocpp`` package's log-and-drop; payloads that fail the version's JSON schema get the
package's CALLERROR, and a handler's own failure an ``InternalError``.
"""

from __future__ import annotations

import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

from ocpp import v16, v21, v201
from ocpp.exceptions import FormatViolationError, OCPPError
from ocpp.messages import CallError, unpack
from ocpp.routing import after, on

from device_drivers.ocpp.model import (
    SESSION_CHARGING,
    SESSION_CONNECTED,
    SESSION_IDLE,
    Transaction,
    parse_meter_values,
    parse_needs,
    parse_time,
)
from device_drivers.types import Quality, Reading

if TYPE_CHECKING:
    from device_drivers.ocpp.server import Link

log = logging.getLogger(__name__)


class _WireLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The ``ocpp`` package's logger: its ``exception`` calls (a charge point's bad
    message) logged as one warning line, without a traceback."""

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.pop("exc_info", None)
        self.warning(msg, *args, **kwargs)


WIRE_LOG = _WireLog(logging.getLogger("device_drivers.ocpp.wire"))

#: Connector states (1.6 and 2.x vocabularies) -> session_state.
_STATES = {
    "Available": SESSION_IDLE,
    "Preparing": SESSION_CONNECTED,
    "Charging": SESSION_CHARGING,
    "SuspendedEV": SESSION_CONNECTED,
    "SuspendedEVSE": SESSION_CONNECTED,
    "Finishing": SESSION_CONNECTED,
    "Occupied": SESSION_CONNECTED,
}
#: 1.6 transaction ids are integers the CSMS hands out.
_TX_IDS = itertools.count(1)


def _message_id(raw: object) -> str:
    try:
        frame = json.loads(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-1"
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str):
        return frame[1]
    return "-1"


class _Session:
    """What every version shares: the link, malformed frames answered."""

    link: Link
    _ocpp_version: str

    def _bind(self, link: Link) -> None:
        self.link = link

    async def route_message(self, raw_msg: Any) -> None:  # ocpp's own, with CALLERRORs
        try:
            unpack(raw_msg)
        except OCPPError as error:
            code = error.code
            if self._ocpp_version == "1.6" and isinstance(error, FormatViolationError):
                code = "FormationViolation"
            self.link.malformed += 1
            log.warning(
                "%s: malformed OCPP frame answered with %s: %s",
                self.link.spec.id,
                code,
                error.description,
            )
            reply = CallError(
                _message_id(raw_msg),
                code,
                str(error.description),
                {"cause": str(error.details)[:200]} if error.details else {},
            )
            await self._send(reply.to_json())  # type: ignore[attr-defined]
            return
        await super().route_message(raw_msg)  # type: ignore[misc]

    def _state(self, value: float) -> None:
        self.link.report({"session_state": Reading(value, "", self.link.clock(), Quality.GOOD)})


class Session16(_Session, v16.ChargePoint):
    """OCPP 1.6J."""

    def __init__(self, link: Link, connection: Any, response_timeout_s: float) -> None:
        v16.ChargePoint.__init__(
            self, link.spec.id, connection, response_timeout_s, logger=WIRE_LOG
        )
        self._bind(link)

    @on("BootNotification")
    def on_boot(
        self, charge_point_vendor: str, charge_point_model: str, **_: Any
    ) -> v16.call_result.BootNotification:
        self.link.booted(charge_point_vendor, charge_point_model)
        return v16.call_result.BootNotification(
            current_time=self.link.clock().isoformat(),
            interval=self.link.heartbeat_s,
            status="Accepted",
        )

    @after("BootNotification")
    async def after_boot(self, **_: Any) -> None:
        await self.link.resend_profile()

    @on("Heartbeat")
    def on_heartbeat(self) -> v16.call_result.Heartbeat:
        self.link.heartbeats += 1
        return v16.call_result.Heartbeat(current_time=self.link.clock().isoformat())

    @on("Authorize")
    def on_authorize(self, id_tag: str) -> v16.call_result.Authorize:
        return v16.call_result.Authorize(id_tag_info={"status": "Accepted"})

    @on("StatusNotification")
    def on_status(
        self, connector_id: int, error_code: str, status: str, **_: Any
    ) -> v16.call_result.StatusNotification:
        self.link.events.status(self.link.spec.id, status)
        if status in _STATES:
            self._state(_STATES[status])
        return v16.call_result.StatusNotification()

    @on("StartTransaction")
    def on_start(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any
    ) -> v16.call_result.StartTransaction:
        tx = Transaction(
            str(next(_TX_IDS)),
            parse_time(timestamp) or self.link.clock(),
            meter_start_kwh=meter_start / 1000.0,
            energy_import_kwh=meter_start / 1000.0,
        )
        self.link.started(tx)
        return v16.call_result.StartTransaction(
            transaction_id=int(tx.id), id_tag_info={"status": "Accepted"}
        )

    @on("StopTransaction")
    def on_stop(
        self, meter_stop: int, timestamp: str, transaction_id: int, **_: Any
    ) -> v16.call_result.StopTransaction:
        self.link.ended(
            str(transaction_id), parse_time(timestamp) or self.link.clock(), meter_stop / 1000.0
        )
        return v16.call_result.StopTransaction(id_tag_info={"status": "Accepted"})

    @on("MeterValues")
    def on_meter_values(
        self, connector_id: int, meter_value: list[dict[str, Any]], **_: Any
    ) -> v16.call_result.MeterValues:
        self.link.report(parse_meter_values(meter_value, self.link.clock()))
        return v16.call_result.MeterValues()


class _Session2x(_Session):
    """OCPP 2.0.1 and 2.1 (the same messages for what the CSMS needs here)."""

    _call_result: Any

    @on("BootNotification")
    def on_boot(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        self.link.booted(
            str(charging_station.get("vendor_name", "")), str(charging_station.get("model", ""))
        )
        return self._call_result.BootNotification(
            current_time=self.link.clock().isoformat(),
            interval=self.link.heartbeat_s,
            status="Accepted",
        )

    @after("BootNotification")
    async def after_boot(self, **_: Any) -> None:
        await self.link.resend_profile()

    @on("Heartbeat")
    def on_heartbeat(self) -> Any:
        self.link.heartbeats += 1
        return self._call_result.Heartbeat(current_time=self.link.clock().isoformat())

    @on("Authorize")
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        return self._call_result.Authorize(id_token_info={"status": "Accepted"})

    @on("StatusNotification")
    def on_status(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> Any:
        self.link.events.status(self.link.spec.id, connector_status)
        if connector_status in _STATES:
            self._state(_STATES[connector_status])
        return self._call_result.StatusNotification()

    @on("TransactionEvent")
    def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        meter_value: list[dict[str, Any]] | None = None,
        id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        when = parse_time(timestamp) or self.link.clock()
        tx_id = str(transaction_info.get("transaction_id", ""))
        readings = parse_meter_values(meter_value or [], when)
        energy = readings.get("energy_import_kwh")
        energy_kwh = energy.value if energy is not None and energy.ok else None
        if event_type == "Started":
            self.link.started(
                Transaction(tx_id, when, meter_start_kwh=energy_kwh, energy_import_kwh=energy_kwh)
            )
        elif event_type == "Ended":
            self.link.ended(tx_id, when, energy_kwh)
        else:
            self.link.resumed(tx_id, when)
        if readings:
            self.link.report(readings)
        if id_token is not None:
            return self._call_result.TransactionEvent(id_token_info={"status": "Accepted"})
        return self._call_result.TransactionEvent()

    @on("MeterValues")
    def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]], **_: Any) -> Any:
        self.link.report(parse_meter_values(meter_value, self.link.clock()))
        return self._call_result.MeterValues()

    @on("NotifyEVChargingNeeds")
    def on_needs(self, charging_needs: dict[str, Any], evse_id: int,
                 max_schedule_tuples: int | None = None, **_: Any) -> Any:
        self.link.needs(parse_needs(charging_needs, self.link.spec.phases, self.link.clock(),
                                    max_schedule_tuples))
        return self._call_result.NotifyEVChargingNeeds(status="Accepted")


class Session201(_Session2x, v201.ChargePoint):
    """OCPP 2.0.1."""

    def __init__(self, link: Link, connection: Any, response_timeout_s: float) -> None:
        v201.ChargePoint.__init__(
            self, link.spec.id, connection, response_timeout_s, logger=WIRE_LOG
        )
        self._bind(link)


class Session21(_Session2x, v21.ChargePoint):
    """OCPP 2.1 (V2X: discharge profiles on a bidirectional EVSE)."""

    def __init__(self, link: Link, connection: Any, response_timeout_s: float) -> None:
        v21.ChargePoint.__init__(
            self, link.spec.id, connection, response_timeout_s, logger=WIRE_LOG
        )
        self._bind(link)


SESSION_CLASSES: dict[str, type[Session16 | Session201 | Session21]] = {
    "1.6": Session16,
    "2.0.1": Session201,
    "2.1": Session21,
}
