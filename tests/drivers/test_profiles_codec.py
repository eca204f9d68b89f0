"""Profile schema validation and the pure register codec (hand-computed words)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers import ProfileError, WriteRejectedError
from device_drivers.codec import decode, encode, plan_reads, to_engineering, to_raw
from device_drivers.profiles import (
    REQUIRED,
    Register,
    builtin_profile_names,
    load_profile,
    parse_profile,
)

SHIPPED = ("generic_ess", "generic_ev_charger", "generic_fuel_cell", "generic_meter_3ph",
           "generic_pv_inverter")


def test_builtin_names_are_the_five_profiles_plus_sunspec() -> None:
    assert builtin_profile_names() == (*SHIPPED, "sunspec")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_validates_and_has_its_capabilities(name: str) -> None:
    profile = load_profile(name)
    names = {r.name for r in profile.registers}
    assert set(REQUIRED[profile.kind]) <= names
    assert all(r.unit is not None for r in profile.registers)


def _profile(**overrides: object) -> dict:
    base = {"name": "t", "kind": "pv_inverter", "registers": [
        {"name": "active_power_kw", "address": 0, "function": "holding", "type": "int32"},
        {"name": "power_limit_pct", "address": 2, "function": "holding", "type": "uint16",
         "access": "rw", "valid_range": [0, 100]},
    ]}
    base.update(overrides)
    return base


@pytest.mark.parametrize(("change", "message"), [
    ({"registers": [{"name": "active_power_kw", "address": 0, "function": "holding",
                     "type": "int32"},
                    {"name": "power_limit_pct", "address": 1, "function": "holding",
                     "type": "uint16", "access": "rw"}]}, "overlap"),
    ({"registers": [{"name": "active_power_kw", "address": 0, "function": "holding",
                     "type": "int32"}]}, "must define power_limit_pct"),
    ({"registers": [{"name": "active_power_kw", "address": 0, "function": "input",
                     "type": "int32", "access": "rw"},
                    {"name": "power_limit_pct", "address": 2, "function": "holding",
                     "type": "uint16", "access": "rw"}]}, "only holding registers are writable"),
    ({"registers": [{"name": "active_power_kw", "address": 0, "function": "holding",
                     "type": "int24"}]}, "registers.0.type"),
    ({"word_order": "middle"}, "word_order"),
])
def test_bad_profiles_are_rejected_naming_the_field(change: dict, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(_profile(**change), source="test.yaml")


def test_unknown_profile_lists_the_shipped_ones() -> None:
    with pytest.raises(ProfileError, match="generic_ess"):
        load_profile("no_such_profile")


def test_decode_hand_computed_words() -> None:
    assert decode([0xFFFF], "int16") == -1
    assert decode([0x0001, 0x0002], "uint32", "big") == 65538            # 1 x 65536 + 2
    assert decode([0x0002, 0x0001], "uint32", "little") == 65538
    assert decode([0x4366, 0x8000], "float32") == 230.5                   # IEEE-754 0x43668000
    assert decode([0xFFFF, 0xFFFE], "int32") == -2
    assert encode(-2, "int32", "little") == [0xFFFE, 0xFFFF]


def _reg(address: int, type_: str = "uint16", function: str = "holding") -> Register:
    return Register(name=f"r{address}", address=address, function=function, type=type_)


def test_plan_reads_coalesces_contiguous_and_caps_at_125() -> None:
    regs = [_reg(a) for a in range(0, 130)] + [_reg(200, "float32"), _reg(5, function="input")]
    blocks = plan_reads(regs)
    # 0..124 (125 regs), 125..129 (5), 200..201 (float32), input 5
    assert [(b.function, b.address, b.count) for b in blocks] == [
        ("holding", 0, 125), ("holding", 125, 5), ("holding", 200, 2), ("input", 5, 1)]
    gap = plan_reads([_reg(0), _reg(3)], max_gap=2)
    assert [(b.address, b.count) for b in gap] == [(0, 4)]


def test_engineering_values_and_validation() -> None:
    reg = Register(name="p_kw", address=0, function="holding", type="int16", scale=0.1,
                   valid_range=(-100, 100), access="rw")
    assert to_engineering(reg, 523) == (pytest.approx(52.3), "")
    assert to_engineering(reg, -0x8000)[0] is None              # int16 sentinel
    assert to_engineering(reg, 1001)[0] is None                 # 100.1 > 100
    assert to_raw(reg, -12.3) == -123
    with pytest.raises(WriteRejectedError, match="outside the allowed range"):
        to_raw(reg, 100.5)
    sf_reg = Register(name="w_kw", address=1, function="holding", type="uint16", scale=0.001,
                      scale_factor_register="w_sf")
    assert to_engineering(sf_reg, 4500, sf=1)[0] == pytest.approx(45.0)  # 4500 x 10 x 0.001
    assert to_engineering(sf_reg, 4500, sf=None)[0] is None
    flt = Register(name="v", address=0, function="input", type="float32")
    assert to_engineering(flt, math.nan)[0] is None


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1), st.sampled_from(["big", "little"]))
def test_int32_round_trip(value: int, order: str) -> None:
    assert decode(encode(value, "int32", order), "int32", order) == value
