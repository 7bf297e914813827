"""A loopback HTTP server for a folder, like a release page serves its files, counting the GETs it answers.

Import it with ``tests/support`` on ``sys.path`` (``import file_server``).
"""

import contextlib
import functools
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, List


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        self.server.requested.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # quiet: pytest shows failures, not every request
        pass


class FileServer:
    def __init__(self, server: ThreadingHTTPServer):
        self._server = server

    @property
    def url(self) -> str:
        """The base URL, ending with "/": a file's URL is url + its name."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def requested(self) -> List[str]:
        """The paths of the GET requests answered so far."""
        return self._server.requested


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[FileServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    server.requested = []
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FileServer(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url() -> str:
    """The base URL of a loopback port nothing listens on: what being offline looks like, at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
