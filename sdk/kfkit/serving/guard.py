"""A WSGI middleware in front of Seldon's Flask app: malformed requests get a 4xx, never a 5xx.

Seldon 1.19's Flask app answers every exception with a 500, its routing errors included (a GET
on the predictions path, an unknown path), and hands whatever JSON it parsed (``NaN``, ragged or
nested ``ndarray``, 5,000 levels of nesting, a 50 MB body) to numpy. ``RequestGuard`` checks each
request before Seldon sees it: the path and method (404, 405), the content type (415), the body
size (413, without reading an oversized body) and the JSON itself (400): strict JSON (no
``NaN``/``Infinity``, no number beyond float range), and the Seldon message shape kfkit models
take, ``{"data": {"names": [...], "ndarray": [[...], ...]}}`` (or ``tensor``), rectangular, one
value per name, scalars only. What passes is given to Seldon unchanged; the model then checks
feature names and values (``kfkit.serving.model``), also as 400s.

Standard library only: it runs in the serving environment (``kfkit.serving.app``).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
PREDICT_PATHS = frozenset({"/api/v1.0/predictions", "/api/v0.1/predictions", "/predict"})
READ_PATHS = frozenset(
    {
        "/health/ping",
        "/health/status",
        "/api/v1.0/health/status",
        "/metadata",
        "/api/v1.0/metadata",
        "/seldon.json",
    }
)
READ_METHODS = ("GET", "HEAD", "OPTIONS")
PREDICT_METHODS = ("POST", "OPTIONS")  # OPTIONS: CORS preflight, answered by Seldon's app
JSON_TYPES = frozenset({"application/json"})
MAX_NAME_LENGTH = 256
# An oversized body up to this size is read and dropped before the 413, so that a client which
# sends its whole body before reading (most do) sees the answer; beyond it the guard closes the
# connection at once and such a client sees a reset instead.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
BODY_READ = "kfkit.body_read"  # environ key: the guard consumed the request body
MAX_META_DEPTH = 32
_SCALARS = (str, int, float, bool, type(None))
_SHAPE_HINT = 'send {"data": {"names": ["feature", ...], "ndarray": [[value, ...], ...]}}'

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class RequestRefused(Exception):
    """A request the guard answers itself with ``status`` and a JSON message."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


_REASONS = {
    400: ("Bad Request", "MICROSERVICE_BAD_DATA"),
    404: ("Not Found", "NOT_FOUND"),
    405: ("Method Not Allowed", "METHOD_NOT_ALLOWED"),
    413: ("Content Too Large", "REQUEST_TOO_LARGE"),
    415: ("Unsupported Media Type", "UNSUPPORTED_MEDIA_TYPE"),
}


def _discard(stream: Any, length: int) -> None:
    """Read and drop ``length`` bytes in chunks, never holding more than one chunk."""
    while length > 0:
        chunk = stream.read(min(length, 64 * 1024))
        if not chunk:
            return
        length -= len(chunk)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows: send a finite number, or null for a missing value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is beyond the range of a 64-bit float")
    return value


def parse_json(body: bytes) -> Any:
    """Strict JSON: ``NaN``, ``Infinity`` and numbers beyond float range are errors (``ValueError``)."""
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _depth_within(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` levels (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def _check_names(names: Any) -> int:
    if not isinstance(names, list) or not names:
        raise RequestRefused(400, f"data.names must be a non-empty list of feature names: {_SHAPE_HINT}")
    for position, name in enumerate(names):
        if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
            raise RequestRefused(
                400,
                f"data.names[{position}] must be a feature name (a string of 1 to {MAX_NAME_LENGTH} "
                "characters)",
            )
    return len(names)


def _first_row_width(data: dict[str, Any]) -> int:
    rows, tensor = data.get("ndarray"), data.get("tensor")
    if isinstance(rows, list) and rows and isinstance(rows[0], list):
        return len(rows[0])
    if isinstance(tensor, dict) and isinstance(tensor.get("shape"), list) and len(tensor["shape"]) == 2:
        return tensor["shape"][1]
    return -1  # the shape checks below refuse it


def _check_ndarray(rows: Any, width: int) -> None:
    if not isinstance(rows, list) or not rows:
        raise RequestRefused(400, f"data.ndarray must be a non-empty list of rows: {_SHAPE_HINT}")
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            raise RequestRefused(400, f"data.ndarray row {index} is not a list of values: {_SHAPE_HINT}")
        if len(row) != width:
            raise RequestRefused(
                400, f"data.ndarray row {index} has {len(row)} values but there are {width} feature names"
            )
        for column, value in enumerate(row):
            if not isinstance(value, _SCALARS):
                raise RequestRefused(
                    400,
                    f"data.ndarray row {index} value {column} is a {type(value).__name__}: each value must "
                    "be a number, a string or null",
                )


def _check_tensor(tensor: Any, width: int) -> None:
    if not isinstance(tensor, dict) or set(tensor) != {"shape", "values"}:
        raise RequestRefused(400, 'data.tensor must be {"shape": [rows, columns], "values": [numbers...]}')
    shape, values = tensor["shape"], tensor["values"]
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
    ):
        raise RequestRefused(400, "data.tensor.shape must be [rows, columns], two positive integers")
    if shape[1] != width:
        raise RequestRefused(
            400, f"data.tensor.shape has {shape[1]} columns but data.names has {width} names"
        )
    if not isinstance(values, list) or len(values) != shape[0] * shape[1]:
        raise RequestRefused(400, f"data.tensor.values must hold {shape[0]} x {shape[1]} numbers")
    for position, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestRefused(400, f"data.tensor.values[{position}] is not a number")


def _check_meta(meta: Any) -> None:
    """Seldon reads and echoes these keys; the wrong type there raised inside Seldon (a 500)."""
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise RequestRefused(400, "meta must be a JSON object")
    for key, kind, name in (
        ("tags", dict, "an object"),
        ("requestPath", dict, "an object"),
        ("routing", dict, "an object"),
        ("metrics", list, "a list"),
        ("puid", str, "a string"),
    ):
        if key in meta and not isinstance(meta[key], kind):
            raise RequestRefused(400, f"meta.{key} must be {name}")
    if not _depth_within(meta, MAX_META_DEPTH):
        raise RequestRefused(400, f"meta nests deeper than {MAX_META_DEPTH} levels")


def check_prediction_request(message: Any) -> None:
    """Refuse (``RequestRefused``, 400) a parsed body that is not a prediction request kfkit takes."""
    if not isinstance(message, dict):
        raise RequestRefused(
            400, f"the request body must be a JSON object, not a {type(message).__name__}: {_SHAPE_HINT}"
        )
    unknown = sorted(set(message) - {"data", "meta"})
    if unknown:
        raise RequestRefused(400, f"unexpected key(s) {unknown} in the request: {_SHAPE_HINT}")
    data = message.get("data")
    if not isinstance(data, dict):
        raise RequestRefused(400, f"the request has no data object: {_SHAPE_HINT}")
    payloads = [key for key in ("ndarray", "tensor") if key in data]
    unknown = sorted(set(data) - {"names", "ndarray", "tensor"})
    if unknown or len(payloads) != 1:
        raise RequestRefused(
            400,
            f"data must hold names and exactly one of ndarray or tensor (got {sorted(data)}): {_SHAPE_HINT}",
        )
    # Without names the model refuses the request itself, listing the features it takes.
    width = _check_names(data["names"]) if "names" in data else _first_row_width(data)
    if payloads[0] == "ndarray":
        _check_ndarray(data["ndarray"], width)
    else:
        _check_tensor(data["tensor"], width)
    _check_meta(message.get("meta"))


def error_body(status: int, message: str) -> bytes:
    """Seldon's error shape, so clients parse the guard's answers like the model's own 400s."""
    reason = _REASONS.get(status, ("", "MICROSERVICE_BAD_DATA"))[1]
    body = {"status": {"status": 1, "info": message, "code": -1, "reason": reason}}
    return json.dumps(body).encode()


class RequestGuard:
    """WSGI middleware: checks each request, then calls ``app`` with the body it has read."""

    def __init__(self, app: WsgiApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
        self.app = app
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            self._check(environ)
        except RequestRefused as refused:
            return self._answer(environ, start_response, refused)
        return self.app(environ, start_response)

    def _check(self, environ: dict[str, Any]) -> None:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path in READ_PATHS:
            if method not in READ_METHODS:
                raise RequestRefused(
                    405, f"{method} is not allowed on {path}: use GET", [("Allow", ", ".join(READ_METHODS))]
                )
            return
        if path not in PREDICT_PATHS:
            raise RequestRefused(
                404, f"no such path {path[:200]!r}: predictions are POSTed to /api/v1.0/predictions"
            )
        if method == "OPTIONS":
            return
        if method != "POST":
            raise RequestRefused(
                405,
                f"{method} is not allowed on {path}: POST a JSON body",
                [("Allow", ", ".join(PREDICT_METHODS))],
            )
        if "json" in parse_qs(environ.get("QUERY_STRING", "")):
            raise RequestRefused(400, "send the request as the JSON body, not as a ?json= parameter")
        content_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if content_type not in JSON_TYPES:
            raise RequestRefused(
                415, f"content type {content_type or '(none)'!r} is not supported: send application/json"
            )
        body = self._read_body(environ)
        if not body.strip():
            raise RequestRefused(400, f"the request body is empty: {_SHAPE_HINT}")
        try:
            message = parse_json(body)
        except ValueError as exc:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors
            raise RequestRefused(400, f"the request body is not valid JSON: {str(exc)[:200]}") from None
        check_prediction_request(message)
        # Seldon reads the body again from wsgi.input: hand it the bytes already read.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        declared = environ.get("CONTENT_LENGTH", "")
        stream = environ["wsgi.input"]
        if declared:
            try:
                length = int(declared)
            except ValueError:
                raise RequestRefused(400, f"Content-Length {declared[:40]!r} is not a number") from None
            if length > self.max_body_bytes:
                if length <= DRAIN_LIMIT_BYTES:
                    _discard(stream, length)
                    environ[BODY_READ] = True
                raise RequestRefused(413, self._too_large(f"{length} bytes"))
            body = stream.read(length) if length > 0 else b""
        else:
            body = stream.read(self.max_body_bytes + 1)  # chunked: no length announced
            if len(body) > self.max_body_bytes:
                raise RequestRefused(413, self._too_large(f"more than {self.max_body_bytes} bytes"))
        environ[BODY_READ] = True
        return body

    def _too_large(self, size: str) -> str:
        return (
            f"the request body ({size}) is over the limit of {self.max_body_bytes} bytes: "
            "send fewer rows per request"
        )

    @staticmethod
    def _answer(
        environ: dict[str, Any], start_response: StartResponse, refused: RequestRefused
    ) -> list[bytes]:
        body = error_body(refused.status, refused.message)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *refused.headers]
        has_body = environ.get("CONTENT_LENGTH", "0") not in ("", "0") or environ.get(
            "HTTP_TRANSFER_ENCODING"
        )
        if has_body and not environ.get(BODY_READ):
            # The body was not read: close rather than let the server drain it for the next request.
            headers.append(("Connection", "close"))
        start_response(f"{refused.status} {_REASONS[refused.status][0]}", headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
