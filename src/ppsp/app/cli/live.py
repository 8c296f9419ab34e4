"""``ppsp live``: the source of a live stream.

The live modules (the chunker, signing, cryptography) are imported inside the command only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ppsp.app.cli.peer import (
    peer_options,
    ppspp_socket_stun,
    run_peer,
    turn_options,
    turn_server,
    unused_stun,
)

if TYPE_CHECKING:
    from ppsp.app.commands import PeerOptions


@click.command()
@peer_options
@click.option(
    "--input",
    "input_path",
    default="-",
    show_default=True,
    help="The live byte stream: '-' for standard input, or a file or named pipe read as it grows.",
)
@click.option(
    "--chunk-ms",
    type=click.IntRange(1, 60_000),
    default=500,
    show_default=True,
    help="Chunk duration in milliseconds.",
)
@click.option(
    "--window",
    "window_s",
    type=click.IntRange(1, 86_400),
    default=30,
    show_default=True,
    help="Seconds of chunks kept.",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The source's Ed25519 key (PEM); made and saved when missing (default: per --name in"
    " the user's data directory, $XDG_DATA_HOME/ppsp/live-keys/NAME.key).",
)
@click.option(
    "--name",
    default="live",
    show_default=True,
    help="Name of the stream (it also names the stream's key file).",
)
@click.option(
    "--ppspp-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve the stream over PPSPP (RFC 7574, UDP; Unified Merkle Tree with signed "
    "munros) on this port of the listening host (0: any free port), to viewers watching with "
    "--transport ppspp.",
)
@ppspp_socket_stun
@turn_options("live", "--ppspp-port", "the stream")
def live(
    options: PeerOptions,
    input_path: str,
    chunk_ms: int,
    window_s: int,
    key_path: Path | None,
    name: str,
    ppspp_port: int | None,
    stun: tuple[str, int] | None,
    turn: tuple[str, int] | None,
    turn_user: str | None,
    turn_password: str | None,
) -> None:
    """Stream live: cut the input into signed chunks and feed the swarm; prints the swarm ID.

    When the input ends, the last chunk says so, the source serves it briefly and exits.
    """
    if stun is not None and ppspp_port is None:
        stun = unused_stun("needs --ppspp-port (the socket it is about)")
    needs = "needs --ppspp-port (what it relays)" if ppspp_port is None else None
    relay = turn_server(turn, turn_user, turn_password, missing=needs)
    from ppsp.app.live_commands import live_main

    sys.exit(
        run_peer(
            live_main(
                options,
                input_path=input_path,
                chunk_ms=chunk_ms,
                window_s=window_s,
                key_path=key_path,
                name=name,
                ppspp_port=ppspp_port,
                stun=stun,
                turn=relay,
            )
        )
    )
