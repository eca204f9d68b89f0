"""SunSpec: model definitions (from pysunspec2's JSON), discovery, decoding and control.

Registers are read with our own Modbus endpoint (pymodbus); pysunspec2 provides only the
standard model definitions. See :mod:`.models` (definitions, decode/encode),
:mod:`.readings` (canonical names and the value checks), :mod:`.client` (discovery, model
chain walk, :class:`SunSpecDevice`), :mod:`.control` (the capability Protocols:
:class:`SunSpecStorage`, :class:`SunSpecInverter`) and :mod:`.image` (the simulator's
register images).
"""

from __future__ import annotations

from device_drivers.sunspec.client import SunSpecDevice, discover, scan
from device_drivers.sunspec.control import SunSpecInverter, SunSpecStorage
from device_drivers.sunspec.models import (
    DecodedModel,
    ModelDef,
    decode_model,
    decode_model_checked,
    model_def,
)

__all__ = ["DecodedModel", "ModelDef", "SunSpecDevice", "SunSpecInverter", "SunSpecStorage",
           "decode_model", "decode_model_checked", "discover", "model_def", "scan"]
