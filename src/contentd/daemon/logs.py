"""Structured logs on stderr, in containerd's style.

``text`` (the default) writes logfmt lines as containerd's logrus does::

    time="2024-05-01T10:00:00.123456Z" level=info msg="loading plugin..." type=io.containerd.gc.v1

``json`` writes one JSON object per line with the same keys. Extra
key/value pairs come from ``extra={"fields": {...}}`` on the logging call;
an exception adds ``error``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Final, TextIO

__all__ = ["JSONFormatter", "LogfmtFormatter", "level_number", "setup_logging"]

_LEVELS: Final = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}
_NAMES: Final = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}


def level_number(name: str) -> int:
    """The logging level for a logrus level name (ValueError if unknown)."""
    try:
        return _LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}") from None


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {}
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        fields.update(extra)
    if record.exc_info and record.exc_info[1] is not None:
        fields.setdefault("error", str(record.exc_info[1]))
    return fields


def _logfmt_value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(c in text for c in ' ="\\\n\t') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"time={_logfmt_value(_timestamp(record))}",
            f"level={_NAMES.get(record.levelno, record.levelname.lower())}",
            f"msg={_logfmt_value(record.getMessage())}",
        ]
        for key, value in _fields(record).items():
            parts.append(f"{key}={_logfmt_value(value)}")
        return " ".join(parts)


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": _timestamp(record),
            "level": _NAMES.get(record.levelno, record.levelname.lower()),
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            out.setdefault(key, value if isinstance(value, int | float | bool) else str(value))
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send logs to ``stream`` (stderr): contentd's at ``level``, the libraries' (grpc,
    hpack, ...) at warning and above whatever ``level`` says (hpack logs every header
    field it decodes at debug)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    number = level_number(level)
    root.setLevel(max(number, logging.WARNING))
    logging.getLogger("contentd").setLevel(number)
