"""Transient S3 errors are retried: a proxy in front of the loopback S3 server answers every
third request with 503 SlowDown, and a whole run still publishes."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

from flows.publish import read_latest
from flows.storage import open_location
from tests.conftest import Ledger, csv_row

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FlakyProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, every: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = urlparse(upstream)
        self.every = every
        self.requests = 0
        self.failed = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: FlakyProxy

    def log_message(self, *args: object) -> None:  # quiet
        return

    def _handle(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            fail = self.server.requests % self.server.every == 0
            self.server.failed += fail
        body = self._body()
        if fail:
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            self.wfile.write(SLOW_DOWN)
            return
        upstream = http.client.HTTPConnection(
            self.server.upstream.hostname, self.server.upstream.port, timeout=30
        )
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("host", "transfer-encoding", "content-length")
        }
        if body is not None:
            headers["Content-Length"] = str(len(body))
        headers["Host"] = self.server.upstream.netloc
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        payload = response.read()
        self.send_response(response.status)
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", length or str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        upstream.close()

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


@pytest.fixture
def flaky_s3(
    s3_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(s3_endpoint, every=3)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.server_address[1]}")
    try:
        yield proxy
    finally:
        proxy.shutdown()


def test_a_run_publishes_through_transient_errors(
    ledger: Ledger, s3_bucket: str, flaky_s3: FlakyProxy
) -> None:
    root = f"s3://{s3_bucket}/flaky"
    ledger.settings = ledger.settings.with_overrides(output=root)
    ledger.land_csv("2026-05-01.csv", csv_row("a1"), csv_row("a2", amount="-3"))
    ledger.run(as_of=date(2026, 5, 2))
    assert flaky_s3.failed > 5
    manifest = read_latest(open_location(root))
    assert manifest is not None and manifest["totals"]["files"] >= 8
