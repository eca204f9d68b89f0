"""``cems run``'s service with an OCPP charger: the CSMS runs with the runtime, a session's
needs trigger a re-plan, and the plan reaches the charge point as a TxProfile.

The charge point is the ``ocpp`` package's own 2.0.1 client; the site has no Modbus
device, so the runtime's only charger is the OCPP one.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from loopback_ports import free_port
from ocpp import v201
from ocpp.routing import on
from websockets.asyncio.client import connect

from cems.config import load_site
from cems.runtime.service import run_service
from cems.store import open_store

pytestmark = pytest.mark.timeout(180)

SITE = """\
schema_version: 1
site:
  id: ocpp-run
  name: OCPP run
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
    - id: ev-1
      max_kw: 11
      connection: {{protocol: ocpp, charge_point_id: CP-RUN-1, ocpp_version: "2.0.1"}}
ocpp: {{port: {port}}}
"""


class Peer(v201.ChargePoint):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profiles: list[dict[str, Any]] = []

    @on("SetChargingProfile")
    def on_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        self.profiles.append(charging_profile)
        return v201.call_result.SetChargingProfile(status="Accepted")


def test_csms_runs_inside_the_runtime_and_pushes_the_plan(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(data_dir=tmp_path / "data", port=port), encoding="utf-8")
    config = load_site(path)
    store = open_store(None, data_dir=config.site.data_dir)
    got: list[dict[str, Any]] = []
    runtimes: list[Any] = []

    async def charge_point() -> None:
        for _ in range(200):  # the CSMS starts with the service
            try:
                ws = await connect(f"ws://127.0.0.1:{port}/CP-RUN-1", subprotocols=["ocpp2.0.1"])
                break
            except OSError:
                await asyncio.sleep(0.1)
        async with ws:
            cp = Peer("CP-RUN-1", ws, response_timeout=30)
            task = asyncio.create_task(cp.start())
            now = datetime.now(UTC)
            await cp.call(
                v201.call.BootNotification(
                    charging_station={"model": "P", "vendor_name": "I"}, reason="PowerUp"
                )
            )
            await cp.call(
                v201.call.TransactionEvent(
                    event_type="Started",
                    timestamp=now.isoformat(),
                    trigger_reason="CablePluggedIn",
                    seq_no=0,
                    transaction_info={"transaction_id": "R-1"},
                )
            )
            await cp.call(
                v201.call.NotifyEVChargingNeeds(
                    evse_id=1,
                    charging_needs={
                        "requested_energy_transfer": "AC_three_phase",
                        "departure_time": (now + timedelta(hours=2)).isoformat(),
                        "ac_charging_parameters": {
                            "energy_amount": 8000,
                            "ev_min_current": 6,
                            "ev_max_current": 10,
                            "ev_max_voltage": 230,
                        },
                    },
                )
            )
            while not any(
                p["charging_schedule"][0]["charging_schedule_period"][0]["limit"] <= 6900.0
                for p in cp.profiles
            ):
                await asyncio.sleep(0.1)
            got.extend(cp.profiles)
            while not runtimes[0].ocpp_run.pushes.get("Accepted"):  # its answer counted
                await asyncio.sleep(0.05)
            task.cancel()
        os.kill(os.getpid(), signal.SIGTERM)  # stops run_service as Ctrl-C would

    async def body() -> None:
        service = asyncio.create_task(
            run_service(config, store, duration_s=150, on_started=runtimes.append)
        )
        await asyncio.wait_for(charge_point(), 120)
        runtime = await service
        assert runtime.counters.plans >= 1
        assert runtime.ocpp_run.pushes.get("Accepted", 0) >= 1

    asyncio.run(body())
    profile = got[-1]
    assert profile["transaction_id"] == "R-1"
    periods = profile["charging_schedule"][0]["charging_schedule_period"]
    # the EV's own limit: 10 A x 230 V x 3 phases = 6.9 kW, below the EVSE's 11 kW
    assert max(p["limit"] for p in periods) <= 6900.0
    store.engine.dispose()
