"""The task queue's health, so nothing is queued into the void when Redis is down."""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

_CACHE_SECONDS = 3.0
_last: tuple[float, bool] = (0.0, False)


class QueueUnavailable(Exception):
    def __init__(self) -> None:
        super().__init__("The task queue (Redis) is unreachable: scans and pushes cannot start now. "
                         "The stored inventory is still shown.")


def queue_available() -> bool:
    """PING the broker; the answer is cached for a few seconds.

    A refused connection fails at once; the read timeout is looser, so that a
    busy Redis is not taken for a dead one (and every page told so).
    """
    global _last
    checked_at, ok = _last
    if time.monotonic() - checked_at < _CACHE_SECONDS:
        return ok
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2.0, socket_connect_timeout=1.0)
        ok = bool(client.ping())
        client.close()
    except (redis.RedisError, OSError):
        ok = False
    _last = (time.monotonic(), ok)
    return ok


def queue_forget() -> None:
    """Drop the cached answer: the next queue_available() asks the broker."""
    global _last
    _last = (0.0, False)

