"""SunSpec: model definitions (from pysunspec2's JSON), discovery, decoding and control.

Registers are read with our own Modbus endpoint (pymodbus); pysunspec2 provides only the
standard model definitions. See :mod:`.models` (definitions, decode/encode),
:mod:`.client` (discovery, model chain walk, :class:`SunSpecDevice`) and :mod:`.image`
(the simulator's register images).
"""

from __future__ import annotations

from device_drivers.sunspec.client import SunSpecDevice, discover, scan
from device_drivers.sunspec.models import ModelDef, decode_model, model_def

__all__ = ["ModelDef", "SunSpecDevice", "decode_model", "discover", "model_def", "scan"]
