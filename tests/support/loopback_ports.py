"""Free loopback TCP ports for tests, never the same port twice in one test process.

Binding port 0 asks the kernel for a free ephemeral port, but once that socket closes the
kernel may hand the same number out again: two servers of one simulated site then collide
(seen in CI: a fuel cell and an ESS given the same port).  Every port handed out here is
remembered, so callers within one process always get distinct ports.
"""

from __future__ import annotations

import socket
import threading

_issued: set[int] = set()
_lock = threading.Lock()


def free_port() -> int:
    """A loopback TCP port that is free now and was not handed out before in this process."""
    with _lock:
        for _ in range(1000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _issued:
                _issued.add(port)
                return port
    raise RuntimeError("no unused loopback port found after 1000 tries")
