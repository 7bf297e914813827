"""A loopback HTTP proxy that forwards GET/HEAD to an S3 endpoint (or any HTTP server: a tile service) and injects
faults: 503 SlowDown, cut bodies, corrupted bytes and slow transfers, so tests can check a client's retries, resumes
and checksums; and a service that breaks down mid-run: after N answered GETs, every GET gets a 500, a closed
connection or no answer at all (``fail_after``, ``fail_with``).

Import it with ``tests/support`` on ``sys.path`` (``import fault_proxy``): see ``tests/unit/test_test_support.py``.
"""

import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, NamedTuple, Optional
from urllib.parse import parse_qs, urlsplit, urlunsplit

import requests

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)
# Headers that describe one hop, not the resource: never relayed.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host"}
LISTING_PARAMETERS = ("list-type", "prefix", "delimiter", "continuation-token")
CHUNK = 64 * 1024
# fail_with: "500" an error page, "close" the connection closed with no answer, "stall" no answer until the client
# gives up (its timeout)
FAIL_MODES = ("500", "close", "stall")
_KEEP = object()  # set_faults: "leave this setting as it is"


class ProxiedRequest(NamedTuple):
    method: str
    path: str  # path and query as the client sent them
    range: Optional[str]  # the Range header, or None
    status: int  # the status the proxy sent (502 when the upstream could not be reached)
    fault: Optional[str]  # "503", "drop", "corrupt", "fail-500", "fail-close", "fail-stall" or None


class _Plan(NamedTuple):
    fault: Optional[str]
    drop_fraction: float
    corrupt_seed: int


class FaultProxy:
    """Forwards ``http://127.0.0.1:PORT/<path>`` to ``upstream_base`` + ``<path>``; see ``endpoint_for``.

    For each eligible request (a GET of an object key; listings too with ``faults_on_listing``) the proxy draws,
    in this order: a 503 SlowDown with ``p_503``, else a dropped connection with ``p_drop``, else corrupted bytes
    with ``p_corrupt``. Listings are never corrupted (S3 gives no checksum a client could check them with).
    ``bytes_per_second`` throttles every forwarded body. Draws come from ``random.Random(seed)`` under a lock,
    so a single-threaded client sees the same faults on every run.
    """

    def __init__(self, upstream_base: str, *, seed: int = 0, p_503: float = 0.0, p_drop: float = 0.0,
                 p_corrupt: float = 0.0, bytes_per_second: Optional[float] = None, faults_on_listing: bool = False,
                 drop_mode: str = "reset", fail_after: Optional[int] = None, fail_with: str = "500"):
        if drop_mode not in ("reset", "close"):
            raise ValueError(f"drop_mode must be 'reset' or 'close', not {drop_mode!r}")
        if fail_with not in FAIL_MODES:
            raise ValueError(f"fail_with must be one of {', '.join(FAIL_MODES)}, not {fail_with!r}")
        parts = urlsplit(upstream_base)
        self.upstream_origin = f"{parts.scheme}://{parts.netloc}"
        self.p_503 = p_503
        self.p_drop = p_drop
        self.p_corrupt = p_corrupt
        self.bytes_per_second = bytes_per_second
        self.faults_on_listing = faults_on_listing
        self.drop_mode = drop_mode
        self.fail_after = fail_after  # None: never; N: the GETs after the first N all fail as fail_with says
        self.fail_with = fail_with
        self._gets = 0
        self._stopping = threading.Event()
        self.requests: List[ProxiedRequest] = []
        self._counts: Counter = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._sessions = threading.local()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.base_url = ""

    # --- life cycle ---------------------------------------------------------------------------------------------

    def start(self) -> "FaultProxy":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.proxy = self  # how the handler finds its settings
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval keeps stop() quick (it waits for the serving loop to notice).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="FaultProxy",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # stalled connections end
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- for tests ----------------------------------------------------------------------------------------------

    def endpoint_for(self, upstream_endpoint: str) -> str:
        """The same URL with the proxy's scheme, host and port (the path and query are kept)."""
        parts = urlsplit(upstream_endpoint)
        proxy = urlsplit(self.base_url)
        return urlunsplit((proxy.scheme, proxy.netloc, parts.path, parts.query, parts.fragment))

    def set_faults(self, *, p_503=_KEEP, p_drop=_KEEP, p_corrupt=_KEEP, bytes_per_second=_KEEP,
                   faults_on_listing=_KEEP, fail_after=_KEEP, fail_with=_KEEP) -> None:
        """Change settings while running; those left out keep their value (``bytes_per_second=None`` unthrottles).
        ``fail_after`` counts the GETs from the call on."""
        settings = {"p_503": p_503, "p_drop": p_drop, "p_corrupt": p_corrupt, "bytes_per_second": bytes_per_second,
                    "faults_on_listing": faults_on_listing, "fail_after": fail_after, "fail_with": fail_with}
        if fail_after is not _KEEP:
            with self._lock:
                self._gets = 0
        with self._lock:
            for name, value in settings.items():
                if value is not _KEEP:
                    setattr(self, name, value)

    @property
    def counts(self) -> Dict[str, int]:
        """Requests per fault name ("503", "drop", "corrupt"), and "forwarded" for clean ones."""
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        """Forget the recorded requests and counts (the random sequence goes on)."""
        with self._lock:
            self.requests.clear()
            self._counts.clear()

    # --- used by the handler ------------------------------------------------------------------------------------

    def _failing(self, method: str) -> Optional[str]:
        """The fail_with mode when this GET comes after the first fail_after ones, else None."""
        with self._lock:
            if method != "GET" or self.fail_after is None:
                return None
            self._gets += 1
            return self.fail_with if self._gets > self.fail_after else None

    def _plan(self, method: str, query: str) -> _Plan:
        """Decide this request's fault; every draw happens under the lock so the sequence is reproducible."""
        listing = any(name in parse_qs(query, keep_blank_values=True) for name in LISTING_PARAMETERS)
        with self._lock:
            if method != "GET" or (listing and not self.faults_on_listing):
                return _Plan(None, 0.0, 0)
            drop_fraction = self._random.uniform(0.1, 0.9)
            corrupt_seed = self._random.getrandbits(32)
            if self._random.random() < self.p_503:
                return _Plan("503", 0.0, 0)
            if self._random.random() < self.p_drop:
                return _Plan("drop", drop_fraction, 0)
            if not listing and self._random.random() < self.p_corrupt:
                return _Plan("corrupt", 0.0, corrupt_seed)
            return _Plan(None, 0.0, 0)

    def _record(self, request: ProxiedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            self._counts[request.fault or "forwarded"] += 1

    def _session(self) -> requests.Session:
        # One session per handler thread: requests.Session is not thread-safe.
        session = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = requests.Session()
        return session


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect
    timeout = 30  # idle keep-alive connections end instead of holding a thread forever

    @property
    def proxy(self) -> FaultProxy:
        return self.server.proxy

    def log_message(self, *args) -> None:
        pass  # quiet: tests read proxy.requests instead

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle("HEAD")

    def _handle(self, method: str) -> None:
        proxy = self.proxy
        range_header = self.headers.get("Range")
        failing = proxy._failing(method)
        if failing:
            self._fail(failing, method)
            proxy._record(ProxiedRequest(method, self.path, range_header, 500 if failing == "500" else 0,
                                         f"fail-{failing}"))
            return
        plan = proxy._plan(method, urlsplit(self.path).query)
        if plan.fault == "503":
            self._send_slow_down(method)
            proxy._record(ProxiedRequest(method, self.path, range_header, 503, "503"))
            return

        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        # Without this requests would ask for gzip, and the body would no longer be the object's bytes.
        headers.setdefault("Accept-Encoding", "identity")
        try:
            upstream = proxy._session().request(method, proxy.upstream_origin + _keep_dot_segments(self.path),
                                                headers=headers, stream=True, allow_redirects=False, timeout=30)
        except requests.RequestException:
            self._send_simple(502, b"upstream unreachable", method)
            proxy._record(ProxiedRequest(method, self.path, range_header, 502, None))
            return
        with upstream:
            self._relay(method, upstream, plan, range_header)

    def _relay(self, method: str, upstream: requests.Response, plan: _Plan, range_header: Optional[str]) -> None:
        proxy = self.proxy
        if method == "HEAD":
            body = b""
        elif upstream.headers.get("Content-Length") is None:
            body = upstream.raw.read(decode_content=False)  # rare: a length is needed to keep the connection
        else:
            body = None  # streamed below
        length = len(body) if body is not None else int(upstream.headers["Content-Length"])
        fault = plan.fault if upstream.status_code in (200, 206) and length > 0 else None

        self.send_response_only(upstream.status_code)
        for name, value in upstream.headers.items():
            # A HEAD keeps the upstream's length; a GET gets the length of what is relayed (the same unless unknown).
            if name.lower() not in HOP_BY_HOP and not (method == "GET" and name.lower() == "content-length"):
                self.send_header(name, value)
        if method == "GET":
            self.send_header("Content-Length", str(length))
        self.end_headers()
        proxy._record(ProxiedRequest(method, self.path, range_header, upstream.status_code, fault))
        if method == "HEAD":
            return

        chunks = [body] if body is not None else upstream.raw.stream(CHUNK, decode_content=False)
        limit = int(length * plan.drop_fraction) if fault == "drop" else length
        flips = _flip_positions(length, plan.corrupt_seed) if fault == "corrupt" else set()
        try:
            self._write_body(chunks, limit, flips)
        except OSError:
            self.close_connection = True  # the client went away mid-body: nothing more to do
            return
        if fault == "drop":
            self._drop_connection()

    def _drop_connection(self) -> None:
        """End the connection mid-body: with a TCP reset, or with a plain close (FIN) in drop_mode "close".

        urllib3 1.26 (Debian's, which QGIS's Python uses) takes a FIN after a short body as the end of the body
        and hands the client the truncated bytes without an error; only a length or MD5 check notices. A reset
        is an error in every client.
        """
        self.close_connection = True
        if self.proxy.drop_mode == "close":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        # SO_LINGER with a zero timeout turns close() into a reset; rfile holds the socket open until closed too.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()

    def _write_body(self, chunks, limit: int, flips: set) -> None:
        """Write up to ``limit`` bytes, XOR-ing the bytes at ``flips``, paced by ``bytes_per_second``."""
        sent = 0
        started = time.monotonic()
        for chunk in chunks:
            if sent >= limit:
                break
            chunk = chunk[:limit - sent]
            if flips:
                changed = bytearray(chunk)
                for position in flips:
                    if sent <= position < sent + len(changed):
                        changed[position - sent] ^= 0xFF
                chunk = bytes(changed)
            for piece in self._pieces(chunk):
                self.wfile.write(piece)
                sent += len(piece)
                rate = self.proxy.bytes_per_second
                if rate:
                    # Sleep until the bytes sent so far are due: steady pace, whatever the piece size.
                    time.sleep(max(0.0, started + sent / rate - time.monotonic()))

    def _pieces(self, chunk: bytes):
        rate = self.proxy.bytes_per_second
        # Throttled bodies go out in pieces of about 1/20 s each, so a client sees a slow, steady stream.
        size = max(1, int(rate / 20)) if rate else len(chunk)
        for start in range(0, len(chunk), size):
            yield chunk[start:start + size]

    def _fail(self, mode: str, method: str) -> None:
        """A service that broke down: an error page, a connection closed with no answer, or none until the client
        gives up or the proxy stops."""
        if mode == "500":
            self._send_simple(500, b"internal server error", method)
            return
        self.close_connection = True
        if mode == "stall":
            self.connection.settimeout(0.05)
            while not self.proxy._stopping.is_set():
                try:
                    if not self.connection.recv(4096):
                        break  # the client gave up
                except socket.timeout:
                    continue
                except OSError:
                    break
        with contextlib.suppress(OSError):  # the client may have closed it first
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_slow_down(self, method: str) -> None:
        self.send_response_only(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(SLOW_DOWN)))
        self.end_headers()
        if method == "GET":
            self.wfile.write(SLOW_DOWN)

    def _send_simple(self, status: int, body: bytes, method: str) -> None:
        self.send_response_only(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method == "GET":
            self.wfile.write(body)


def _keep_dot_segments(target: str) -> str:
    """Percent-encode ``.``/``..`` path segments: requests folds them away, and keys may really contain them."""
    path, question, query = target.partition("?")
    segments = ["%2E" * len(segment) if segment in (".", "..") else segment for segment in path.split("/")]
    return "/".join(segments) + question + query


def _flip_positions(length: int, seed: int) -> set:
    """Up to 8 distinct byte positions to corrupt; at least one, so a corrupted body always differs."""
    rng = random.Random(seed)
    return set(rng.sample(range(length), min(8, length)))


__all__ = ["FAIL_MODES", "SLOW_DOWN", "FaultProxy", "ProxiedRequest"]
