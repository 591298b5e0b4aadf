"""Small network helpers shared by the local servers kfkit starts (stdlib only: the
serving environment imports this too)."""

import random
import socket

# Below the kernel's ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range), where
# outgoing connections take their local ports: a port picked there can be taken by any
# connection (the server's own, between its components) before the server binds it. Seen in
# CI: SeaweedFS's `weed mini` exited (code 255) when one of its ten ports went that way.
_LISTEN_RANGE_LOW = 20000
_EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def _ephemeral_low() -> int:
    try:
        with open(_EPHEMERAL_RANGE_FILE) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing listens on now, checked on all interfaces (Seldon binds 0.0.0.0),
    picked below the ephemeral range so no outgoing connection takes it before the server
    binds it; the kernel's choice (port 0) where that range leaves no room."""
    high = _ephemeral_low()
    if high - _LISTEN_RANGE_LOW >= 1000:
        for _ in range(64):
            port = random.randrange(_LISTEN_RANGE_LOW, high)
            if _bindable(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, taken: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """``count`` distinct free ports, none of them in ``taken``."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken and port not in ports:
            ports.append(port)
    return ports
