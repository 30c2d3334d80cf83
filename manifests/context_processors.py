"""What every template may show, pages and htmx partials alike."""

from __future__ import annotations

import functools

from django.http import HttpRequest

from .services import queue


def queue_state(request: HttpRequest) -> dict:
    """`queue_down`: whether the task queue is unreachable, asked only when a template reads it.

    A callable, which templates call on first use: a partial that never shows
    the banner costs no broker ping, and one render asks at most once.
    """
    return {"queue_down": functools.cache(lambda: not queue.queue_available())}
