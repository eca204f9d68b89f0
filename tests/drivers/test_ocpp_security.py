"""OCPP security profile 2 on the driver's CSMS: TLS (wss://) with HTTP Basic auth.

A self-signed certificate for 127.0.0.1 is made here (``cryptography``); the charge point is
the ``ocpp`` package's own client.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from loopback_ports import free_port
from ocpp import v201
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from device_drivers.ocpp import ChargePointSpec, ChargerEvents, Csms


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_wss_with_basic_auth(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    spec = ChargePointSpec("CP-S", "2.0.1", max_power_w=11000.0, password="s3cret-pass")

    async def body() -> None:
        csms = Csms([spec], ChargerEvents(), ssl_context=server_ctx)
        port = await csms.start("127.0.0.1", free_port())
        url = f"wss://127.0.0.1:{port}/CP-S"
        try:
            for headers in ({}, basic("CP-S", "wrong"), basic("CP-OTHER", "s3cret-pass")):
                with pytest.raises(InvalidStatus) as info:
                    async with connect(url, subprotocols=["ocpp2.0.1"], ssl=client_ctx,
                                       additional_headers=headers):
                        pass
                assert info.value.response.status_code == 401
            async with connect(url, subprotocols=["ocpp2.0.1"], ssl=client_ctx,
                               additional_headers=basic("CP-S", "s3cret-pass")) as ws:
                cp = v201.ChargePoint("CP-S", ws, response_timeout=10)
                task = asyncio.create_task(cp.start())
                boot = await cp.call(v201.call.BootNotification(
                    charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
                assert boot.status == "Accepted"
                task.cancel()
        finally:
            await csms.close()

    asyncio.run(asyncio.wait_for(body(), 30))
