"""Where run metadata lives: one URI, from a flag, ``KFKIT_METADATA_URI`` or the default.

- ``sqlite:///abs/path/mlmd.sqlite`` (default: ``<state>/metadata/mlmd.sqlite``)
- ``mysql://user@host:port/database``; the password comes only from
  ``KFKIT_METADATA_MYSQL_PASSWORD`` (a password inside the URI is refused, so it can never
  land in a config file, a log line or a record)
- ``grpc://host:port``: KFP's ``metadata-grpc-service`` (in a cluster usually
  ``grpc://metadata-grpc-service.kubeflow:8080``)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kfkit.errors import KfkitError
from kfkit.settings import state_dir

URI_ENV = "KFKIT_METADATA_URI"
MYSQL_PASSWORD_ENV = "KFKIT_METADATA_MYSQL_PASSWORD"
SCHEMES = ("sqlite", "mysql", "grpc")


@dataclass(frozen=True)
class MetadataConfig:
    """A parsed metadata connection. ``str()`` never shows a password."""

    scheme: str
    path: str = ""  # sqlite file
    host: str = ""
    port: int = 0
    database: str = ""
    user: str = ""

    @classmethod
    def from_uri(cls, uri: str | None = None) -> MetadataConfig:
        uri = uri or os.environ.get(URI_ENV) or ""
        if not uri:
            return cls(scheme="sqlite", path=str(state_dir() / "metadata" / "mlmd.sqlite"))
        parts = urlsplit(uri)
        if parts.scheme not in SCHEMES:
            raise KfkitError(f"metadata URI {uri!r}: scheme must be one of {', '.join(SCHEMES)}")
        if parts.scheme == "sqlite":
            path = unquote(parts.path) if not parts.netloc else unquote(parts.netloc + parts.path)
            if not path:
                raise KfkitError(f"metadata URI {uri!r}: expected sqlite:///path/to/file.sqlite")
            return cls(scheme="sqlite", path=str(Path(path).resolve()))
        if parts.password is not None:
            raise KfkitError(
                f"metadata URI for {parts.hostname}: a password in the URI is refused; "
                f"set {MYSQL_PASSWORD_ENV} instead"
            )
        try:
            port = parts.port
        except ValueError:
            raise KfkitError(
                f"metadata URI {parts.scheme}://{parts.hostname}: port is not a number"
            ) from None
        if not parts.hostname:
            raise KfkitError(f"metadata URI {uri!r}: missing host")
        if parts.scheme == "grpc":
            return cls(scheme="grpc", host=parts.hostname, port=port or 8080)
        database = parts.path.lstrip("/")
        if not database:
            raise KfkitError(f"metadata URI mysql://{parts.hostname}: missing /database")
        return cls(
            scheme="mysql",
            host=parts.hostname,
            port=port or 3306,
            database=database,
            user=unquote(parts.username or "root"),
        )

    def __str__(self) -> str:
        if self.scheme == "sqlite":
            return f"sqlite://{self.path}"
        if self.scheme == "grpc":
            return f"grpc://{self.host}:{self.port}"
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"

    def connection_config(self):
        """The ml-metadata connection proto (the MySQL password read from the environment)."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        if self.scheme == "sqlite":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            config = pb.ConnectionConfig()
            config.sqlite.filename_uri = self.path
            config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
            return config
        if self.scheme == "mysql":
            config = pb.ConnectionConfig()
            config.mysql.host = self.host
            config.mysql.port = self.port
            config.mysql.database = self.database
            config.mysql.user = self.user
            config.mysql.password = os.environ.get(MYSQL_PASSWORD_ENV, "")
            return config
        config = pb.MetadataStoreClientConfig()
        config.host = self.host
        config.port = self.port
        return config
