"""Logging for the web server, the workers and gunicorn: text, or JSON lines with LOG_FORMAT=json.

Shared by config/settings.py (Django, Celery) and docker/gunicorn.conf.py, so
every process of a deployment writes the same format.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_format() -> str:
    value = os.environ.get("LOG_FORMAT", "text").lower() or "text"
    if value not in ("text", "json"):
        raise ValueError(f"LOG_FORMAT must be text or json, not {value!r}")
    return value


def logging_config(*, gunicorn: bool = False, access_log: bool = False) -> dict:
    formatter = {"()": JsonFormatter} if log_format() == "json" else {
        "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    config: dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
        "loggers": {
            # urllib3 logs full URLs at DEBUG; keep it quiet so nothing that
            # looks like a credential reaches a log.
            "urllib3": {"level": "WARNING"},
        },
    }
    if gunicorn:
        # gunicorn's own loggers write through the same handler.
        config["loggers"]["gunicorn.error"] = {"level": "INFO", "handlers": ["console"], "propagate": False}
        config["loggers"]["gunicorn.access"] = {"level": "INFO", "handlers": ["console"] if access_log else [],
                                                "propagate": False}
    return config
