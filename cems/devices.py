"""Devices of a site: drivers built from the SiteConfig's ``connection`` blocks.

Maps the site model onto :mod:`device_drivers`: one shared Modbus endpoint per
(protocol, host, port) or serial port, one driver per device (profile or SunSpec), and
the simulator's site description. AMI meters are not polled (their data arrives as files).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cems.config.connections import (
    AmiConnection,
    ModbusRtuConnection,
    ModbusTcpConnection,
    OcppConnection,
)
from cems.config.model import SiteConfig
from device_drivers.modbus_device import Clock, ModbusDevice, utc_now
from device_drivers.profiles import SUNSPEC, load_profile
from device_drivers.sim.twin import SimDeviceSpec, SiteSpec
from device_drivers.sunspec.client import SunSpecDevice
from device_drivers.transport import EndpointSpec, ModbusEndpoint
from device_drivers.types import Quality, Reading

Driver = ModbusDevice | SunSpecDevice
ModbusConnection = ModbusTcpConnection | ModbusRtuConnection

log = logging.getLogger(__name__)

#: Asset section -> simulator device kind.
_SIM_KIND = {"pv": "pv_inverter", "ess": "ess", "fuel_cells": "fuel_cell",
             "ev_chargers": "ev_charger", "meters": "meter"}


@dataclass(frozen=True)
class SiteDevice:
    """One polled device of the site."""

    id: str
    section: str  # pv | ess | fuel_cells | ev_chargers | meters | deferrable
    address: str  # endpoint label and device id
    driver: Driver


@dataclass(frozen=True)
class DeviceResult:
    """The outcome of reading one device once."""

    id: str
    address: str
    readings: dict[str, Reading]
    error: str

    @property
    def quality(self) -> Quality:
        """``comm_lost`` if unreachable, ``invalid`` if any value is, else ``good``."""
        if self.error or any(r.quality is Quality.COMM_LOST for r in self.readings.values()):
            return Quality.COMM_LOST
        if any(r.quality is Quality.INVALID for r in self.readings.values()):
            return Quality.INVALID
        return Quality.GOOD


def connections(config: SiteConfig) -> Iterator[tuple[str, str, Any, Any]]:
    """Yield ``(id, section, object, connection)`` for every object with a connection."""
    assets = config.assets
    for section, items in (("pv", assets.pv), ("ess", assets.ess),
                           ("fuel_cells", assets.fuel_cells),
                           ("ev_chargers", assets.ev_chargers),
                           ("meters", config.meters),
                           ("deferrable", config.loads.deferrable)):
        for item in items:
            if item.connection is not None:
                yield item.id, section, item, item.connection


def _endpoint_spec(conn: ModbusConnection) -> EndpointSpec:
    if isinstance(conn, ModbusRtuConnection):
        return EndpointSpec("modbus_rtu", serial_port=conn.serial_port, baudrate=conn.baudrate,
                            parity=conn.parity, stopbits=conn.stopbits)
    return EndpointSpec(conn.protocol, host=conn.host, port=conn.port)


def build_devices(config: SiteConfig, *, clock: Clock = utc_now) -> list[SiteDevice]:
    """A driver for every Modbus device of the site; endpoints shared per address.

    ``clock`` timestamps the readings (a simulated clock in stepped runs)."""
    endpoints: dict[EndpointSpec, ModbusEndpoint] = {}
    devices: list[SiteDevice] = []
    for device_id, section, _item, conn in connections(config):
        if isinstance(conn, AmiConnection | OcppConnection):
            continue  # AMI data arrives as files; OCPP chargers connect to the CSMS
        spec = _endpoint_spec(conn)
        endpoint = endpoints.get(spec)
        if endpoint is None:
            endpoint = endpoints[spec] = ModbusEndpoint(spec, timeout_s=conn.timeout_s)
        else:
            endpoint.timeout_s = max(endpoint.timeout_s, conn.timeout_s)
        driver: Driver
        if conn.profile == SUNSPEC:
            driver = SunSpecDevice(name=device_id, endpoint=endpoint, device_id=conn.device_id,
                                   clock=clock)
        else:
            driver = ModbusDevice(name=device_id, endpoint=endpoint, device_id=conn.device_id,
                                  profile=load_profile(conn.profile), clock=clock)
        devices.append(SiteDevice(device_id, section, f"{spec.label} #{conn.device_id}", driver))
    return devices


def ami_meters(config: SiteConfig) -> dict[str, list[str]]:
    """AMI meter ids per AMI source id."""
    out: dict[str, list[str]] = {}
    for meter in config.meters:
        if isinstance(meter.connection, AmiConnection):
            out.setdefault(meter.connection.source, []).append(meter.id)
    return out


def failed_readings(driver: Driver, reason: str) -> dict[str, Reading]:
    """``comm_lost`` readings saying ``reason``: every register of a profile device, the
    active power of a SunSpec one (as their own polls report an unreachable device)."""
    try:
        now = driver.clock()
    except Exception:  # a broken clock must not break the report
        now = utc_now()
    if isinstance(driver, ModbusDevice):
        return {r.name: Reading(None, r.unit, now, Quality.COMM_LOST, reason)
                for r in driver.profile.registers}
    return {"active_power_kw": Reading(None, "kW", now, Quality.COMM_LOST, reason)}


async def poll_device(dev: SiteDevice) -> tuple[DeviceResult, bool]:
    """Poll one device; never raises (except cancellation).

    Device trouble is reported by the driver itself (``comm_lost`` readings, ``last_error``);
    any other exception of its poll or decoding (a bug, a value the decoder chokes on)
    becomes this device's error, naming the exception type and message, so it cannot stop
    the other devices' polls. Returns the result and whether such an exception occurred.
    """
    try:
        readings = await dev.driver.poll()
    except Exception as exc:  # isolate one device's failure from the rest
        reason = f"poll failed: {type(exc).__name__}: {exc}"
        return DeviceResult(dev.id, dev.address, failed_readings(dev.driver, reason),
                            reason), True
    return DeviceResult(dev.id, dev.address, readings, dev.driver.last_error), False


async def read_all(devices: list[SiteDevice]) -> list[DeviceResult]:
    """Poll every device once, concurrently across endpoints; close the endpoints after.

    One device's failure (even an unexpected exception) is its own error, logged once at
    warning; the others are read all the same."""

    async def one(dev: SiteDevice) -> DeviceResult:
        result, crashed = await poll_device(dev)
        if crashed:
            log.warning("%s (%s): %s", dev.id, dev.address, result.error)
        return result

    try:
        return list(await asyncio.gather(*(one(d) for d in devices)))
    finally:
        for endpoint in {id(d.driver.endpoint): d.driver.endpoint for d in devices}.values():
            await endpoint.close()


def simulation_spec(config: SiteConfig, *, seed: int = 1) -> tuple[SiteSpec, list[str]]:
    """The simulator's description of the site, and the ids it cannot simulate (why)."""
    sims: list[SimDeviceSpec] = []
    skipped: list[str] = []
    for device_id, section, item, conn in connections(config):
        if isinstance(conn, AmiConnection):
            continue
        if isinstance(conn, OcppConnection):
            skipped.append(f"{device_id}: an OCPP charge point (it connects to the CSMS)")
            continue
        if not isinstance(conn, ModbusTcpConnection):
            skipped.append(f"{device_id}: serial Modbus RTU is not simulated")
            continue
        kind = _SIM_KIND.get(section)
        if kind is None:
            skipped.append(f"{device_id}: {section} loads are not simulated")
            continue
        params: dict[str, Any] = item.model_dump(exclude={"connection", "id"})
        if section == "meters":
            params = {"role": item.kind if item.kind in ("grid", "trading") else "sub"}
            if item.kind == "trading":
                params["assets"] = [p.id for p in config.assets.pv if p.meter == item.id]
        sims.append(SimDeviceSpec(device_id, kind, conn.host, conn.port, conn.device_id,
                                  conn.profile, params, conn.protocol))
    base = config.loads.base
    daily = base.daily_energy_kwh or ((base.peak_kw or 100.0) * 24 * 0.6)
    site = config.site
    spec = SiteSpec(site.latitude, site.longitude, site.timezone, tuple(sims),
                    base_load_daily_kwh=daily, seed=seed)
    return spec, skipped

