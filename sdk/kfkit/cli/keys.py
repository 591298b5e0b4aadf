"""``kfkit keys show|rotate``: the key that signs models and the public keys trusted to load them."""

from __future__ import annotations

import os

import click

from kfkit.cli._app import _emit_json, json_option, main, user_errors


@main.group()
def keys() -> None:
    """Model signing keys (Ed25519): every model is signed at training, verified before loading."""


@keys.command("show")
@click.option("--public", "public", is_flag=True, help="Print only the signing key's public key (PEM).")
@json_option
@user_errors
def keys_show(public: bool, as_json: bool) -> None:
    """The signing key's id and source, and the trusted public keys. Never prints a private key.

    With --public, the PEM public key to trust elsewhere (the ConfigMap kfkit-trusted-model-keys
    in a cluster, or a KFKIT_TRUSTED_KEYS_DIR folder)."""
    from kfkit import signing

    key, key_id = signing.signing_key()
    pem = signing.public_pem(key.public_key()).decode()
    if public:
        click.echo(pem, nl=False)
        return
    source = os.environ.get(signing.SIGNING_KEY_ENV) or str(
        signing.local_keys_dir() / signing.LOCAL_PRIVATE_KEY
    )
    trusted = signing.trusted_keys()
    document = {
        "signing_key_id": key_id,
        "signing_key_file": source,
        "public_key": pem,
        "trusted": sorted(trusted.keys),
        "trusted_from": trusted.source,
    }
    if as_json:
        _emit_json(document)
        return
    click.echo(f"signing key   {key_id} ({source})")
    click.echo(f"trusted keys  {', '.join(document['trusted']) or 'none'} ({trusted.source})")
    if key_id not in trusted.keys:
        click.echo("warning: models signed now are not trusted here: they will not load", err=True)


@keys.command("rotate")
@json_option
@user_errors
def keys_rotate(as_json: bool) -> None:
    """A new local signing key; earlier public keys stay trusted, so older versions still load."""
    from kfkit import signing
    from kfkit.errors import KfkitError

    if os.environ.get(signing.SIGNING_KEY_ENV):
        raise KfkitError(
            f"{signing.SIGNING_KEY_ENV} names the signing key: rotate it where it is kept (in a cluster, "
            f"replace the Secret {signing.SIGNING_KEY_SECRET} and add the new public key to the "
            f"ConfigMap {signing.TRUSTED_KEYS_CONFIG_MAP})"
        )
    old = signing.signing_key()[1]
    new = signing.create_local_key()
    _emit_json({"previous": old, "signing_key_id": new}) if as_json else click.echo(
        f"signing key {new} (was {old}, still trusted)"
    )
