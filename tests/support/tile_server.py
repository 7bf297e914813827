"""A loopback HTTP server for web-layer tests: serves a folder (XYZ tiles, a COG) honouring Range requests, counts
what it was asked, and injects the faults a tile service shows: a status for every request or for the first N of
each path, 404 for missing tiles, slow answers, bodies cut short.

Import it with ``tests/support`` on ``sys.path`` (``import tile_server``).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, NamedTuple
from urllib.parse import unquote, urlsplit


class Request(NamedTuple):
    method: str
    path: str
    range: str | None  # the Range header, or None
    status: int
    user_agent: str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_HEAD(self):  # noqa: N802 - http.server API
        self._answer(body=False)

    def do_GET(self):  # noqa: N802 - http.server API
        self._answer(body=True)

    def _answer(self, body: bool):
        server: TileServer = self.server.owner
        path = unquote(urlsplit(self.path).path)
        status = server.fault_for(path)
        if server.delay_s:
            time.sleep(server.delay_s)
        file = (server.folder / path.lstrip("/")).resolve()
        if status is None and (server.folder not in file.parents or not file.is_file()):
            status = 404
        if status is not None:
            self._record(status)
            payload = f"<html><body>{status}</body></html>".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if body:
                self.wfile.write(payload)
            return
        data = file.read_bytes()
        wanted = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
        content_type = "image/png" if file.suffix == ".png" else "image/jpeg" if file.suffix in (".jpg", ".jpeg") \
            else "image/tiff"
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            chunk = data[start:end + 1]
            self._record(206)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            chunk = data
            self._record(200)
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if body and server.take_cut():  # the promised length, half the bytes, and the connection closed
            self.wfile.write(chunk[: len(chunk) // 2])
            self.close_connection = True
        elif body:
            self.wfile.write(chunk)

    def _record(self, status: int):
        with self.server.owner.lock:
            self.server.owner.requests.append(Request(self.command, self.path, self.headers.get("Range"), status,
                                                      self.headers.get("User-Agent", "")))

    def log_message(self, *args):  # quiet: pytest shows failures, not every request
        pass


class TileServer:
    """``url``: the base URL ending with "/"; ``requests``: every request answered, in order."""

    def __init__(self, folder: Path):
        self.folder = Path(folder).resolve()
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.status_always: int | None = None  # every request answered with this status
        self.fail_first: tuple[int, int] = (0, 0)  # (status, n): the first n requests get status
        self.delay_s = 0.0
        self.cut_first = 0  # the first n bodies sent are cut in half
        self._seen: Counter = Counter()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.owner = self
        self._http.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}/"

    def fault_for(self, path: str) -> int | None:
        with self.lock:
            if self.status_always is not None:
                return self.status_always
            status, first = self.fail_first
            self._seen["*"] += 1
            if first and self._seen["*"] <= first:
                return status
        return None

    def take_cut(self) -> bool:
        with self.lock:
            if self.cut_first > 0:
                self.cut_first -= 1
                return True
        return False

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self._seen.clear()
            self.status_always, self.fail_first, self.delay_s, self.cut_first = None, (0, 0), 0.0, 0

    def count(self, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if status is None or r.status == status)


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[TileServer]:
    server = TileServer(folder)
    thread = threading.Thread(target=server._http.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._http.shutdown()
        server._http.server_close()
        thread.join()
