"""How the site reaches its devices: Modbus TCP/RTU, AMI and OCPP connection entries, AMI
sources, and the CSMS that OCPP chargers connect to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from cems.config.base import Identifier, StrictModel, resolve_path


class ModbusTcpConnection(StrictModel):
    """A device reached over Modbus TCP (or RTU framing over TCP)."""

    protocol: Literal["modbus_tcp", "modbus_rtu_over_tcp"]
    host: str = Field(min_length=1, description="Host name or IP address.")
    port: int = Field(502, ge=1, le=65535, description="TCP port.")
    device_id: int = Field(1, ge=0, le=247, description="Modbus unit / device id.")
    profile: Identifier = Field(
        description="Register-map profile name (a file in device_drivers/profiles) or 'sunspec'."
    )
    timeout_s: float = Field(1.0, gt=0.0, le=30.0, description="Per-request timeout.")


class ModbusRtuConnection(StrictModel):
    """A device reached over a Modbus RTU serial line."""

    protocol: Literal["modbus_rtu"]
    serial_port: str = Field(min_length=1, description="Serial device, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    device_id: int = Field(1, ge=1, le=247)
    profile: Identifier
    timeout_s: float = Field(1.0, gt=0.0, le=30.0)


class AmiConnection(StrictModel):
    """A meter whose interval data arrives from an AMI source (no live polling)."""

    protocol: Literal["ami"]
    source: Identifier = Field(description="Id of an entry in ami_sources.")
    meter_key: str | None = Field(
        None, description="Meter id inside the source feed; defaults to the meter's id."
    )


ChargePointId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:*+\-|@]*$"),
]
"""An OCPP charge point identity (the last segment of its websocket URL, at most 48
characters as OCPP 2.0.1's identity; no ``/``, no spaces)."""


class OcppConnection(StrictModel):
    """An EV charger managed over OCPP: it connects to the CEMS's CSMS (see ``ocpp``).

    Its limits come from the charger entry: ``max_kw`` is the EVSE's largest charging power
    (profiles never exceed it), ``bidirectional`` with ``max_discharge_kw`` allows V2X
    discharge, which only OCPP 2.1 can command."""

    protocol: Literal["ocpp"]
    charge_point_id: ChargePointId = Field(
        description="The charge point's identity: it connects to ws://HOST:PORT/{this}.")
    ocpp_version: Literal["1.6", "2.0.1", "2.1"] = Field(
        description="OCPP version (websocket subprotocol ocpp1.6, ocpp2.0.1 or ocpp2.1).")
    evse_id: int = Field(1, ge=1, le=64, description="EVSE id (connector id in OCPP 1.6).")
    voltage_v: float = Field(230.0, gt=0.0, le=1000.0,
                             description="Phase voltage, for profiles in A.")
    phases: Literal[1, 3] = Field(3, description="Phases the EVSE supplies.")
    rate_unit: Literal["W", "A"] = Field(
        "W", description="Unit of the charging profiles (A: per phase, from the voltage).")
    max_schedule_periods: int = Field(
        24, ge=1, le=1024, description="Most periods a profile may hold (the charger's "
        "ChargingScheduleMaxPeriods); longer plans are merged into this many.")
    password_env: str | None = Field(
        None, min_length=1, pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Environment variable holding the charge point's HTTP Basic auth "
        "password (OCPP security profiles 1 and 2); none: no password asked.")


Connection = Annotated[
    ModbusTcpConnection | ModbusRtuConnection | AmiConnection | OcppConnection,
    Field(discriminator="protocol"),
]


class AmiSource(StrictModel):
    """A feed of AMI interval data (a file or directory the importers read)."""

    id: Identifier
    format: Literal["greenbutton", "csv", "iec62056_21"]
    path: Path = Field(description="File or directory, relative to the site file.")

    _resolve = field_validator("path")(resolve_path)


class OcppServer(StrictModel):
    """The CSMS that OCPP chargers (``connection: {protocol: ocpp}``) connect to."""

    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(9000, ge=1, le=65535, description="TCP port.")
    heartbeat_interval_s: int = Field(
        300, ge=10, le=86400, description="Heartbeat interval given in BootNotification.")
    allow_plain_remote: bool = Field(
        False, description="Allow plain ws:// on a non-loopback address (security profile "
        "1 on a private network); otherwise give tls_cert_file.")
    tls_cert_file: Path | None = Field(None, description="Server certificate (PEM): wss://.")
    tls_key_file: Path | None = Field(None, description="Its private key (PEM).")
    tls_client_ca_file: Path | None = Field(
        None, description="CA of the chargers' client certificates (security profile 3).")

    _resolve = field_validator("tls_cert_file", "tls_key_file", "tls_client_ca_file")(
        resolve_path)
