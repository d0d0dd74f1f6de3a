"""One JSON object per log line, with stable event names that CloudWatch metric filters match.

Alarms are built on ``{ $.event = "<name>" }`` filters, so the names in :data:`ALARM_EVENTS` are a contract:
renaming one silently disables its alarm. Every line has ``timestamp`` (UTC, ISO 8601), ``level``,
``logger`` and ``message``; event lines add ``event`` and their own fields at the top level.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, Final

FINANCIAL_ERROR: Final = "financial_error"
BALANCE_INCONSISTENCY: Final = "balance_inconsistency"
UPLOAD_FAILED: Final = "upload_failed"
DATABASE_ERROR: Final = "database_error"
ALARM_EVENTS: Final = frozenset({FINANCIAL_ERROR, BALANCE_INCONSISTENCY, UPLOAD_FAILED, DATABASE_ERROR})

_FIELDS_ATTR = "shipyard_fields"
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Plain `extra={...}` from third-party code (gunicorn, werkzeug) is kept as well.
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key != _FIELDS_ATTR and not key.startswith("_"):
                line[key] = value
        line.update(getattr(record, _FIELDS_ATTR, {}))
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class StaticFields(logging.Filter):
    """Adds the same fields (e.g. the stack name) to every record that passes through a handler."""

    def __init__(self, **fields: Any):
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            setattr(record, key, value)
        return True


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Route every logger (ours, gunicorn's, werkzeug's) through one JSON handler on stdout."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log_event(logger: logging.Logger, event: str, message: str, *, level: int = logging.ERROR, **fields: Any) -> None:
    """Log ``message`` as an event line: ``{"event": event, "level": ..., **fields}``."""
    logger.log(level, message, extra={_FIELDS_ATTR: {"event": event, **fields}})
