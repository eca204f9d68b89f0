"""The OCPP driver's CSMS against charge points written here with the ``ocpp`` package.

Real websockets on loopback, allocated ports; the charge points are the package's own
``ChargePoint`` clients (not the project's code).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from loopback_ports import free_port
from ocpp import v16, v201
from ocpp.routing import on
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from device_drivers.ocpp import (
    ChargePointSpec,
    ChargerEvents,
    ChargingPlan,
    Csms,
    EvNeeds,
    PlanPeriod,
)
from device_drivers.ocpp.model import Transaction, utc_now
from device_drivers.types import Reading


class Recorder(ChargerEvents):
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.readings_seen: list[dict[str, Reading]] = []
        self.needs_seen: list[EvNeeds] = []

    def booted(self, cp_id: str, vendor: str, model: str) -> None:
        self.log.append(("boot", cp_id))

    def transaction_started(self, cp_id: str, tx: Transaction) -> None:
        self.log.append(("start", tx.id))

    def transaction_ended(self, cp_id: str, tx: Transaction) -> None:
        self.log.append(("end", tx.session_energy_kwh))

    def needs(self, cp_id: str, needs: EvNeeds) -> None:
        self.needs_seen.append(needs)

    def readings(self, cp_id: str, readings: dict[str, Reading]) -> None:
        self.readings_seen.append(readings)


class Peer201(v201.ChargePoint):
    profiles: list[dict[str, Any]]

    @on("SetChargingProfile")
    def on_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        self.profiles.append(charging_profile)
        return v201.call_result.SetChargingProfile(status="Accepted")


class Peer16(v16.ChargePoint):
    profiles: list[dict[str, Any]]

    @on("SetChargingProfile")
    def on_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        self.profiles.append(cs_charging_profiles)
        return v16.call_result.SetChargingProfile(status="Accepted")


SPECS = [
    ChargePointSpec("CP-A", "2.0.1", max_power_w=22000.0),
    ChargePointSpec("CP-B", "1.6", max_power_w=7400.0, voltage_v=230.0, phases=1, rate_unit="A"),
]


@asynccontextmanager
async def csms() -> AsyncIterator[tuple[Csms, Recorder, int]]:
    events = Recorder()
    server = Csms(SPECS, events, heartbeat_interval_s=120, response_timeout_s=5)
    port = await server.start("127.0.0.1", free_port())
    try:
        yield server, events, port
    finally:
        await server.close()


@asynccontextmanager
async def peer(
    port: int, cp_id: str, cls: type, subprotocol: str
) -> AsyncIterator[tuple[Any, ClientConnection]]:
    async with connect(f"ws://127.0.0.1:{port}/{cp_id}", subprotocols=[subprotocol]) as ws:
        cp = cls(cp_id, ws, response_timeout=5)
        cp.profiles = []
        task = asyncio.create_task(cp.start())
        try:
            yield cp, ws
        finally:
            task.cancel()


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


async def until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.01)


def test_201_session_needs_meter_values_and_profile() -> None:
    async def body() -> None:
        async with (
            csms() as (server, events, port),
            peer(port, "CP-A", Peer201, "ocpp2.0.1") as (cp, _ws),
        ):
            boot = await cp.call(
                v201.call.BootNotification(
                    charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"
                )
            )
            assert (boot.status, boot.interval) == ("Accepted", 120)
            await cp.call(
                v201.call.TransactionEvent(
                    event_type="Started",
                    timestamp=utc_now().isoformat(),
                    trigger_reason="CablePluggedIn",
                    seq_no=0,
                    transaction_info={"transaction_id": "tx-9"},
                    evse={"id": 1},
                )
            )
            departure = utc_now() + timedelta(hours=4)
            await cp.call(
                v201.call.NotifyEVChargingNeeds(
                    evse_id=1,
                    charging_needs={
                        "requested_energy_transfer": "DC",
                        "departure_time": departure.isoformat(),
                        "dc_charging_parameters": {
                            "ev_max_current": 30,
                            "ev_max_voltage": 400,
                            "energy_amount": 20000,
                            "ev_max_power": 11000,
                        },
                    },
                )
            )
            needs = events.needs_seen[-1]
            assert needs.energy_kwh == 20.0 and needs.max_charge_kw == 11.0
            assert needs.departure is not None
            assert abs((needs.departure - departure).total_seconds()) < 1
            await cp.call(
                v201.call.MeterValues(
                    evse_id=1,
                    meter_value=[
                        {
                            "timestamp": utc_now().isoformat(),
                            "sampled_value": [
                                {
                                    "value": 3.5,
                                    "measurand": "Power.Active.Import",
                                    "unit_of_measure": {"unit": "kW"},
                                },
                                {"value": 1500, "measurand": "Energy.Active.Import.Register"},
                            ],
                        }
                    ],
                )
            )
            latest = events.readings_seen[-1]
            assert latest["active_power_kw"].value == 3.5
            assert latest["energy_import_kwh"].value == 1.5
            plan = ChargingPlan(
                utc_now(),
                3600,
                (PlanPeriod(0, 30.0), PlanPeriod(1800, 4.2)),
                valid_to=utc_now() + timedelta(hours=1),
            )
            result = await server.push("CP-A", plan)
            assert result.status == "Accepted"
            profile = cp.profiles[-1]
            assert profile["charging_profile_purpose"] == "TxProfile"
            assert profile["transaction_id"] == "tx-9"
            periods = profile["charging_schedule"][0]["charging_schedule_period"]
            # 30 kW asked for, never above the EVSE's 22 kW
            assert [(p["start_period"], p["limit"]) for p in periods] == [
                (0, 22000.0),
                (1800, 4200.0),
            ]
            assert "valid_to" in profile

    run(body)


def test_16_profile_in_amps_and_reconnect_gets_it_again() -> None:
    async def body() -> None:
        async with csms() as (server, events, port):
            async with peer(port, "CP-B", Peer16, "ocpp1.6") as (cp, _ws):
                boot = await cp.call(
                    v16.call.BootNotification(charge_point_model="M", charge_point_vendor="V")
                )
                assert boot.status == "Accepted"
                start = await cp.call(
                    v16.call.StartTransaction(
                        connector_id=1,
                        id_tag="TAG",
                        meter_start=1000,
                        timestamp=utc_now().isoformat(),
                    )
                )
                assert start.id_tag_info["status"] == "Accepted"
                plan = ChargingPlan(
                    utc_now(), 7200, (PlanPeriod(0, 3.68),), valid_to=utc_now() + timedelta(hours=2)
                )
                assert (await server.push("CP-B", plan)).status == "Accepted"
                schedule = cp.profiles[-1]["charging_schedule"]
                assert schedule["charging_rate_unit"] == "A"
                # 3.68 kW on one 230 V phase = 16 A
                assert schedule["charging_schedule_period"][0]["limit"] == 16.0
                assert cp.profiles[-1]["transaction_id"] == start.transaction_id
            await until(lambda: not server.connected)
            async with peer(port, "CP-B", Peer16, "ocpp1.6") as (cp2, _ws):
                boot = await cp2.call(
                    v16.call.BootNotification(charge_point_model="M", charge_point_vendor="V")
                )
                assert boot.status == "Accepted"
                await until(lambda: bool(cp2.profiles))
                assert cp2.profiles[-1]["transaction_id"] == start.transaction_id
                stop = await cp2.call(
                    v16.call.StopTransaction(
                        meter_stop=4500,
                        timestamp=utc_now().isoformat(),
                        transaction_id=start.transaction_id,
                    )
                )
                assert stop is not None
            assert events.log[-1] == ("end", 3.5)

    run(body)


def test_unknown_id_and_wrong_subprotocol_rejected() -> None:
    async def body() -> None:
        async with csms() as (server, _events, port):
            with pytest.raises(InvalidStatus) as info:
                async with connect(f"ws://127.0.0.1:{port}/CP-NOBODY", subprotocols=["ocpp2.0.1"]):
                    pass
            assert info.value.response.status_code == 404
            assert server.rejected == {"CP-NOBODY": 1}
            async with connect(f"ws://127.0.0.1:{port}/CP-A", subprotocols=["ocpp1.6"]) as ws:
                await ws.wait_closed()
                assert ws.close_code == 1002

    run(body)


@pytest.mark.parametrize(
    ("frame", "code", "message_id"),
    [
        ("this is not json", "FormatViolation", "-1"),
        ('{"not": "a list"}', "ProtocolError", "-1"),
        ('[2, "m-1"]', "ProtocolError", "m-1"),
        ('[2, "m-2", "Heartbeat", {"unexpected": 1}]', "FormatViolation", "m-2"),
        ('[2, "m-3", "BootNotification", {"reason": "PowerUp"}]', None, "m-3"),
        ('[2, "m-4", "NoSuchAction", {}]', "NotSupported", "m-4"),
        ('[7, "m-5"]', "PropertyConstraintViolation", "m-5"),
    ],
)
def test_malformed_frames_answered_with_callerror(
    frame: str, code: str | None, message_id: str
) -> None:
    async def body() -> None:
        async with (
            csms() as (server, _events, port),
            connect(f"ws://127.0.0.1:{port}/CP-A", subprotocols=["ocpp2.0.1"]) as ws,
        ):
            await ws.send(frame)
            answer = json.loads(await ws.recv())
            assert answer[0] == 4 and answer[1] == message_id
            if code is not None:
                assert answer[2] == code
            # still serving: a good heartbeat is answered
            await ws.send('[2, "hb", "Heartbeat", {}]')
            reply = json.loads(await ws.recv())
            assert reply[:2] == [3, "hb"] and "currentTime" in reply[2]
            assert server.connected == ["CP-A"]

    run(body)


def test_plain_ws_refused_off_loopback() -> None:
    async def body() -> None:
        with pytest.raises(ValueError, match="plain ws://"):
            await Csms(SPECS, Recorder()).start("0.0.0.0", 0)

    run(body)


def test_a_new_connection_replaces_the_old_one() -> None:
    async def body() -> None:
        async with csms() as (server, _events, port):
            url = f"ws://127.0.0.1:{port}/CP-A"
            async with connect(url, subprotocols=["ocpp2.0.1"]) as first:
                await until(lambda: server.connected == ["CP-A"])
                async with connect(url, subprotocols=["ocpp2.0.1"]) as second:
                    await first.wait_closed()
                    assert first.close_code == 1000
                    await second.send('[2, "hb", "Heartbeat", {}]')
                    reply = json.loads(await second.recv())
                    assert reply[:2] == [3, "hb"]
                    assert server.connected == ["CP-A"]

    run(body)
