"""Where the engine's log lines go and how they look.

``text`` is for journald and terminals: journald stamps each line itself, so a line is only
``LEVEL logger: message``. ``json`` is one object per line for log shippers, with the event bus's
``event`` and ``service`` kept as fields instead of buried in the message.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
# Extras the event bus attaches to each record (see core/events.py).
EXTRAS = ("event", "service")

_installed: logging.Handler | None = None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in EXTRAS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def configure_logging(
    level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None, path: Path | None = None,
) -> logging.Handler:
    """Send log records to ``stream`` (default: sys.stderr as it is now) or append them to ``path``.

    Aurora's loggers log at ``level``; other libraries only at WARNING and above, so DEBUG stays about
    Aurora. Calling again replaces the handler installed before (tests and ``main`` may run twice in one
    process). Raises OSError when ``path`` cannot be opened, before anything is logged.
    """
    global _installed
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"log level is one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format is one of {', '.join(FORMATS)}, got {fmt!r}")
    if path is not None:
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
        _installed.close()
    root.addHandler(handler)
    _installed = handler
    numeric = logging.getLevelName(level)
    root.setLevel(max(numeric, logging.WARNING))
    logging.getLogger("aurora_tui").setLevel(numeric)
    # A library's warnings.warn would otherwise print a bare line that no log reader can parse.
    logging.captureWarnings(True)
    return handler


def log_path(db: Path) -> Path:
    """The console's log file: next to its database, like the control socket."""
    return db.with_name(db.name + ".log")
