"""The model registry: every model the plugin knows by name, read from ``models/registry.json``.

For each model: its task, a one-line summary of when to use it, its files (``NAME.onnx`` and the optional
half-precision ``NAME.fp16.onnx``) with their size and SHA-256, and whether it is bundled in the plugin zip or
fetched on first use. Every file can be downloaded from ``release_url`` + its name, a base named once (for
bundled files too, so a plugin folder that lost one can recover it). ``SPACENET_MODELS_URL`` replaces that base
(a mirror, or a test's loopback server); ``SPACENET_MODELS_REGISTRY`` replaces the whole file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

REGISTRY_PATH = Path(__file__).resolve().parent.parent / "models" / "registry.json"
MODELS_URL_ENV = "SPACENET_MODELS_URL"
REGISTRY_ENV = "SPACENET_MODELS_REGISTRY"
TASKS = ("buildings", "roads")
HALF_SUFFIX = ".fp16.onnx"
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")  # a model name is also a file name and a Processing parameter value
_SHA256 = re.compile(r"[0-9a-f]{64}")


class RegistryError(ValueError):
    """registry.json is missing or malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class ModelFile:
    name: str  # the file name, e.g. buildings_unet_small.fp16.onnx
    size: int  # bytes
    sha256: str

    @property
    def is_half(self) -> bool:
        return self.name.endswith(HALF_SUFFIX)

    @property
    def size_label(self) -> str:
        """"16.2 MB" (kB for test-sized files)."""
        return f"{self.size / 1e6:.1f} MB" if self.size >= 100_000 else f"{self.size / 1e3:.1f} kB"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str  # one of TASKS
    summary: str  # when to use it, in one line (the extraction algorithms' help shows it)
    bundled: bool  # True: in the plugin zip; False: downloaded on first use
    files: tuple[ModelFile, ...]

    @property
    def main(self) -> ModelFile:
        """``NAME.onnx``: the file every device runs."""
        return next(f for f in self.files if f.name == f"{self.name}.onnx")

    @property
    def half(self) -> ModelFile | None:
        """``NAME.fp16.onnx``: the variant the engine picks on a GPU, when the model has one."""
        return next((f for f in self.files if f.name == f"{self.name}{HALF_SUFFIX}"), None)


@dataclass(frozen=True)
class Registry:
    release_url: str  # ends with "/"
    models: dict  # name -> ModelEntry, in the file's order
    source: str = ""  # where it was read from, for messages

    def url(self, file: ModelFile) -> str:
        return self.release_url + file.name

    def names(self, task: str | None = None) -> list[str]:
        return [name for name, entry in self.models.items() if task is None or entry.task == task]

    def get(self, name: str) -> ModelEntry | None:
        return self.models.get(name)

    def file(self, file_name: str) -> ModelFile | None:
        """A registered file by its name, whichever model it belongs to."""
        return next((f for entry in self.models.values() for f in entry.files if f.name == file_name), None)


def load_registry(path: Path | str | None = None, release_url: str | None = None) -> Registry:
    """The registry at ``path`` (default: $SPACENET_MODELS_REGISTRY, else models/registry.json), with its base URL
    replaced by ``release_url`` or $SPACENET_MODELS_URL when either is set."""
    path = Path(path or os.environ.get(REGISTRY_ENV) or REGISTRY_PATH)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RegistryError(f"The model registry {path} cannot be read: {error.strerror or error}.") from error
    except json.JSONDecodeError as error:
        raise RegistryError(f"The model registry {path} is not valid JSON: {error}.") from error
    registry = parse_registry(data, str(path))
    base = release_url or os.environ.get(MODELS_URL_ENV)
    if base:
        registry = Registry(_checked_base(base, f"${MODELS_URL_ENV}"), registry.models, registry.source)
    return registry


def parse_registry(data, source: str = "registry.json") -> Registry:
    """A Registry from the decoded JSON; raises RegistryError naming the first problem."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise RegistryError(f"{source}: expected an object with 'release_url' and 'models'.")
    base = _checked_base(data.get("release_url"), f"{source}: release_url")
    models = {}
    for name, fields in data["models"].items():
        models[name] = _entry(name, fields, f"{source}: model '{name}'")
    return Registry(base, models, source)


def _entry(name, fields, where: str) -> ModelEntry:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RegistryError(f"{where}: a name is lowercase letters, digits and underscores.")
    if not isinstance(fields, dict):
        raise RegistryError(f"{where}: expected an object.")
    task = fields.get("task")
    if task not in TASKS:
        raise RegistryError(f"{where}: task must be one of {', '.join(TASKS)}, not {task!r}.")
    summary = fields.get("summary")
    if not isinstance(summary, str) or not summary.strip() or "\n" in summary:
        raise RegistryError(f"{where}: summary must be one line saying when to use the model.")
    delivery = fields.get("delivery")
    if delivery not in ("bundled", "fetched"):
        raise RegistryError(f"{where}: delivery must be 'bundled' (in the plugin zip) or 'fetched' "
                            f"(downloaded on first use), not {delivery!r}.")
    files = fields.get("files")
    if not isinstance(files, dict) or f"{name}.onnx" not in files:
        raise RegistryError(f"{where}: files must list {name}.onnx (and optionally {name}{HALF_SUFFIX}).")
    checked = []
    for file_name, info in files.items():
        if file_name not in (f"{name}.onnx", f"{name}{HALF_SUFFIX}"):
            raise RegistryError(f"{where}: unexpected file {file_name!r}; a model has {name}.onnx and "
                                f"optionally {name}{HALF_SUFFIX}.")
        size = info.get("size") if isinstance(info, dict) else None
        sha256 = info.get("sha256") if isinstance(info, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise RegistryError(f"{where}: {file_name} needs its size in bytes (scripts/model_registry.py).")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise RegistryError(f"{where}: {file_name} needs its SHA-256 as 64 lowercase hex digits "
                                "(scripts/model_registry.py).")
        checked.append(ModelFile(file_name, size, sha256))
    return ModelEntry(name, task, summary.strip(), delivery == "bundled", tuple(checked))


def _checked_base(url, where: str) -> str:
    if not isinstance(url, str) or not re.match(r"^https?://[^/]+", url):
        raise RegistryError(f"{where} must be an http(s) URL, not {url!r}.")
    return url if url.endswith("/") else url + "/"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unregistered_files(registry: Registry, folder: Path) -> list[str]:
    """The .onnx files in ``folder`` that no registry entry lists."""
    return sorted(p.name for p in Path(folder).glob("*.onnx") if registry.file(p.name) is None)


def stale_files(registry: Registry, folder: Path) -> list[str]:
    """What differs between the registry and the model files present in ``folder``, one line each."""
    problems = []
    for entry in registry.models.values():
        for file in entry.files:
            path = Path(folder) / file.name
            if not path.is_file():
                continue
            size = path.stat().st_size
            if size != file.size:
                problems.append(f"{file.name}: {size} bytes, the registry says {file.size}")
            elif sha256_of(path) != file.sha256:
                problems.append(f"{file.name}: its SHA-256 is not the registry's")
    return problems
