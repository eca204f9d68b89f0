"""Fault timelines (device_drivers/sim/faults.py): the file format and its errors, the
scale-factor fault, a timeline run in stepped time and seen by real Modbus clients, the
example timelines, and ``cems simulate --faults`` in a real process."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from example_sites import copy_on_free_ports

import device_drivers.sim.server as sim_server
from device_drivers.modbus_device import ModbusDevice, utc_now
from device_drivers.profiles import load_profile, parse_profile
from device_drivers.sim import SiteSimulator
from device_drivers.sim.faults import (
    FaultFileError,
    FaultRunner,
    load_timeline,
    parse_duration_s,
    parse_timeline,
)
from device_drivers.sim.images import ProfileImage
from device_drivers.sim.twin import SimDeviceSpec, SiteSpec
from device_drivers.sunspec import SunSpecDevice
from device_drivers.transport import EndpointSpec, ModbusEndpoint
from device_drivers.types import Quality, Reading

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 7, 15, 12, 0, tzinfo=SEOUL)

#: A meter whose power is scaled SunSpec-style by a register of its own.
SF_METER = parse_profile({
    "name": "sf_meter", "kind": "meter", "registers": [
        {"name": "active_power_kw", "address": 0, "function": "holding", "type": "int16",
         "scale": 0.1, "unit": "kW", "scale_factor_register": "power_sf"},
        {"name": "power_sf", "address": 1, "function": "holding", "type": "int16", "unit": ""},
        {"name": "import_energy_kwh", "address": 2, "function": "holding", "type": "uint32",
         "unit": "kWh", "not_implemented": "none"},
        {"name": "export_energy_kwh", "address": 4, "function": "holding", "type": "uint32",
         "unit": "kWh", "not_implemented": "none"},
    ]}, source="test")


def _timeline(text: str, source: str = "t.yaml"):
    text = textwrap.dedent(text)
    return parse_timeline(yaml.safe_load(text), source=source, text=text)


def test_durations() -> None:
    assert parse_duration_s("90s") == 90
    assert parse_duration_s("5min") == 300
    assert parse_duration_s("1h30min") == 5400
    assert parse_duration_s("500ms") == 0.5
    assert parse_duration_s(12) == 12
    for bad in ("5 minutes", "min", "-3s", "", True):
        with pytest.raises(ValueError, match="duration"):
            parse_duration_s(bad)


def test_every_bad_entry_is_named_with_file_entry_and_line() -> None:
    with pytest.raises(FaultFileError) as caught:
        _timeline("""\
            description: many mistakes
            faults:
              - {at: "+1min", device: ess-1, fault: drop}
              - at: "+20min"
                device: ess-1
                fault: delay
              - {at: "10min", device: ess-1, fault: drop}
              - {at: "+1min", device: ess-1, fault: invalid, delay_s: 3, register: soc_pct}
              - {at: "+1min", device: ess-1, fault: restore, for: 3min}
              - {at: "+1min", device: ess-1, fault: explode}
              - {at: 2026-07-15T12:00:00, device: ess-1, fault: drop}
              - {at: "+1min", device: ess-1, fault: drop, bogus: 1}
              - {at: "+1min", fault: freeze}
            """)
    lines = str(caught.value).splitlines()
    assert lines == [
        "t.yaml: faults[1] (line 4): fault 'delay' needs 'delay_s'",
        "t.yaml: faults[2].at (line 7): '10min' is not an ISO 8601 time such as "
        "2026-07-15T12:10:00+09:00 (or an offset such as \"+10min\")",
        "t.yaml: faults[3] (line 8): fault 'invalid' takes no delay_s",
        "t.yaml: faults[4] (line 9): fault 'restore' is instantaneous; 'for' applies to drop, "
        "delay, freeze, invalid, scale_factor",
        "t.yaml: faults[5].fault (line 10): Input should be 'drop', 'restore', 'delay', "
        "'freeze', 'invalid', 'scale_factor' or 'clear' (got 'explode')",
        "t.yaml: faults[6].at (line 11): 2026-07-15T12:00:00 has no time zone; add an offset "
        "such as +09:00",
        "t.yaml: faults[7].bogus (line 12): Extra inputs are not permitted (got 1)",
        "t.yaml: faults[8].device (line 13): Field required",
    ]
    with pytest.raises(FaultFileError, match="a mapping with 'faults'"):
        parse_timeline("drop everything", source="t.yaml")
    with pytest.raises(FaultFileError, match=r"t.yaml: faults: List should have at least 1"):
        _timeline("faults: []")


def test_events_in_time_order_with_their_ends(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(textwrap.dedent("""\
        - {at: "+10min", device: grid, fault: freeze, for: 5min, note: firmware hangs}
        - {at: 2026-07-15T12:05:00+09:00, device: pv, fault: scale_factor, for: 90s}
        - {at: "+15min", device: grid, fault: drop}
        """), encoding="utf-8")
    timeline = load_timeline(path)  # a bare list is a timeline too
    described = [e.describe() for e in timeline.events(T0)]
    assert described == [
        "2026-07-15T12:05:00+09:00 (+5min) faults[1] scale_factor pv (its power SF) = 400 "
        "for 1min30s",
        "2026-07-15T12:06:30+09:00 (+6min30s) faults[1] end of scale_factor pv (true scale "
        "factor)",
        "2026-07-15T12:10:00+09:00 (+10min) faults[0] freeze grid for 5min (firmware hangs)",
        # an end at the same time as a later entry's fault comes first
        "2026-07-15T12:15:00+09:00 (+15min) faults[0] end of freeze grid (values live)",
        "2026-07-15T12:15:00+09:00 (+15min) faults[2] drop grid",
    ]
    with pytest.raises(FaultFileError, match=r"f.yaml: faults\[1\] \(line 2\): at "
                       r"2026-07-15T12:05:00\+09:00 is before the simulation start"):
        timeline.events(T0 + timedelta(hours=1))
    with pytest.raises(FaultFileError, match="cannot read fault timeline"):
        load_timeline(tmp_path / "missing.yaml")


def _site(ports: tuple[int, int, int]) -> SiteSpec:
    grid_port, ess_port, pv_port = ports
    return SiteSpec(36.5, 127.3, "Asia/Seoul", (
        SimDeviceSpec("grid", "meter", "127.0.0.1", grid_port, 1, "generic_meter_3ph",
                      {"role": "grid"}),
        SimDeviceSpec("sfm", "meter", "127.0.0.1", grid_port, 2, "generic_meter_3ph",
                      {"role": "sub"}),
        SimDeviceSpec("ess", "ess", "127.0.0.1", ess_port, 1, "generic_ess",
                      {"capacity_kwh": 200, "max_charge_kw": 100, "max_discharge_kw": 100}),
        SimDeviceSpec("pv", "pv_inverter", "127.0.0.1", pv_port, 1, "sunspec",
                      {"kwp": 100, "inverter_ac_kw": 90}),
    ), base_load_daily_kwh=1200)


@pytest.fixture
def sf_meter_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve device ``sfm`` with the :data:`SF_METER` profile (not a shipped one)."""
    original = sim_server.make_image
    monkeypatch.setattr(sim_server, "make_image", lambda spec: ProfileImage(SF_METER)
                        if spec.name == "sfm" else original(spec))


def test_check_names_the_entry_of_an_unknown_device_or_register(sf_meter_image) -> None:
    sim = SiteSimulator(_site((1, 2, 3)), start=T0, autorun=False)  # not started: no ports
    timeline = _timeline("""\
        faults:
          - {at: "+1min", device: gird, fault: drop}
          - {at: "+1min", device: ess, fault: invalid, register: soc}
          - {at: "+1min", device: pv, fault: invalid, register: 103.W}
          - {at: "+1min", device: ess, fault: scale_factor}
          - {at: "+1min", device: pv, fault: scale_factor, register: 103.W}
          - {at: "+1min", device: sfm, fault: scale_factor, scale_factor: -12}
        """)
    with pytest.raises(FaultFileError) as caught:
        FaultRunner(sim, timeline, start=T0).check()
    lines = str(caught.value).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("t.yaml: faults[0] (line 2): no simulated device 'gird'; "
                               "known: grid, sfm, ess, pv")
    assert lines[1].startswith("t.yaml: faults[1] (line 3): profile generic_ess has no "
                               "register 'soc'")
    assert lines[2].startswith("t.yaml: faults[3] (line 5): ess has no scale-factor register")
    assert lines[3].startswith("t.yaml: faults[4] (line 6): '103.W' is not a scale-factor "
                               "register of pv; known: 103.W_SF, 103.A_SF")
    assert sim.scale_factor_registers("sfm") == ["power_sf"]


@pytest.mark.timeout(60)
def test_timeline_in_stepped_time_as_real_clients_see_it(free_port, run_async,
                                                         sf_meter_image) -> None:
    ports = (free_port(), free_port(), free_port())
    timeline = _timeline("""\
        faults:
          - {at: "+1min", device: grid, fault: freeze, for: 2min}
          - {at: "+1min", device: ess, fault: invalid, register: soc_pct, for: 1min}
          - {at: "+2min", device: pv, fault: scale_factor, for: 1min}
          - {at: "+2min", device: sfm, fault: scale_factor, scale_factor: 11}
          - {at: "+4min", device: ess, fault: drop}
          - {at: "+5min", device: ess, fault: restore}
          - {at: "+6min", device: pv, fault: delay, delay_s: 3}
          - {at: "+7min", device: pv, fault: clear}
          - {at: "+7min", device: sfm, fault: clear}
        """)

    async def scenario() -> tuple[dict[int, dict[str, Reading]], list[str]]:
        sim = SiteSimulator(_site(ports), start=T0, autorun=False)
        fired: list[str] = []
        runner = FaultRunner(sim, timeline, start=T0, on_fire=lambda e: fired.append(
            runner.describe(e)))
        runner.check()
        endpoints = [ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=p),
                                    timeout_s=0.3, reconnect_delay_s=0.0,
                                    reconnect_delay_max_s=0.0) for p in ports]
        grid = ModbusDevice(name="grid", endpoint=endpoints[0], device_id=1,
                            profile=load_profile("generic_meter_3ph"))
        sfm = ModbusDevice(name="sfm", endpoint=endpoints[0], device_id=2, profile=SF_METER)
        ess = ModbusDevice(name="ess", endpoint=endpoints[1], device_id=1,
                           profile=load_profile("generic_ess"))
        pv = SunSpecDevice(name="pv", endpoint=endpoints[2], device_id=1, clock=utc_now)
        seen: dict[int, dict[str, Reading]] = {}
        async with sim:
            try:
                for step in range(0, 8 * 60 + 1, 30):
                    now = T0 + timedelta(seconds=step)
                    sim.advance_to(now)
                    await runner.fire_due(now)
                    readings = {"grid.heartbeat": (await grid.poll())["heartbeat_count"],
                                "sfm.power": (await sfm.poll())["active_power_kw"],
                                "ess.soc": (await ess.poll())["soc_pct"],
                                "pv.power": (await pv.poll())["active_power_kw"]}
                    seen[step] = readings
            finally:
                for endpoint in endpoints:
                    await endpoint.close()
        assert runner.next_at() is None
        return seen, fired

    seen, fired = run_async(scenario())

    def quality(step: int, what: str) -> Quality:
        return seen[step][what].quality

    # Before any fault: all good.
    assert {r.quality for r in seen[30].values()} == {Quality.GOOD}
    # Frozen from +1 min to +3 min: the heartbeat stands still, then moves again.
    beats = [seen[s]["grid.heartbeat"].value for s in (60, 90, 120, 150, 180, 210)]
    assert beats[0] == beats[1] == beats[2] == beats[3] and beats[4] != beats[3] != beats[5]
    # SOC invalid for one minute.
    assert [quality(s, "ess.soc") for s in (30, 60, 90, 120)] == [
        Quality.GOOD, Quality.INVALID, Quality.INVALID, Quality.GOOD]
    # Scale factor 400 on the SunSpec inverter's W_SF for one minute; 11 on the profile's.
    assert quality(120, "pv.power") is Quality.INVALID
    assert "scale factor 400" in seen[120]["pv.power"].reason
    assert quality(180, "pv.power") is Quality.GOOD
    assert quality(120, "sfm.power") is Quality.INVALID
    assert "11" in seen[120]["sfm.power"].reason
    # The ESS link down from +4 to +5 min (its port only), back at the next poll.
    assert [quality(s, "ess.soc") for s in (210, 240, 270, 300)] == [
        Quality.GOOD, Quality.COMM_LOST, Quality.COMM_LOST, Quality.GOOD]
    assert quality(240, "sfm.power") is Quality.INVALID  # still served, its SF still bad
    # Responses 3 s late: the client gives up; "clear" undoes that and the scale factor.
    assert quality(360, "pv.power") is Quality.COMM_LOST
    assert quality(420, "pv.power") is Quality.GOOD and quality(420, "sfm.power") is Quality.GOOD
    assert len(fired) == 12
    assert fired[0] == "2026-07-15T12:01:00+09:00 (+1min) faults[0] freeze grid for 2min"
    assert fired[7].endswith(f"faults[4] drop ess [port 127.0.0.1:{ports[1]}]")
    assert fired[-1].endswith(f"faults[8] clear sfm [port 127.0.0.1:{ports[0]}]")


@pytest.mark.timeout(30)
def test_runner_follows_the_simulators_own_clock(free_port, run_async) -> None:
    ports = (free_port(), free_port(), free_port())
    timeline = _timeline("""\
        faults:
          - {at: "+1min", device: ess, fault: freeze, for: 1min}
          - {at: "+3min", device: ess, fault: drop}
        """)

    async def scenario() -> list[tuple[float, bool, bool]]:
        sim = SiteSimulator(_site(ports), start=T0, speed=600)  # 1 simulated min = 0.1 s
        states: list[tuple[float, bool, bool]] = []

        def record(event) -> None:
            late_s = (sim.now() - event.when).total_seconds()
            states.append((late_s, sim._served("ess").faults.frozen, sim.is_dropped("ess")))

        async with sim:
            await FaultRunner(sim, timeline, start=T0, on_fire=record).run(max_sleep_s=0.05)
        return states

    states = run_async(scenario())
    assert [s[1:] for s in states] == [(True, False), (False, False), (False, True)]
    assert all(0 <= late_s < 60 for late_s, *_ in states)  # fired as the clock passed them


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "faults").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_timelines_are_valid_for_the_sejong_site(path: Path, sejong_site: Path) -> None:
    from cems.config import load_site
    from cems.devices import simulation_spec

    assert "examples/sejong_5_1/site.yaml" in path.read_text(encoding="utf-8")
    spec, _ = simulation_spec(load_site(sejong_site))
    sim = SiteSimulator(spec, start=T0, autorun=False)  # not started: the check needs no port
    runner = FaultRunner(sim, load_timeline(path), start=T0)
    runner.check()
    assert runner.events


@pytest.mark.timeout(90)
def test_cems_simulate_with_faults_prints_each_as_it_fires(run_cems, sejong_site, tmp_path,
                                                           repo_root) -> None:
    site = copy_on_free_ports(sejong_site, tmp_path).path
    faults = repo_root / "examples" / "faults" / "grid_meter_lost.yaml"
    done = run_cems("simulate", site, "--speed", "1200", "--duration", "4", "--start",
                    "2026-07-15T12:00:00+09:00", "--faults", faults, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ready" in done.stdout and "fault" not in done.stdout
    fired = [line for line in done.stderr.splitlines() if line.startswith("fault: ")]
    assert [line.split(" faults")[1] for line in fired] == [
        "[0] freeze grid-meter for 10min (meter firmware hangs; values and heartbeat stop)",
        "[0] end of freeze grid-meter (values live)",
        "[1] drop grid-meter (the meter's gateway goes down (load-meter with it)) "
        f"[port 127.0.0.1:{_port_of(site, 'grid-meter')}; with load-meter]",
        f"[2] restore grid-meter [port 127.0.0.1:{_port_of(site, 'grid-meter')}; "
        "with load-meter]",
    ]
    assert fired[0].startswith("fault: 2026-07-15T12:05:00+09:00 (+5min)")

    bad = tmp_path / "bad.yaml"
    bad.write_text("faults:\n  - {at: '+1min', device: grid-meter, fault: drop}\n"
                   "  - {at: '+2min', device: grid-meterr, fault: restore}\n", encoding="utf-8")
    done = run_cems("simulate", site, "--duration", "5", "--faults", bad, timeout=60)
    assert done.returncode == 2 and "ready" not in done.stdout
    assert f"{bad}: faults[1] (line 3): no simulated device 'grid-meterr'" in done.stderr


def _port_of(site: Path, device: str) -> int:
    from cems.config import load_site
    from cems.devices import connections

    return next(conn.port for asset_id, _section, _obj, conn in connections(load_site(site))
                if asset_id == device)
