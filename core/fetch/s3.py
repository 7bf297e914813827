"""An anonymous client for a public S3 bucket over plain HTTP(S): list, head, ranged reads, robust downloads.

No credentials and no AWS SDK: the SpaceNet bucket is public, and ``requests`` is all QGIS users need
to install. Every request goes through one pooled session, with timeouts and retries (exponential
backoff with full jitter) on connection errors, truncated bodies and the statuses S3 uses to say
"try again" (500, 502, 503 SlowDown, 504). A request that gets no answer within the timeout is retried the
same way, a few times only (each try costs the whole timeout), and ``notify`` says which request is waiting.
Downloads resume from a partial file with a Range request,
are checked against the listed size and the ETag (when it is a plain MD5), and are renamed into place
only when complete.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import math
import os
import random
import re
import shutil
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import requests
import urllib3

from ..parallel import map_polling
from ..progress import Canceled, IsCanceled, Report, check, counted  # noqa: F401 - Canceled: callers know it from here
from .catalog import BUCKET_URL

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_CHUNK = 64 * 1024  # what a cut connection can lose; larger chunks were no faster
RETRY_STATUSES = frozenset({500, 502, 503, 504})
USER_AGENT = "SpaceNetToolkit (QGIS plugin; anonymous)"
CONNECT_TIMEOUT = 10.0  # seconds: a server that is there accepts a connection at once


class S3Error(Exception):
    """A failure explained for the user: what went wrong, where, and what to do."""


class EndpointUnreachableError(S3Error):
    pass


class TimedOutError(EndpointUnreachableError):
    """Every attempt of a request waited the whole timeout: the server is there but does not answer."""

    def __init__(self, endpoint: str, url: str, timeout: float, attempts: int, connecting: bool):
        self.endpoint, self.url, self.timeout, self.attempts, self.connecting = (
            endpoint, url, timeout, attempts, connecting)
        super().__init__(self.sentence())

    def sentence(self, setting: str = "the timeout") -> str:
        """The error in one sentence; ``setting`` names what the user raises (e.g. a parameter's name)."""
        tries = f"{self.attempts} attempts" if self.attempts > 1 else "1 attempt"
        if self.url != self.endpoint:  # a listing asks the endpoint itself
            tries += f", for {self.url}"
        if self.connecting:
            return (f"The endpoint {self.endpoint} did not accept a connection within {self.timeout:g} s ({tries}): "
                    "check its address, the network and any firewall.")
        return (f"The endpoint {self.endpoint} accepted the connection but sent no answer within {self.timeout:g} s "
                f"({tries}): check its address and the network, or raise {setting}.")


class AccessDeniedError(S3Error):
    pass


class NotFoundError(S3Error):
    pass


class TransferFailedError(S3Error):
    pass


class IntegrityError(S3Error):
    pass


class UnsafeKeyError(S3Error):
    pass


class DiskFullError(S3Error):
    pass


class _RetryableStatusError(Exception):
    def __init__(self, status: int, code: str):
        super().__init__(f"HTTP {status} {code}".strip())


# What a dropped connection or a cut body looks like from requests and from urllib3's raw stream.
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    _RetryableStatusError,
)


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str = ""  # without quotes
    last_modified: str = ""

    @property
    def md5(self) -> str | None:
        """The object's MD5, when its ETag is one (multipart uploads have ``<md5>-<parts>`` instead)."""
        return self.etag.lower() if re.fullmatch(r"[0-9a-fA-F]{32}", self.etag) else None


@dataclass
class RetryPolicy:
    attempts: int = 8  # tries after a failure that made no progress
    unreached_attempts: int = 2  # while the endpoint has never answered: fail fast on a wrong URL
    timeout_attempts: int = 2  # after a timeout: each try costs the whole timeout
    base_delay: float = 0.2
    max_delay: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Full jitter: spreads the retries of parallel downloads instead of synchronising them."""
        return self.rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** attempt))


class Bucket:
    """One public bucket, addressed by its base URL.

    ``endpoint`` is virtual-hosted (``https://spacenet-dataset.s3.amazonaws.com``) or path-style
    (``http://127.0.0.1:9000/spacenet-dataset``, a mirror or a local S3 server): objects are at
    ``endpoint/key`` and listings at ``endpoint?list-type=2`` either way.

    ``timeout``: seconds a request may wait for an answer (the connection gets at most ``CONNECT_TIMEOUT`` of them),
    or a (connect, read) pair. ``notify(line)``, called from the thread of the request, says which request is
    waiting and tried again after a timeout.
    """

    def __init__(self, endpoint: str = BUCKET_URL, *, timeout: float | tuple[float, float] = (10.0, 60.0),
                 retry: RetryPolicy | None = None, pool_size: int = 16, sleep: Callable[[float], None] = time.sleep,
                 notify: Callable[[str], None] | None = None):
        if not re.match(r"^https?://[^/]+", endpoint or ""):
            raise S3Error(f"The endpoint '{endpoint}' is not an http(s) URL; "
                          f"use e.g. {BUCKET_URL} or http://127.0.0.1:9000/spacenet-dataset.")
        if not isinstance(timeout, tuple):
            timeout = (min(CONNECT_TIMEOUT, float(timeout)), float(timeout))
        if min(timeout) <= 0:
            raise S3Error(f"The timeout must be more than 0 seconds, not {max(timeout):g}.")
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self.notify = notify
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._reached = False
        # the run's cancel (set by core.fetch while it runs): honoured while a request waits for its answer (a
        # whole timeout, each try) and between tries, instead of after them
        self.is_canceled: IsCanceled | None = None
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Bucket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def url(self, key: str) -> str:
        # "." and ".." segments are escaped: URL libraries fold them away, which would fetch another key
        segments = [quote(part, safe="~-._") if part not in (".", "..") else part.replace(".", "%2E")
                    for part in key.split("/")]
        return f"{self.endpoint}/{'/'.join(segments)}"

    # -- requests with retries -------------------------------------------------------------------------------------

    def _attempts(self) -> int:
        return self.retry.attempts if self._reached else self.retry.unreached_attempts

    def _get(self, url: str, *, method: str = "GET", params: dict | None = None,
             headers: dict | None = None) -> requests.Response:
        """A small request (listing, HEAD, header bytes), retried; returns a 2xx/3xx/416 response."""
        def attempt() -> requests.Response:
            response = self.session.request(method, url, params=params, headers=headers, timeout=self.timeout)
            self._reached = True
            self._raise_for_status(response, url)
            _check_complete(response)  # read the body inside the retry loop: it can be cut too
            return response

        failures = 0
        while True:
            try:
                return interruptible(attempt, self.is_canceled)
            except _TRANSIENT as error:
                failures += 1
                self._wait_to_retry(url, error, failures)

    def _raise_for_status(self, response: requests.Response, url: str) -> None:
        status = response.status_code
        if status < 400 or status == 416:
            return
        code = _error_code(response)
        if status in RETRY_STATUSES:
            response.close()
            raise _RetryableStatusError(status, code)
        if status == 403:
            raise AccessDeniedError(f"The server refused access to {url} (HTTP 403 {code}). The bucket is public: "
                               "check the endpoint, or whether a proxy or firewall blocks it.")
        if status == 404:
            what = "bucket" if code == "NoSuchBucket" else "object"
            raise NotFoundError(f"No such {what} at {url} (HTTP 404 {code}). Check the endpoint and the dataset, "
                           "AOI and split.")
        raise S3Error(f"{url} answered HTTP {status} {code}.")

    def _wait_to_retry(self, url: str, error: Exception, failures: int) -> None:
        """Back off before the next try, or raise the error for the user when the tries are spent. A timeout
        is said through ``notify`` (the user has been waiting a while) and allows fewer tries."""
        timed_out = _timed_out(error)
        limit = min(self._attempts(), self.retry.timeout_attempts) if timed_out else self._attempts()
        if failures > limit:
            raise self._gave_up(url, error, failures) from error
        delay = self.retry.delay(failures)
        if timed_out and self.notify is not None:
            self.notify(f"Waiting for {url}: no answer within {self._timeout_of(error):g} s (attempt {failures} of "
                        f"{limit + 1}); trying again in {delay:.1f} s.")
        slices = max(1, math.ceil(delay / CANCEL_POLL_S)) if self.is_canceled is not None else 1
        for _ in range(slices):  # a cancel ends the wait
            check(self.is_canceled)
            self._sleep(delay / slices)
        check(self.is_canceled)

    def _timeout_of(self, error: Exception) -> float:
        return self.timeout[0] if isinstance(error, requests.ConnectTimeout) else self.timeout[1]

    def _gave_up(self, url: str, error: Exception, failures: int) -> S3Error:
        if _timed_out(error):
            return TimedOutError(self.endpoint, url, self._timeout_of(error), failures,
                                 connecting=isinstance(error, requests.ConnectTimeout))
        if not self._reached:
            return EndpointUnreachableError(f"Cannot reach {url}: {failure_reason(error)}. Check the internet "
                                            "connection, a proxy, or the endpoint URL.")
        return TransferFailedError(f"{url} kept failing after {self._attempts()} retries: {failure_reason(error)}.")

    # -- listing and metadata --------------------------------------------------------------------------------------

    def list_objects(self, prefix: str, *, page_size: int | None = None) -> Iterator[S3Object]:
        """Every object under ``prefix`` (no delimiter: the whole subtree), following continuation tokens."""
        for contents, _ in self._pages(prefix, delimiter=None, page_size=page_size):
            yield from contents

    def list_folders(self, prefix: str) -> list[str]:
        """The "sub-folders" directly under ``prefix`` (S3 common prefixes), e.g. the products of an AOI."""
        return [folder for _, folders in self._pages(prefix, delimiter="/") for folder in folders]

    def _pages(self, prefix: str, delimiter: str | None, page_size: int | None = None):
        params = {"list-type": "2", "prefix": prefix}
        if delimiter:
            params["delimiter"] = delimiter
        if page_size:
            params["max-keys"] = str(page_size)
        while True:
            root = ElementTree.fromstring(self._get(self.endpoint, params=params).content)
            contents = [
                S3Object(key=item.findtext(f"{_NS}Key"), size=int(item.findtext(f"{_NS}Size") or 0),
                         etag=(item.findtext(f"{_NS}ETag") or "").strip('"'),
                         last_modified=item.findtext(f"{_NS}LastModified") or "")
                for item in root.iter(f"{_NS}Contents")
            ]
            folders = [item.findtext(f"{_NS}Prefix") for item in root.iter(f"{_NS}CommonPrefixes")]
            yield contents, folders
            token = root.findtext(f"{_NS}NextContinuationToken")
            if root.findtext(f"{_NS}IsTruncated") != "true" or not token:
                return
            params["continuation-token"] = token

    def head(self, key: str) -> S3Object:
        response = self._get(self.url(key), method="HEAD")
        return S3Object(key=key, size=int(response.headers.get("Content-Length", 0)),
                        etag=response.headers.get("ETag", "").strip('"'),
                        last_modified=response.headers.get("Last-Modified", ""))

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of an object; fewer when the object is shorter."""
        if end <= start:
            return b""
        response = self._get(self.url(key), headers={"Range": f"bytes={start}-{end - 1}"})
        if response.status_code == 416:
            return b""
        if response.status_code == 200:  # a server that ignores Range sends everything
            return response.content[start:end]
        return response.content

    # -- downloads ------------------------------------------------------------------------------------------------

    def download(self, obj: S3Object, destination: Path, *, on_bytes: Callable[[int], None] | None = None,
                 is_canceled: Callable[[], bool] | None = None) -> str:
        """Download ``obj`` to ``destination``; returns ``"present"`` or ``"downloaded"``.

        Bytes go to ``<name>.<etag>.part`` beside the destination: a run that is canceled, killed or cut
        off leaves it there and the next run continues it with a Range request. The etag in its name
        means a changed object never continues the old one's bytes.
        """
        destination = Path(destination)
        on_bytes = on_bytes or (lambda n: None)
        if destination.is_file() and destination.stat().st_size == obj.size:
            return "present"
        destination.parent.mkdir(parents=True, exist_ok=True)
        part = part_path(obj, destination)
        url = self.url(obj.key)
        integrity_failures = 0
        while True:
            have, digest = _resume_state(part, obj.size)
            on_bytes(have)
            have, digest = self._fill(url, obj, part, have, digest, on_bytes, is_canceled)
            if have != obj.size:
                problem = f"{have} bytes where the listing says {obj.size}"
            elif obj.md5 and digest.hexdigest() != obj.md5:
                problem = f"MD5 {digest.hexdigest()} where the ETag says {obj.md5}"
            else:
                os.replace(part, destination)
                return "downloaded"
            part.unlink(missing_ok=True)
            on_bytes(-have)
            integrity_failures += 1
            if integrity_failures > 2:
                raise IntegrityError(f"{url} arrived damaged three times ({problem}); nothing was kept.")

    def _fill(self, url: str, obj: S3Object, part: Path, have: int, digest, on_bytes, is_canceled):
        """Append to ``part`` until it holds the object's size, resuming after every transient failure.

        Returns the byte count and the MD5 of what ``part`` holds."""
        failures = 0
        while have < obj.size:
            check(is_canceled)
            headers = {"Range": f"bytes={have}-"} if have else {}
            if obj.etag:
                headers["If-Match"] = f'"{obj.etag}"'
            progressed = False
            try:
                request = functools.partial(self.session.get, url, headers=headers, stream=True, timeout=self.timeout)
                with interruptible(request, is_canceled) as response:
                    self._reached = True
                    if response.status_code == 412:
                        raise TransferFailedError(f"{url} changed on the server while downloading; run again to "
                                             "fetch the new version.")
                    self._raise_for_status(response, url)
                    if have and response.status_code == 200:  # the Range was ignored: start over
                        on_bytes(-have)
                        have, digest = 0, hashlib.md5()
                    with open(part, "ab" if have else "wb") as out:
                        for chunk in response.raw.stream(_CHUNK, decode_content=False):
                            check(is_canceled)
                            _write(out, chunk, part)
                            digest.update(chunk)
                            have += len(chunk)
                            progressed = True
                            on_bytes(len(chunk))
                    if have < obj.size:
                        raise urllib3.exceptions.IncompleteRead(have, obj.size - have)
            except _TRANSIENT as error:
                failures = 1 if progressed else failures + 1
                self._wait_to_retry(url, error, failures)
        return have, digest


CANCEL_POLL_S = 0.1  # how often a waiting request looks at the cancel


def interruptible(call: Callable, is_canceled: IsCanceled | None):
    """``call()``, in a thread of its own while this one watches ``is_canceled``: on cancel, Canceled at once and
    the request is left to end by itself (its answer unread). Without ``is_canceled``, just ``call()``."""
    if is_canceled is None:
        return call()
    done, outcome = threading.Event(), {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="spacenet-request", daemon=True).start()
    while not done.wait(CANCEL_POLL_S):
        check(is_canceled)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@dataclass(frozen=True)
class Transfer:
    obj: S3Object
    destination: Path


@dataclass(frozen=True)
class TransferResult:
    transfer: Transfer
    status: str  # "downloaded", "present", "failed", "canceled"
    error: str = ""


def download_all(bucket: Bucket, transfers: Iterable[Transfer], *, workers: int = 8,
                 report: Report | None = None, is_canceled: IsCanceled | None = None) -> list[TransferResult]:
    """Download in parallel with one overall progress ``report(fraction of the bytes, None)``.

    A failure of one object does not stop the others; a full disk stops everything. On cancel,
    :class:`Canceled` is raised after the workers have stopped; partial files stay in place for the next run
    to resume.
    """
    transfers = list(transfers)
    total = sum(t.obj.size for t in transfers)
    _check_free_space(transfers)
    done = 0
    lock = threading.Lock()

    def count(n: int) -> None:
        nonlocal done
        with lock:
            done += n

    def run(transfer: Transfer, stop: threading.Event) -> TransferResult:
        try:
            status = bucket.download(transfer.obj, transfer.destination, on_bytes=count, is_canceled=stop.is_set)
            return TransferResult(transfer, status)
        except Canceled:
            return TransferResult(transfer, "canceled")
        except DiskFullError:
            raise
        except (S3Error, OSError) as error:
            return TransferResult(transfer, "failed", str(error))

    step = counted(report)

    def poll(_finished: int) -> None:
        step(min(done, total), total)

    results, canceled = map_polling(run, transfers, workers=workers, on_poll=poll, is_canceled=is_canceled)
    if canceled:
        raise Canceled()
    return results


def safe_destination(root: Path, relative_key: str) -> Path:
    """Where ``relative_key`` goes under ``root``; refuses any key that could write elsewhere."""
    parts = relative_key.split("/")
    if (not relative_key or "\\" in relative_key or "\x00" in relative_key or relative_key.startswith("/")
            or re.match(r"^[A-Za-z]:", relative_key) or any(part in ("", ".", "..") for part in parts)):
        raise UnsafeKeyError(f"Refused to write the key '{relative_key}': it could land outside the output folder.")
    root = Path(root).resolve()
    destination = root.joinpath(*parts).resolve()
    if os.path.commonpath([root, destination]) != str(root):
        raise UnsafeKeyError(f"Refused to write the key '{relative_key}': it resolves outside {root}.")
    return destination


# -- helpers ---------------------------------------------------------------------------------------------------------

def _check_complete(response: requests.Response) -> None:
    """A body cut short with a clean close reads as a short body, not an error, with some urllib3 versions."""
    expected = response.headers.get("Content-Length")
    if response.request.method != "HEAD" and expected and expected.isdigit() and len(response.content) < int(expected):
        raise urllib3.exceptions.IncompleteRead(len(response.content), int(expected) - len(response.content))


def _error_code(response: requests.Response) -> str:
    try:
        return ElementTree.fromstring(response.content).findtext("Code") or ""
    except (ElementTree.ParseError, requests.RequestException, urllib3.exceptions.HTTPError):
        return ""


def _timed_out(error: Exception) -> bool:
    """Whether a failed request waited its whole timeout (requests wraps a body's read timeout in ConnectionError)."""
    if isinstance(error, (requests.Timeout, urllib3.exceptions.TimeoutError)):
        return True
    return bool(error.args) and isinstance(error.args[0], urllib3.exceptions.TimeoutError)


def failure_reason(error: Exception) -> str:
    """A failed request's cause in a few words (connection refused, timed out, ...)."""
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Temporary failure in name"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(error).__name__


def part_path(obj: S3Object, destination: Path) -> Path:
    """Where the bytes of ``obj`` collect until complete; tagged with the ETag so versions never mix."""
    tag = re.sub(r"[^0-9A-Za-z]", "", obj.etag)[:16] or f"s{obj.size}"
    return Path(destination).with_name(f"{Path(destination).name}.{tag}.part")


def _resume_state(part: Path, size: int):
    """How many bytes a previous run left, and their running MD5."""
    digest = hashlib.md5()
    if not part.is_file():  # missing (or not a regular file: nothing to resume from)
        return 0, digest
    have = part.stat().st_size
    if have > size:
        part.unlink()
        return 0, digest
    with open(part, "rb") as existing:
        for block in iter(lambda: existing.read(1 << 20), b""):
            digest.update(block)
    return have, digest


def _write(out, chunk: bytes, path: Path) -> None:
    try:
        out.write(chunk)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise DiskFullError(f"The disk holding {path.parent} is full. Free some space or choose another output "
                           "folder, then run again: what was downloaded is kept and resumes.") from error
        raise


def _check_free_space(transfers: list[Transfer]) -> None:
    """Refuse up front when the missing bytes clearly cannot fit (what is already there does not count)."""
    by_folder: dict[Path, int] = {}
    for transfer in transfers:
        destination = Path(transfer.destination)
        if destination.is_file() and destination.stat().st_size == transfer.obj.size:
            continue
        folder = _existing_parent(destination)
        by_folder[folder] = by_folder.get(folder, 0) + transfer.obj.size
    for folder, needed in by_folder.items():
        free = _free_bytes(folder)
        if free is not None and needed > free:
            raise DiskFullError(f"The download needs {needed / 1e6:.1f} MB but only {free / 1e6:.1f} MB are "
                                f"free on the disk holding {folder}. Free some space, choose another output "
                                "folder, or fetch fewer tiles.")


def _existing_parent(path: Path) -> Path:
    return next((parent for parent in Path(path).parents if parent.exists()), Path.cwd())


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
