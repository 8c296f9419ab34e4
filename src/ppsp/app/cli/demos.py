"""``ppsp demo``: a local demo swarm, or the seed's example tracker session replayed."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option(
    "--session",
    is_flag=True,
    help="Replay the seed's PPSP-TP/1.1 example session against a tracker instead.",
)
@click.option(
    "--encoding",
    "encodings",
    type=click.Choice(["xml", "json"], case_sensitive=False),
    multiple=True,
    help="Tracker encoding(s): for --session, XML then JSON by default; the swarm uses the first.",
)
@click.option(
    "--leechers",
    type=click.IntRange(1, 64),
    default=6,
    show_default=True,
    help="Number of leechers in the swarm.",
)
def demo(session: bool, encodings: tuple[str, ...], leechers: int) -> None:
    """Run a local demo swarm: tracker, seeder of a sample video, leechers, and a final table.

    With --session, replay the seed's example tracker session and print each request and answer.
    """
    from ppsp.wire.tracker import Encoding

    chosen = [Encoding(e.lower()) for e in encodings]
    if session:
        from ppsp.app.demo import run_demo

        sys.exit(run_demo(chosen or [Encoding.XML, Encoding.JSON]))
    from ppsp.app.demo_swarm import SwarmDemoSettings, run_demo_swarm

    settings = SwarmDemoSettings(leechers=leechers, encoding=chosen[0] if chosen else Encoding.XML)
    sys.exit(run_demo_swarm(settings))
