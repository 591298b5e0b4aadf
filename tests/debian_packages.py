"""Install a Debian package with apt-get when the program the tests or benchmarks need is missing.

CI machines start without MariaDB or wrk; only package registries are reachable.
"""

from __future__ import annotations

import os
import subprocess


def ensure_debian_package(package: str) -> None:
    """``apt-get install`` ``package`` (quietly, without recommends); raises if apt-get fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        check=True,
        env=env,
        capture_output=True,
    )
