"""``ppsp lab vod`` and ``ppsp lab live``: swarm experiments as real processes.

The lab (and its extra: matplotlib, PyAV) is imported inside the commands only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ppsp.app.cli.config import ConfiguredGroup
from ppsp.app.cli.params import RATE

F = TypeVar("F", bound=Callable[..., Any])

LAB_MODULES = ("matplotlib", "av")
"""What ``ppsp lab`` needs beyond a plain install: the ``lab`` extra (plots, decoding)."""


def _require_lab_extra() -> None:
    """Fail with one line when the ``lab`` extra is not installed."""
    import importlib.util

    missing = [name for name in LAB_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(
            f"ppsp lab needs {' and '.join(missing)}: install them with pip install 'ppsp[lab]'"
        )


ATTACK_KINDS = ("tarpit", "forged-push", "corrupt", "eclipse", "flood")
"""The attack kinds the command line offers: ``ppsp.lab.attack.KINDS``, written out here so
that the command line loads nothing of the lab until a lab command runs (a test keeps the two
equal)."""


def attack_options(func: F) -> F:
    """``--attackers N --attack KIND`` (repeatable), ``--compare/--no-compare``, ``--limits``."""
    options = [
        click.option(
            "--attackers",
            type=click.IntRange(0, 256),
            default=0,
            show_default=True,
            help="Attackers of each --attack kind, each a process on its own address.",
        ),
        click.option(
            "--attack",
            "attacks",
            type=click.Choice(ATTACK_KINDS),
            multiple=True,
            help="Attack kind (repeatable; docs/SECURITY.md, 'Attacks in the lab').",
        ),
        click.option(
            "--compare/--no-compare",
            default=True,
            show_default=True,
            help="With attackers: run the same swarm without them first and report both.",
        ),
        click.option(
            "--limits",
            type=click.Choice(["on", "off"], case_sensitive=False),
            default="on",
            show_default=True,
            help="The tracker's per-host limits (every lab process has its own address).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def nat_option(func: F) -> F:
    """``--nat FRACTION`` and ``--symmetric FRACTION2``: the NAT lab (network namespaces,
    needs root)."""
    func = click.option(
        "--symmetric",
        type=click.FloatRange(0, 1),
        default=None,
        metavar="FRACTION",
        help="With --nat: this fraction of the NATed peers (chosen with --seed) behind NATs "
        "that map each destination to a port of its own (masquerade fully-random), which hole "
        "punching cannot cross: only a TURN relay reaches them. Every NATed peer allocates one "
        "(--turn) on the lab's coturn.",
    )(func)
    return click.option(
        "--nat",
        type=click.FloatRange(0, 1),
        default=None,
        metavar="FRACTION",
        help="Run every process in a network namespace of its own, this fraction of the peers "
        "(chosen with --seed) each behind a NAT of its own (nftables masquerade), the others, "
        "the tracker, the source and a STUN/TURN server (coturn) on a shared bridge; tbf caps the "
        "uplinks. Needs root, ip, nft, tc and turnserver (exit 2 without). Default: loopback.",
    )(func)


class NatUnavailable(click.ClickException):
    """What a NAT lab needs and lacks: one line, exit status 2."""

    exit_code = 2


def _nat_failed(exc: Exception) -> click.ClickException:
    """The one-line exit (status 2) for a NAT lab this machine cannot run."""
    return NatUnavailable(str(exc))


def _check_attacks(attackers: int, attacks: tuple[str, ...]) -> None:
    if attackers and not attacks:
        raise click.BadParameter("give the kinds with --attack", param_hint="--attackers")
    if attacks and not attackers:
        raise click.BadParameter("give the number with --attackers N", param_hint="--attack")


@click.group(cls=ConfiguredGroup)
def lab() -> None:
    """Swarm lab: real processes on loopback, measured against the fluid-model bound."""


@lab.command("vod")
@click.option("--peers", type=click.IntRange(min=1), default=16, show_default=True, help="Peers.")
@click.option(
    "--size-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=32.0,
    show_default=True,
    help="Size of the generated file in MiB.",
)
@click.option("--source-rate", type=RATE, default="4MiB", show_default=True, help="Source upload.")
@click.option("--peer-rate", type=RATE, default="2MiB", show_default=True, help="Peer upload.")
@click.option("--download-rate", type=RATE, default=None, help="Peer download cap (default none).")
@click.option(
    "--join-spread",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Peers join uniformly spread over this many seconds.",
)
@click.option(
    "--churn",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of peers that leave right after completing instead of seeding on.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of content and joins.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lab-vod"),
    show_default=True,
    help="Directory for report.json, report.md, plots, logs.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1024, 16 << 20),
    default=None,
    help="Chunk size in bytes (seed's default).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Bound in seconds on the swarm's completion (and on the baseline's).",
)
@click.option("--baseline/--no-baseline", default=True, show_default=True, help="Run the baseline.")
@click.option(
    "--ppspp-chunk-size",
    type=click.IntRange(1024, 65478),
    default=None,
    help="With --nat: the PPSPP chunk size the source offers the swarm (seed's default, 8 KiB).",
)
@click.option(
    "--transport",
    type=click.Choice(["ppspp", "http"], case_sensitive=False),
    default="ppspp",
    show_default=True,
    help="With --nat: ppspp, the source serving HTTP and PPSPP and every peer asking PPSPP "
    "first, then HTTP (STUN and TURN behind NAT); http, HTTP only (the source without a PPSPP "
    "port, the peers without STUN or TURN: a peer behind NAT can take but not serve).",
)
@click.option(
    "--http-beside",
    is_flag=True,
    default=False,
    help="With --nat: after the swarm, run the same swarm with HTTP only (as --transport "
    "http) into OUT/http; report.md sets the two side by side.",
)
@nat_option
@attack_options
def lab_vod(
    peers: int,
    size_mb: float,
    source_rate: float,
    peer_rate: float,
    download_rate: float | None,
    join_spread: float,
    churn: float,
    seed: int,
    out: Path,
    chunk_size: int | None,
    timeout: float,
    baseline: bool,
    ppspp_chunk_size: int | None,
    transport: str,
    http_beside: bool,
    nat: float | None,
    symmetric: float | None,
    attackers: int,
    attacks: tuple[str, ...],
    compare: bool,
    limits: str,
) -> None:
    """Video on demand: a tracker, a capped source and N peers; report.md against the bound.

    A fraction --churn of the peers (chosen with --seed) run without --seed-after: they leave
    the swarm as soon as their copy is complete.  Exit status 1 when a peer did not complete.

    --attackers N --attack KIND (repeatable) adds N attackers of each kind; with --compare
    the same swarm runs without them first (into OUT/clean) and report.md compares both.

    --nat FRACTION runs the swarm in network namespaces, that fraction of the peers behind
    NATs (--symmetric FRACTION2 of them mapping each destination apart); report.md adds how
    the peer pairs connected (docs/PROTOCOL.md, "The NAT lab").  --transport http runs it
    over HTTP only; --http-beside runs that too, after the swarm, and sets both side by side.
    """
    _check_attacks(attackers, attacks)
    transport = transport.lower()
    if ppspp_chunk_size is not None and nat is None:
        raise click.BadParameter("goes with --nat", param_hint="--ppspp-chunk-size")
    if transport != "ppspp" and nat is None:
        raise click.BadParameter("goes with --nat", param_hint="--transport")
    if http_beside and nat is None:
        raise click.BadParameter("goes with --nat", param_hint="--http-beside")
    if http_beside and transport == "http":
        raise click.BadParameter(
            "runs HTTP only beside a PPSPP swarm: leave --transport ppspp",
            param_hint="--http-beside",
        )
    if ppspp_chunk_size is not None and transport == "http":
        raise click.BadParameter(
            "has no use with --transport http", param_hint="--ppspp-chunk-size"
        )
    if symmetric is not None and nat is None:
        raise click.BadParameter("goes with --nat", param_hint="--symmetric")
    _require_lab_extra()
    import asyncio
    import shlex

    from ppsp.lab.errors import LabError, LabRequirementError
    from ppsp.lab.runner import VodLabSettings, run_vod_lab

    settings = VodLabSettings(
        out=out,
        peers=peers,
        size_mb=size_mb,
        source_rate=source_rate,
        peer_rate=peer_rate,
        download_rate=download_rate,
        join_spread=join_spread,
        churn=churn,
        seed=seed,
        chunk_size=chunk_size,
        ppspp_chunk_size=ppspp_chunk_size,
        timeout=timeout,
        baseline=baseline,
        command=shlex.join(["ppsp", *sys.argv[1:]]),
        attacks=tuple(dict.fromkeys(attacks)),
        attackers=attackers,
        compare=compare,
        limits=limits.lower() == "on",
        nat=nat,
        symmetric=symmetric,
        transport=transport,
        http_beside=http_beside,
    )
    try:
        document = asyncio.run(run_vod_lab(settings))
    except LabRequirementError as exc:
        raise _nat_failed(exc) from exc
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    click.echo((out / "report.md").read_text(encoding="utf-8"))
    sys.exit(0 if document["figures"]["all_complete"] else 1)


@lab.command("live")
@click.option("--peers", type=click.IntRange(min=1), default=10, show_default=True, help="Viewers.")
@click.option("--bitrate", type=RATE, default="2Mbit", show_default=True, help="Stream bitrate.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds everything runs after the last viewer joined.",
)
@click.option(
    "--source-rate", type=RATE, default=None, help="Source upload cap (default 3x the bitrate)."
)
@click.option("--peer-rate", type=RATE, default=None, help="Viewer upload cap (default none).")
@click.option(
    "--join-spread",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Viewers join uniformly spread over this many seconds.",
)
@click.option(
    "--churn",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of viewers that leave early (SIGINT after 30-70% of their watching time).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of joins and churn.")
@click.option(
    "--chunk-ms",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Chunk duration of the source in milliseconds.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lab-live"),
    show_default=True,
    help="Directory for report.json, report.md, plots, logs.",
)
@click.option(
    "--viewer-log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="The viewers' log level (debug: every request, arrival and give-up in OUT/logs).",
)
@nat_option
@attack_options
def lab_live(
    peers: int,
    bitrate: float,
    duration: float,
    source_rate: float | None,
    peer_rate: float | None,
    join_spread: float,
    churn: float,
    seed: int,
    chunk_ms: int,
    out: Path,
    viewer_log_level: str,
    nat: float | None,
    symmetric: float | None,
    attackers: int,
    attacks: tuple[str, ...],
    compare: bool,
    limits: str,
) -> None:
    """Live streaming: ffmpeg's test pattern into ppsp live, N ppsp watch viewers; report.md
    with continuity, startup delay, delay behind the source and the source's share per target.

    A fraction --churn of the viewers (chosen with --seed) is stopped early.  Exit status 1
    when a viewer wrote no playback report; missed targets are reported, not failed.

    --attackers N --attack KIND (repeatable) adds N attackers of each kind; with --compare
    the same stream runs without them first (into OUT/clean) and report.md compares both.

    --nat FRACTION runs the stream in network namespaces, that fraction of the viewers behind
    NATs, over PPSPP first (STUN and hole punching behind NAT), then HTTP; report.md adds how
    the pairs connected.
    """
    _check_attacks(attackers, attacks)
    if symmetric is not None and nat is None:
        raise click.BadParameter("goes with --nat", param_hint="--symmetric")
    _require_lab_extra()
    import asyncio
    import shlex

    from ppsp.lab.errors import LabError, LabRequirementError
    from ppsp.lab.live import LiveLabSettings, run_live_lab

    settings = LiveLabSettings(
        out=out,
        peers=peers,
        bitrate=bitrate,
        duration=duration,
        source_rate=source_rate,
        peer_rate=peer_rate,
        join_spread=join_spread,
        churn=churn,
        seed=seed,
        chunk_ms=chunk_ms,
        command=shlex.join(["ppsp", *sys.argv[1:]]),
        attacks=tuple(dict.fromkeys(attacks)),
        attackers=attackers,
        compare=compare,
        limits=limits.lower() == "on",
        viewer_log_level=viewer_log_level,
        nat=nat,
        symmetric=symmetric,
    )
    try:
        document = asyncio.run(run_live_lab(settings))
    except LabRequirementError as exc:
        raise _nat_failed(exc) from exc
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    click.echo((out / "report.md").read_text(encoding="utf-8"))
    sys.exit(0 if all(v["reported"] for v in document["figures"]["viewers"]) else 1)
