"""``ppsp stun``: the reflexive UDP address a STUN server sees for this host, and whether a
NAT sits between them (what a peer behind NAT registers as its REFLEXIVE address).

The STUN client is imported inside the command, never by the others.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import click


class StunServerParam(click.ParamType[tuple[str, int]]):
    """A STUN server: ``HOST[:PORT]`` or ``[IPV6]:PORT`` (port 3478 when none is given)."""

    name = "host[:port]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        """``(host, port)``, or click's usage error."""
        if isinstance(value, tuple):
            return value  # a default already converted
        from ppsp.peer.net.stun import parse_server

        try:
            return parse_server(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command()
@click.argument("server", type=StunServerParam())
@click.option(
    "--host",
    default="0.0.0.0",
    show_default=True,
    help="The local address to send from (the one a peer's UDP socket would use).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="The local UDP port to send from (0: any free port).",
)
def stun(server: tuple[str, int], host: str, port: int) -> None:
    """Ask the STUN server SERVER (HOST[:PORT], port 3478 by default) which address and port
    it sees this host's UDP socket at, and say whether a NAT translated them.

    Prints one line: the reflexive address, then the local one.  Exits 1 with a one-line
    message when the server does not answer within about 4 s or refuses.
    """
    import asyncio
    import socket

    from ppsp.errors import StunError
    from ppsp.peer.net.stun import reflexive_address

    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise click.BadParameter(f"{host!r} is not an IP address", param_hint="--host") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot bind UDP {host}:{port}: {exc.strerror}") from None
        local = sock.getsockname()[:2]
        try:
            mapped = asyncio.run(reflexive_address(server, sock=sock))
        except (StunError, OSError) as exc:
            raise click.ClickException(f"STUN server {server[0]}:{server[1]}: {exc}") from None
    finally:
        sock.close()
    translated = mapped[0] != local[0] or mapped[1] != local[1]
    if host in ("0.0.0.0", "::"):
        translated = mapped[1] != local[1]  # the local address is not known before routing
    verdict = "behind a NAT" if translated else "no NAT between this host and the server"
    click.echo(f"reflexive {_join(mapped)} (local {_join(local)}): {verdict}")


def _join(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
