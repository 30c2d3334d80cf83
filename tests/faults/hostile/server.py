"""The hostile registry's two origins: threaded http.servers answering from its routes, misbehaving on cue."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.harness.tls import TlsFiles

from .content import (
    BAD_NAMES,
    MAX_HANG_SECONDS,
    MAX_STREAM_BYTES,
    PASSWORD,
    STREAM_CHUNK,
    TOKEN,
    TRICKLE_SECONDS,
    USER,
    Good,
    Reply,
    Route,
    Seen,
    StreamRecord,
    error_body,
)
from .repositories import Content


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.hostile._answer(self)

    do_HEAD = do_GET

    def _write(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.hostile._answer(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = _write


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hostile: HostileRegistry
    origin: str = "registry"
    tls: ssl.SSLContext | None = None

    def finish_request(self, request, client_address) -> None:
        """With TLS: https or plain http on one port, told apart by the first byte (0x16: a handshake)."""
        if self.tls is not None:
            request.settimeout(5)
            try:
                first = request.recv(1, socket.MSG_PEEK)
            except OSError:
                return
            if first == b"\x16":
                try:
                    request = self.tls.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError):
                    return
            request.settimeout(None)
        super().finish_request(request, client_address)


class HostileRegistry(Content):
    """Start with `HostileRegistry().start()`; `stop()` ends every hang and stream at once.

    `catalog` limits the repositories the catalog lists (every route is served
    anyway). `hang_seconds` is how long slow/hang:stuck holds a request;
    `hang_times` makes it hang only the first N requests (None: every one).
    `auth` is "", "basic" or "bearer"; `tls` serves https (and http) on the
    registry's port. `other_routes` are the second origin's (`other_url`).
    """

    def __init__(self, *, catalog: list[str] | None = None, hang_seconds: float = 5.0,
                 hang_times: int | None = None, auth: str = "", tls: TlsFiles | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.other_routes: dict[str, Route] = {}
        self.good: list[Good] = []
        self.expected_errors: dict[tuple[str, str], str] = {}  # (repository, tag or "") -> error code
        self.requests: Counter[str] = Counter()  # "METHOD /path" -> count
        self.faults: Counter[str] = Counter()  # fault -> answers actually sent
        self.streams: list[StreamRecord] = []
        self.escaped: list[str] = []  # paths outside /v2/
        self.seen: list[Seen] = []  # every request on either origin, in order
        self.auth = auth
        self.token_reply: Reply | None = None  # instead of a token: what /token answers
        self._used: Counter[int] = Counter()  # id(reply) -> times used
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._hang_seconds = min(hang_seconds, MAX_HANG_SECONDS)
        self._hang_times = hang_times
        self._tags: dict[str, list[str]] = {}
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.hostile = self
        port = self._httpd.server_address[1]
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_path, tls.key_path)
            self._httpd.tls = context
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.plain_url = f"http://127.0.0.1:{port}"  # the same host and port, without TLS
        self._other = _Server(("127.0.0.1", 0), _Handler)
        self._other.hostile = self
        self._other.origin = "other"
        self.other_url = f"http://127.0.0.1:{self._other.server_address[1]}"
        self.realm = f"{self.url}/token"
        self._build()
        self.catalog = list(catalog) if catalog is not None else list(self._tags) + list(BAD_NAMES)
        self.routes["/v2/"] = [Reply(200, {"Content-Type": "application/json"}, b"{}")]
        self.routes["/v2/_catalog"] = [Reply(
            200, {"Content-Type": "application/json"}, json.dumps({"repositories": self.catalog}).encode(),
            fault="names that break the grammar" if set(BAD_NAMES) & set(self.catalog) else None)]
        self._threads = [threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
                         for server in (self._httpd, self._other)]

    # -- life --------------------------------------------------------------

    def start(self) -> HostileRegistry:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for server, thread in zip((self._httpd, self._other), self._threads, strict=True):
            if thread.is_alive():  # shutdown() waits for a serve_forever that was never started
                server.shutdown()
            server.server_close()

    def __enter__(self) -> HostileRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def seen_by(self, origin: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.origin == origin]

    def link_catalog_to_other(self) -> None:
        """The catalog's first page names its next page on the second origin."""
        self.routes["/v2/_catalog"] = [Reply(
            200, {"Content-Type": "application/json",
                  "Link": f'<{self.other_url}/v2/_catalog?n=1000&last=good%2Fapp>; rel="next"'},
            json.dumps({"repositories": ["good/app"]}).encode(), fault="catalog Link to another origin")]

    # -- figures -----------------------------------------------------------

    @property
    def faults_sent(self) -> int:
        return sum(self.faults.values())

    def count(self, method: str, path: str) -> int:
        return self.requests[f"{method} {path}"]

    def stream_for(self, path: str) -> list[StreamRecord]:
        return [record for record in self.streams if record.path == path]

    # -- answering ---------------------------------------------------------

    def _count(self, method: str, path: str) -> None:
        with self._lock:
            self.requests[f"{method} {path}"] += 1
            if not path.startswith(("/v2/", "/token", "/plain/")):
                self.escaped.append(path)

    def _pick(self, routes: dict[str, Route], key: str, query: dict[str, list[str]]) -> Reply | None:
        route = routes.get(key)
        if route is None:
            return None
        if callable(route):
            return route(query)
        with self._lock:
            for reply in route:
                if reply.times is None or self._used[id(reply)] < reply.times:
                    self._used[id(reply)] += 1
                    return reply
            return route[-1]

    def _not_found(self, path: str) -> Reply:
        code = ("MANIFEST_UNKNOWN" if "/manifests/" in path else "BLOB_UNKNOWN" if "/blobs/" in path
                else "NAME_UNKNOWN")
        return Reply(404, {"Content-Type": "application/json"}, error_body(code, "unknown to this registry"))

    def _challenge(self, headers) -> Reply | None:
        """A 401 unless the request carries the credentials `auth` asks for."""
        given = headers.get("Authorization", "")
        if self.auth == "basic":
            if given == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode():
                return None
            challenge = 'Basic realm="hostile"'
        elif self.auth == "bearer":
            if given == f"Bearer {TOKEN}":
                return None
            challenge = f'Bearer realm="{self.realm}",service="hostile"'
        else:
            return None
        return Reply(401, {"Content-Type": "application/json", "WWW-Authenticate": challenge},
                     error_body("UNAUTHORIZED", "authentication required"))

    def _token(self, headers) -> Reply:
        if self.token_reply is not None:
            return self.token_reply
        if headers.get("Authorization", "") != "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode():
            return Reply(401, {"Content-Type": "application/json"}, error_body("UNAUTHORIZED", "bad credentials"))
        return Reply(200, {"Content-Type": "application/json"},
                     json.dumps({"token": TOKEN, "expires_in": 300}).encode())

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        origin = handler.server.origin
        scheme = "https" if isinstance(handler.connection, ssl.SSLSocket) else "http"
        with self._lock:
            self.seen.append(Seen(origin, scheme, handler.command, parts.path, parts.query,
                                  {k.lower(): v for k, v in handler.headers.items()}))
        query = parse_qs(parts.query)
        key = parts.path if handler.command in ("GET", "HEAD") else f"{handler.command} {parts.path}"
        if origin == "other":
            reply = (self._token(handler.headers) if parts.path == "/token" else None) \
                or self._pick(self.other_routes, key, query) or self._not_found(parts.path)
            self._send(handler, reply, parts.path)
            return
        self._count(handler.command, parts.path)
        if parts.path == "/token":
            reply = self._token(handler.headers)
        else:
            reply = (self._challenge(handler.headers) if parts.path.startswith("/v2/") else None) \
                or self._pick(self.routes, key, query)
            if reply is None:
                reply = self._not_found(parts.path) if handler.command in ("GET", "HEAD") else Reply(
                    405, {"Content-Type": "application/json"}, error_body("UNSUPPORTED", "this registry is read-only"))
        self._send(handler, reply, parts.path)

    def _note_fault(self, reply: Reply) -> None:
        if reply.fault:
            with self._lock:
                self.faults[reply.fault] += 1

    def _send(self, handler: BaseHTTPRequestHandler, reply: Reply, path: str) -> None:
        self._note_fault(reply)
        if reply.hang:
            self._stopping.wait(min(reply.hang, MAX_HANG_SECONDS))
            handler.close_connection = True  # and never answer
            return
        if reply.reset:
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
            handler.close_connection = True
            return
        if reply.trickle:
            self._trickle(handler, reply, path)
            return
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if reply.stream:
            self._stream(handler, reply, path)
            return
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        if handler.command != "HEAD":  # a HEAD answer has headers only (RFC 9110, 9.3.2)
            handler.wfile.write(reply.body)

    def _trickle(self, handler: BaseHTTPRequestHandler, reply: Reply, path: str) -> None:
        """The answer one byte every TRICKLE_SECONDS, its headers or its body, for at most MAX_HANG_SECONDS.

        No single read ever waits longer than TRICKLE_SECONDS, so a client's socket timeout never trips.
        """
        handler.close_connection = True
        head = f"HTTP/1.1 {reply.status} OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
        head += f"X-Padding: {'p' * 200}\r\nContent-Length: {len(reply.body)}\r\n\r\n"
        quick, slow = (head.encode(), reply.body) if reply.trickle == "body" else (b"HTTP/1.1 ", head.encode()[9:])
        record = StreamRecord(path=path, declared=len(reply.body))
        with self._lock:
            self.streams.append(record)
        started = time.monotonic()
        try:
            handler.wfile.write(quick)
            handler.wfile.flush()
            for index in range(len(slow)):
                if self._stopping.wait(TRICKLE_SECONDS) or time.monotonic() - started > MAX_HANG_SECONDS:
                    return
                handler.wfile.write(slow[index : index + 1])
                handler.wfile.flush()
                record.sent += 1
        except OSError:
            record.hung_up = True

    def _stream(self, handler: BaseHTTPRequestHandler, reply: Reply, path: str) -> None:
        """Filler bytes, counted as they leave; stops when the client hangs up, at the bound, or on stop()."""
        total = min(reply.stream, MAX_STREAM_BYTES)
        record = StreamRecord(path=path, declared=total if reply.declare_length else None)
        handler.close_connection = True
        # A small send buffer, so that `sent` is close to what the client took, not what the kernel queued.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_CHUNK)
        if reply.declare_length:
            handler.send_header("Content-Length", str(total))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        if handler.command == "HEAD":
            return
        with self._lock:
            self.streams.append(record)
        chunk = b" " * STREAM_CHUNK
        try:
            while record.sent < total and not self._stopping.is_set():
                piece = chunk[: total - record.sent]
                if reply.declare_length:
                    handler.wfile.write(piece)
                else:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                record.sent += len(piece)
            if not reply.declare_length:
                handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:  # BrokenPipeError, ConnectionResetError: the client hung up
            record.hung_up = True
