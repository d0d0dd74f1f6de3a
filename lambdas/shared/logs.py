"""JSON log lines (one object per line on stdout) with stable event names for CloudWatch metric filters.

Alarms match ``{ $.event = "<name>" }``; the names below are a contract shared with app/jsonlog.py.
Each line has ``timestamp``, ``level``, ``logger``, ``message`` and, for events, ``event`` plus fields.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, Final, TextIO

FINANCIAL_ERROR: Final = "financial_error"
BALANCE_INCONSISTENCY: Final = "balance_inconsistency"
DATABASE_ERROR: Final = "database_error"
CONFIG_WARNING: Final = "config_warning"

_FIELDS_ATTR = "shipyard_fields"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, _FIELDS_ATTR, {}))
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def get_logger(name: str, stream: TextIO | None = None) -> logging.Logger:
    """A logger that writes JSON lines to ``stream`` (stdout by default) and not to the root logger.

    The Lambda runtime puts its own plain-text handler on the root logger; not propagating keeps every
    line of ours pure JSON, which metric filters need.
    """
    logger = logging.getLogger(name)
    target = stream or sys.stdout
    if not any(getattr(handler, "stream", None) is target for handler in logger.handlers):
        handler = logging.StreamHandler(target)
        handler.setFormatter(JsonFormatter())
        logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def log_event(logger: logging.Logger, event: str, message: str, *, level: int = logging.ERROR, **fields: Any) -> None:
    logger.log(level, message, extra={_FIELDS_ATTR: {"event": event, **fields}})


def log_fields(logger: logging.Logger, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, message, extra={_FIELDS_ATTR: fields})
