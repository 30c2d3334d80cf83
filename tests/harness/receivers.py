"""Receivers of notifications on loopback: an HTTP server and an SMTP server (aiosmtpd).

Both record what they receive, for the tests to read; both run in threads of
the test process and stop with it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def wait(self, count: int = 1, *, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return list(self.requests)
            time.sleep(0.1)
        raise AssertionError(f"{len(self.requests)} requests after {timeout}s, expected {count}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def http_receiver_start() -> HttpReceiver:
    receiver: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(receiver.status)
            for name, value in receiver.extra_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = HttpReceiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


@dataclass
class SmtpReceiver:
    controller: object
    messages: list[Message] = field(default_factory=list)

    def wait(self, count: int = 1, *, timeout: float = 60.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return list(self.messages)
            time.sleep(0.1)
        raise AssertionError(f"{len(self.messages)} mails after {timeout}s, expected {count}")

    def stop(self) -> None:
        self.controller.stop()


def smtp_receiver_start(port: int) -> SmtpReceiver:
    from aiosmtpd.controller import Controller

    receiver = SmtpReceiver(controller=None)

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            message = message_from_bytes(envelope.content)
            message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            receiver.messages.append(message)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    receiver.controller = controller
    return receiver
