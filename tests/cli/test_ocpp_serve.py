"""Acceptance: ``cems ocpp serve`` (a subprocess) against charge points written here with
the ``ocpp`` package's own ``ChargePoint`` (none of the project's code on the charger side).

The expected energies come from integrating the received schedules here: each period's
limit times its length, cut at the departure the charge point announced.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from loopback_ports import free_port
from ocpp import v16, v201
from ocpp.routing import on
from processes import wait_for_line
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cems.store import open_store

pytestmark = pytest.mark.slow

SITE = """\
schema_version: 1
site:
  id: ocpp-test
  name: OCPP test site
  timezone: Asia/Seoul
  latitude: 36.5
  longitude: 127.3
  data_dir: {data_dir}
  grid: {{contract_power_kw: 200, import_limit_kw: 200, export_limit_kw: 100,
          tariff_plan: general_a2_high_a_2}}
loads:
  base: {{peak_kw: 40, daily_energy_kwh: 500}}
assets:
  ev_chargers:
    - id: ev-peer-1
      max_kw: 22
      connection: {{protocol: ocpp, charge_point_id: CP-PEER-1, ocpp_version: "2.0.1"}}
    - id: ev-peer-x
      max_kw: 11
      connection: {{protocol: ocpp, charge_point_id: CP-PEER-X, ocpp_version: "2.0.1"}}
    - id: ev-peer-16
      max_kw: 7.4
      connection: {{protocol: ocpp, charge_point_id: CP-PEER-16, ocpp_version: "1.6",
                    phases: 1, voltage_v: 230, rate_unit: A}}
"""


Served = tuple[subprocess.Popen[str], int, Path]
"""The server process, its port and its site's data_dir (its SQLite store)."""


def now() -> datetime:
    return datetime.now(UTC)


class Peer201(v201.ChargePoint):
    """An OCPP 2.0.1 charging station that accepts every profile and keeps it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profiles: list[tuple[float, dict[str, Any]]] = []

    @on("SetChargingProfile")
    def on_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        self.profiles.append((time.monotonic(), charging_profile))
        return v201.call_result.SetChargingProfile(status="Accepted")


class Peer16(v16.ChargePoint):
    """An OCPP 1.6J charge point that accepts every profile and keeps it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profiles: list[dict[str, Any]] = []

    @on("SetChargingProfile")
    def on_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        self.profiles.append(cs_charging_profiles)
        return v16.call_result.SetChargingProfile(status="Accepted")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def integrate_kwh(schedule: dict[str, Any], until: datetime, watts_per_unit: float) -> float:
    """Energy of a schedule from its start until ``until`` (or its end)."""
    start = parse(schedule["start_schedule"])
    end_s = min(schedule["duration"], (until - start).total_seconds())
    periods = schedule["charging_schedule_period"]
    total = 0.0
    for i, period in enumerate(periods):
        a = period["start_period"]
        b = periods[i + 1]["start_period"] if i + 1 < len(periods) else end_s
        b = min(b, end_s)
        if b > a:
            total += float(period["limit"]) * watts_per_unit * (b - a) / 3600.0 / 1000.0
    return total


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("ocpp")
    site = folder / "site.yaml"
    site.write_text(SITE.format(data_dir=folder / "data"), encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cems", "ocpp", "serve", str(site), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_line(proc, "listening on ws://127.0.0.1", 90, "cems ocpp serve")
        yield proc, port, folder / "data"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_201_peer_gets_a_txprofile_delivering_its_needs_and_reconnects(
    server: Served,
) -> None:
    proc, port, _data = server
    url = f"ws://127.0.0.1:{port}/CP-PEER-1"

    async def body() -> None:
        async with connect(url, subprotocols=["ocpp2.0.1"]) as ws:
            cp = Peer201("CP-PEER-1", ws, response_timeout=30)
            task = asyncio.create_task(cp.start())
            boot = await cp.call(
                v201.call.BootNotification(
                    charging_station={"model": "Peer", "vendor_name": "Independent"},
                    reason="PowerUp",
                )
            )
            assert boot.status == "Accepted" and boot.interval > 0
            await cp.call(
                v201.call.StatusNotification(
                    timestamp=now().isoformat(),
                    connector_status="Occupied",
                    evse_id=1,
                    connector_id=1,
                )
            )
            await cp.call(
                v201.call.TransactionEvent(
                    event_type="Started",
                    timestamp=now().isoformat(),
                    trigger_reason="CablePluggedIn",
                    seq_no=0,
                    evse={"id": 1, "connector_id": 1},
                    transaction_info={"transaction_id": "T-201"},
                    meter_value=[
                        {
                            "timestamp": now().isoformat(),
                            "sampled_value": [
                                {"value": 0, "measurand": "Energy.Active.Import.Register"}
                            ],
                        }
                    ],
                )
            )
            departure = (now() + timedelta(hours=4)).replace(microsecond=0)
            sent = time.monotonic()
            needs = await cp.call(
                v201.call.NotifyEVChargingNeeds(
                    evse_id=1,
                    charging_needs={
                        "requested_energy_transfer": "DC",
                        "departure_time": departure.isoformat(),
                        "dc_charging_parameters": {
                            "ev_max_current": 28,
                            "ev_max_voltage": 400,
                            "energy_amount": 20000,
                            "ev_max_power": 11000,
                        },
                    },
                )
            )
            assert needs.status == "Accepted"
            # the plan made from these needs is announced once its profile was accepted
            await asyncio.to_thread(
                wait_for_line, proc, "all from the charger", 60, "cems ocpp serve"
            )
            received_at, profile = cp.profiles[-1]
            assert received_at - sent < 60
            assert profile["charging_profile_purpose"] == "TxProfile"
            assert profile["transaction_id"] == "T-201"
            assert parse(profile["valid_to"]) > now()
            schedule = profile["charging_schedule"][0]
            assert schedule["charging_rate_unit"] == "W"
            limits = [float(p["limit"]) for p in schedule["charging_schedule_period"]]
            assert max(limits) <= 11000.0 and min(limits) >= 0.0
            assert parse(schedule["start_schedule"]) + timedelta(
                seconds=schedule["duration"]
            ) >= departure - timedelta(seconds=1)
            energy = integrate_kwh(schedule, departure, 1.0)
            assert energy >= 20.0 - 1e-6, energy
            task.cancel()

        # reconnect: accepted again, and the profile comes again
        async with connect(url, subprotocols=["ocpp2.0.1"]) as ws:
            cp = Peer201("CP-PEER-1", ws, response_timeout=30)
            task = asyncio.create_task(cp.start())
            boot = await cp.call(
                v201.call.BootNotification(
                    charging_station={"model": "Peer", "vendor_name": "Independent"},
                    reason="PowerUp",
                )
            )
            assert boot.status == "Accepted"
            deadline = time.monotonic() + 30
            while not cp.profiles and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert cp.profiles, "no profile re-sent after the reconnect"
            assert cp.profiles[-1][1]["transaction_id"] == "T-201"
            await cp.call(
                v201.call.TransactionEvent(
                    event_type="Ended",
                    timestamp=now().isoformat(),
                    trigger_reason="EVDeparted",
                    seq_no=1,
                    transaction_info={"transaction_id": "T-201"},
                    meter_value=[
                        {
                            "timestamp": now().isoformat(),
                            "sampled_value": [
                                {"value": 20000, "measurand": "Energy.Active.Import.Register"}
                            ],
                        }
                    ],
                )
            )
            task.cancel()

    run(body())


def test_16_peer_gets_a_valid_txprofile_within_limits(
    server: Served,
) -> None:
    proc, port, _data = server

    async def body() -> None:
        async with connect(f"ws://127.0.0.1:{port}/CP-PEER-16", subprotocols=["ocpp1.6"]) as ws:
            cp = Peer16("CP-PEER-16", ws, response_timeout=30)
            task = asyncio.create_task(cp.start())
            boot = await cp.call(
                v16.call.BootNotification(
                    charge_point_model="Peer16", charge_point_vendor="Independent"
                )
            )
            assert boot.status == "Accepted" and boot.interval > 0
            heartbeat = await cp.call(v16.call.Heartbeat())
            assert heartbeat.current_time
            await cp.call(
                v16.call.StatusNotification(
                    connector_id=1, error_code="NoError", status="Preparing"
                )
            )
            start = await cp.call(
                v16.call.StartTransaction(
                    connector_id=1, id_tag="TAG-1", meter_start=0, timestamp=now().isoformat()
                )
            )
            assert start.id_tag_info["status"] == "Accepted"
            await asyncio.to_thread(wait_for_line, proc, "(CP-PEER-16)", 60, "cems ocpp serve")
            deadline = time.monotonic() + 10
            while not cp.profiles and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            profile = cp.profiles[-1]
            assert profile["charging_profile_purpose"] == "TxProfile"
            assert profile["transaction_id"] == start.transaction_id
            assert parse(profile["valid_to"]) > now()
            schedule = profile["charging_schedule"]
            assert schedule["charging_rate_unit"] == "A"
            limits = [float(p["limit"]) for p in schedule["charging_schedule_period"]]
            # 7.4 kW on one 230 V phase: 32.17 A
            assert max(limits) <= 7400 / 230 and min(limits) >= 0.0
            # no needs from a 1.6 charger: the assumed 60 kWh battery from 50 % to 80 %
            # (18 kWh) within the assumed 4 h stay
            until = parse(schedule["start_schedule"]) + timedelta(seconds=schedule["duration"])
            assert integrate_kwh(schedule, until, 230.0) >= 18.0 - 1e-6
            await cp.call(
                v16.call.MeterValues(
                    connector_id=1,
                    meter_value=[
                        {
                            "timestamp": now().isoformat(),
                            "sampled_value": [
                                {
                                    "value": "2500",
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit": "Wh",
                                }
                            ],
                        }
                    ],
                    transaction_id=start.transaction_id,
                )
            )
            task.cancel()

    run(body())


def test_unknown_id_rejected_and_malformed_frames_answered(
    server: Served,
) -> None:
    _proc, port, _data = server

    async def body() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://127.0.0.1:{port}/CP-INTRUDER", subprotocols=["ocpp2.0.1"]):
                pass
        assert info.value.response.status_code == 404
        async with connect(f"ws://127.0.0.1:{port}/CP-PEER-1", subprotocols=["ocpp2.0.1"]) as ws:
            await ws.send("{{{ not json")
            answer = json.loads(await ws.recv())
            assert answer[0] == 4 and answer[2] == "FormatViolation"
            await ws.send('[2, "x-1", "BootNotification", {"reason": "Nonsense"}]')
            answer = json.loads(await ws.recv())
            assert answer[:2] == [4, "x-1"]
            await ws.send('[2, "x-2", "Heartbeat", {}]')
            answer = json.loads(await ws.recv())
            assert answer[:2] == [3, "x-2"]

    run(body())


def test_needs_out_of_reach_raise_an_alarm_and_get_full_power(
        server: Served) -> None:
    proc, port, _data = server

    async def body() -> None:
        async with connect(f"ws://127.0.0.1:{port}/CP-PEER-X", subprotocols=["ocpp2.0.1"]) as ws:
            cp = Peer201("CP-PEER-X", ws, response_timeout=30)
            task = asyncio.create_task(cp.start())
            await cp.call(v201.call.BootNotification(
                charging_station={"model": "Peer", "vendor_name": "Independent"},
                reason="PowerUp"))
            await cp.call(v201.call.TransactionEvent(
                event_type="Started", timestamp=now().isoformat(),
                trigger_reason="CablePluggedIn", seq_no=0,
                transaction_info={"transaction_id": "T-X"}))
            departure = (now() + timedelta(hours=2)).replace(microsecond=0)
            await cp.call(v201.call.NotifyEVChargingNeeds(evse_id=1, charging_needs={
                "requested_energy_transfer": "DC", "departure_time": departure.isoformat(),
                "dc_charging_parameters": {"ev_max_current": 28, "ev_max_voltage": 400,
                                           "energy_amount": 100000, "ev_max_power": 50000}}))
            line = await asyncio.to_thread(wait_for_line, proc, "ALARM ev_needs_unreachable", 60,
                                           "cems ocpp serve")
            # 100 kWh asked in 2 h of an 11 kW EVSE: at most 22 kWh
            assert "ev-peer-x (CP-PEER-X) requests 100.00 kWh" in line
            reachable = float(line.split("at most ")[1].split(" kWh")[0])
            assert 21.9 <= reachable <= 22.0
            schedule = cp.profiles[-1][1]["charging_schedule"][0]
            assert [p["limit"] for p in schedule["charging_schedule_period"]] == [11000.0]
            await cp.call(v201.call.TransactionEvent(
                event_type="Ended", timestamp=now().isoformat(), trigger_reason="EVDeparted",
                seq_no=1, transaction_info={"transaction_id": "T-X"}))
            task.cancel()

    run(body())


def test_stop_prints_requested_and_delivered(
    server: Served,
) -> None:
    proc, _port, data_dir = server
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "requested 20.00 kWh, delivered 20.00 kWh" in out, out[-3000:]
    # meter values and connector states went to the telemetry store, under the charger's id
    store = open_store(None, data_dir=data_dir)
    try:
        energy = store.readings(device="ev-peer-1", quantity="energy_import_kwh")
        assert sorted(energy["value"]) == [0.0, 20.0]
        assert len(store.readings(device="ev-peer-16", quantity="energy_import_kwh")) >= 1
        states = store.readings(device="ev-peer-1", quantity="session_state")
        assert list(states["value"]) == [1.0]  # Occupied
    finally:
        store.engine.dispose()
    assert "Traceback" not in err
