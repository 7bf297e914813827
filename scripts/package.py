#!/usr/bin/env python3
"""Build the plugin zip that QGIS installs with Plugins > Manage and Install Plugins > Install from ZIP.

The zip holds one folder, ``spacenet_toolkit/``, with the files git knows (tracked, or new and not
ignored), less what only developers need, and of the model files in models/ only those that
models/registry.json marks as bundled (the others are downloaded on first use). Entries get a fixed timestamp so
that the same tree gives the same zip. A zip over plugins.qgis.org's upload limit is refused.
"""

import argparse
import configparser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

PLUGIN_NAME = "spacenet_toolkit"
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # core/ imports nothing outside itself: usable without QGIS or the plugin link

from core.model_registry import REGISTRY_PATH, Registry, load_registry, stale_files  # noqa: E402

DEVELOPER_FOLDERS = {
    "tests", "training", "bench", "scripts", "docs", "artifacts", ".ci", ".github", "dist", ".build", ".venv",
}
DEVELOPER_FILES = {
    ".gitignore", ".gitattributes", "Makefile", "pyproject.toml", "requirements-dev.txt", "constraints.txt",
}
ZIP_TIMESTAMP = (2020, 1, 1, 0, 0, 0)
# plugins.qgis.org refuses larger uploads (PLUGIN_MAX_UPLOAD_SIZE in qgis-django's settings)
MAX_UPLOAD_BYTES = 25_000_000
MODELS = "models"
REGISTRY_ENTRY = f"{MODELS}/{REGISTRY_PATH.name}"


class PackageError(Exception):
    """The zip cannot be built as asked; the message says what to change."""


def plugin_version() -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO_ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"]


def files_to_ship(registry: Registry) -> list:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True,
    ).stdout.split("\0")
    shipped = []
    for name in filter(None, listed):
        path = Path(name)
        if path.parts[0] in DEVELOPER_FOLDERS or name in DEVELOPER_FILES or "__pycache__" in path.parts:
            continue
        if (REPO_ROOT / path).is_file():  # skips files deleted but not yet committed
            shipped.append(path)
    return sorted(path for path in shipped if not _is_model_file(path) or _is_bundled(path, registry))


def _is_model_file(path: Path) -> bool:
    return path.parts[0] == MODELS and path.suffix == ".onnx"


def _is_bundled(path: Path, registry: Registry) -> bool:
    return any(entry.bundled and file.name == path.name for entry in registry.models.values() for file in entry.files)


def check_models(registry: Registry, shipped: list) -> None:
    """Every bundled file is there and is the registry's; every model file in models/ is registered."""
    problems = [f"{MODELS}/{line}" for line in stale_files(registry, REPO_ROOT / MODELS)]
    present = {path.name for path in shipped if _is_model_file(path)}
    for entry in registry.models.values():
        problems += [f"{MODELS}/{file.name} is missing (registered as bundled)"
                     for file in entry.files if entry.bundled and file.name not in present]
    problems += [f"{MODELS}/{path.name} is not registered" for path in (REPO_ROOT / MODELS).glob("*.onnx")
                 if registry.file(path.name) is None]
    if problems:
        raise PackageError("The model registry and models/ disagree:\n  " + "\n  ".join(problems) +
                           "\nRun scripts/model_registry.py (--add NAME --task ... --summary ... for a new model).")


def build(output_dir: Path, registry_path: Path = REGISTRY_PATH, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """The zip in ``output_dir``; ``registry_path`` (shipped as models/registry.json) says which models go in."""
    registry = load_registry(registry_path)
    shipped = files_to_ship(registry)
    check_models(registry, shipped)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{PLUGIN_NAME}-{plugin_version()}.zip"
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in shipped:
            entry = zipfile.ZipInfo(f"{PLUGIN_NAME}/{path.as_posix()}", ZIP_TIMESTAMP)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            source = Path(registry_path) if path.as_posix() == REGISTRY_ENTRY else REPO_ROOT / path
            archive.writestr(entry, source.read_bytes())
    size = partial.stat().st_size
    if size > max_bytes:
        partial.unlink()
        raise PackageError(too_big_message(size, max_bytes, registry))
    os.replace(partial, target)
    return target


def too_big_message(size: int, max_bytes: int, registry: Registry) -> str:
    bundled = sorted(((sum(f.size for f in entry.files), name) for name, entry in registry.models.items()
                      if entry.bundled), reverse=True)
    models = ", ".join(f"{name} ({total / 1e6:.1f} MB)" for total, name in bundled) or "none"
    return (f"The zip would be {size:,} bytes, over the {max_bytes:,} that plugins.qgis.org accepts; nothing was "
            f"written. Bundled models: {models}. Set \"delivery\": \"fetched\" for one in models/registry.json "
            "(it is then downloaded on first use; upload its files to the release_url there).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "dist", help="folder for the zip (default: dist)")
    try:
        target = build(parser.parse_args().output)
    except PackageError as error:
        print(f"package: {error}", file=sys.stderr)
        return 1
    print(f"{target} ({target.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
