"""Transient S3 errors are retried: a proxy in front of the loopback S3 server answers every
third request with 503 SlowDown, and a whole run still publishes. The same proxy counts the
requests a publication makes."""

from __future__ import annotations

import collections
import http.client
import io
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import polars as pl
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

    def __init__(self, upstream: str, every: int | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = urlparse(upstream)
        self.every = every  # None: pass every request on
        self.requests = 0
        self.failed = 0
        self.kinds: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: FlakyProxy
    # HTTP/1.1 answers `Expect: 100-continue`, which the AWS SDK sends with larger bodies: under
    # HTTP/1.0 the proxy waited for a body the client held back until it timed out.
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        return

    def _handle(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            self.server.kinds[self._kind()] += 1
            every = self.server.every
            fail = every is not None and self.server.requests % every == 0
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

    def _kind(self) -> str:
        path, _, query = self.path.partition("?")
        if self.command == "PUT" and self.headers.get("x-amz-copy-source"):
            return "COPY"
        if self.command == "PUT" and path.endswith("/"):
            return "MARKER"
        if self.command == "GET" and "list-type" in query:
            return "LIST"
        return self.command

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


def _proxy(
    every: int | None, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(s3_endpoint, every=every)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.server_address[1]}")
    try:
        yield proxy
    finally:
        proxy.shutdown()


@pytest.fixture
def flaky_s3(
    s3_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlakyProxy]:
    yield from _proxy(3, s3_endpoint, monkeypatch)


@pytest.fixture
def counted_s3(
    s3_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlakyProxy]:
    yield from _proxy(None, s3_endpoint, monkeypatch)


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


def test_a_publication_puts_each_new_file_once_and_copies_only_replacements(
    ledger: Ledger, s3_bucket: str, counted_s3: FlakyProxy
) -> None:
    root = f"s3://{s3_bucket}/counted"
    ledger.settings = ledger.settings.with_overrides(output=root)
    ledger.land_csv("2026-05-01.csv", *(csv_row(f"a{i}", customer=f"c{i}") for i in range(40)))
    ledger.run(as_of=date(2026, 5, 2))
    first = read_latest(open_location(root))
    assert first is not None
    parquet = sum(len(files) for files in first["parquet"].values())
    # Every file is one PUT, the manifest's listing, manifest and LATEST three more; only the
    # Parquet parts wait under staging and are copied in (a directory scan must not see a
    # partition's old and new parts together).
    assert counted_s3.kinds["PUT"] == first["totals"]["files"] + 3
    assert counted_s3.kinds["COPY"] == parquet
    assert counted_s3.kinds["MARKER"] <= 1
    counted_s3.kinds.clear()

    # Late data for half the customers replaces their receipts and activity CSVs, which wait
    # and are copied in after; the rest of the tree is left alone.
    late = (
        csv_row(f"b{i}", customer=f"c{i}", occurred_at="2026-03-06T10:00:00Z")
        for i in range(0, 40, 2)
    )
    ledger.land_csv("2026-05-02.csv", *late)
    ledger.run(as_of=date(2026, 5, 3))
    second = read_latest(open_location(root))
    assert second is not None
    listed = pl.read_parquet(io.BytesIO(open_location(root).read_bytes(second["files"]["path"])))
    replaced = listed.filter(~pl.col("path").str.starts_with("quarantine/"))  # new names
    assert replaced.filter(pl.col("path").str.contains("/customers/")).height == 20
    assert counted_s3.kinds["COPY"] == replaced.height
    assert counted_s3.kinds["PUT"] == listed.height + 3
