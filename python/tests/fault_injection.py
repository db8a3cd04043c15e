"""FAULT INJECTION: an HTTP proxy in front of the real server that loses answers on purpose.

Not a stand-in for the server: every request it passes on is answered by the real server
binary. On request it
- drops the answer to chosen requests: the request reaches the server, which acts on it, and
  the proxy closes the client's connection without a word (a reset after the bytes left);
- answers 503 itself, in the server's place, as a restarting server or a reverse proxy does;
- hides `Idempotency-Key` declarations in `/openapi.json`, as a server without them (the
  original 1.4.0) publishes it.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

IDEMPOTENCY_KEY = "Idempotency-Key"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class FaultInjectingProxy:
    """Passes requests to `upstream`; `seen` lists `(method, path, Idempotency-Key or None)` of each."""

    def __init__(self, upstream: str, *, hide_idempotency_key: bool = False) -> None:
        self.upstream = urlsplit(upstream)
        self.hide_idempotency_key = hide_idempotency_key
        self.seen: list[tuple[str, str, str | None]] = []
        self._faults: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def drop_answer(self, method: str, path: str, times: int = 1) -> None:
        """Pass the next `times` `method path` requests on, then hang up instead of answering."""
        self._faults.setdefault((method, path), []).extend(["drop"] * times)

    def answer_503(self, method: str, path: str, times: int = 1) -> None:
        """Answer the next `times` `method path` requests with 503 without passing them on."""
        self._faults.setdefault((method, path), []).extend(["503"] * times)

    def requests_to(self, method: str, path: str) -> list[str | None]:
        """The Idempotency-Key of each `method path` request seen (None where it had none)."""
        return [key for m, p, key in self.seen if (m, p) == (method, path)]

    def take_fault(self, method: str, path: str, key: str | None) -> str | None:
        """Record a request; the fault to inject into it, if one is pending."""
        with self._lock:
            self.seen.append((method, path, key))
            pending = self._faults.get((method, path))
            return pending.pop(0) if pending else None

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultInjectingProxy

    def do_GET(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def do_DELETE(self) -> None:
        self._relay()

    def _relay(self) -> None:
        path = self.path.partition("?")[0]
        fault = self.proxy.take_fault(self.command, path, self.headers.get(IDEMPOTENCY_KEY))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if fault == "503":
            self._answer(503, {"Content-Type": "application/json"}, b'{"detail": "injected: service unavailable"}')
            return
        status, headers, answer = self._forward(body)
        if fault == "drop":
            self.close_connection = True  # the server acted; the client hears nothing
            return
        if path == "/openapi.json" and self.proxy.hide_idempotency_key:
            answer = _without_idempotency_key(answer)
        self._answer(status, headers, answer)

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        upstream = self.proxy.upstream
        connection = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=900)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            return response.status, kept, answer
        finally:
            connection.close()

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep the test output clean
        pass


def _without_idempotency_key(answer: bytes) -> bytes:
    document: dict[str, Any] = json.loads(answer)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [p for p in operation["parameters"] if p.get("name") != IDEMPOTENCY_KEY]
    return json.dumps(document).encode()


@contextmanager
def fault_injecting_proxy(upstream: str, *, hide_idempotency_key: bool = False) -> Iterator[FaultInjectingProxy]:
    proxy = FaultInjectingProxy(upstream, hide_idempotency_key=hide_idempotency_key)
    try:
        yield proxy
    finally:
        proxy.stop()
