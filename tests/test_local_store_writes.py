"""The local store has one write path, S3 with its generated credentials: every other port
`weed mini` opens refuses a write that carries no credentials (or speaks only gRPC), and every
port listens on 127.0.0.1 only."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kfkit.local_store import LocalObjectStore
from kfkit.storage import ObjectStore

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy

# What an unauthenticated writer tries on each SeaweedFS role: the filer's path PUT and POST, the
# master's upload (/submit) and assignment of a file id, and a volume write to a plausible file id.
_WRITES = [
    ("PUT", "/buckets/raw/planted.txt", None),
    ("POST", "/buckets/raw/", None),
    ("POST", "/submit", None),
    ("POST", "/dir/assign", None),
    ("POST", "/1,01637037d6", None),
    ("PUT", "/1,01637037d6", None),
    ("POST", "/buckets/raw/planted.txt", "multipart/form-data; boundary=kfkit"),
    ("POST", "/submit", "multipart/form-data; boundary=kfkit"),
    ("POST", "/1,01637037d6", "multipart/form-data; boundary=kfkit"),
]
_MULTIPART = (
    b'--kfkit\r\nContent-Disposition: form-data; name="file"; filename="planted.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\nplanted\r\n--kfkit--\r\n"
)


def _listening_ports(pid: int) -> dict[int, str]:
    """Every TCP port the process listens on, with the address it is bound to (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports: dict[int, str] = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                if width == 8:
                    ip = ".".join(str(b) for b in reversed(bytes.fromhex(address)))
                else:
                    ip = "ipv6:" + address
                ports[int(port, 16)] = ip
    return ports


def _attempt(port: int, method: str, path: str, content_type: str | None) -> int | str:
    body = _MULTIPART if content_type else b"planted"
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers=headers, method=method
    )
    try:
        with _OPENER.open(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError) as error:  # gRPC only: no HTTP/1 at all
        return f"refused connection ({error})"


@pytest.mark.slow
def test_only_s3_with_credentials_can_write(tmp_path):
    store = LocalObjectStore(root=tmp_path)
    state = store.start()
    try:
        ports = _listening_ports(state.pid)
        assert state.s3_port in ports and len(ports) >= 6  # s3, master, volume, filer (+ their gRPC)
        assert set(ports.values()) == {"127.0.0.1"}, ports
        answers = {}
        for port in sorted(ports):
            if port == state.s3_port:
                continue
            for method, path, content_type in _WRITES:
                answers[(port, method, path, content_type)] = _attempt(port, method, path, content_type)
        accepted = {key: code for key, code in answers.items() if isinstance(code, int) and code < 400}
        assert accepted == {}, accepted
        # Refusals are the servers' own: some ports answer HTTP (401 without a JWT, 404 with
        # the handlers off), the gRPC ones drop HTTP/1.
        codes = set(answers.values())
        assert 401 in codes and any(isinstance(code, str) for code in codes), codes

        # S3 without credentials is refused too; with them, a multi-part object round-trips.
        assert _attempt(state.s3_port, "PUT", "/raw/planted.txt", None) == 403
        objects = ObjectStore(state.config)
        data = os.urandom(9 << 20)  # above the filer's 4 MB chunk size: chunks go to the volume server
        objects.put_bytes("s3://raw/writes/big.bin", data)
        assert objects.get_bytes("s3://raw/writes/big.bin") == data
        assert not objects.exists("s3://raw/planted.txt")
        assert not objects.exists("s3://raw/buckets/raw/planted.txt")
    finally:
        store.stop()
