"""Register images of simulated devices: profile register maps and SunSpec model chains.

An image turns canonical values into the words a device serves, says which words make a
register read as invalid, and turns a client's write back into (register, value) pairs.
"""

from __future__ import annotations

import math
from typing import Protocol

from device_drivers import DeviceError
from device_drivers.codec import DEFAULT_SENTINEL, decode, encode
from device_drivers.profiles import SUNSPEC, Profile, load_profile
from device_drivers.sim.twin import SimDeviceSpec


class DeviceImage(Protocol):
    """What the simulator server needs from a device's register layout."""

    base: int

    def encode(self, values: dict[str, float]) -> list[int]: ...

    def invalid_words(self, register: str) -> list[tuple[int, int]]: ...

    def decode_write(
        self, address: int, count: int, words: list[int]
    ) -> list[tuple[str, float]]: ...


class ProfileImage:
    """The image of a device described by a YAML profile, from address 0."""

    base = 0

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.size = max(r.address + r.words for r in profile.registers)
        self._by_name = {r.name: r for r in profile.registers}

    def encode(self, values: dict[str, float]) -> list[int]:
        words = [0] * self.size
        for reg in self.profile.registers:
            value = values.get(reg.name)
            if value is None:
                continue
            raw: float | int = value / reg.scale
            if not reg.type.startswith("float"):
                raw = round(raw)
            try:
                encoded = encode(raw, reg.type, self.profile.word_order_of(reg))
            except ValueError:  # out of the type's range: serve "not implemented"
                encoded = self._sentinel(reg.name)
            words[reg.address : reg.address + reg.words] = encoded
        return words

    def _sentinel(self, name: str) -> list[int]:
        reg = self._by_name[name]
        order = self.profile.word_order_of(reg)
        if reg.type.startswith("float"):
            return encode(math.nan, reg.type, order)
        return encode(DEFAULT_SENTINEL[reg.type], reg.type, order)

    def invalid_words(self, register: str) -> list[tuple[int, int]]:
        """NaN for floats; 0x8000 in the most significant word (rest 0) for integers."""
        reg = self._by_name.get(register)
        if reg is None:
            raise DeviceError(f"profile {self.profile.name} has no register {register!r}")
        if reg.type.startswith("float"):
            words = encode(math.nan, reg.type, self.profile.word_order_of(reg))
        else:
            words = [0x8000] + [0] * (reg.words - 1)
            if self.profile.word_order_of(reg) == "little":
                words.reverse()
        return [(reg.address + i, w) for i, w in enumerate(words)]

    def decode_write(self, address: int, count: int, words: list[int]) -> list[tuple[str, float]]:
        touched = range(address, address + count)
        out: list[tuple[str, float]] = []
        covered: set[int] = set()
        for reg in self.profile.registers:
            span = range(reg.address, reg.address + reg.words)
            if not set(span) & set(touched):
                continue
            if reg.access != "rw":
                raise DeviceError(f"register {reg.name} is read-only")
            covered.update(span)
            raw = decode(words[reg.address : reg.address + reg.words], reg.type,
                         self.profile.word_order_of(reg))
            value = float(raw) * reg.scale
            if reg.valid_range and not reg.valid_range[0] <= value <= reg.valid_range[1]:
                raise ValueError(f"{reg.name}: {value} outside {reg.valid_range}")
            out.append((reg.name, value))
        if not set(touched) <= covered:
            raise DeviceError(f"write to {address}+{count} touches no writable register")
        return out


def make_image(spec: SimDeviceSpec) -> DeviceImage:
    """The image for a simulated device: SunSpec model chain or profile register map."""
    if spec.profile == SUNSPEC:
        from device_drivers.sunspec.image import SunSpecImage

        return SunSpecImage(spec.kind)
    profile = load_profile(spec.profile)
    if profile.kind != spec.kind:
        raise DeviceError(
            f"{spec.name}: profile {spec.profile} is for a {profile.kind}, not a {spec.kind}"
        )
    return ProfileImage(profile)
