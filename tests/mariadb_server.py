"""A throwaway MariaDB server on 127.0.0.1 for the MySQL-backed metadata tests and benchmark.

Debian's ``mariadb-server`` is installed with apt-get when ``mariadbd`` is missing (CI
machines start without it). The server gets its own data folder, socket and free port,
runs without systemd, and is stopped (SIGTERM, then SIGKILL) on the way out.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from debian_packages import ensure_debian_package

from kfkit.net import free_port

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "mariadb-install-db"
DATABASE = "kfkit_mlmd"
USER = "kfkit"


def ensure_installed() -> None:
    if Path(MARIADBD).exists() and shutil.which(INSTALL_DB):
        return
    ensure_debian_package("mariadb-server")


class MariaDB:
    """``start()`` returns the metadata URI; the password is in ``env`` only."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.socket = root / "mysqld.sock"  # a socket right under /tmp is refused; keep it here
        self.port = 0
        self.password = secrets.token_urlsafe(16)
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mysql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def env(self) -> dict[str, str]:
        return {"KFKIT_METADATA_MYSQL_PASSWORD": self.password}

    def start(self, timeout: float = 60) -> str:
        ensure_installed()
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={self.data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        self.port = free_port()
        log = open(self.root / "mariadbd.log", "w")
        self.process = subprocess.Popen(
            [
                MARIADBD,
                "--no-defaults",
                f"--datadir={self.data}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                "--innodb-flush-log-at-trx-commit=2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._sql("SELECT 1", check=False):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mariadbd did not start; see {self.root / 'mariadbd.log'}")
            time.sleep(0.2)
        self._sql(
            f"CREATE DATABASE {DATABASE}; "
            f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{self.password}'; "
            f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'127.0.0.1';"
        )
        return self.uri

    def create_database(self, name: str) -> None:
        """Another database on the same server for the same user (the KFP API server's `mlpipeline`
        in the cluster tests), empty."""
        self._sql(
            f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}; "
            f"GRANT ALL ON {name}.* TO '{USER}'@'127.0.0.1';"
        )

    def reset(self) -> None:
        """An empty database again (MLMD creates its tables on first connect)."""
        self._sql(f"DROP DATABASE {DATABASE}; CREATE DATABASE {DATABASE};")

    def _sql(self, statement: str, check: bool = True) -> bool:
        proc = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-e", statement],
            capture_output=True,
            text=True,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"mariadb: {proc.stderr.strip()}")
        return proc.returncode == 0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
