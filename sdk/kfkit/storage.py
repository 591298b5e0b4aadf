"""Object store access through the ``minio`` client: the same code talks to MinIO in a
cluster and to the local SeaweedFS S3 server.

Connection settings come from the environment only (credentials are never pipeline
parameters):

- ``KFKIT_S3_ENDPOINT``: ``http://host:port`` or ``https://host:port``
- ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``: the credentials
- ``AWS_REGION`` (optional)
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlparse

from kfkit.errors import KfkitError

ENDPOINT_ENV = "KFKIT_S3_ENDPOINT"
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
REGION_ENV = "AWS_REGION"

OBJECT_URI_SCHEMES = ("s3", "minio")

# S3 error codes that mean "your credentials are wrong", as opposed to "no such thing".
_AUTH_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}


@dataclass(frozen=True)
class ObjectUri:
    bucket: str
    key: str  # may be "" (whole bucket) or end with "/" (a prefix)

    @classmethod
    def parse(cls, uri: str) -> ObjectUri:
        parsed = urlparse(uri)
        if parsed.scheme not in OBJECT_URI_SCHEMES or not parsed.netloc:
            raise KfkitError(
                f"{uri}: not an object URI; expected s3://<bucket>/<key> or minio://<bucket>/<key>"
            )
        return cls(bucket=parsed.netloc, key=parsed.path.lstrip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> ObjectUri:
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return ObjectUri(self.bucket, base + name)


def is_object_uri(uri: str) -> bool:
    return urlparse(uri).scheme in OBJECT_URI_SCHEMES


@dataclass(frozen=True)
class StoreConfig:
    endpoint: str  # host:port
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = False
    region: str | None = None

    @classmethod
    def from_env(cls) -> StoreConfig:
        endpoint = os.environ.get(ENDPOINT_ENV, "")
        if not endpoint:
            raise KfkitError(
                f"no object store configured: set {ENDPOINT_ENV} (and {ACCESS_KEY_ENV}/"
                f"{SECRET_KEY_ENV}), or let `kfkit run-local` start the local store"
            )
        parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        return cls(
            endpoint=parsed.netloc,
            access_key=os.environ.get(ACCESS_KEY_ENV, ""),
            secret_key=os.environ.get(SECRET_KEY_ENV, ""),
            secure=parsed.scheme == "https",
            region=os.environ.get(REGION_ENV) or None,
        )

    def to_env(self) -> dict[str, str]:
        scheme = "https" if self.secure else "http"
        env = {
            ENDPOINT_ENV: f"{scheme}://{self.endpoint}",
            ACCESS_KEY_ENV: self.access_key,
            SECRET_KEY_ENV: self.secret_key,
        }
        if self.region:
            env[REGION_ENV] = self.region
        return env


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    etag: str
    version_id: str | None


class ObjectStore:
    """A thin layer over ``minio.Minio`` that speaks ``s3://`` URIs and turns S3 failures
    into one-line :class:`KfkitError` messages."""

    def __init__(self, config: StoreConfig) -> None:
        import urllib3
        from minio import Minio

        self.config = config
        # Few retries: a wrong endpoint should fail in seconds, not minutes.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503]),
        )
        self.client = Minio(
            config.endpoint,
            access_key=config.access_key,
            secret_key=config.secret_key,
            secure=config.secure,
            region=config.region,
            http_client=http,
        )

    @classmethod
    def from_env(cls) -> ObjectStore:
        return cls(StoreConfig.from_env())

    # -- errors -------------------------------------------------------------------------
    def _explain(self, uri: str, exc: Exception) -> KfkitError:
        from minio.error import S3Error

        if isinstance(exc, S3Error):
            if exc.code in _AUTH_ERRORS:
                return KfkitError(
                    f"{uri}: the object store at {self.config.endpoint} refused the credentials "
                    f"({exc.code}); check {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}"
                )
            if exc.code == "NoSuchBucket":
                return KfkitError(f"{uri}: bucket does not exist")
            if exc.code in {"NoSuchKey", "NoSuchObject"}:
                return KfkitError(f"{uri}: object does not exist")
            return KfkitError(f"{uri}: object store error {exc.code}: {exc.message}")
        return KfkitError(
            f"{uri}: cannot reach the object store at {self.config.endpoint} ({type(exc).__name__})"
        )

    def _call(self, uri: str, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KfkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated into one line for the user
            raise self._explain(uri, exc) from exc

    # -- operations ---------------------------------------------------------------------
    def bucket_exists(self, bucket: str) -> bool:
        return bool(self._call(f"s3://{bucket}/", self.client.bucket_exists, bucket))

    def ensure_bucket(self, bucket: str) -> None:
        if not self.bucket_exists(bucket):
            self._call(f"s3://{bucket}/", self.client.make_bucket, bucket)

    def list(self, uri: str | ObjectUri) -> list[ObjectInfo]:
        """Objects under a prefix (recursive), sorted by key."""
        target = uri if isinstance(uri, ObjectUri) else ObjectUri.parse(uri)

        def _list() -> list[ObjectInfo]:
            return [
                ObjectInfo(
                    uri=f"s3://{target.bucket}/{obj.object_name}",
                    size=obj.size or 0,
                    etag=(obj.etag or "").strip('"'),
                    version_id=obj.version_id,
                )
                for obj in self.client.list_objects(target.bucket, prefix=target.key, recursive=True)
                if not obj.is_dir
            ]

        return sorted(self._call(str(target), _list), key=lambda info: info.uri)

    def list_prefixes(self, uri: str | ObjectUri) -> list[str]:
        """Immediate "sub-folder" names under a prefix."""
        target = uri if isinstance(uri, ObjectUri) else ObjectUri.parse(uri)
        prefix = target.key if not target.key or target.key.endswith("/") else target.key + "/"

        def _list() -> list[str]:
            return [
                obj.object_name[len(prefix) :].rstrip("/")
                for obj in self.client.list_objects(target.bucket, prefix=prefix)
                if obj.is_dir
            ]

        return sorted(self._call(str(target), _list))

    def stat(self, uri: str | ObjectUri) -> ObjectInfo | None:
        from minio.error import S3Error

        target = uri if isinstance(uri, ObjectUri) else ObjectUri.parse(uri)
        try:
            stat = self.client.stat_object(target.bucket, target.key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}:
                return None
            raise self._explain(str(target), exc) from exc
        except Exception as exc:  # noqa: BLE001
            raise self._explain(str(target), exc) from exc
        return ObjectInfo(str(target), stat.size or 0, (stat.etag or "").strip('"'), stat.version_id)

    def exists(self, uri: str | ObjectUri) -> bool:
        return self.stat(uri) is not None

    def get_bytes(self, uri: str | ObjectUri) -> bytes:
        target = uri if isinstance(uri, ObjectUri) else ObjectUri.parse(uri)

        def _get() -> bytes:
            response = self.client.get_object(target.bucket, target.key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call(str(target), _get)

    def download(self, uri: str | ObjectUri, out: BinaryIO, chunk_bytes: int = 8 << 20) -> None:
        """Stream one object into an open binary file a chunk at a time (ingest reads objects
        larger than memory this way)."""
        target = uri if isinstance(uri, ObjectUri) else ObjectUri.parse(uri)

        def _get() -> None:
            response = self.client.get_object(target.bucket, target.key)
            try:
                for chunk in response.stream(chunk_bytes):
                    out.write(chunk)
            finally:
                response.close()
                response.release_conn()

        self._call(str(target), _get)

    def sha256(self, uri: str | ObjectUri) -> str:
        """The sha256 of one object's bytes, read a chunk at a time (bounded memory)."""
        digest = hashlib.sha256()

        class _Digest:
            def write(self, chunk: bytes) -> int:
                digest.update(chunk)
                return len(chunk)

        self.download(uri, _Digest())  # type: ignore[arg-type]  # a write() is all download uses
        return digest.hexdigest()

    def upload_file(self, uri: str | ObjectUri, path: str | os.PathLike[str], content_type: str = "") -> None:
        """Copy a local file to ``uri``, unconditionally, from disk: the client's multipart upload
        for files above one part (5 MiB parts where that keeps under S3's 10,000), so memory holds
        a few parts whatever the file's size. For write-once, name the object after its content
        (the caller checks what is already there) or use :meth:`create_bytes`."""
        target = uri if isinstance(uri, ObjectUri) else ObjectUri.parse(uri)
        self._call(
            str(target),
            self.client.fput_object,
            target.bucket,
            target.key,
            str(path),
            content_type=content_type or "application/octet-stream",
        )

    def create_bytes(self, uri: str | ObjectUri, data: bytes, content_type: str = "") -> bool:
        """Write an object only if none exists at ``uri`` (S3 ``If-None-Match: *``, atomic on
        S3, MinIO and SeaweedFS). Returns False when the object was already there."""
        from minio.error import S3Error

        target = uri if isinstance(uri, ObjectUri) else ObjectUri.parse(uri)
        headers = {"Content-Type": content_type or "application/octet-stream", "If-None-Match": "*"}
        try:
            # minio-py's public put_object cannot send conditional headers; _put_object is the
            # single-request PUT it uses itself (pinned minio 7.2.20).
            self.client._put_object(target.bucket, target.key, data, headers=headers)
        except S3Error as exc:
            if exc.code == "PreconditionFailed":
                return False
            raise self._explain(str(target), exc) from exc
        except Exception as exc:  # noqa: BLE001 - translated into one line for the user
            raise self._explain(str(target), exc) from exc
        return True

    def put_bytes(self, uri: str | ObjectUri, data: bytes, content_type: str = "") -> ObjectInfo:
        target = uri if isinstance(uri, ObjectUri) else ObjectUri.parse(uri)
        result = self._call(
            str(target),
            self.client.put_object,
            target.bucket,
            target.key,
            io.BytesIO(data),
            len(data),
            content_type=content_type or "application/octet-stream",
        )
        return ObjectInfo(str(target), len(data), (result.etag or "").strip('"'), result.version_id)

    def delete(self, uri: str | ObjectUri) -> None:
        """Remove one object (no error when it is already gone)."""
        target = uri if isinstance(uri, ObjectUri) else ObjectUri.parse(uri)
        self._call(str(target), self.client.remove_object, target.bucket, target.key)
