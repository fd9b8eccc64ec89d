"""Structured logs: one line per state transition of an event or a delivery, as text or as
one JSON object per line, configured only by the CLI (a library user keeps their own logging).

A transition line carries a name (``received``, ``duplicate``, ``ignored``, ``stored``,
``delivered``, ``retry_scheduled``, ``dead``, ``endpoint_disabled``, …) and the ids that
follow an event from the provider request to each delivery attempt. Callers pass ids,
types, counts and short error descriptions only: never a secret, a body or a payload."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

__all__ = ["JsonFormatter", "LogFormat", "configure_logging", "transition"]

LogFormat = Literal["text", "json"]
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# LogRecord attributes every record has: anything else in __dict__ came from ``extra``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _Line:
    """The text message of a transition, rendered only when a handler formats it."""

    __slots__ = ("fields", "name")

    def __init__(self, name: str, fields: dict[str, Any]) -> None:
        self.name, self.fields = name, fields

    def __str__(self) -> str:
        parts = [self.name]
        for key, value in self.fields.items():
            if value is None:
                continue
            if isinstance(value, list | tuple):
                value = ",".join(str(v) for v in value)
            parts.append(f"{key}={value}")
        return " ".join(parts)


# Transitions an operator should look at; every other one is INFO.
_LEVELS = {
    "dead": logging.WARNING,
    "endpoint_disabled": logging.WARNING,
    "reconcile_failed": logging.WARNING,
}


def transition(logger: logging.Logger, name: str, **fields: Any) -> None:
    """Log one state transition ``name`` with its ids as fields (``None`` fields left out),
    at WARNING for the ones that need an operator, else INFO."""
    level = _LEVELS.get(name, logging.INFO)
    if logger.isEnabledFor(level):
        logger.log(level, _Line(name, fields), extra={"transition": name})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, a transition's fields at the top level, ``exc`` for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        msg = record.msg
        if isinstance(msg, _Line):
            data["message"] = msg.name
            data.update((k, v) for k, v in msg.fields.items() if v is not None)
        else:
            data["message"] = record.getMessage()
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in data:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def configure_logging(
    fmt: LogFormat = "text", level: str | int = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record of at least ``level`` to ``stream`` (stderr) as ``fmt``,
    replacing earlier handlers on the root logger; returns the handler."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Neither format shows them, and filling them in is a third of a record's cost.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # One line per request from aiohttp's access log would drown the transitions.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
