"""OCPP charge points: a charging station management server (CSMS) over websockets.

The driver side of EV chargers managed over OCPP (1.6J, 2.0.1, 2.1), on the ``ocpp`` and
``websockets`` packages: :class:`Csms` accepts the declared charge points at
``ws://HOST:PORT/{charge_point_id}``, answers their messages, turns what they report into
:class:`ChargerEvents` calls (boot, status, transactions, meter values, ISO 15118 needs) and
pushes :class:`ChargingPlan` objects as TxProfile charging profiles. It knows nothing of
sites or plans (it never imports ``cems``).
"""

from device_drivers.ocpp.model import (
    OCPP_VERSIONS,
    SUBPROTOCOLS,
    ChargePointSpec,
    ChargerEvents,
    ChargingPlan,
    EvNeeds,
    PlanPeriod,
)
from device_drivers.ocpp.server import Csms, PushResult

__all__ = [
    "OCPP_VERSIONS",
    "SUBPROTOCOLS",
    "ChargePointSpec",
    "ChargerEvents",
    "ChargingPlan",
    "Csms",
    "EvNeeds",
    "PlanPeriod",
    "PushResult",
]
