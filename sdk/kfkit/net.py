"""Small network helpers shared by the local servers kfkit starts (stdlib only: the
serving environment imports this too)."""

import socket


def free_port() -> int:
    """A port nothing listens on now, checked on all interfaces (Seldon binds 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])
