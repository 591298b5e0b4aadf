"""Model signatures: Ed25519 over the exact bytes of ``kfkit-model.json``.

The manifest holds the sha256 of ``model.joblib`` and of every companion file, so one signature
over it vouches for the whole folder. A sha256 alone has no trust root: whoever can rewrite the
model can rewrite its digest too. A signature from a key the reader trusts cannot be forged that
way, and it is checked before a single byte of the pickle is read.

Keys (never parameters, YAML, logs or lineage):

- signing: the private key file named by ``KFKIT_SIGNING_KEY_FILE`` (PEM, PKCS#8; in a cluster a
  Secret mounted into the train task); with none, a key pair kfkit creates on first need under
  ``<state>/keys/`` (the private key 0600), whose public key it trusts locally;
- trusting: every PEM public key in the folder ``KFKIT_TRUSTED_KEYS_DIR`` (in a cluster a
  ConfigMap mounted into the tasks and the model server) or the file ``KFKIT_TRUSTED_KEYS_FILE``;
  with neither, the local trusted folder ``<state>/keys/trusted/``.

Imported by the serving process: only the standard library at import time (``cryptography`` is
a direct dependency of both environments, imported when a key is used).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfkit.errors import KfkitError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_FILE = "kfkit-model.sig"
SIGNED_FILE = "kfkit-model.json"  # model_folder.MANIFEST_FILE (that module imports this one)
ALGORITHM = "Ed25519"
SIGNING_KEY_ENV = "KFKIT_SIGNING_KEY_FILE"
TRUSTED_KEYS_DIR_ENV = "KFKIT_TRUSTED_KEYS_DIR"
TRUSTED_KEYS_FILE_ENV = "KFKIT_TRUSTED_KEYS_FILE"
LOCAL_PRIVATE_KEY = "signing-key.pem"
LOCAL_TRUSTED_DIR = "trusted"

# In a cluster (manifests/, kfkit.platform, the SeldonDeployment push builds): the Secret that
# holds the private key, mounted into the train task, and the ConfigMap of trusted public keys,
# mounted into the tasks and model servers that load models. Names and paths only.
SIGNING_KEY_SECRET = "kfkit-model-signing"
SIGNING_KEY_SECRET_FILE = "signing-key.pem"
SIGNING_KEY_MOUNT = "/etc/kfkit/model-signing"
TRUSTED_KEYS_CONFIG_MAP = "kfkit-trusted-model-keys"
TRUSTED_KEYS_MOUNT = "/etc/kfkit/trusted-model-keys"


def _serialization() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization


def key_id(public_key: Ed25519PublicKey) -> str:
    """A public key's short fingerprint: 16 hex digits of the sha256 of its 32 raw bytes."""
    ser = _serialization()
    raw = public_key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    ser = _serialization()
    return public_key.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)


def new_private_key() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def private_pem(private_key: Ed25519PrivateKey) -> bytes:
    ser = _serialization()
    return private_key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())


def write_private_file(path: Path, data: bytes) -> None:
    """Create or replace a file readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A name of its own: two first runs side by side may both create a key (each key's public
    # half is trusted, so either outcome verifies).
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


# -- local keys ---------------------------------------------------------------------------------


def local_keys_dir() -> Path:
    from kfkit.settings import state_dir

    return state_dir() / "keys"


def local_trusted_dir() -> Path:
    return local_keys_dir() / LOCAL_TRUSTED_DIR


def _trust_locally(public_key: Ed25519PublicKey) -> Path:
    trusted = local_trusted_dir()
    trusted.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = trusted / f"{key_id(public_key)}.pem"
    path.write_bytes(public_pem(public_key))
    return path


def create_local_key() -> str:
    """A new local key pair: the private key replaces the current one (0600), its public key
    joins the trusted ones (earlier public keys stay trusted, so older models still load).
    Returns the new key id."""
    private_key = new_private_key()
    keys = local_keys_dir()
    keys.mkdir(mode=0o700, exist_ok=True)
    keys.chmod(0o700)
    _trust_locally(private_key.public_key())  # trusted before anything is signed with it
    write_private_file(keys / LOCAL_PRIVATE_KEY, private_pem(private_key))
    return key_id(private_key.public_key())


def _load_private_key(path: Path, where: str) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KfkitError(f"{where} {path}: cannot read the signing key: {exc.strerror}") from None
    try:
        key = _serialization().load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KfkitError(f"{where} {path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KfkitError(f"{where} {path}: the signing key must be an Ed25519 key")
    return key


def signing_key() -> tuple[Ed25519PrivateKey, str]:
    """The key that signs models, and its id: ``KFKIT_SIGNING_KEY_FILE``, else the local key
    (created on first need)."""
    configured = os.environ.get(SIGNING_KEY_ENV)
    if configured:
        key = _load_private_key(Path(configured), SIGNING_KEY_ENV)
    else:
        path = local_keys_dir() / LOCAL_PRIVATE_KEY
        if not path.is_file():
            create_local_key()
        key = _load_private_key(path, "local signing key")
    return key, key_id(key.public_key())


# -- trusted keys -------------------------------------------------------------------------------


@dataclass
class TrustedKeys:
    keys: dict[str, Ed25519PublicKey]  # key id -> public key
    source: str  # where they were read from, for messages


def _public_keys_in(path: Path) -> list[Ed25519PublicKey]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = path.read_bytes()
    marker = b"-----BEGIN PUBLIC KEY-----"
    blocks = [marker + block for block in text.split(marker)[1:]]
    if not blocks:
        raise KfkitError(f"{path}: no PEM public key (-----BEGIN PUBLIC KEY-----) in this trusted-keys file")
    keys = []
    for number, block in enumerate(blocks, start=1):
        try:
            key = _serialization().load_pem_public_key(block)
        except ValueError:
            raise KfkitError(f"{path}: public key {number} is not a valid PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KfkitError(f"{path}: public key {number} is not an Ed25519 key")
        keys.append(key)
    return keys


def trusted_keys_env() -> dict[str, str]:
    """Where this process finds its trusted keys, as environment for a child process (the model
    server runs elsewhere, with another working folder): public keys' locations only."""
    for name in (TRUSTED_KEYS_DIR_ENV, TRUSTED_KEYS_FILE_ENV):
        if os.environ.get(name):
            return {name: str(Path(os.environ[name]).resolve())}
    return {TRUSTED_KEYS_DIR_ENV: str(local_trusted_dir())}


def trusted_keys() -> TrustedKeys:
    """The public keys whose signatures this process accepts (see the module docstring)."""
    folder = os.environ.get(TRUSTED_KEYS_DIR_ENV)
    single = os.environ.get(TRUSTED_KEYS_FILE_ENV)
    if folder:
        files = _key_files(Path(folder), TRUSTED_KEYS_DIR_ENV)
        source = f"{TRUSTED_KEYS_DIR_ENV}={folder}"
    elif single:
        if not Path(single).is_file():
            raise KfkitError(f"{TRUSTED_KEYS_FILE_ENV} {single}: no such file")
        files = [Path(single)]
        source = f"{TRUSTED_KEYS_FILE_ENV}={single}"
    else:
        local = local_trusted_dir()
        files = _key_files(local, None) if local.is_dir() else []
        source = f"the local trusted keys in {local}"
    keys: dict[str, Ed25519PublicKey] = {}
    for path in files:
        for key in _public_keys_in(path):
            keys[key_id(key)] = key
    return TrustedKeys(keys, source)


def _key_files(folder: Path, env: str | None) -> list[Path]:
    if not folder.is_dir():
        raise KfkitError(f"{env} {folder}: no such folder")
    # A mounted ConfigMap also holds `..data` links and `..<timestamp>` folders: skip dot names.
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())


# -- sign and verify ----------------------------------------------------------------------------


def signature_document(manifest_bytes: bytes) -> bytes:
    """The signature file's content for these exact manifest bytes, signed with ``signing_key``."""
    private_key, kid = signing_key()
    signature = private_key.sign(manifest_bytes)
    document = {
        "algorithm": ALGORITHM,
        "key_id": kid,
        "signed_file": SIGNED_FILE,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def sign_folder(folder: str | Path) -> str:
    """Sign the folder's ``kfkit-model.json`` as it is on disk; writes ``kfkit-model.sig``.
    Returns the key id."""
    folder = Path(folder)
    document = signature_document((folder / SIGNED_FILE).read_bytes())
    (folder / SIGNATURE_FILE).write_bytes(document)
    return str(json.loads(document)["key_id"])


def verify_signature(manifest_bytes: bytes, signature_bytes: bytes | None, where: str) -> str:
    """Check that ``signature_bytes`` (a ``kfkit-model.sig``; None when there is none) signs
    exactly ``manifest_bytes`` with a trusted key. Returns the key id; raises ``KfkitError``
    naming ``where`` otherwise."""
    from cryptography.exceptions import InvalidSignature

    refuse = "refusing to load it"
    if signature_bytes is None:
        raise KfkitError(f"{where}: model is not signed (no {SIGNATURE_FILE}); {refuse}")
    try:
        document = json.loads(signature_bytes)
        kid = str(document["key_id"])
        signature = base64.b64decode(document["signature"], validate=True)
        algorithm = document["algorithm"]
    except (ValueError, TypeError, KeyError):
        raise KfkitError(f"{where}: {SIGNATURE_FILE} is not a kfkit signature; {refuse}") from None
    if algorithm != ALGORITHM:
        raise KfkitError(f"{where}: {SIGNATURE_FILE} uses {algorithm!r}, not {ALGORITHM}; {refuse}")
    trusted = trusted_keys()
    key = trusted.keys.get(kid)
    if key is None:
        known = ", ".join(sorted(trusted.keys)) or "none"
        raise KfkitError(
            f"{where}: signed by key {kid}, which is not trusted ({trusted.source}: {known}); {refuse}"
        )
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise KfkitError(
            f"{where}: signature of key {kid} does not match {SIGNED_FILE} (changed after signing); {refuse}"
        ) from None
    return kid


def read_verified_manifest_bytes(folder: str | Path) -> bytes:
    """The folder's ``kfkit-model.json`` bytes, read once, after its signature is verified."""
    folder = Path(folder)
    try:
        manifest_bytes = (folder / SIGNED_FILE).read_bytes()
    except FileNotFoundError:
        raise KfkitError(f"{folder / SIGNED_FILE}: no model manifest in this folder") from None
    try:
        signature_bytes: bytes | None = (folder / SIGNATURE_FILE).read_bytes()
    except FileNotFoundError:
        signature_bytes = None
    verify_signature(manifest_bytes, signature_bytes, str(folder))
    return manifest_bytes
