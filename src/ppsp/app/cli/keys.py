"""``ppsp token`` and ``ppsp keygen``: the Ed25519 keys and bearer tokens of a tracker.

cryptography and the token code are imported inside the commands, never by the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


class PeerIdParam(click.ParamType[str]):
    """A PeerID: 1 to 256 characters, no whitespace or control characters (a protocol token)."""

    name = "peer_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The PeerID, or click's usage error."""
        from ppsp.wire.fields import is_token

        text = str(value)
        if not is_token(text):
            self.fail(
                f"{text[:80]!r} is not a PeerID (1 to 256 characters, no spaces or controls)",
                param,
                ctx,
            )
        return text


class TokenSwarmParam(click.ParamType[str]):
    """A swarm ID a token may name: any protocol token but ``ALL`` and ``nil``."""

    name = "swarm_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The swarm ID, or click's usage error."""
        from ppsp.peer.content.description import is_swarm_id as is_content_swarm_id
        from ppsp.wire.fields import is_swarm_id

        text = str(value)
        if is_content_swarm_id(text.lower()) and not is_content_swarm_id(text):
            self.fail(f"swarm IDs are written in lower case: {text.lower()}", param, ctx)
        if not is_swarm_id(text):
            self.fail(f"{text[:80]!r} is not a swarm ID", param, ctx)
        return text


TTL_MAX = 10 * 366 * 86400
"""Longest token lifetime ``ppsp token`` makes, in seconds (ten years)."""


@click.command()
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Ed25519 private key (PEM: from ppsp keygen or openssl genpkey -algorithm ed25519).",
)
@click.option(
    "--peer-id", required=True, type=PeerIdParam(), help="The PeerID the token is issued for."
)
@click.option(
    "--swarm",
    "swarms",
    multiple=True,
    type=TokenSwarmParam(),
    help="A swarm the peer may join (repeatable); without any, the peer may join every swarm.",
)
@click.option(
    "--ttl",
    type=click.IntRange(1, TTL_MAX),
    default=86400,
    show_default=True,
    help="Seconds the token stays valid.",
)
@click.option(
    "--operator",
    is_flag=True,
    help="An operator's token (claim role=operator): it also opens the tracker's dashboard "
    "and its JSON API; --peer-id then names the operator.",
)
def token(key_path: Path, peer_id: str, swarms: tuple[str, ...], ttl: int, operator: bool) -> None:
    """Print a bearer token (a JWT signed with Ed25519) for a peer of a tracker run with
    --auth-key: its subject is the PeerID, and the peer takes that PeerID when it uses it.

    Give it to the peer as $PPSP_TOKEN (or --token); the token alone is printed, on one line.
    With --operator, give it to the dashboard (it asks for it once).
    """
    import datetime
    import time

    from ppsp.tracker.net.auth import OPERATOR_ROLE, issue_token, load_private_key

    try:
        key = load_private_key(key_path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--key") from exc
    now = time.time()
    role = OPERATOR_ROLE if operator else None
    text = issue_token(key, peer_id, swarms=swarms or None, ttl=ttl, now=now, role=role)
    click.echo(text)
    until = datetime.datetime.fromtimestamp(now + ttl, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    scope = f"{len(swarms)} swarm{'s' if len(swarms) != 1 else ''}" if swarms else "any swarm"
    kind = "operator token" if operator else "token"
    click.echo(f"{kind} for PeerID {peer_id}, {scope}, valid until {until}", err=True)


@click.command()
@click.option(
    "--out",
    "prefix",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the keys: PREFIX-private.pem (mode 0600) and PREFIX-public.pem.",
)
def keygen(prefix: Path) -> None:
    """Make an Ed25519 key pair for tokens: the private key signs them (ppsp token --key), the
    public key lets the tracker check them (ppsp tracker --auth-key).

    PEM files, as openssl genpkey -algorithm ed25519 writes them; existing files are never
    overwritten.
    """
    from ppsp.tracker.net.auth import write_key_pair

    private = prefix.with_name(prefix.name + "-private.pem")
    public = prefix.with_name(prefix.name + "-public.pem")
    if not private.parent.is_dir():
        raise click.BadParameter(f"no directory {private.parent}", param_hint="--out")
    try:
        write_key_pair(private, public)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"private key (keep it secret; ppsp token --key): {private}")
    click.echo(f"public key (ppsp tracker --auth-key): {public}")
