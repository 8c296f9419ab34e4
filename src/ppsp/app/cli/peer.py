"""``ppsp seed``, ``ppsp get``, ``ppsp watch``, and the options every peer command shares.

Defining the commands imports click only.  Running one imports what it runs, inside the
callback: the peer (:mod:`ppsp.app.commands`, aiohttp) for all three, the player endpoint only
for ``watch`` (and ``get -o -``), the live source and viewer only when a swarm turns out to be
live.  ``tests/app/test_startup.py`` checks that ``seed`` and ``get`` do not import more.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from ppsp.app.cli.base import F
from ppsp.app.cli.nat import StunServerParam
from ppsp.app.cli.params import ADVERTISE, PORT, RATE, SEED_FILE, SWARM_ID, TIMEOUT, TRACKER_URL

if TYPE_CHECKING:
    from ppsp.app.commands import PeerOptions
    from ppsp.peer.net.ppspp_relay import TurnServer


def _writable_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Check, before anything runs, that a file can be written where ``value`` says."""
    import os

    if value is not None:
        if str(value) == "-":
            raise click.BadParameter("'-' (standard output) is not taken here: give a file name")
        directory = value.parent
        if not directory.is_dir():
            raise click.BadParameter(f"no directory {directory}")
        if not os.access(directory, os.W_OK):
            raise click.BadParameter(f"cannot write in {directory}")
    return value


TOKEN_ENVVAR = "PPSP_TOKEN"
"""The environment variable a peer command reads its bearer token from (kept out of ``ps``)."""


def _ca_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Check, before any network, that ``--ca-file`` holds certificates TLS can trust."""
    if value is not None:
        from ppsp.tracker.net.client import tls_context

        try:
            tls_context(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
    return value


def _token(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check, before any network, that the token (``--token``, $PPSP_TOKEN, a file) names a
    PeerID; the error names the variable or file it came from (``ppsp.app.cli.config``)."""
    if value is None:
        return None
    from ppsp.tracker.net.client import check_token, token_subject

    try:
        token_subject(value)
        return check_token(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def peer_options(func: F) -> F:
    """Options every peer command shares, handed to the command as one ``options`` value.

    Tracker URL, trust anchors, token and encoding, the address it serves other peers on, rate
    limits, the report file, and a hidden test switch that makes the peer serve damaged chunks.
    """
    options = [
        click.option(
            "--tracker", "tracker_url", type=TRACKER_URL, required=True, help="Tracker URL."
        ),
        click.option(
            "--ca-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            callback=_ca_file,
            help="PEM file of CA certificates to trust for an https:// tracker, beside the "
            "system's.",
        ),
        click.option(
            "--token",
            envvar=TOKEN_ENVVAR,
            show_envvar=True,
            default=None,
            callback=_token,
            help="Bearer token for the tracker (from ppsp token); the peer takes its subject as "
            f"its PeerID. Prefer ${TOKEN_ENVVAR}: options show in process lists.",
        ),
        click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            help="Address to serve other peers on (0.0.0.0 or :: for every address).",
        ),
        click.option(
            "--port", type=PORT, default=0, show_default=True, help="Port to serve on (0: any)."
        ),
        click.option(
            "--advertise",
            type=ADVERTISE,
            default=None,
            help="IP[:PORT] other peers reach this one at (a public address, a forwarded "
            "port); default: the --host address, or for a wildcard the local address that "
            "reaches the tracker.",
        ),
        click.option(
            "--upload-rate",
            type=RATE,
            default=None,
            help="Upload limit, e.g. 2MiB or 8Mbit (per second).",
        ),
        click.option(
            "--host-share",
            type=click.FloatRange(0.0, 1.0, min_open=True),
            default=0.5,
            show_default=True,
            help="Most of this peer's upload slots and rate one requesting host (an IPv4 "
            "address, an IPv6 /64) gets while other hosts wait; alone, a host may use all.",
        ),
        click.option(
            "--connections-per-host",
            type=click.IntRange(1, 100_000),
            default=64,  # MAX_CONNECTIONS_PER_HOST (literal: no peer module imported here)
            show_default=True,
            help="Connections one host address may hold to this peer (viewers behind one NAT "
            "share its address; at the bound their idle ones take turns).",
        ),
        click.option(
            "--download-rate",
            type=RATE,
            default=None,
            help="Download limit, e.g. 2MiB or 8Mbit (per second).",
        ),
        click.option(
            "--report",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            callback=_writable_file,
            help="Write this peer's figures as JSON to this file when it stops.",
        ),
        click.option(
            "--tracker-encoding",
            type=click.Choice(["xml", "json"], case_sensitive=False),
            default="xml",
            show_default=True,
            help="Encoding of the tracker protocol.",
        ),
        click.option(
            "--corrupt-uploads", is_flag=True, hidden=True, help="Serve damaged chunks (tests)."
        ),
        click.option(
            "--disclose-stats",
            is_flag=True,
            help="Answer PROPERTY_QUERY's statistics (uptime, traffic, links) to any peer, not "
            "only to peers chunks went between.",
        ),
    ]

    @functools.wraps(func)
    def with_options(
        *args: Any,
        tracker_url: str,
        host: str,
        port: int,
        advertise: tuple[str, int | None] | None,
        upload_rate: float | None,
        host_share: float,
        connections_per_host: int,
        download_rate: float | None,
        report: Path | None,
        tracker_encoding: str,
        corrupt_uploads: bool,
        disclose_stats: bool,
        ca_file: Path | None,
        token: str | None,
        **kwargs: Any,
    ) -> Any:
        from ppsp.app.commands import PeerOptions
        from ppsp.tracker.net.client import tls_context
        from ppsp.wire.tracker import Encoding

        if ca_file is not None and not tracker_url.startswith("https://"):
            raise click.BadParameter(
                f"trust anchors are for https:// trackers, and {tracker_url} is not one",
                param_hint="--ca-file",
            )
        peer = PeerOptions(
            tracker_url=tracker_url,
            host=host,
            port=port,
            advertise=advertise,
            encoding=Encoding(tracker_encoding.lower()),
            upload_rate=upload_rate,
            download_rate=download_rate,
            report=report,
            corrupt_uploads=corrupt_uploads,
            disclose_stats=disclose_stats,
            host_share=host_share,
            connections_per_host=connections_per_host,
            tls=tls_context(ca_file) if ca_file is not None else None,
            token=token,
        )
        return func(*args, options=peer, **kwargs)

    command: Any = with_options
    for option in reversed(options):
        command = option(command)
    return cast(F, command)


def run_peer(coro: Any) -> int:
    """Run a peer command's coroutine, with the collector and the allocator tuned.

    Peers run on asyncio's own event loop, not uvloop (which the tracker uses): it sends
    stored chunks with ``sendfile``, which uvloop cannot, and moves bulk data no slower
    (docs/BENCHMARKS.md).
    """
    import asyncio

    from ppsp.process.tuning import tune_allocator, tune_garbage_collector

    tune_allocator()
    tune_garbage_collector()
    return int(asyncio.run(coro))


TIMEOUT_HELP = "Give up after this many seconds without progress."


ppspp_socket_stun = click.option(
    "--stun",
    type=StunServerParam(),
    default=None,
    metavar="HOST[:PORT]",
    help="With --ppspp-port: ask this STUN server (port 3478 by default) for the PPSPP "
    "socket's reflexive address, register it at the tracker, and keep the NAT binding alive "
    "(a Binding every 20 s).",
)
"""``--stun`` of a command serving on a PPSPP socket of its own (``seed``, ``live``)."""


def turn_options(command: str, prerequisite: str, what: str) -> Callable[[F], F]:
    """``--turn HOST[:PORT]``, ``--turn-user`` and ``--turn-password`` for peer command
    ``command`` (config keys ``turn``, ``turn-user``, ``turn-password`` in its table,
    ``PPSP_<COMMAND>_TURN*`` in the environment): the one definition of them.  ``prerequisite``
    is the option they go with, ``what`` what is served through the relay.  Read them with
    :func:`turn_server`."""
    variable = f"$PPSP_{command.upper()}_TURN_PASSWORD"
    options = [
        click.option(
            "--turn",
            type=StunServerParam(),
            default=None,
            metavar="HOST[:PORT]",
            help=f"With {prerequisite}: also serve {what} through a relay on this TURN server "
            "(port 3478 by default), registered at the tracker as a PROXY address, for a peer "
            "behind a NAT that hole punching cannot cross.  Needs --turn-user and "
            "--turn-password.",
        ),
        click.option(
            "--turn-user", default=None, help="The TURN server's user name (with --turn)."
        ),
        click.option(
            "--turn-password",
            default=None,
            help=f"The TURN server's password (with --turn).  Prefer {variable} or the "
            "configuration file: options show in process lists.",
        ),
    ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def turn_server(
    turn: tuple[str, int] | None,
    user: str | None,
    password: str | None,
    *,
    missing: str | None = None,
) -> TurnServer | None:
    """The TURN server of :func:`turn_options`' values, or None without ``--turn``.

    ``missing`` says what ``--turn`` lacks (its prerequisite option): a usage error when
    ``--turn`` is on the command line, left unused when it comes from a configuration file or
    the environment.  Credentials are required with ``--turn``; without it they are left
    unused (kept in the configuration file, say).
    """
    if turn is None:
        return None
    if missing is not None:
        ctx = click.get_current_context()
        if ctx.get_parameter_source("turn") is click.core.ParameterSource.COMMANDLINE:
            raise click.BadParameter(missing, param_hint="--turn")
        return None
    if not user or not password:
        raise click.BadParameter(
            "needs --turn-user and --turn-password (long-term credentials)", param_hint="--turn"
        )
    from ppsp.peer.net.ppspp_relay import TurnServer

    return TurnServer(turn, user, password)


PPSPP_CHUNK_SIZES = click.IntRange(1024, 65478)
"""PPSPP chunk sizes on the command line: from RFC 7574's default (libswift's) to the largest
chunk a DATA datagram holds (``ppsp.peer.net.ppspp_transport.fits_datagram``; not imported
here, the command line imports click only: ``tests/app`` checks the two agree)."""


@click.command()
@click.argument("path", type=SEED_FILE)
@peer_options
@click.option(
    "--chunk-size",
    type=click.IntRange(1024, 16 << 20),
    default=None,
    help="Chunk size in bytes, 1024 to 16777216 (16 MiB); default 256 KiB, doubled for "
    "content over 64 MiB up to 1 MiB.",
)
@click.option(
    "--ppspp-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve the file over PPSPP (RFC 7574, UDP) on this port of the listening host "
    "(0: any free port), and print its RFC 7574 root hash as a second line.",
)
@click.option(
    "--merkle-hash",
    type=click.Choice(["sha1", "sha256"]),
    default="sha1",
    show_default=True,
    help="The PPSPP Merkle tree's hash function (libswift speaks sha1).",
)
@click.option(
    "--ppspp-chunk-size",
    type=PPSPP_CHUNK_SIZES,
    default=None,
    metavar="BYTES",
    help="With --ppspp-port: the PPSPP chunk size, 1024 to 65478, of the file (default 1024; "
    "libswift's leecher needs -z BYTES for any other) and of what is offered to the swarm's "
    "peers (default 8192).",
)
@ppspp_socket_stun
@turn_options("seed", "--ppspp-port", "the swarm's peers")
def seed(
    path: Path,
    options: PeerOptions,
    chunk_size: int | None,
    ppspp_port: int | None,
    merkle_hash: str,
    ppspp_chunk_size: int | None,
    stun: tuple[str, int] | None,
    turn: tuple[str, int] | None,
    turn_user: str | None,
    turn_password: str | None,
) -> None:
    """Seed a file: print its swarm ID, then serve it until interrupted."""
    from ppsp.app.commands import seed_main

    ctx = click.get_current_context()
    source = ctx.get_parameter_source("ppspp_chunk_size")
    if ppspp_port is None and source is click.core.ParameterSource.COMMANDLINE:
        # One from a configuration file or the environment is left unused.
        raise click.BadParameter("needs --ppspp-port", param_hint="--ppspp-chunk-size")
    if stun is not None and ppspp_port is None:
        stun = unused_stun("needs --ppspp-port (the socket it is about)")
    needs = "needs --ppspp-port (what it relays)" if ppspp_port is None else None
    relay = turn_server(turn, turn_user, turn_password, missing=needs)
    main = seed_main(
        path,
        options,
        chunk_size=chunk_size,
        ppspp_port=ppspp_port,
        merkle_hash=merkle_hash,
        ppspp_chunk_size=ppspp_chunk_size,
        stun=stun,
        turn=relay,
    )
    sys.exit(run_peer(main))


FORCE_HELP = "Replace the output file if it exists."


def _check_output(output: Path | None, force: bool) -> None:
    from ppsp.app.commands import check_output

    problem = check_output(output, force=force)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="'-o' / '--output'")


@click.command()
@click.argument("swarm_id", metavar="SWARM_ID")
@peer_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, allow_dash=True),
    help="Output file ('-': standard output, in order). Written as FILE.part until every "
    "chunk is verified; the same command resumes an interrupted download.",
)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--timeout", type=TIMEOUT, default=30.0, show_default=True, help=TIMEOUT_HELP)
@click.option("--seed-after", is_flag=True, help="Keep serving the content once complete.")
@click.option(
    "--peer",
    "ppspp_peer",
    default=None,
    metavar="ppspp://HOST:PORT",
    help="Download from this one PPSPP (RFC 7574, UDP) peer, e.g. libswift's seeder, without "
    "a tracker: SWARM_ID is then the content's RFC 7574 Merkle root hash (40 hexadecimal "
    "digits for SHA-1, 64 for SHA-256). Not resumed when interrupted.",
)
@click.option(
    "--merkle-hash",
    type=click.Choice(["sha1", "sha256"]),
    default=None,
    help="With --peer: the Merkle tree's hash function (default: the root hash's length "
    "says; libswift speaks sha1).",
)
@click.option(
    "--ppspp-chunk-size",
    type=PPSPP_CHUNK_SIZES,
    default=None,
    metavar="BYTES",
    help="With --peer: the content's PPSPP chunk size, 1024 to 65478 (default 1024, "
    "libswift's; the root hash depends on it: libswift's -z).",
)
@click.option(
    "--transport",
    "transports",
    type=click.Choice(["http", "ppspp"], case_sensitive=False),
    multiple=True,
    help="A chunk transport to ask peers for; repeat it, most preferred first (default: "
    "http). ppspp: RFC 7574 over UDP (in the PPSPP chunk size each peer offers, 8 KiB by "
    "default), from peers seeding with --ppspp-port.",
)
@click.option(
    "--stun",
    type=StunServerParam(),
    default=None,
    metavar="HOST[:PORT]",
    help="With --transport ppspp: ask this STUN server (port 3478 by default) for the "
    "reflexive address of the one UDP socket PPSPP downloads use, print it, and keep the NAT "
    "binding alive (a Binding every 20 s).",
)
@turn_options("get", "--transport ppspp", "what it holds")
@click.pass_context
def get(
    ctx: click.Context,
    swarm_id: str,
    options: PeerOptions,
    output: Path,
    force: bool,
    timeout: float,
    seed_after: bool,
    ppspp_peer: str | None,
    merkle_hash: str | None,
    ppspp_chunk_size: int | None,
    transports: tuple[str, ...],
    stun: tuple[str, int] | None,
    turn: tuple[str, int] | None,
    turn_user: str | None,
    turn_password: str | None,
) -> None:
    """Download a swarm's content, verified chunk by chunk."""
    if ppspp_peer is not None:
        source = ctx.get_parameter_source("transports")
        if transports and source is click.core.ParameterSource.COMMANDLINE:
            # One from a configuration file or the environment is left unused.
            raise click.UsageError("--transport goes with --tracker, not --peer", ctx)
        for name in ("stun", "turn"):
            given = ctx.params.get(name) is not None
            if given and ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
                raise click.UsageError(f"--{name} goes with --tracker, not --peer", ctx)
        peer = (ppspp_peer, merkle_hash, ppspp_chunk_size)
        _get_from_ppspp_peer(swarm_id, options, output, force, timeout, seed_after, *peer)
        return
    # --tracker is optional for --peer only (see _TRACKER_OPTIONAL below).
    if options.tracker_url is None:
        raise click.MissingParameter(ctx=ctx, param=_param_of(ctx, "tracker_url"))
    if merkle_hash is not None:
        raise click.UsageError("--merkle-hash goes with --peer", ctx)
    source = ctx.get_parameter_source("ppspp_chunk_size")
    if ppspp_chunk_size is not None and source is click.core.ParameterSource.COMMANDLINE:
        # A swarm's PPSPP chunk size is the one each peer's offer names; one from a
        # configuration file or the environment is left unused.
        raise click.UsageError("--ppspp-chunk-size goes with --peer", ctx)
    swarm_id = SWARM_ID.convert(swarm_id, _param_of(ctx, "swarm_id"), ctx)
    _check_output(output, force)
    from ppsp.app.commands import get_main

    preference = tuple(dict.fromkeys(kind.upper() for kind in transports))
    if stun is not None and "PPSPP" not in preference:
        stun = unused_stun("needs --transport ppspp (the socket it is about)")
    needs = None if "PPSPP" in preference else "needs --transport ppspp (what it relays)"
    relay = turn_server(turn, turn_user, turn_password, missing=needs)
    main = get_main(
        swarm_id,
        options,
        output=output,
        timeout=timeout,
        seed_after=seed_after,
        transports=preference or None,
        stun=stun,
        turn=relay,
    )
    sys.exit(run_peer(main))


def unused_stun(needs: str) -> tuple[str, int] | None:
    """``--stun`` without the PPSPP socket it is about: a usage error (saying what it
    ``needs``) when given on the command line; one from a configuration file or the
    environment is left unused (None; ``[peer]`` gives it to every peer command)."""
    ctx = click.get_current_context()
    if ctx.get_parameter_source("stun") is click.core.ParameterSource.COMMANDLINE:
        raise click.BadParameter(needs, param_hint="--stun")
    return None


def _param_of(ctx: click.Context, name: str) -> click.Parameter:
    return next(param for param in ctx.command.params if param.name == name)


def _get_from_ppspp_peer(
    root_hash: str,
    options: PeerOptions,
    output: Path,
    force: bool,
    timeout: float,
    seed_after: bool,
    peer: str,
    merkle_hash: str | None,
    chunk_size: int | None,
) -> None:
    """``ppsp get ROOTHASH --peer ppspp://HOST:PORT``: no tracker, one PPSPP peer."""
    from ppsp.app.ppspp_get import merkle_hash_for, parse_ppspp_peer, ppspp_get_main

    ctx = click.get_current_context()
    if ctx.get_parameter_source("tracker_url") is click.core.ParameterSource.COMMANDLINE:
        # One from a configuration file or the environment is left unused.
        raise click.UsageError("--peer downloads without a tracker: give --tracker or --peer")
    if seed_after:
        raise click.UsageError("--seed-after is not offered with --peer")
    try:
        address = parse_ppspp_peer(peer)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--peer'") from None
    try:
        merkle_hash = merkle_hash_for(root_hash, merkle_hash)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'SWARM_ID'") from None
    if str(output) == "-":
        raise click.BadParameter("standard output is not offered with --peer", param_hint="'-o'")
    _check_output(output, force)
    main = ppspp_get_main(
        root_hash,
        address,
        output=output,
        merkle_hash=merkle_hash,
        timeout=timeout,
        chunk_size=chunk_size,
    )
    sys.exit(run_peer(main))


_TRACKER_OPTIONAL = [param for param in get.params if param.name == "tracker_url"]
for _param in _TRACKER_OPTIONAL:
    _param.required = False  # get() asks for it unless --peer is given


@click.command()
@click.argument("swarm_id", type=SWARM_ID)
@peer_options
@click.option(
    "--player-port",
    type=PORT,
    default=None,
    help="Local port for the player URL (default 8080, or any free port when it is taken; 0: any).",
)
@click.option(
    "--player-host",
    default="127.0.0.1",
    show_default=True,
    help="Local address for the player URL.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, allow_dash=True),
    default=None,
    help="Also keep the content in this file ('-': write it to standard output, in order).",
)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--timeout", type=TIMEOUT, default=30.0, show_default=True, help=TIMEOUT_HELP)
@click.option(
    "--transport",
    "transports",
    type=click.Choice(["http", "ppspp"], case_sensitive=False),
    multiple=True,
    help="A chunk transport to ask peers for; repeat it, most preferred first (default: "
    "http). ppspp: RFC 7574 over UDP, from peers serving it (ppsp seed or ppsp live with "
    "--ppspp-port, viewers of a live stream watching with --transport ppspp).",
)
@click.option(
    "--stun",
    type=StunServerParam(),
    default=None,
    metavar="HOST[:PORT]",
    help="With --transport ppspp (a live stream): ask this STUN server (port 3478 by default) "
    "for the reflexive address of the live PPSPP socket, register it at the tracker, keep the "
    "NAT binding alive (a Binding every 20 s) and, behind NAT, punch towards the stream's "
    "peers.",
)
@turn_options("watch", "--transport ppspp (a live stream)", "the stream it plays")
def watch(
    swarm_id: str,
    options: PeerOptions,
    player_port: int | None,
    player_host: str,
    output: Path | None,
    force: bool,
    timeout: float,
    transports: tuple[str, ...],
    stun: tuple[str, int] | None,
    turn: tuple[str, int] | None,
    turn_user: str | None,
    turn_password: str | None,
) -> None:
    """Watch a swarm (stored content or a live stream) at a local URL for mpv, VLC, ffplay or a
    browser; with -o, also keep it in a file (-o - writes it to standard output).
    """
    _check_output(output, force)
    preference = tuple(dict.fromkeys(kind.upper() for kind in transports))
    if stun is not None and "PPSPP" not in preference:
        stun = unused_stun("needs --transport ppspp (the socket it is about)")
    needs = None if "PPSPP" in preference else "needs --transport ppspp (what it relays)"
    relay = turn_server(turn, turn_user, turn_password, missing=needs)
    from ppsp.app.commands import watch_main

    sys.exit(
        run_peer(
            watch_main(
                swarm_id,
                options,
                player_host=player_host,
                player_port=player_port,
                output=output,
                timeout=timeout,
                transports=preference or None,
                stun=stun,
                turn=relay,
            )
        )
    )
