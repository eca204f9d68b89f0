"""Pure physical models of the simulated devices; each ``step`` advances by ``dt_h`` hours.

Sign conventions as everywhere in :mod:`device_drivers`: ESS power > 0 discharges; EV
power > 0 charges the vehicle (< 0 is V2G); meter power > 0 is import.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime


def solar_position_deg(when: datetime, latitude: float, longitude: float) -> tuple[float, float]:
    """Approximate solar (elevation, azimuth from north) in degrees (NOAA-style, ~0.5 deg)."""
    if when.tzinfo is None:
        raise ValueError("solar_position_deg needs a timezone-aware datetime")
    utc = when.timestamp()
    doy = datetime.fromtimestamp(utc, tz=when.tzinfo).timetuple().tm_yday
    gamma = 2 * math.pi / 365 * (doy - 1 + (utc % 86400) / 86400)
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
            - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
            - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                       - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    minutes_utc = (utc % 86400) / 60.0
    true_solar_min = minutes_utc + eqtime + 4 * longitude
    hour_angle = math.radians(true_solar_min / 4 - 180)
    lat = math.radians(latitude)
    cos_zen = (math.sin(lat) * math.sin(decl)
               + math.cos(lat) * math.cos(decl) * math.cos(hour_angle))
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, cos_zen))))
    azimuth = math.degrees(math.atan2(
        math.sin(hour_angle),
        math.cos(hour_angle) * math.sin(lat) - math.tan(decl) * math.cos(lat),
    )) + 180.0
    return elevation, azimuth % 360.0


def solar_elevation_deg(when: datetime, latitude: float, longitude: float) -> float:
    """Approximate solar elevation in degrees (see :func:`solar_position_deg`)."""
    return solar_position_deg(when, latitude, longitude)[0]


def plane_of_array_w_m2(
    ghi_w_m2: float, elevation_deg: float, sun_azimuth_deg: float, tilt_deg: float,
    array_azimuth_deg: float, *, diffuse_fraction: float = 0.15, albedo: float = 0.2,
) -> float:
    """Irradiance on a tilted plane: beam x cos(AOI) + isotropic sky diffuse + ground."""
    if ghi_w_m2 <= 0 or elevation_deg <= 0:
        return 0.0
    dhi = ghi_w_m2 * diffuse_fraction
    sin_el = math.sin(math.radians(elevation_deg))
    dni = (ghi_w_m2 - dhi) / sin_el if sin_el > 0.05 else 0.0
    zen, tilt = math.radians(90 - elevation_deg), math.radians(tilt_deg)
    cos_aoi = (math.cos(zen) * math.cos(tilt) + math.sin(zen) * math.sin(tilt)
               * math.cos(math.radians(sun_azimuth_deg - array_azimuth_deg)))
    return (dni * max(0.0, cos_aoi) + dhi * (1 + math.cos(tilt)) / 2
            + ghi_w_m2 * albedo * (1 - math.cos(tilt)) / 2)


def clear_sky_ghi_w_m2(elevation_deg: float) -> float:
    """Haurwitz clear-sky global horizontal irradiance (W/m2) from solar elevation."""
    if elevation_deg <= 0:
        return 0.0
    cos_z = math.sin(math.radians(elevation_deg))
    return 1098.0 * cos_z * math.exp(-0.057 / cos_z)


@dataclass
class Clouds:
    """Cloud cover as a bounded random walk: ``factor`` in [0.2, 1] scales irradiance."""

    rng: random.Random
    factor: float = 0.9

    def step(self, dt_h: float) -> float:
        sigma = 0.15 * math.sqrt(max(dt_h, 0.0))
        self.factor = min(1.0, max(0.2, self.factor + self.rng.gauss(0.0, sigma)))
        return self.factor


@dataclass(kw_only=True)
class Watchdog:
    """A device's communication timeout, as real controllable devices have one.

    ``setpoint_timeout_s`` (0 = off) is how long the device holds a setpoint without a new
    setpoint write (:meth:`kick`); then it trips: the model's :meth:`revert` puts its
    failsafe value in force, and ``failsafe_active`` stays set until the next setpoint.
    Ages count simulated time, through each model's ``step``.
    """

    setpoint_timeout_s: float = 0.0
    setpoint_age_s: float = 0.0
    failsafe_active: bool = False

    def kick(self) -> None:
        """A setpoint was written: the timer starts again and the failsafe is left."""
        self.setpoint_age_s = 0.0
        self.failsafe_active = False

    def _watch(self, dt_h: float) -> None:
        """Age the setpoint by ``dt_h`` hours; trip (revert) once past the timeout."""
        self.setpoint_age_s += dt_h * 3600
        if (self.setpoint_timeout_s > 0 and not self.failsafe_active
                and self.setpoint_age_s > self.setpoint_timeout_s):
            self.failsafe_active = True
            self.revert()

    def revert(self) -> None:
        """Put the failsafe value in force (each model says what that is)."""
        raise NotImplementedError


@dataclass
class PvModel(Watchdog):
    """A PV array and inverter: clear-sky plane-of-array power x clouds, clipped, curtailable.

    The power limit reverts to ``failsafe_limit_pct`` (100 %: uncapped) on a timeout."""

    kwp: float
    inverter_ac_kw: float
    losses_pct: float = 14.0
    tilt_deg: float = 0.0
    azimuth_deg: float = 180.0
    power_limit_pct: float = 100.0
    failsafe_limit_pct: float = 100.0
    power_kw: float = 0.0
    energy_kwh: float = 0.0

    def set_limit(self, limit_pct: float) -> None:
        """A power-limit write (the inverter's setpoint)."""
        self.power_limit_pct = limit_pct
        self.kick()

    def revert(self) -> None:
        self.power_limit_pct = self.failsafe_limit_pct

    def step(self, dt_h: float, elevation_deg: float, cloud_factor: float,
             sun_azimuth_deg: float = 180.0) -> None:
        self._watch(dt_h)
        ghi = clear_sky_ghi_w_m2(elevation_deg) * cloud_factor
        poa = plane_of_array_w_m2(ghi, elevation_deg, sun_azimuth_deg, self.tilt_deg,
                                  self.azimuth_deg)
        dc_kw = self.kwp * poa / 1000.0 * (1 - self.losses_pct / 100.0)
        limit = self.inverter_ac_kw * self.power_limit_pct / 100.0
        self.power_kw = max(0.0, min(dc_kw * 0.97, limit))
        self.energy_kwh += self.power_kw * dt_h


@dataclass
class EssModel(Watchdog):
    """A battery: integrates the setpoint into SOC within power, SOC and efficiency limits.

    On a timeout the setpoint reverts to 0 kW (idle)."""

    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    soc_min: float = 0.1
    soc_max: float = 0.9
    soc: float = 0.5
    setpoint_kw: float = 0.0
    power_kw: float = 0.0

    def available_charge_kw(self) -> float:
        room_kwh = max(0.0, (self.soc_max - self.soc) * self.capacity_kwh)
        return min(self.max_charge_kw, room_kwh / self.charge_efficiency * 4)  # 15-min view

    def available_discharge_kw(self) -> float:
        avail_kwh = max(0.0, (self.soc - self.soc_min) * self.capacity_kwh)
        return min(self.max_discharge_kw, avail_kwh * self.discharge_efficiency * 4)

    def revert(self) -> None:
        self.setpoint_kw = 0.0  # the device's own watchdog: revert to idle

    def step(self, dt_h: float) -> None:
        self._watch(dt_h)
        p = max(-self.max_charge_kw, min(self.max_discharge_kw, self.setpoint_kw))
        if p > 0:  # discharge: energy leaving the cells = p / eta
            usable = max(0.0, (self.soc - self.soc_min) * self.capacity_kwh)
            p = min(p, usable * self.discharge_efficiency / dt_h) if dt_h > 0 else p
            self.soc -= p / self.discharge_efficiency * dt_h / self.capacity_kwh
        elif p < 0:  # charge: energy entering the cells = |p| x eta
            room = max(0.0, (self.soc_max - self.soc) * self.capacity_kwh)
            p = -min(-p, room / self.charge_efficiency / dt_h) if dt_h > 0 else p
            self.soc += -p * self.charge_efficiency * dt_h / self.capacity_kwh
        self.power_kw = p

    def set_setpoint(self, power_kw: float) -> None:
        self.setpoint_kw = power_kw
        self.kick()


@dataclass
class FuelCellModel(Watchdog):
    """A fuel cell ramping towards its setpoint (0 = off, else within [min_kw, max_kw]).

    On a timeout the setpoint falls back to ``failsafe_kw`` (reached at the ramp rate)."""

    min_kw: float
    max_kw: float
    ramp_kw_per_min: float | None = None
    heat_recovery_ratio: float = 0.0
    setpoint_kw: float = 0.0
    failsafe_kw: float = 0.0
    power_kw: float = 0.0

    def set_setpoint(self, power_kw: float) -> None:
        """A setpoint write."""
        self.setpoint_kw = power_kw
        self.kick()

    def revert(self) -> None:
        self.setpoint_kw = self.failsafe_kw

    def target_kw(self) -> float:
        if self.setpoint_kw <= 0:
            return 0.0
        return min(self.max_kw, max(self.min_kw, self.setpoint_kw))

    def step(self, dt_h: float) -> None:
        self._watch(dt_h)
        target = self.target_kw()
        if self.ramp_kw_per_min is None:
            self.power_kw = target
            return
        max_step = self.ramp_kw_per_min * dt_h * 60
        delta = max(-max_step, min(max_step, target - self.power_kw))
        self.power_kw += delta

    @property
    def heat_kw(self) -> float:
        return self.power_kw * self.heat_recovery_ratio

    @property
    def status(self) -> int:
        """0 off, 1 ramping, 2 running at target."""
        if self.power_kw <= 1e-9 and self.target_kw() == 0:
            return 0
        return 2 if abs(self.power_kw - self.target_kw()) < 1e-6 else 1


#: EV charger session states (the ``session_state`` register).
EV_IDLE, EV_CONNECTED, EV_CHARGING, EV_DISCHARGING = 0, 1, 2, 3


@dataclass
class EvChargerModel(Watchdog):
    """A charger with random sessions: arrival, SOC integration, departure.

    Each session has the driver's needs, as ISO 15118 would report them: a target SOC (the
    car's charge limit: it accepts no charging above it) and a departure time. Without a
    setpoint the charger runs uncontrolled: full power from arrival until the target. On a
    timeout it falls back to ``failsafe_kw`` (charging only) and keeps it for every session
    until the next setpoint write.
    """

    max_kw: float
    rng: random.Random
    min_kw: float = 0.0
    max_discharge_kw: float = 0.0
    efficiency: float = 0.92
    battery_kwh: float = 60.0
    arrivals_per_h: float = 0.15
    connected: bool = False
    ev_soc_pct: float = 0.0
    hours_left: float = 0.0
    setpoint_kw: float | None = None
    failsafe_kw: float = 0.0
    power_kw: float = 0.0
    session_energy_kwh: float = 0.0
    target_soc_pct: float = 80.0
    arrival_soc_pct: float = 0.0
    departed: list[tuple[float, float, float]] = field(default_factory=list)
    """(arrival SOC, departure SOC, target SOC) of each session that ended, oldest first;
    a recorder may read and clear it."""

    def arrive(self, soc_pct: float, stay_h: float, target_soc_pct: float = 80.0) -> None:
        self.connected, self.ev_soc_pct, self.hours_left = True, soc_pct, stay_h
        self.session_energy_kwh, self.setpoint_kw = 0.0, self._idle_setpoint()
        self.target_soc_pct, self.arrival_soc_pct = target_soc_pct, soc_pct

    def _idle_setpoint(self) -> float | None:
        """The setpoint a new session starts with: none (uncontrolled), or the failsafe."""
        return max(self.failsafe_kw, 0.0) if self.failsafe_active else None

    def set_setpoint(self, power_kw: float) -> None:
        """A setpoint write."""
        self.setpoint_kw = power_kw
        self.kick()

    def revert(self) -> None:
        self.setpoint_kw = max(self.failsafe_kw, 0.0)  # a failsafe never discharges the car

    def step(self, dt_h: float) -> None:
        self._watch(dt_h)
        if not self.connected:
            self.power_kw = 0.0
            if self.rng.random() < 1 - math.exp(-self.arrivals_per_h * dt_h):
                self.arrive(self.rng.uniform(20, 60), self.rng.uniform(2, 10),
                            self.rng.uniform(70, 90))
            return
        self.hours_left -= dt_h
        if self.hours_left <= 0:
            self.departed.append((self.arrival_soc_pct, self.ev_soc_pct, self.target_soc_pct))
            self.connected, self.power_kw = False, 0.0
            self.setpoint_kw = self._idle_setpoint()
            return
        wanted = self.max_kw if self.setpoint_kw is None else self.setpoint_kw
        p = max(-self.max_discharge_kw, min(self.max_kw, wanted))
        if p > 0:  # the car's charge limit: nothing above the target SOC
            room_kwh = (self.target_soc_pct - self.ev_soc_pct) / 100 * self.battery_kwh
            p = min(p, max(room_kwh, 0.0) / self.efficiency / dt_h) if dt_h > 0 else p
        if p < 0 and self.ev_soc_pct <= 20.0:
            p = 0.0  # keep a reserve for the driver
        into_battery = p * self.efficiency if p > 0 else p / self.efficiency
        self.ev_soc_pct = min(100.0, max(0.0, self.ev_soc_pct
                                         + into_battery * dt_h / self.battery_kwh * 100))
        self.power_kw = p
        self.session_energy_kwh += abs(p) * dt_h

    @property
    def session_state(self) -> int:
        if not self.connected:
            return EV_IDLE
        if self.power_kw > 1e-9:
            return EV_CHARGING
        if self.power_kw < -1e-9:
            return EV_DISCHARGING
        return EV_CONNECTED


@dataclass
class LoadModel:
    """Base load: a two-peak daily shape scaled to ``daily_energy_kwh``, with noise."""

    daily_energy_kwh: float
    rng: random.Random
    power_kw: float = 0.0
    _shape: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        raw = [0.55 + 0.35 * math.exp(-((h - 8.5) / 2.0) ** 2)
               + 0.6 * math.exp(-((h - 20.0) / 2.5) ** 2) for h in range(24)]
        total = sum(raw)
        self._shape = [r / total for r in raw]

    def step(self, local_hour: float) -> None:
        h0 = int(local_hour) % 24
        frac = local_hour - int(local_hour)
        share = self._shape[h0] * (1 - frac) + self._shape[(h0 + 1) % 24] * frac
        self.power_kw = max(0.0, self.daily_energy_kwh * share * (1 + self.rng.gauss(0, 0.03)))


@dataclass
class MeterModel:
    """A meter: signed power (> 0 import) integrated into import/export registers."""

    power_kw: float = 0.0
    import_kwh: float = 0.0
    export_kwh: float = 0.0
    voltage_v: float = 230.0

    def update(self, power_kw: float, dt_h: float, rng: random.Random) -> None:
        self.power_kw = power_kw
        if power_kw >= 0:
            self.import_kwh += power_kw * dt_h
        else:
            self.export_kwh += -power_kw * dt_h
        self.voltage_v = 230.0 + rng.gauss(0.0, 0.8)
