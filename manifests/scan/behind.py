"""Write-behind: a part's database work runs in one thread while the part fetches what comes next.

A part fetches a batch of tags (registry I/O, in the fetching threads), then
writes it (the database). Done one after the other, the registry waits while
the part writes, and the database while it fetches. On a worker, a part hands
each write to this process's writing thread and goes on fetching the next
batch or repository; it waits for a write only before handing over the next
one, so at most one batch is held besides the one being fetched (the next
batch counts what the pending one fetched as stored: fetching.Carried).

Steps run one at a time, in the order given. Run inline (tests, a scan of
one repository) each step runs at once, in the calling thread, through the
same code.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import close_old_connections, connections

from .fetching import Carried

_lock = threading.Lock()
_thread: ThreadPoolExecutor | None = None
_thread_pid = 0


def _writing_thread() -> ThreadPoolExecutor:
    """This process's writing thread, kept between parts (a worker runs one part after another)."""
    global _thread, _thread_pid
    with _lock:
        if _thread is None or _thread_pid != os.getpid():
            _thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan-write")
            _thread_pid = os.getpid()
        return _thread


def writing_thread_release() -> None:
    """Close the writing thread's database connections (a test's database is then free to drop)."""
    if _thread is not None and _thread_pid == os.getpid():
        _thread.submit(connections.close_all).result()


def behind_failed(error: BaseException) -> Future:
    """The future of a step that raised `error` before it could be given."""
    return _done(error=error)


def _done(result: object = None, error: BaseException | None = None) -> Future:
    future: Future = Future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
    return future


class WriteBehind:
    """The steps of one part, in order: in the writing thread (`threaded`), else at once."""

    def __init__(self, *, threaded: bool = False) -> None:
        self.threaded = threaded
        self._last: Future = _done()
        # What the batch last given fetched, for the next batch to count as stored, and the future of
        # its write: a batch that counted on it is not written if that write failed.
        self.carried: Carried | None = None
        self.carried_write: Future | None = None

    def write(self, step: Callable[[], object]) -> Future:
        """Give a batch's write: it runs after every step given before, which the calling thread first
        waits for (so one write runs beside the fetching, and one batch is held besides the one being
        fetched). Returns its future (its result or its exception)."""
        self.wait()
        return self.then(step)

    def then(self, step: Callable[[], object]) -> Future:
        """Give a step that holds no batch (counts, checks): it runs after every step given before."""
        if not self.threaded:
            try:
                return _done(step())
            except Exception as exc:
                return _done(error=exc)
        self._last = _writing_thread().submit(step)
        return self._last

    def wait(self) -> None:
        """Until the last step given has ended (its error stays in its future)."""
        self._last.exception()

    def close(self) -> None:
        """Wait for the steps; then the writing thread gives back its database connection if it is
        broken or older than CONN_MAX_AGE, as Celery does for a task's own thread."""
        self.wait()
        if self.threaded:
            _writing_thread().submit(close_old_connections).result()
