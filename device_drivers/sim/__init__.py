"""Site simulator (digital twin): physical device models served as Modbus TCP devices.

:mod:`.physics` holds the pure models (PV, ESS, fuel cell, EV charger, loads, meters);
:mod:`.twin` steps them on a simulated clock; :mod:`.server` serves them over Modbus with
fault injection. Start one with :class:`SiteSimulator`.
"""

from __future__ import annotations

from device_drivers.sim.server import SiteSimulator
from device_drivers.sim.twin import SimClock, SimDeviceSpec, Twin

__all__ = ["SimClock", "SimDeviceSpec", "SiteSimulator", "Twin"]
