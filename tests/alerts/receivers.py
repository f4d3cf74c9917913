"""Real receivers on 127.0.0.1 for the alert tests: an SMTP server (aiosmtpd) and an HTTP
receiver (http.server in a thread), each on a free port, keeping what arrived."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPSink:
    """aiosmtpd on 127.0.0.1: every accepted message, parsed (email.message.EmailMessage).

    ``delay`` seconds pass between the end of DATA and the reply; a client that went away
    meanwhile never got the 250, and its message is not kept (as an MTA that had not yet
    acknowledged it)."""

    def __init__(self, delay: float = 0.0):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        self.delay = delay
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                import asyncio

                if sink.delay:
                    await asyncio.sleep(sink.delay)
                    transport = getattr(server, "transport", None)
                    if transport is None or transport.is_closing():
                        return "421 client went away"
                msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                               policy=email.policy.default)
                with sink.lock:
                    sink.messages.append({"to": list(envelope.rcpt_tos), "msg": msg})
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> SMTPSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def url(self, to: str, sender: str = "hotspots@localhost") -> str:
        return f"mailto://127.0.0.1:{self.port}?from={sender}&to={to}"

    def to(self, address: str) -> list:
        with self.lock:
            return [m["msg"] for m in self.messages if address in m["to"]]


class HTTPSink:
    """An HTTP receiver: POST bodies (JSON) per path. ``fail`` maps a path to how many
    requests fail (HTTP 503) before it accepts (-1: always). ``delay`` seconds pass before
    a request is taken; a client that went away meanwhile is not counted."""

    def __init__(self, fail: dict[str, int] | None = None, delay: float = 0.0):
        self.fail = dict(fail or {})
        self.delay = delay
        self.received: list[dict] = []
        self.refused: list[str] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if sink.delay:
                    time.sleep(sink.delay)
                    try:
                        self.connection.setblocking(False)
                        gone = self.connection.recv(1, socket.MSG_PEEK) == b""
                    except BlockingIOError:
                        gone = False
                    except OSError:
                        gone = True
                    finally:
                        self.connection.setblocking(True)
                    if gone:
                        return
                with sink.lock:
                    left = sink.fail.get(self.path, 0)
                    if left != 0:
                        sink.fail[self.path] = left - 1 if left > 0 else left
                        sink.refused.append(self.path)
                        code = 503
                    else:
                        try:
                            doc = json.loads(body)
                        except ValueError:
                            doc = {"raw": body.decode("utf-8", "replace")}
                        sink.received.append({"path": self.path, "headers": dict(self.headers), "json": doc})
                        code = 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"no")

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HTTPSink:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.received if r["path"] == path]
