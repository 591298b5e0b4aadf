"""Serving hardening: every malformed request is a 4xx with a JSON message, never a 5xx; out-of-range
numbers are refused alike on the fast path and scikit-learn's path; every port listens on loopback;
stopping ``kfkit serve`` stops every process it started.

The server tests run the real model server (``python -m kfkit.serving.app`` from the serving venv,
Seldon's REST app behind kfkit's request guard) and talk raw HTTP to it.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import KFKIT, PENGUINS
from sklearn.linear_model import LogisticRegression, Ridge

from kfkit.components.train.executor import build_pipeline
from kfkit.model_folder import Feature, save_model
from kfkit.serving.finite import OutOfRangeError
from kfkit.serving.model import FeatureError, KfkitModel
from kfkit.serving.server import PREDICT_PATH, ServingProcess, start_server

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
CATEGORICAL = ["island", "sex"]
NAMES = NUMERIC + CATEGORICAL
FEATURES = [Feature(n, "numeric") for n in NUMERIC] + [Feature(n, "categorical") for n in CATEGORICAL]
ROW = [39.1, 18.7, 181, 3750, 2007, "Torgersen", "male"]
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=x"
JUNK_NAMES = ["\ud800\udfff", "☃", "\u202e", "\x00", "ß", "名", "🐧"]
BODY_LIMIT = 64 * 1024  # the corpus server's --max-body-bytes: small, so oversize cases stay cheap


def _strict_json(raw: bytes) -> Any:
    """Parse as JSON allows it: a bare NaN or Infinity in an answer is an error here."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in an answer is not JSON")

    return json.loads(raw, parse_constant=refuse)


def _body(rows: Any, names: Any = NAMES, **extra: Any) -> bytes:
    return json.dumps({"data": {"names": names, "ndarray": rows}, **extra}).encode()


def _data(**data: Any) -> bytes:
    return json.dumps({"data": {"names": NAMES, **data}}).encode()


def _with(position: int, value: str) -> bytes:
    """The valid row with one value replaced by raw JSON text (NaN, 1e400, ... json.dumps refuses)."""
    values = [json.dumps(v) for v in ROW]
    values[position] = value
    return f'{{"data": {{"names": {json.dumps(NAMES)}, "ndarray": [[{", ".join(values)}]]}}}}'.encode()


@dataclass
class Case:
    name: str
    status: int
    body: bytes | None = None
    method: str = "POST"
    path: str = PREDICT_PATH
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    chunked: bool = False


def _corpus() -> list[Case]:
    valid = _body([ROW])
    plain = {"Content-Type": "text/plain"}
    return [
        # content type, method, path, size
        Case("text-plain", 415, valid, headers=plain),
        Case("no-content-type", 415, valid, headers={}),
        Case("form-with-json-field", 415, b"json=" + valid, headers={"Content-Type": FORM}),
        Case("multipart", 415, b"--x\r\n\r\n--x--", headers={"Content-Type": MULTIPART}),
        Case("get-predictions", 405, None, method="GET", headers={}),
        Case("put-predictions", 405, valid, method="PUT"),
        Case("delete-predictions", 405, None, method="DELETE", headers={}),
        Case("post-metadata", 405, valid, path="/api/v1.0/metadata"),
        Case("unknown-path", 404, valid, path="/api/v1.0/explain"),
        Case("query-json-override", 400, valid, path=PREDICT_PATH + "?json=%7B%7D"),
        Case("oversize-body", 413, b" " * (BODY_LIMIT + 1) + valid),
        Case("oversize-chunked", 413, b" " * (BODY_LIMIT + 1000) + valid, chunked=True),
        # JSON itself
        Case("empty-body", 400, b""),
        Case("invalid-json", 400, b'{"data": {"names": ['),
        Case("invalid-utf8", 400, b'{"data": "\xff\xfe"}'),
        Case("deep-nesting", 400, b"[" * 5000 + b"]" * 5000),
        Case("deep-meta", 400, _body([ROW], meta={"tags": {"t": json.loads("[" * 100 + "]" * 100)}})),
        Case("non-object-list", 400, b"[1, 2, 3]"),
        Case("non-object-string", 400, b'"predict this"'),
        Case("non-object-null", 400, b"null"),
        Case("bare-nan", 400, _with(0, "NaN")),
        Case("infinity", 400, _with(1, "Infinity")),
        Case("minus-infinity", 400, _with(2, "-Infinity")),
        Case("1e400", 400, _with(3, "1e400")),
        Case("minus-1e400", 400, _with(3, "-1e400")),
        Case("integer-of-5000-digits", 400, _with(4, "9" * 5000)),
        # the message's shape
        Case("empty-data", 400, b'{"data": {}}'),
        Case("no-data", 400, b'{"meta": {}}'),
        Case("empty-ndarray", 400, _body([])),
        Case("no-names", 400, b'{"data": {"ndarray": [[1, 2, 3, 4, 5, 6, 7]]}}'),
        Case("no-names-ragged", 400, b'{"data": {"ndarray": [[1, 2, 3], [4]]}}'),
        Case("ragged-ndarray", 400, _body([ROW, ROW[:3]])),
        Case("nested-ndarray", 400, _body([[*ROW[:6], ["male"]]])),
        Case("three-dimensional-ndarray", 400, _body([[ROW] * 7])),
        Case("ndarray-not-a-list", 400, _body({"rows": [ROW]})),
        Case("object-in-a-cell", 400, _body([[*ROW[:6], {"sex": "male"}]])),
        Case("ndarray-and-tensor", 400, _data(ndarray=[ROW], tensor={})),
        Case("tftensor", 400, _data(tftensor={"dtype": "DT_FLOAT"})),
        Case("tensor-bad-shape", 400, _data(tensor={"shape": [2, 7], "values": [1.0] * 7})),
        Case("json-data", 400, b'{"jsonData": {"bill_length_mm": 39.1}}'),
        Case("str-data", 400, b'{"strData": "39.1,18.7"}'),
        Case("bin-data", 400, b'{"binData": "AAAA"}'),
        Case("meta-not-an-object", 400, _body([ROW], meta=[1, 2])),
        Case("meta-tags-not-an-object", 400, _body([ROW], meta={"tags": "x"})),
        Case("meta-request-path-not-an-object", 400, _body([ROW], meta={"requestPath": [1]})),
        Case("names-not-strings", 400, _body([ROW], names=[1, 2, 3, 4, 5, 6, 7])),
        # values the model refuses
        Case("string-in-numeric", 400, _body([["deep", *ROW[1:]]])),
        Case("string-inf", 400, _body([["inf", *ROW[1:]]])),
        Case("string-nan", 400, _body([["NaN", *ROW[1:]]])),
        Case("string-1e400", 400, _body([["1e400", *ROW[1:]]])),
        Case("bool-in-numeric", 400, _body([[True, *ROW[1:]]])),
        Case("huge-finite-1e308", 400, _with(3, "1e308")),
        Case("huge-integer-400-digits", 400, _with(3, "1" + "0" * 400)),
        Case("wrong-feature-names", 400, _body([ROW], names=[*NAMES[:6], "gender"])),
        Case("too-many-columns", 400, _body([[*ROW, 1.0]], names=[*NAMES, "colour"])),
        Case("too-few-columns", 400, _body([ROW[:6]], names=NAMES[:6])),
        Case("repeated-name", 400, _body([[*ROW, "male"]], names=[*NAMES, "sex"])),
        Case("unicode-junk-names", 400, _body([ROW], names=JUNK_NAMES)),
        Case("unicode-junk-values", 400, _body([["\u202e\x00🐧", *ROW[1:]]])),
    ]  # fmt: skip


CORPUS = _corpus()


def send(
    port: int, case: Case, connection: http.client.HTTPConnection | None = None, host: str = "127.0.0.1"
) -> tuple[int, bytes, bool]:
    """One request; returns (status, body, whether the server closes the connection)."""
    conn = connection or http.client.HTTPConnection(host, port, timeout=30)
    try:
        if case.chunked:
            pieces = [case.body[i : i + 8192] for i in range(0, len(case.body or b""), 8192)]
            conn.request(case.method, case.path, body=iter(pieces), headers=case.headers, encode_chunked=True)
        else:
            conn.request(case.method, case.path, body=case.body, headers=case.headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, raw, response.will_close
    finally:
        if connection is None:
            conn.close()


def check_refusal(case: Case, status: int, raw: bytes) -> str:
    """A 4xx with the expected status and a JSON message in Seldon's error shape."""
    assert status == case.status, f"{case.name}: HTTP {status} (expected {case.status}): {raw[:300]!r}"
    assert 400 <= status < 500
    body = _strict_json(raw)
    info = body["status"]["info"]
    assert isinstance(info, str) and info.strip(), f"{case.name}: no message in {body}"
    return info


def _penguins() -> pd.DataFrame:
    frame = pd.read_csv(PENGUINS, na_values=["NA"])
    frame[NUMERIC] = frame[NUMERIC].astype("float64")
    return frame


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kfkit's training layout (what the train step writes), so the fast path serves it."""
    frame = _penguins()
    model = build_pipeline(FEATURES, LogisticRegression(max_iter=1000)).fit(frame[NAMES], frame["species"])
    folder = tmp_path_factory.mktemp("hardening-model") / "penguins" / "1"
    save_model(
        folder,
        model,
        model_name="penguins",
        problem_type="classification",
        label_column="species",
        features=FEATURES,
        estimator="LogisticRegression",
        classes=[str(c) for c in model.classes_],
    )
    return folder


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProcess]:
    log_path = tmp_path_factory.mktemp("hardening-logs") / "server.log"
    with start_server(model_dir, log_path=log_path, max_body_bytes=BODY_LIMIT) as served:
        yield served


# ------------------------------------------------------------------ in process: both paths agree


@pytest.mark.parametrize(
    "estimator", [LogisticRegression(max_iter=1000), Ridge()], ids=["classifier", "regressor"]
)
@pytest.mark.parametrize("value", [1e308, -1e308, 1e38, 1e200, 1e20, 40.0])
def test_fast_path_and_scikit_learn_path_agree_on_out_of_range_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, estimator: Any, value: float
):
    """Same answer, or the same 400 message, with the fast path on and off."""
    frame = _penguins().dropna(subset=["species", "body_mass_g"])
    classify = isinstance(estimator, LogisticRegression)
    label = "species" if classify else "body_mass_g"
    features = [f for f in FEATURES if f.name != label]
    names = [f.name for f in features]
    model = build_pipeline(features, estimator).fit(frame[names], frame[label])
    save_model(
        tmp_path / "m",
        model,
        model_name="penguins",
        problem_type="classification" if classify else "regression",
        label_column=label,
        features=features,
        estimator=type(estimator).__name__,
        classes=[str(c) for c in model.classes_] if classify else [],
    )
    outcomes = []
    for switch in ("1", "0"):
        monkeypatch.setenv("KFKIT_SERVING_FAST_PATH", switch)
        served = KfkitModel(tmp_path / "m")
        served.load()
        assert (served.fast is not None) == (switch == "1")
        row = np.array([[value if n == "bill_length_mm" else frame[n].iloc[0] for n in names]], dtype=object)
        try:
            outcomes.append(("answer", served.predict(row, names).tolist()))
        except (FeatureError, OutOfRangeError) as exc:  # outside the serving venv: the 400's text
            outcomes.append(("refused", str(exc)))
    assert outcomes[0] == outcomes[1]
    if outcomes[0][0] == "answer":
        assert all(math.isfinite(v) for v in np.ravel(outcomes[0][1]))
    if abs(value) >= 1e300:
        assert outcomes[0][0] == "refused" and "out of the range" in outcomes[0][1]
        assert "'bill_length_mm'" in outcomes[0][1]


@pytest.mark.parametrize(
    "value", [math.inf, -math.inf, "inf", "-Infinity", "nan", "NaN", 10**400, "1e400", True]
)
def test_non_finite_inputs_are_refused_naming_the_feature(model_dir: Path, value: Any):
    served = KfkitModel(model_dir)
    served.load()
    row = np.array([[value, *ROW[1:]]], dtype=object)
    with pytest.raises(FeatureError, match="'bill_length_mm' is numeric but row 0 holds"):
        served.predict(row, NAMES)


# ------------------------------------------------------------------ the real server (slow)


@pytest.mark.slow
@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_malformed_request_is_a_4xx_with_a_json_message(server: ServingProcess, case: Case):
    status, raw, _ = send(server.http_port, case)
    check_refusal(case, status, raw)
    assert server.running()


def test_the_corpus_is_broad():
    assert len(CORPUS) >= 20
    assert {case.status for case in CORPUS} == {400, 404, 405, 413, 415}


@pytest.mark.slow
def test_messages_name_what_was_wrong(server: ServingProcess):
    by_name = {case.name: case for case in CORPUS}
    expected = {
        "text-plain": "'text/plain' is not supported",
        "get-predictions": "GET is not allowed",
        "oversize-body": f"over the limit of {BODY_LIMIT} bytes",
        "deep-nesting": "nested too deeply",
        "ragged-ndarray": "row 1 has 3 values but there are 7 feature names",
        "infinity": "Infinity is not a number JSON allows",
        "1e400": "beyond the range of a 64-bit float",
        "string-inf": "'bill_length_mm' is numeric but row 0 holds 'inf'",
        "huge-finite-1e308": "largest: 'body_mass_g' = 1e+308",
        "wrong-feature-names": "unknown feature(s) 'gender'",
    }
    for name, text in expected.items():
        status, raw, _ = send(server.http_port, by_name[name])
        assert text in check_refusal(by_name[name], status, raw), name
    status, raw, close = send(server.http_port, by_name["get-predictions"])
    assert not close  # a refusal that read no body keeps the connection


@pytest.mark.slow
def test_valid_requests_and_seldon_endpoints_still_answer(server: ServingProcess, model_dir: Path):
    local = KfkitModel(model_dir)
    local.load()
    status, raw, _ = send(server.http_port, Case("valid", 200, _body([ROW, [None] * 5 + ["Dream", None]])))
    assert status == 200
    answer = _strict_json(raw)
    assert (
        answer["data"]["ndarray"]
        == local.predict(np.array([ROW, [None] * 5 + ["Dream", None]], dtype=object), NAMES).tolist()
    )
    for path in ("/health/ping", "/api/v1.0/health/status", "/api/v1.0/metadata", "/seldon.json"):
        status, raw, _ = send(server.http_port, Case(path, 200, None, method="GET", path=path, headers={}))
        assert status == 200, path
    status, _, _ = send(server.http_port, Case("preflight", 200, None, method="OPTIONS", headers={}))
    assert status == 200
    # the other prediction paths Seldon serves, and a charset parameter on the content type
    for path in ("/api/v0.1/predictions", "/predict"):
        case = Case(
            path, 200, _body([ROW]), path=path, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        assert send(server.http_port, case)[0] == 200, path


NUMERIC_CASES = [
    case for case in CORPUS if case.name.startswith(("string-", "bool-", "huge-", "1e400", "minus-"))
]


@pytest.mark.slow
def test_scikit_learn_path_answers_the_numeric_cases_like_the_fast_path(
    server: ServingProcess, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The same status and message from a server with KFKIT_SERVING_FAST_PATH=0."""
    assert len(NUMERIC_CASES) >= 8
    monkeypatch.setenv("KFKIT_SERVING_FAST_PATH", "0")
    with start_server(model_dir, log_path=tmp_path / "plain.log", max_body_bytes=BODY_LIMIT) as plain:
        for case in [*NUMERIC_CASES, Case("valid", 200, _body([ROW, [None] * 5 + ["Dream", None]]))]:
            fast_answer = send(server.http_port, case)[:2]
            plain_answer = send(plain.http_port, case)[:2]
            assert plain_answer[0] == fast_answer[0] == case.status, case.name
            assert _strict_json(plain_answer[1]) == _strict_json(fast_answer[1]), case.name


def _process_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if fields[2] == str(pgid) and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def _descendants(root: int) -> list[int]:
    """``root`` and every live process below it (by parent pid), zombies excluded."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        if pid in parents:
            found.append(pid)
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    except OSError:
        pass
    return inodes


def _decode_address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))  # four little-endian words
    address = ipaddress.IPv6Address(words)
    # gRPC listens on an IPv6 socket bound to ::ffff:127.0.0.1: IPv4's loopback, nothing more.
    return str(address.ipv4_mapped or address), int(port, 16)


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by ``pids``, from /proc."""
    inodes = set().union(*(_socket_inodes(pid) for pid in pids)) if pids else set()
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(_decode_address(fields[1]))
    return found


@pytest.mark.slow
def test_every_listening_socket_is_loopback(server: ServingProcess):
    pids = _process_group(server.pid)
    assert len(pids) >= 5, pids  # supervisor, Manager, REST arbiter + 2 workers, metrics, gRPC
    listeners = listening_sockets(pids)
    assert {port for _, port in listeners} == {server.http_port, server.grpc_port, server.metrics_port}
    assert {address for address, _ in listeners} == {"127.0.0.1"}, listeners


# ------------------------------------------------------------------ soak (slow)

SOAK_SECONDS = 15.0
SOAK_THREADS = 6


@pytest.mark.slow
def test_soak_mixed_valid_and_malformed_requests_never_5xx(server: ServingProcess, model_dir: Path):
    """Several client threads, half valid rows (answers checked against the model in process),
    half the malformed corpus, for SOAK_SECONDS on keep-alive connections."""
    local = KfkitModel(model_dir)
    local.load()
    frame = _penguins()
    records = frame[NAMES].astype(object).where(frame[NAMES].notna(), None).values.tolist()
    expected = [local.predict(np.array([row], dtype=object), NAMES).tolist() for row in records]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SOAK_SECONDS

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
        while time.monotonic() < deadline:
            if rng.random() < 0.5:
                index = rng.randrange(len(records))
                case = Case("valid", 200, _body([records[index]]))
            else:
                index, case = -1, rng.choice(CORPUS)
            try:
                status, raw, close = send(server.http_port, case, conn)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    failures.append(f"{case.name}: {type(exc).__name__}: {exc}")
                close = True
                status, raw = 0, b""
            problem = None
            if status >= 500 or status != case.status:
                problem = f"{case.name}: HTTP {status}: {raw[:200]!r}"
            elif index >= 0 and _strict_json(raw)["data"]["ndarray"] != expected[index]:
                problem = f"row {index}: wrong answer {raw[:200]!r}"
            with lock:
                statuses[status] += 1
                if problem:
                    failures.append(problem)
            if close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
        conn.close()

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(SOAK_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(
        f"soak: {sum(statuses.values())} requests in {SOAK_SECONDS:.0f} s: {dict(sorted(statuses.items()))}"
    )
    assert failures == [], failures[:10]
    assert not any(status >= 500 for status in statuses)
    assert statuses[200] > 50 and sum(v for s, v in statuses.items() if 400 <= s < 500) > 50
    assert server.running()


# ------------------------------------------------------------------ kfkit serve (slow)


@pytest.fixture(scope="module")
def pushed_model(objects: Any, model_dir: Path) -> str:
    """The module's model as pushed version 1 of 'hardening' in the session's object store."""
    from kfkit.model_registry import version_folder
    from kfkit.names import MODELS_BUCKET

    objects.ensure_bucket(MODELS_BUCKET)
    folder = version_folder("hardening", 1)
    for name in ("model.joblib", "kfkit-model.sig", "kfkit-model.json"):  # the manifest last, as push does
        objects.put_bytes(folder.child(name), (model_dir / name).read_bytes())
    return "hardening:1"


def _wait_for_listener(host: str, port: int, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-2000:]
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/health/ping")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"kfkit serve not answering on {host}:{port}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"]
)
def test_kfkit_serve_listens_on_its_host_and_a_signal_stops_every_process(
    store_env: dict[str, str], pushed_model: str, stop: signal.Signals
):
    """``--host`` reaches every port; SIGTERM/SIGINT stop the server it started, and even SIGKILL
    (no cleanup possible in kfkit serve) stops it, because the server watches its parent."""
    from kfkit.net import free_port

    host, port = "127.0.0.2", free_port()  # loopback still, but not the default: --host is honoured
    from kfkit.signing import trusted_keys_env

    # The module's model was signed by this process's key: trust it in the server's state folder too.
    env = {**store_env, **trusted_keys_env(), "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "sdk")}
    process = subprocess.Popen(
        [
            KFKIT,
            "serve",
            "--model",
            pushed_model,
            "--port",
            str(port),
            "--host",
            host,
            "--max-body-bytes",
            "1000",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started: list[int] = []
    try:
        _wait_for_listener(host, port, process)
        # HTTP answers first; the gRPC and metrics servers may still be binding (a busy machine).
        deadline = time.monotonic() + 60
        while True:
            started = [pid for pid in _descendants(process.pid) if pid != process.pid]
            listeners = listening_sockets(started)
            if len(listeners) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(started) >= 5, started
        assert len(listeners) == 3 and {address for address, _ in listeners} == {host}, listeners
        status, raw, _ = send(port, Case("oversize", 413, b" " * 1001 + _body([ROW])), host=host)
        assert status == 413, raw  # --max-body-bytes reached the server
        os.kill(process.pid, stop)
        process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(started):
            time.sleep(0.1)
        assert _alive(started) == [], f"still running after {stop.name}: {_alive(started)}"
        if stop != signal.SIGKILL:
            assert process.returncode == 0, process.stderr.read()[-2000:] if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
        for pid in _alive(started):
            os.kill(pid, signal.SIGKILL)


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


# ------------------------------------------------------------------ the serving image


def test_the_serving_image_holds_everything_its_server_imports(tmp_path: Path):
    """The Dockerfile's COPY lines of sdk/ give the image the same server as `kfkit serve`: copy
    exactly those files and import the server module with the serving venv's Python."""
    import shlex
    import shutil

    from kfkit.serving.server import SERVER_MODULE, serving_venv

    repo = Path(__file__).resolve().parents[1]
    dockerfile = (repo / "components" / "serving" / "Dockerfile").read_text()
    copied = 0
    for line in dockerfile.splitlines():
        words = shlex.split(line) if line.startswith("COPY ") else []
        if words and words[1].startswith("sdk/"):
            target = tmp_path / words[-1].removeprefix("./")
            for source in words[1:-1]:
                path = repo / source
                if path.is_dir():
                    shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, target)
                copied += 1
    assert copied >= 2
    assert f'CMD ["python", "-m", "{SERVER_MODULE}"]' in dockerfile
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "sdk"), "PYTHONNOUSERSITE": "1"}
    proc = subprocess.run(
        [str(serving_venv() / "bin" / "python"), "-m", SERVER_MODULE, "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--max-body-bytes" in proc.stdout and "--host" in proc.stdout


@pytest.mark.parametrize("host", ["10.255.255.1", "no-such-host.invalid"])
def test_a_host_this_machine_cannot_listen_on_is_refused_at_once(model_dir: Path, host: str):
    from kfkit.errors import KfkitError

    with pytest.raises(KfkitError, match=f"cannot listen on host '{host}'"):
        start_server(model_dir, host=host, timeout=5)
