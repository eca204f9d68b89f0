"""Device drivers: Modbus (profiles and SunSpec), AMI interval data, site simulator.

Independent of :mod:`cems`. Errors raised here derive from :class:`DeviceError`; the
subclasses say what kind of failure it was so callers can react (retry, reject, report).
"""

from __future__ import annotations


class DeviceError(RuntimeError):
    """Root of every error raised by :mod:`device_drivers`."""


class ProfileError(DeviceError):
    """A device profile (YAML register map) is invalid or unknown."""


class CommunicationError(DeviceError):
    """A device could not be reached: connect failed, connection lost or request timed out."""


class DeviceResponseError(DeviceError):
    """The device answered with a Modbus exception (illegal address, busy, ...)."""


class WriteRejectedError(DeviceError):
    """A write was refused before sending: read-only register or value out of range."""


class WriteVerifyError(DeviceError):
    """A write was sent but the read-back did not match the value written."""


class SunSpecError(DeviceError):
    """A SunSpec device could not be discovered or its model chain is malformed."""


class AmiFormatError(DeviceError):
    """An AMI file (Green Button, CSV, IEC 62056-21) is malformed; names the row/field."""


__all__ = [
    "AmiFormatError",
    "CommunicationError",
    "DeviceError",
    "DeviceResponseError",
    "ProfileError",
    "SunSpecError",
    "WriteRejectedError",
    "WriteVerifyError",
]
