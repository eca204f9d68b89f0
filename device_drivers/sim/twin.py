"""The digital twin: site models stepped on a simulated clock, exposed as canonical values.

Independent of any network code: :class:`Twin` maps device names to physical models and
turns their state into canonical register values (``active_power_kw``, ``soc_pct`` ...),
and accepts setpoint writes. :class:`SimClock` runs ``speed`` times faster than real time.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from device_drivers import DeviceError
from device_drivers.sim.physics import (
    Clouds,
    EssModel,
    EvChargerModel,
    FuelCellModel,
    LoadModel,
    MeterModel,
    PvModel,
    Watchdog,
    solar_position_deg,
)
from device_drivers.sim.weather import WeatherSeries

SimKind = Literal["pv_inverter", "ess", "fuel_cell", "ev_charger", "meter"]


@dataclass(frozen=True)
class SimDeviceSpec:
    """One simulated device: where it is served and the parameters of its physics.

    ``params`` are the asset's site fields (``kwp``, ``capacity_kwh`` ...); for a meter,
    ``params["role"]`` is ``grid`` (sums the whole site), ``sub`` (the base load) or
    ``trading`` (a generator's own trading meter: exports what ``params["assets"]`` produce;
    those generators are not part of the site's sum).
    """

    name: str
    kind: SimKind
    host: str
    port: int
    device_id: int
    profile: str
    params: dict[str, Any] = field(default_factory=dict)
    protocol: Literal["modbus_tcp", "modbus_rtu_over_tcp"] = "modbus_tcp"


@dataclass(frozen=True)
class SiteSpec:
    """Everything the twin needs about a site."""

    latitude: float
    longitude: float
    timezone: str
    devices: tuple[SimDeviceSpec, ...]
    base_load_daily_kwh: float = 2000.0
    seed: int = 1
    #: actual weather driving the PV (None: the random-walk clouds of :class:`Clouds`)
    weather: WeatherSeries | None = None


class SimClock:
    """Simulated time: ``start`` + (wall time elapsed) x ``speed``; tz-aware."""

    def __init__(self, *, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise DeviceError("SimClock start must be timezone-aware, e.g. 2026-07-01T12:00+09:00")
        if speed <= 0:
            raise DeviceError(f"simulation speed must be > 0, got {speed}")
        self.start = start
        self.speed = speed
        self._wall0 = time.monotonic()

    def now(self) -> datetime:
        """Current simulated time."""
        return self.start + timedelta(seconds=(time.monotonic() - self._wall0) * self.speed)


def _watchdog(m: Watchdog) -> dict[str, float]:
    """The communication-timeout values of a controllable model (``failsafe_active`` is
    state, not a register: 1 while the device runs on its failsafe value)."""
    return {"setpoint_timeout_s": m.setpoint_timeout_s,
            "failsafe_active": 1.0 if m.failsafe_active else 0.0}


def _float(params: dict[str, Any], key: str, default: float | None = None) -> float:
    value = params.get(key, default)
    if value is None:
        raise DeviceError(f"simulated device needs parameter {key!r}")
    return float(value)


class Twin:
    """The physical state of a whole site, stepped in simulated time."""

    def __init__(self, site: SiteSpec, *, start: datetime) -> None:
        self.site = site
        self.tz = ZoneInfo(site.timezone)
        self.rng = random.Random(site.seed)
        self.clouds = Clouds(random.Random(site.seed + 1))
        self.time = start
        self.load = LoadModel(site.base_load_daily_kwh, random.Random(site.seed + 2))
        self.specs = {d.name: d for d in site.devices}
        #: generators metered by their own trading meter (``params["assets"]`` of a meter
        #: with role ``trading``): they feed the grid through it, not the site
        self._sold_apart = frozenset(
            a for d in site.devices if d.params.get("role") == "trading"
            for a in d.params.get("assets", ()))
        self.models: dict[str, Any] = {}
        for i, spec in enumerate(site.devices):
            self.models[spec.name] = self._build(spec, random.Random(site.seed + 10 + i))
        self.step(0.0)

    @staticmethod
    def _build(spec: SimDeviceSpec, rng: random.Random) -> Any:
        p = spec.params
        if spec.kind == "pv_inverter":
            return PvModel(kwp=_float(p, "kwp"), inverter_ac_kw=_float(p, "inverter_ac_kw"),
                           losses_pct=_float(p, "losses_pct", 14.0),
                           tilt_deg=_float(p, "tilt_deg", 0.0),
                           azimuth_deg=_float(p, "azimuth_deg", 180.0))
        if spec.kind == "ess":
            soc = _float(p, "soc_initial", 0.5)
            return EssModel(
                capacity_kwh=_float(p, "capacity_kwh"), max_charge_kw=_float(p, "max_charge_kw"),
                max_discharge_kw=_float(p, "max_discharge_kw"),
                charge_efficiency=_float(p, "charge_efficiency", 0.95),
                discharge_efficiency=_float(p, "discharge_efficiency", 0.95),
                soc_min=_float(p, "soc_min", 0.1), soc_max=_float(p, "soc_max", 0.9), soc=soc,
            )
        if spec.kind == "fuel_cell":
            ramp = p.get("ramp_kw_per_min")
            min_kw = _float(p, "min_kw", 0.0)
            model = FuelCellModel(
                min_kw=min_kw, max_kw=_float(p, "max_kw"),
                ramp_kw_per_min=None if ramp is None else float(ramp),
                heat_recovery_ratio=_float(p, "heat_recovery_ratio", 0.0),
                failsafe_kw=_float(p, "safe_kw", min_kw),  # as commissioned for the site
            )
            model.setpoint_kw = model.power_kw = _float(p, "initial_kw", model.min_kw)
            return model
        if spec.kind == "ev_charger":
            model = EvChargerModel(
                max_kw=_float(p, "max_kw"), rng=rng, min_kw=_float(p, "min_kw", 0.0),
                max_discharge_kw=_float(p, "max_discharge_kw", 0.0)
                if p.get("bidirectional") else 0.0,
                efficiency=_float(p, "efficiency", 0.92),
                failsafe_kw=_float(p, "min_kw", 0.0),
            )
            if rng.random() < 0.5:
                model.arrive(rng.uniform(20, 60), rng.uniform(1, 8), rng.uniform(70, 90))
            return model
        if spec.kind == "meter":
            return MeterModel()
        raise DeviceError(f"simulated device {spec.name}: unknown kind {spec.kind!r}")

    # ------------------------------------------------------------------ stepping

    def advance_to(self, when: datetime, *, max_step_s: float = 60.0) -> None:
        """Step up to ``when`` in sub-steps of at most ``max_step_s`` simulated seconds."""
        remaining_h = (when - self.time).total_seconds() / 3600
        while remaining_h > 1e-12:
            dt_h = min(remaining_h, max_step_s / 3600)
            self.step(dt_h)
            remaining_h -= dt_h

    def step(self, dt_h: float) -> None:
        """Advance every model by ``dt_h`` hours of simulated time."""
        self.time = self.time + timedelta(hours=dt_h)
        elevation, sun_azimuth = solar_position_deg(
            self.time, self.site.latitude, self.site.longitude
        )
        cloud = self.clouds.step(dt_h)
        if self.site.weather is not None:  # a weather scenario replaces the random walk
            cloud = self.site.weather.index_at(self.time)
            self.clouds.factor = cloud
        local = self.time.astimezone(self.tz)
        self.load.step(local.hour + local.minute / 60 + local.second / 3600)
        net_kw = self.load.power_kw
        apart = self._sold_apart
        for name, model in self.models.items():
            if isinstance(model, PvModel):
                model.step(dt_h, elevation, cloud, sun_azimuth)
                if name not in apart:  # a generator on its own trading meter is not the site
                    net_kw -= model.power_kw
            elif isinstance(model, EssModel | FuelCellModel):
                model.step(dt_h)
                net_kw -= model.power_kw
            elif isinstance(model, EvChargerModel):
                model.step(dt_h)
                net_kw += model.power_kw
        for name, model in self.models.items():
            if isinstance(model, MeterModel):
                params = self.specs[name].params
                role = params.get("role", "grid")
                if role == "grid":
                    power = net_kw
                elif role == "trading":  # exports what its generators produce
                    power = -sum(self.models[a].power_kw for a in params.get("assets", ())
                                 if a in self.models)
                else:
                    power = self.load.power_kw
                model.update(power, dt_h, self.rng)

    # ------------------------------------------------------------------ values

    def values(self, name: str) -> dict[str, float]:
        """Canonical register values of device ``name`` (engineering units)."""
        out = self._values(name)
        out["heartbeat_count"] = float(int(self.time.timestamp()) & 0xFFFF)
        return out

    def _values(self, name: str) -> dict[str, float]:
        m = self.models[name]
        if isinstance(m, PvModel):
            return {"active_power_kw": m.power_kw, "energy_total_kwh": m.energy_kwh,
                    "status": 2.0 if m.power_kw > 0 else 1.0, "power_limit_pct": m.power_limit_pct,
                    "failsafe_limit_pct": m.failsafe_limit_pct, **_watchdog(m)}
        if isinstance(m, EssModel):
            return {"soc_pct": m.soc * 100, "active_power_kw": m.power_kw,
                    "available_charge_kw": m.available_charge_kw(),
                    "available_discharge_kw": m.available_discharge_kw(),
                    "energy_capacity_kwh": m.capacity_kwh, "max_charge_kw": m.max_charge_kw,
                    "status": 2.0 if abs(m.power_kw) > 0 else 1.0,
                    "power_setpoint_kw": m.setpoint_kw, **_watchdog(m)}
        if isinstance(m, FuelCellModel):
            return {"active_power_kw": m.power_kw, "heat_output_kw": m.heat_kw,
                    "status": float(m.status), "power_setpoint_kw": m.setpoint_kw,
                    "failsafe_power_kw": m.failsafe_kw, **_watchdog(m)}
        if isinstance(m, EvChargerModel):
            setpoint = m.setpoint_kw if m.setpoint_kw is not None else 0.0
            return {"active_power_kw": m.power_kw, "session_state": float(m.session_state),
                    "ev_soc_pct": m.ev_soc_pct if m.connected else 0.0,
                    "ev_target_soc_pct": m.target_soc_pct if m.connected else 0.0,
                    "departure_in_min": max(m.hours_left, 0.0) * 60 if m.connected else 0.0,
                    "ev_capacity_kwh": m.battery_kwh if m.connected else 0.0,
                    "session_energy_kwh": m.session_energy_kwh, "power_setpoint_kw": setpoint,
                    "failsafe_power_kw": m.failsafe_kw, **_watchdog(m)}
        assert isinstance(m, MeterModel)
        # balanced three phases: I = |P| / (3 x V_phase)
        current_a = abs(m.power_kw) * 1000 / (3 * m.voltage_v)
        return {"voltage_l1_v": m.voltage_v, "voltage_l2_v": m.voltage_v + 0.4,
                "voltage_l3_v": m.voltage_v - 0.3, "active_power_kw": m.power_kw,
                "import_energy_kwh": m.import_kwh, "export_energy_kwh": m.export_kwh,
                "current_l1_a": current_a, "current_l2_a": current_a,
                "current_l3_a": current_a, "frequency_hz": 60.0}

    def apply_write(self, name: str, register: str, value: float) -> None:
        """Apply a setpoint (or failsafe setting) written by a client to the physical model.

        A setpoint write (``power_setpoint_kw``, PV ``power_limit_pct``) restarts the
        device's communication timeout; ``setpoint_timeout_s`` sets it (0 = off) and
        ``failsafe_power_kw`` / ``failsafe_limit_pct`` the value it falls back to."""
        m = self.models[name]
        if isinstance(m, EssModel | FuelCellModel | EvChargerModel) and (
                register == "power_setpoint_kw"):
            m.set_setpoint(value)
        elif isinstance(m, PvModel) and register == "power_limit_pct":
            m.set_limit(value)
        elif isinstance(m, Watchdog) and register == "setpoint_timeout_s":
            m.setpoint_timeout_s = value
        elif isinstance(m, FuelCellModel | EvChargerModel) and register == "failsafe_power_kw":
            m.failsafe_kw = value
        elif isinstance(m, PvModel) and register == "failsafe_limit_pct":
            m.failsafe_limit_pct = value
        else:
            raise DeviceError(f"simulated {name}: register {register} is not a setpoint")

    def state(self) -> dict[str, dict[str, float]]:
        """True physical state of every device (for tests and the runtime)."""
        out = {name: self.values(name) for name in self.models}
        out["_site"] = {"base_load_kw": self.load.power_kw, "cloud_factor": self.clouds.factor}
        return out
