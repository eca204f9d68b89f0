"""The test port allocator never hands out one port twice (a CI flake came from that)."""

from __future__ import annotations

import socket

from loopback_ports import free_port


def test_ports_are_distinct_and_bindable() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:  # the last one is free right now
        sock.bind(("127.0.0.1", ports[-1]))
