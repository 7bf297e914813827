"""A loopback HTTP endpoint that accepts connections, reads each request and never answers: a stalled S3 server,
for tests of a client's timeouts. With ``stall=N`` it leaves only the first N requests unanswered, with
``stall=function(index, method, target)`` those the function picks, and answers the others with one canned
response.

Import it with ``tests/support`` on ``sys.path`` (``import silent_server``), like ``fault_proxy``.
"""

import contextlib
import socket
import threading
from typing import Callable, List, NamedTuple, Optional, Union


class SeenRequest(NamedTuple):
    method: str
    target: str  # path and query as the client sent them
    answered: bool


class SilentServer:
    """Listens on ``http://127.0.0.1:PORT``; see ``endpoint``.

    Every request is recorded in ``requests`` (in the order they arrived). Unanswered connections are held open,
    without a byte sent, until the client gives up or the server stops. Answered ones get ``status`` with ``body``
    (none for HEAD) and ``Connection: close``.
    """

    def __init__(self, *, stall: Union[None, int, Callable[[int, str, str], bool]] = None, status: int = 200,
                 body: bytes = b"", content_type: str = "application/xml"):
        self.stall = stall  # None: every request
        self.status = status
        self.body = body
        self.content_type = content_type
        self.requests: List[SeenRequest] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socket: Optional[socket.socket] = None
        self._threads: List[threading.Thread] = []
        self.base_url = ""

    # --- life cycle ---------------------------------------------------------------------------------------------

    def start(self) -> "SilentServer":
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)  # the accept loop notices stop() quickly
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._spawn(self._accept_loop, "SilentServer")
        return self

    def stop(self) -> None:
        if self._socket is None:
            return
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._socket.close()
        self._socket = None

    def __enter__(self) -> "SilentServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- for tests ----------------------------------------------------------------------------------------------

    def endpoint(self, bucket: str = "spacenet-dataset") -> str:
        """A path-style bucket endpoint on this server."""
        return f"{self.base_url}/{bucket}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    # --- serving ------------------------------------------------------------------------------------------------

    def _spawn(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._spawn(self._serve, "SilentServer-connection", connection)

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(0.05)
        with connection:
            head = self._read_head(connection)
            if head is None:
                return
            method, _, rest = head.partition(" ")
            target = rest.rpartition(" ")[0] or rest
            with self._lock:
                answer = not self._stalls(len(self.requests), method, target)
                self.requests.append(SeenRequest(method, target, answer))
            if answer:
                self._answer(connection, method)
                return
            self._hold(connection)

    def _stalls(self, index: int, method: str, target: str) -> bool:
        if self.stall is None:
            return True
        if isinstance(self.stall, int):
            return index < self.stall
        return bool(self.stall(index, method, target))

    def _read_head(self, connection: socket.socket) -> Optional[str]:
        """The request line, once the whole head has arrived; None when the client left or the server stops."""
        data = b""
        while b"\r\n\r\n" not in data:
            if self._stop.is_set():
                return None
            try:
                chunk = connection.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return data.split(b"\r\n", 1)[0].decode("latin-1")

    def _hold(self, connection: socket.socket) -> None:
        """Send nothing until the client closes the connection or the server stops."""
        while not self._stop.is_set():
            try:
                if not connection.recv(4096):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def _answer(self, connection: socket.socket, method: str) -> None:
        reason = {200: "OK", 206: "Partial Content", 404: "Not Found", 503: "Slow Down"}.get(self.status, "Status")
        head = (f"HTTP/1.1 {self.status} {reason}\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n").encode("latin-1")
        with contextlib.suppress(OSError):  # the client may have left
            connection.sendall(head + (b"" if method == "HEAD" else self.body))


__all__ = ["SeenRequest", "SilentServer"]
