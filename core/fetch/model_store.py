"""Where model files are, and fetching the missing ones on first use.

A model name resolves to ``NAME.onnx`` in the plugin's ``models/`` folder (bundled in the zip), in a per-user
cache folder (the plugin folder may be read-only), or in the user models folder where adapted models are kept
(``spacenet:adaptmodel`` writes them, ``spacenet:deletemodel`` removes them). A registered model found in
neither is downloaded into the cache through core.fetch.s3's robust download (retries, resume, size check), to a
temporary name, checked against the registry's SHA-256 and only then renamed into place: a cancel or a failure
leaves nothing behind.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..model_registry import HALF_SUFFIX, ModelEntry, ModelFile, Registry, load_registry, sha256_of
from ..progress import Canceled, IsCanceled, Report, silent

__all__ = ["Canceled", "ModelError", "ModelDownloadError", "ModelStore", "NotInstalledError", "UnknownModelError",
           "default_cache_dir"]

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "models"
STAGING_SUFFIX = ".download"  # bytes arrive under NAME.onnx.download; renamed to NAME.onnx once verified
_MESSAGE_STEP = 25  # a progress line every quarter: the bar shows the rest

class ModelError(Exception):
    """A model that cannot be used, explained for the user."""


class UnknownModelError(ModelError):
    pass


class NotInstalledError(ModelError):
    """A registered model that is not downloaded yet, where downloading was not allowed."""


class ModelDownloadError(ModelError):
    pass


def default_cache_dir() -> Path:
    """The user's cache folder for downloaded models, when the caller (QGIS: the profile folder) names none."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "spacenet_toolkit" / "models"


@dataclass
class ModelStore:
    registry: Registry = field(default_factory=load_registry)
    bundled_dir: Path = BUNDLED_DIR
    cache_dir: Path | None = None  # None: default_cache_dir()
    user_dir: Path | None = None  # the user's own models (adapted ones); None: none
    task_of: object = None  # path -> the model's task from its card (the caller's reader); None: any task

    def __post_init__(self):
        self.bundled_dir = Path(self.bundled_dir)
        self.cache_dir = Path(self.cache_dir) if self.cache_dir else default_cache_dir()
        self.user_dir = Path(self.user_dir) if self.user_dir else None

    # -- what is there ---------------------------------------------------------------------------------------------

    def names(self, task: str | None = None) -> list[str]:
        """Registered models (of ``task``), the user's models (of ``task``), then any other .onnx dropped into the
        bundled folder (when no task)."""
        names = self.registry.names(task)
        names += [name for name in self.user_names(task) if name not in names]
        if task is None:
            names += [name for name in self.unregistered_names() if name not in names]
        return names

    def user_names(self, task: str | None = None) -> list[str]:
        """The models in the user models folder (of ``task``, as their card says), by name."""
        if self.user_dir is None or not self.user_dir.is_dir():
            return []
        names = sorted(p.name[:-len(".onnx")] for p in self.user_dir.glob("*.onnx")
                       if not p.name.endswith(HALF_SUFFIX) and p.name[:-len(".onnx")] not in self.registry.models)
        return [name for name in names if task is None or self.task_of is None or self.user_task(name) == task]

    def user_task(self, name: str) -> str:
        """A user model's task from its card ("" when the file cannot say)."""
        try:
            return self.task_of(self.user_dir / f"{name}.onnx")
        except Exception:  # noqa: BLE001 - one file the user put there must never stop every algorithm's listing
            return ""

    def delete_user_model(self, name: str) -> list[Path]:
        """Remove a user model's files (NAME.onnx and NAME.fp16.onnx); the files removed. UnknownModelError for a
        name that is not a user model: shipped and downloaded models are not the user's to delete here."""
        if name not in self.user_names():
            raise UnknownModelError(f"'{name}' is not one of your models ({', '.join(self.user_names()) or 'none'}"
                                    f" in {self.user_dir}): shipped models cannot be deleted.")
        removed = []
        for path in (self.user_dir / f"{name}.onnx", self.user_dir / f"{name}{HALF_SUFFIX}"):
            if path.exists():
                path.unlink()
                removed.append(path)
        return removed

    def unregistered_names(self) -> list[str]:
        """Models in the bundled folder the registry does not know: usable by name, task unknown."""
        return sorted(p.name[:-len(".onnx")] for p in self.bundled_dir.glob("*.onnx")
                      if not p.name.endswith(".fp16.onnx") and p.name[:-len(".onnx")] not in self.registry.models)

    def local_path(self, file: ModelFile) -> Path | None:
        """The file in the bundled folder, or a verified copy in the cache; None when it must be downloaded."""
        bundled = self.bundled_dir / file.name
        if bundled.is_file():  # shipped with the plugin (or put there by its developer): trusted as it is
            return bundled
        cached = self.cache_dir / file.name
        return cached if _matches(cached, file) else None

    def is_installed(self, name: str) -> bool:
        entry = self.registry.get(name)
        return entry is not None and self.local_path(entry.main) is not None

    def missing_half(self, name: str) -> ModelFile | None:
        """The fp16 variant of a downloaded model, when it is registered and not downloaded yet.

        Only for a model whose NAME.onnx is in the cache: the engine looks for the variant beside it, and the
        bundled folder is not ours to write."""
        entry = self.registry.get(name)
        if entry is None or entry.half is None:
            return None
        main = self.local_path(entry.main)
        if main is None or main.parent != self.cache_dir or self.local_path(entry.half) is not None:
            return None
        return entry.half

    # -- names and paths to files ----------------------------------------------------------------------------------

    def resolve(self, value: str, *, download: bool = True, report: Report | None = None,
                is_canceled: IsCanceled | None = None) -> Path:
        """A model's name or the path of an .onnx file, to a file.

        A registered model that is not here yet is downloaded when ``download``, else NotInstalledError.
        Raises UnknownModelError for anything else, ModelDownloadError or Canceled while downloading."""
        value = (value or "").strip()
        entry = self.registry.get(value)
        if entry is not None:
            return self._main_file(entry, download, report, is_canceled)
        if value in self.user_names():
            return self.user_dir / f"{value}.onnx"
        if value in self.unregistered_names():
            return self.bundled_dir / f"{value}.onnx"
        path = Path(value).expanduser()
        if value and path.is_file():
            return path
        raise UnknownModelError(
            f"No model '{value}': give the name of a shipped model ({', '.join(self.names()) or 'none'}) or the "
            "path of an .onnx file."
        )

    def _main_file(self, entry: ModelEntry, download: bool, report, is_canceled) -> Path:
        path = self.local_path(entry.main)
        if path is not None:
            return path
        if not download:
            raise NotInstalledError(f"The model '{entry.name}' is downloaded on first use "
                                    f"({entry.main.size_label}); it is not here yet.")
        return self.fetch(entry.main, report=report, is_canceled=is_canceled)

    # -- downloads -------------------------------------------------------------------------------------------------

    def fetch(self, file: ModelFile, *, report: Report | None = None,
              is_canceled: IsCanceled | None = None) -> Path:
        """Download ``file`` into the cache folder, verified; returns its path there. ``report(fraction, message)``
        as the bytes arrive; Canceled when ``is_canceled()`` turns True, and nothing is kept then."""
        report = report or silent
        target = self.cache_dir / file.name
        with _lock_for(target):
            if _matches(target, file):  # another thread fetched it while this one waited
                return target
            url = self.registry.url(file)
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ModelDownloadError(self._failure(file, url, f"the folder cannot be created "
                                                                  f"({error.strerror or error})")) from error
            try:  # requests only now: bundled models work without it (the plugin names what is missing)
                from . import s3
            except ImportError as error:
                raise ModelDownloadError(self._failure(file, url, f"the Python package {error.name} is missing")) \
                    from error
            report(0.0, f"Downloading the model file {file.name} ({file.size_label}) from {url} into "
                      f"{self.cache_dir}: once, on first use.")
            self._download(s3, file, target, report, is_canceled)
            _remember(target, file)
            report(1.0, f"Downloaded and verified {file.name} (SHA-256 {file.sha256[:12]}…).")
            return target

    def _download(self, s3, file: ModelFile, target: Path, report: Report, is_canceled) -> None:
        """Bytes to NAME.onnx.download (core.fetch.s3: retries, resume, size), SHA-256 checked, renamed to
        ``target``."""
        url = self.registry.url(file)
        staging = target.with_name(file.name + STAGING_SUFFIX)
        obj = s3.S3Object(key=file.name, size=file.size)
        try:
            with s3.Bucket(self.registry.release_url, pool_size=1) as bucket:
                bucket.download(obj, staging, on_bytes=_Progress(file.size, report), is_canceled=is_canceled)
            actual = sha256_of(staging)
            if actual != file.sha256:
                raise ModelDownloadError(
                    f"The downloaded {file.name} from {url} is not the file the model registry names (SHA-256 "
                    f"{actual}, where {self.registry.source} says {file.sha256}); it was deleted. Report it to "
                    "the plugin's tracker; meanwhile give the path of an .onnx file as the model.")
            os.replace(staging, target)
        except BaseException as error:
            # nothing half-written may stay: not the staging file, nor the .part it grows from
            for leftover in (staging, s3.part_path(obj, staging)):
                leftover.unlink(missing_ok=True)
            if not isinstance(error, (s3.S3Error, OSError)):  # canceled, a hash mismatch, or a bug: as it is
                raise
            raise ModelDownloadError(self._failure(file, url, _why(error, self.cache_dir))) from error

    def _failure(self, file: ModelFile, url: str, why: str) -> str:
        return (f"Cannot download the model file {file.name} ({file.size_label}) from {url}: {why}. "
                f"Download it by hand (e.g. with a web browser) into {self.cache_dir}, or give the path of an "
                ".onnx file as the model.")


def _why(error: BaseException, folder: Path) -> str:
    """What went wrong, in the words of someone who never heard of S3."""
    from . import s3

    if isinstance(error, s3.EndpointUnreachableError):
        return (f"the server cannot be reached ({s3.failure_reason(error.__cause__ or error)}); you may be offline, "
                "or a proxy or firewall blocks it")
    if isinstance(error, s3.NotFoundError):
        return "the server has no such file (HTTP 404)"
    if isinstance(error, s3.AccessDeniedError):
        return "the server refused access (HTTP 403); a proxy or firewall may block it"
    if isinstance(error, s3.TransferFailedError):
        return f"the transfer kept failing ({s3.failure_reason(error.__cause__ or error)})"
    if isinstance(error, s3.IntegrityError):
        return "it arrived damaged three times"
    if isinstance(error, s3.DiskFullError):
        return f"the disk holding {folder} is full"
    if isinstance(error, OSError):
        return f"it cannot be written into {folder} ({error.strerror or error})"
    return str(error)


class _Progress:
    """core.fetch.s3's byte counts (negative when a transfer starts over) as a fraction of the file each whole percent,
    and a line every quarter, in MB."""

    def __init__(self, size: int, report: Report):
        self.size, self.report = size, report
        self.done = 0
        self.percent = -1
        self.said = 0

    def __call__(self, count: int) -> None:
        self.done = max(0, self.done + count)
        percent = min(100, int(100 * self.done / self.size))
        if percent == self.percent:
            return
        self.percent = percent
        message = None
        if percent >= self.said + _MESSAGE_STEP and percent < 100:
            self.said = percent - percent % _MESSAGE_STEP
            message = f"{self.done / 1e6:.1f} of {self.size / 1e6:.1f} MB"
        self.report(percent / 100, message)


# -- cached files are checked once per version seen (a 16 MB hash costs ~50 ms) --------------------------------------

_VERIFIED: dict = {}  # (path, size, mtime_ns) -> sha256
_LOCKS: dict = {}
_LOCKS_GUARD = threading.Lock()


def _matches(path: Path, file: ModelFile) -> bool:
    """Whether ``path`` holds ``file``: a download from an older registry, or a damaged one, does not."""
    try:
        stat = path.stat()
    except OSError:
        return False
    if stat.st_size != file.size:
        return False
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        try:
            _VERIFIED[key] = sha256_of(path)
        except OSError:
            return False
    return _VERIFIED[key] == file.sha256


def _remember(path: Path, file: ModelFile) -> None:
    stat = path.stat()
    _VERIFIED[(str(path), stat.st_size, stat.st_mtime_ns)] = file.sha256


def _lock_for(path: Path) -> threading.Lock:
    """One download of a file at a time in this process (batch runs may ask for the same model at once)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path), threading.Lock())
