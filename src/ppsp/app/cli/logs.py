"""Where a command's log records go, and how they are written: ``--log-level``, ``--log-file``,
``--log-format``.

Records go to standard error, or with a log file to that file instead (opened in append mode
and opened again when it is moved or removed, so ``logrotate`` may rotate it).  The text format
is a plain line per record (through rich on a terminal); the JSON format is one object per line,
with ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message``, ``pid``, and
``exception`` when a traceback is attached.

Imports the standard library only: orjson (JSON) and rich (a terminal) are imported when a
command asks for them.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

LOG_LEVELS = ("debug", "info", "warning", "error")
"""Values of ``--log-level``."""

LOG_FORMATS = ("text", "json")
"""Values of ``--log-format``."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""A record as a plain line (files, and standard error when it is not a terminal)."""


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line: time, level, logger, message, pid[, exception]."""

    def __init__(self) -> None:
        super().__init__()
        import orjson

        self._dumps = orjson.dumps

    def format(self, record: logging.LogRecord) -> str:
        """The record's JSON line (without its line break)."""
        from datetime import UTC, datetime

        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        fields: dict[str, Any] = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process if record.process is not None else os.getpid(),
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        # default=str: a message is a str already; this only guards odd extras.
        text: str = self._dumps(fields, default=str).decode()
        return text


def configure_logging(level: str, *, file: Path | None = None, fmt: str = "text") -> None:
    """Send log records of ``level`` and above to standard error, or to ``file``, in ``fmt``.

    Replaces whatever handlers the root logger had.  Raises :class:`OSError` when ``file``
    cannot be opened for appending (before any handler is replaced).
    """
    numeric = getattr(logging, level.upper())
    handler: logging.Handler
    if file is not None:
        from logging.handlers import WatchedFileHandler

        handler = WatchedFileHandler(file, encoding="utf-8")
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    elif fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, logging.FileHandler):
            old.close()  # a log file of an earlier call (tests run commands in one process)
    root.addHandler(handler)
    root.setLevel(numeric)
