"""A wall-clock bound on every request: the deadline, its watchdog thread and the watched connections;
and the adapter the transport sends through.

The transport starts a `Deadline` per request and sets it as this thread's
`current` one while sending; the connection pool registers each socket with it.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from urllib.parse import urlsplit

import requests
import urllib3


class Deadline:
    """A wall-clock bound on one request, however slowly its server trickles.

    A socket timeout bounds each read, not their sum: a server sending a
    byte every few seconds never trips it. The watchdog thread shuts down
    the sockets of a request whose deadline has passed, which wakes the
    blocked read; the client then reports the deadline, not the broken read.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self._connections: list[urllib3.connection.HTTPConnection] = []
        self._lock = threading.Lock()

    def watch(self, connection: urllib3.connection.HTTPConnection) -> None:
        with self._lock:
            if connection not in self._connections:
                self._connections.append(connection)
        if self.expired:
            self._shut(connection)

    def extend(self, seconds: float) -> None:
        with self._lock:
            self.at += seconds

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self._connections.clear()

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            connections = list(self._connections)
        for connection in connections:
            self._shut(connection)

    @staticmethod
    def _shut(connection: urllib3.connection.HTTPConnection) -> None:
        sock = getattr(connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Watchdog:
    """One daemon thread for every client in the process: fires deadlines as they pass."""

    def __init__(self) -> None:
        self._deadlines: set[Deadline] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._next_wake = 0.0  # when the thread wakes next on its own

    def add(self, deadline: Deadline) -> None:
        with self._wake:
            self._deadlines.add(deadline)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="registry-deadlines", daemon=True)
                self._thread.start()
            if deadline.at < self._next_wake:
                # Sooner than the thread's next look (at most a second away): wake it now. Not for
                # every request: waking a thread per request costs more than the request on a busy machine.
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                due = [d for d in self._deadlines if d.done or d.at <= now]
                self._deadlines.difference_update(due)
                pending = [d.at for d in self._deadlines]
                wait = min(1.0, max(0.01, min(pending) - now)) if pending else 1.0
                self._next_wake = now + wait
                self._wake.wait(wait)
            for deadline in due:
                deadline.fire()


watchdog = _Watchdog()
current = threading.local()  # the deadline of the request this thread is sending


class _WatchedConnectionMixin:
    """Registers the connection with the deadline of the request that uses it."""

    def _watched(self) -> None:
        deadline = getattr(current, "deadline", None)
        if deadline is not None:
            deadline.watch(self)

    def connect(self) -> None:
        self._watched()
        super().connect()

    def request(self, *args, **kwargs):
        self._watched()
        return super().request(*args, **kwargs)


class _HTTPConnection(_WatchedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


# A URL sent as it is: ASCII with nothing to quote (RFC 3986 reserved and unreserved characters, and
# percent escapes); any other goes through requests' quoting.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


class Adapter(requests.adapters.HTTPAdapter):
    """Watched connections; and, for a client that sends thousands of small requests, an origin's
    connection pool looked up once rather than per request, and no cookie jar work for an answer
    that sets no cookie."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        self._pools: dict[tuple, urllib3.HTTPConnectionPool] = {}

    def exchange(self, session: requests.Session, method: str, url: str, *, headers: dict, params, data,
                 timeout: float) -> requests.Response:
        """One HTTP exchange, streamed, no redirect followed: what `session.request` does, less its
        per-request work this client never needs (environment settings, auth handlers, redirect
        resolving): a scan sends thousands of small requests, and that work was a third of their CPU.
        The session's headers, verify setting, cookies and response hooks apply as through it."""
        request = requests.PreparedRequest()
        request.method = method.upper()
        if params or not _PLAIN_URL.fullmatch(url):
            request.prepare_url(url, params)
        else:  # built from a validated name and reference, or a Location that needs no quoting
            request.url = url
        # http.client refuses a header name or value that could split the request (CR, LF).
        request.headers = requests.structures.CaseInsensitiveDict(session.headers)
        request.headers.update(headers)
        if session.cookies:
            request.prepare_cookies(session.cookies)
        request.prepare_body(data, None)
        request.hooks = {"response": []}
        response = self.send(request, stream=True, timeout=timeout, verify=session.verify, cert=None, proxies={})
        if "Set-Cookie" in response.headers:
            requests.cookies.extract_cookies_to_jar(session.cookies, request, response.raw)
        for hook in session.hooks["response"]:
            hook(response)
        return response

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        if proxies:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        parts = urlsplit(request.url)
        key = (parts.scheme.lower(), parts.netloc.lower(), verify, cert)
        pool = self._pools.get(key)
        if pool is None or pool.pool is None:  # not met yet, or closed (the manager dropped it, or cleared)
            if len(self._pools) >= 64:  # storage hosts met through redirects: keep the lookup small
                self._pools.clear()
            pool = self._pools[key] = super().get_connection_with_tls_context(request, verify, proxies, cert)
        return pool

    def build_response(self, req, resp) -> requests.Response:
        if "set-cookie" in resp.headers:
            return super().build_response(req, resp)
        response = requests.Response()
        response.status_code = resp.status
        response.headers = requests.structures.CaseInsensitiveDict(resp.headers)
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response.raw, response.reason = resp, resp.reason
        response.url = req.url.decode() if isinstance(req.url, bytes) else req.url
        response.request, response.connection = req, self
        return response


def deadline_on_close(response: requests.Response, deadline: Deadline) -> None:
    """A streamed response whose caller reads the body: closing it ends its request's deadline."""
    response.deadline = deadline
    close = response.close

    def close_and_finish() -> None:
        deadline.finish()
        close()

    response.close = close_and_finish
