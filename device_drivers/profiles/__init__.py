"""Shipped device profiles (YAML register maps) and their validated schema.

A site's ``connection.profile`` names one of these (the file stem), or ``sunspec`` for
devices that describe themselves through the SunSpec model chain. :func:`load_profile`
returns a frozen :class:`Profile`; every field is documented in ``docs/drivers.md``.
"""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from device_drivers import ProfileError

PROFILE_DIR = Path(__file__).parent

#: Profile name for self-describing SunSpec devices (no register map file needed).
SUNSPEC = "sunspec"

DataType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
Kind = Literal["ess", "pv_inverter", "fuel_cell", "ev_charger", "meter"]

#: Registers (16-bit words) per data type.
WORDS: dict[str, int] = {
    "int16": 1, "uint16": 1, "int32": 2, "uint32": 2,
    "int64": 4, "uint64": 4, "float32": 2, "float64": 4,
}

#: Canonical register names every profile of a kind must define (its capabilities).
REQUIRED: dict[str, tuple[str, ...]] = {
    "ess": ("active_power_kw", "soc_pct", "available_charge_kw", "available_discharge_kw",
            "power_setpoint_kw"),
    "pv_inverter": ("active_power_kw", "power_limit_pct"),
    "fuel_cell": ("active_power_kw", "power_setpoint_kw", "status"),
    "ev_charger": ("active_power_kw", "session_state", "power_setpoint_kw"),
    "meter": ("active_power_kw", "import_energy_kwh", "export_energy_kwh"),
}

#: The device's own communication timeout (watchdog), by canonical name: seconds without a
#: setpoint write after which the device falls back to its failsafe value (0 = off). A
#: profile of a controllable kind should have it; without it the setpoint holds on the
#: device until the next write (``cems`` then re-sends and alarms, docs/drivers.md).
FAILSAFE_TIMEOUT = "setpoint_timeout_s"

#: Per kind: the register the device writes into when its timeout trips (its setpoint),
#: and the register holding the value it falls back to, if the device has one (else the
#: fallback is fixed by the device: ESS 0 kW).
SETPOINT: dict[str, str] = {
    "ess": "power_setpoint_kw", "fuel_cell": "power_setpoint_kw",
    "ev_charger": "power_setpoint_kw", "pv_inverter": "power_limit_pct",
}
FAILSAFE_VALUE: dict[str, str] = {
    "fuel_cell": "failsafe_power_kw", "ev_charger": "failsafe_power_kw",
    "pv_inverter": "failsafe_limit_pct",
}

#: Modbus function codes the pipeline may use per register table.
MAX_REGISTERS_PER_READ = 125


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Register(_Strict):
    """One value in a register map (documented field by field in docs/drivers.md)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Canonical name, unit suffix.")
    address: int = Field(ge=0, le=65535, description="0-based wire address of the first word.")
    function: Literal["holding", "input"] = Field(description="Register table (FC 3 or FC 4).")
    type: DataType
    word_order: Literal["big", "little"] | None = Field(
        None, description="Overrides the profile's word order for multi-word types."
    )
    scale: float = Field(1.0, description="Engineering value = raw x scale (x 10^sf).")
    scale_factor_register: str | None = Field(
        None, description="Name of an int16 register holding a power-of-ten exponent."
    )
    unit: str = ""
    access: Literal["r", "rw"] = "r"
    valid_range: tuple[float, float] | None = Field(
        None, description="Engineering values outside [lo, hi] are flagged invalid."
    )
    write_range: tuple[float, float] | None = Field(
        None, description="Allowed write values (rw only); defaults to valid_range."
    )
    not_implemented: int | Literal["none"] | None = Field(
        None, description="Raw sentinel meaning 'no value' (default: min of signed types, "
        "max of unsigned types; floats: NaN); 'none' for counters that use every value."
    )

    @model_validator(mode="after")
    def _check(self) -> Register:
        for label, rng in (("valid_range", self.valid_range), ("write_range", self.write_range)):
            if rng is not None and rng[0] > rng[1]:
                raise ValueError(f"{label} [{rng[0]}, {rng[1]}] has lo > hi")
        if self.write_range is not None and self.access != "rw":
            raise ValueError("write_range given for a read-only register; set access: rw")
        if self.access == "rw" and self.function != "holding":
            raise ValueError("only holding registers are writable; set function: holding")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        return self

    @property
    def words(self) -> int:
        """Number of 16-bit registers the value occupies."""
        return WORDS[self.type]

    @property
    def allowed_write_range(self) -> tuple[float, float] | None:
        """The range a write must respect (write_range, else valid_range)."""
        return self.write_range if self.write_range is not None else self.valid_range


class Heartbeat(_Strict):
    """A register the device changes continually (a counter); if it stops, data is stale."""

    counter: str = Field(description="Name of the counter register.")
    timeout_s: float = Field(10.0, gt=0.0, description="Unchanged this long -> stale.")


class Profile(_Strict):
    """A device's register map: the one input of the generic Modbus pipeline."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: Kind
    description: str = ""
    word_order: Literal["big", "little"] = Field(
        "big", description="Order of 16-bit words in 32/64-bit values (bytes are big-endian)."
    )
    heartbeat: Heartbeat | None = Field(
        None, description="Frozen-device detection: a counter register and its timeout."
    )
    registers: tuple[Register, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Profile:
        names = [r.name for r in self.registers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate register names: {', '.join(dupes)}")
        by_name = {r.name: r for r in self.registers}
        for table in ("holding", "input"):
            spans = sorted(
                (r.address, r.address + r.words, r.name)
                for r in self.registers if r.function == table
            )
            for (_, end_a, name_a), (start_b, _, name_b) in itertools.pairwise(spans):
                if start_b < end_a:
                    raise ValueError(f"registers {name_a} and {name_b} overlap in {table}")
            for _start, end, name in spans:
                if end > 65536:
                    raise ValueError(f"register {name} runs past address 65535")
        for reg in self.registers:
            if reg.scale_factor_register is not None:
                sf = by_name.get(reg.scale_factor_register)
                if sf is None or sf.type != "int16":
                    raise ValueError(
                        f"{reg.name}: scale_factor_register {reg.scale_factor_register!r} "
                        "must name an int16 register of this profile"
                    )
        if self.heartbeat is not None and self.heartbeat.counter not in by_name:
            raise ValueError(f"heartbeat counter {self.heartbeat.counter!r} is not a register")
        missing = [n for n in REQUIRED[self.kind] if n not in by_name]
        if missing:
            raise ValueError(
                f"a {self.kind} profile must define {', '.join(missing)} (capability registers)"
            )
        self._check_failsafe(by_name)
        return self

    def _check_failsafe(self, by_name: dict[str, Register]) -> None:
        """Failsafe registers are writable, and a fallback value needs its timeout."""
        value_name = FAILSAFE_VALUE.get(self.kind)
        for name in (FAILSAFE_TIMEOUT, value_name):
            reg = by_name.get(name) if name else None
            if reg is not None and reg.access != "rw":
                raise ValueError(f"failsafe register {name} must be writable (access: rw)")
        if value_name in by_name and FAILSAFE_TIMEOUT not in by_name:
            raise ValueError(f"{value_name} needs a {FAILSAFE_TIMEOUT} register (the timeout "
                             "after which the device falls back to it)")

    @property
    def failsafe_timeout(self) -> Register | None:
        """The device's communication-timeout register, or None if it has none."""
        return next((r for r in self.registers if r.name == FAILSAFE_TIMEOUT), None)

    @property
    def failsafe_value(self) -> Register | None:
        """The register holding the value the device falls back to, or None."""
        name = FAILSAFE_VALUE.get(self.kind)
        return next((r for r in self.registers if r.name == name), None)

    def register(self, name: str) -> Register:
        """Return the register called ``name``; raise :class:`ProfileError` if absent."""
        for reg in self.registers:
            if reg.name == name:
                return reg
        known = ", ".join(r.name for r in self.registers)
        raise ProfileError(f"profile {self.name!r} has no register {name!r}; known: {known}")

    def word_order_of(self, reg: Register) -> str:
        """The word order that applies to ``reg``."""
        return reg.word_order or self.word_order


def builtin_profile_names() -> tuple[str, ...]:
    """Return the names of every shipped profile, plus ``sunspec``, sorted."""
    names = {p.stem for p in PROFILE_DIR.glob("*.yaml")}
    names.add(SUNSPEC)
    return tuple(sorted(names))


def parse_profile(data: object, *, source: str) -> Profile:
    """Validate a profile mapping; raise :class:`ProfileError` naming each bad field."""
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(profile)"
            lines.append(f"  {where}: {err['msg']}")
        raise ProfileError(f"{source}: invalid device profile\n" + "\n".join(lines)) from None


def load_profile_file(path: Path) -> Profile:
    """Load and validate one profile YAML file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    return parse_profile(data, source=str(path))


@cache
def load_profile(name: str) -> Profile:
    """Return the shipped profile called ``name`` (a file stem in this folder)."""
    if name == SUNSPEC:
        raise ProfileError("'sunspec' devices have no register map; use device_drivers.sunspec")
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(builtin_profile_names())
        raise ProfileError(f"unknown device profile {name!r}; shipped profiles: {known}")
    profile = load_profile_file(path)
    if profile.name != name:
        raise ProfileError(f"{path}: name {profile.name!r} differs from the file name {name!r}")
    return profile
