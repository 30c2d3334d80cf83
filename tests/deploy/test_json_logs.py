"""LOG_FORMAT=json: one JSON object per line, the traceback inside it (the containers' logs are in test_container)."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

from config.logs import logging_config


def test_json_log_lines_hold_message_level_and_traceback(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "json")
    stream = io.StringIO()
    config = logging_config()
    formatter = config["formatters"]["default"]["()"]()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("manifests.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("scan of %s: %s", "lab", 'a "quoted"\nregistry message')
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "manifests.test-json"
    assert first["message"] == 'scan of lab: a "quoted"\nregistry message'
    assert second["message"] == "failed" and "ValueError: boom" in second["exception"]


def test_an_unknown_log_format_is_refused(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config()
