"""Host names: whether one is this machine's loopback, where plain (unencrypted, unauthenticated)
protocol servers may listen without an explicit opt-in."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
