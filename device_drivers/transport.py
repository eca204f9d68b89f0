"""One Modbus connection (TCP, RTU-over-TCP or RTU serial) wrapped behind our own interface.

pymodbus is used only here. Requests take keyword-only arguments, are bounded in time and
raise :class:`~device_drivers.CommunicationError` / :class:`~device_drivers.DeviceResponseError`
instead of pymodbus exceptions. pymodbus's own background reconnect is switched off: the
endpoint reconnects on demand, with exponential back-off, which also covers a failed first
connect (pymodbus never retries that one by itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from device_drivers import CommunicationError, DeviceResponseError

log = logging.getLogger(__name__)

Protocol = Literal["modbus_tcp", "modbus_rtu_over_tcp", "modbus_rtu"]


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """Where a Modbus connection goes. One connection per spec, shared by its devices."""

    protocol: Protocol
    host: str = ""
    port: int = 502
    serial_port: str = ""
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1

    @property
    def label(self) -> str:
        """Human-readable address, e.g. ``modbus_tcp://127.0.0.1:15020``."""
        if self.protocol == "modbus_rtu":
            return f"modbus_rtu://{self.serial_port}@{self.baudrate}"
        return f"{self.protocol}://{self.host}:{self.port}"


class ModbusEndpoint:
    """An async Modbus client for one endpoint with bounded requests and reconnect back-off."""

    def __init__(
        self,
        spec: EndpointSpec,
        *,
        timeout_s: float = 1.0,
        retries: int = 0,
        reconnect_delay_s: float = 0.1,
        reconnect_delay_max_s: float = 1.0,
    ) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.retries = retries
        self._delay_min = reconnect_delay_s
        self._delay_max = reconnect_delay_max_s
        self._delay = reconnect_delay_s
        self._next_attempt = 0.0
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self.last_error = ""
        self.connect_attempts = 0

    # ------------------------------------------------------------------ connection

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        spec = self.spec
        common = {"timeout": self.timeout_s, "retries": self.retries, "reconnect_delay": 0.0}
        if spec.protocol == "modbus_rtu":
            return AsyncModbusSerialClient(
                spec.serial_port, framer=FramerType.RTU, baudrate=spec.baudrate,
                parity=spec.parity, stopbits=spec.stopbits, **common,
            )
        framer = FramerType.RTU if spec.protocol == "modbus_rtu_over_tcp" else FramerType.SOCKET
        return AsyncModbusTcpClient(spec.host, port=spec.port, framer=framer, **common)

    @property
    def connected(self) -> bool:
        """True while the underlying connection is open."""
        return self._client is not None and self._client.connected

    async def _ensure_connected(self) -> None:
        if self.connected:
            return
        now = time.monotonic()
        if now < self._next_attempt:
            raise CommunicationError(
                f"{self.spec.label}: {self.last_error or 'not connected'} "
                f"(next attempt in {self._next_attempt - now:.1f} s)"
            )
        if self._client is not None:
            self._client.close()
        self._client = self._make_client()
        self.connect_attempts += 1
        try:
            ok = await asyncio.wait_for(self._client.connect(), self.timeout_s + 0.5)
        except (TimeoutError, OSError, ModbusException) as exc:
            ok = False
            self.last_error = f"connect failed: {type(exc).__name__} {exc}".strip()
        if not ok:
            self._client.close()
            self._client = None
            if not self.last_error.startswith("connect failed"):
                self.last_error = "connect failed: connection refused or timed out"
            self._next_attempt = time.monotonic() + self._delay
            self._delay = min(self._delay * 2, self._delay_max)
            raise CommunicationError(f"{self.spec.label}: {self.last_error}")
        self._delay = self._delay_min
        self._next_attempt = 0.0
        self.last_error = ""
        log.info("connected to %s", self.spec.label)

    async def connect(self) -> bool:
        """Try to connect now (ignoring back-off); return True on success."""
        self._next_attempt = 0.0
        try:
            async with self._lock:
                await self._ensure_connected()
        except CommunicationError:
            return False
        return True

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------ requests

    def _bound_s(self) -> float:
        return self.timeout_s * (self.retries + 1) + 0.5

    async def _call(
        self, what: str, device_id: int, make_request: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        async with self._lock:
            await self._ensure_connected()
            assert self._client is not None
            try:
                response = await asyncio.wait_for(make_request(self._client), self._bound_s())
            except TimeoutError:
                self._drop(f"{what} timed out after {self._bound_s():.1f} s")
                raise CommunicationError(
                    f"{self.spec.label} device {device_id}: {self.last_error}"
                ) from None
            except ModbusException as exc:
                self._drop(f"{what} failed: {type(exc).__name__}: {exc}")
                raise CommunicationError(
                    f"{self.spec.label} device {device_id}: {self.last_error}"
                ) from None
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise DeviceResponseError(
                f"{self.spec.label} device {device_id}: {what} refused with Modbus "
                f"exception code {code} ({_EXCEPTION_NAMES.get(code, 'unknown')})"
            )
        return response

    def _drop(self, reason: str) -> None:
        self.last_error = reason
        if self._client is not None:
            self._client.close()
            self._client = None
        self._next_attempt = 0.0  # reconnect right away on the next request

    async def read(
        self, *, device_id: int, function: str, address: int, count: int
    ) -> list[int]:
        """Read ``count`` registers from table ``function`` ("holding"/"input")."""
        what = f"read {function} {address}+{count}"

        def request(client: Any) -> Awaitable[Any]:
            if function == "input":
                return client.read_input_registers(address, count=count, device_id=device_id)
            return client.read_holding_registers(address, count=count, device_id=device_id)

        response = await self._call(what, device_id, request)
        regs = list(response.registers)  # type: ignore[attr-defined]
        if len(regs) < count:
            raise DeviceResponseError(
                f"{self.spec.label} device {device_id}: {what} returned {len(regs)} words"
            )
        return regs[:count]

    async def write(self, *, device_id: int, address: int, values: list[int]) -> None:
        """Write holding registers with function 16 (write multiple registers)."""
        what = f"write holding {address}+{len(values)}"
        await self._call(
            what, device_id,
            lambda client: client.write_registers(address, values, device_id=device_id),
        )


_EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "device failure", 5: "acknowledge", 6: "device busy",
    10: "gateway path unavailable", 11: "gateway target failed to respond",
}
