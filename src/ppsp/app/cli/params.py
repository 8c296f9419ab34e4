"""Option and argument types the commands share: ports, swarm IDs, tracker URLs, rates, ...

Each checks its value before anything touches the network or a file, and fails with click's
usage error (exit status 2) naming what is wrong.  Whatever a check needs beyond click is
imported inside ``convert``, so that defining the options costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

PORT = click.IntRange(0, 65535)
"""A TCP or UDP port number; 0 asks for any free port where the option allows it."""


class SwarmIdParam(click.ParamType[str]):
    """A swarm ID: 64 lower-case hex digits (a stored content's or a live stream's)."""

    name = "swarm_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The swarm ID, or click's usage error naming what is wrong with it."""
        text = str(value)
        from ppsp.peer.content.description import is_swarm_id

        if is_swarm_id(text):
            return text
        if is_swarm_id(text.lower()):
            self.fail(f"swarm IDs are written in lower case: {text.lower()}", param, ctx)
        self.fail(f"{text!r} is not a swarm ID (64 hexadecimal digits)", param, ctx)


SWARM_ID = SwarmIdParam()


class TrackerUrlParam(click.ParamType[str]):
    """A tracker URL: http:// or https://, with a host (checked before any network)."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The tracker URL, or click's usage error."""
        from ppsp.tracker.net.client import check_tracker_url

        try:
            return check_tracker_url(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TRACKER_URL = TrackerUrlParam()


class SeedFileParam(click.ParamType[Path]):
    """A file to seed: a regular, readable, non-empty file."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        """The path, or click's usage error saying why it cannot be seeded."""
        import os
        import stat

        path = Path(value)
        try:
            info = path.stat()
        except OSError as exc:
            self.fail(f"{path}: {exc.strerror or exc}", param, ctx)
        if stat.S_ISDIR(info.st_mode):
            self.fail(f"{path} is a directory: seed a file", param, ctx)
        if not stat.S_ISREG(info.st_mode):
            kind = "a named pipe" if stat.S_ISFIFO(info.st_mode) else "not a regular file"
            self.fail(
                f"{path} is {kind}: seed a regular file (ppsp live streams pipes)", param, ctx
            )
        if info.st_size == 0:
            self.fail(f"{path} is empty: there is nothing to seed", param, ctx)
        if not os.access(path, os.R_OK):
            self.fail(f"{path}: permission denied", param, ctx)
        return path


SEED_FILE = SeedFileParam()


class AdvertiseParam(click.ParamType[tuple[str, int | None]]):
    """``HOST[:PORT]`` (``[V6]:PORT`` for IPv6): the address other peers reach this peer at."""

    name = "host[:port]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int | None]:
        """``(ip, port or None)``, or click's usage error."""
        if isinstance(value, tuple):
            return value
        from ppsp.peer.protocol.addressing import parse_advertise

        try:
            return parse_advertise(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


ADVERTISE = AdvertiseParam()


class RateParam(click.ParamType[float]):
    """A rate such as ``2MiB`` or ``8Mbit``, converted to bytes per second."""

    name = "rate"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """Parse the rate or fail with click's usage error."""
        if isinstance(value, float):
            return value
        from ppsp.core.ratelimit import parse_rate

        try:
            return parse_rate(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


RATE = RateParam()


TIMEOUT = click.FloatRange(min=0, min_open=True)
"""Seconds, more than 0."""
