#!/usr/bin/env python3
"""Build the plugin zip that QGIS installs with Plugins > Manage and Install Plugins > Install from ZIP.

The zip holds one folder, ``spacenet_toolkit/``, with the files git knows (tracked, or new and not
ignored), less what only developers need. Entries get a fixed timestamp so that the same tree gives
the same zip.
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
DEVELOPER_FOLDERS = {
    "tests", "training", "bench", "scripts", "docs", "artifacts", ".ci", ".github", "dist", ".build", ".venv",
}
DEVELOPER_FILES = {
    ".gitignore", ".gitattributes", "Makefile", "pyproject.toml", "requirements-dev.txt", "constraints.txt",
}
ZIP_TIMESTAMP = (2020, 1, 1, 0, 0, 0)


def plugin_version() -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO_ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"]


def files_to_ship() -> list:
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
    return sorted(shipped)


def build(output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{PLUGIN_NAME}-{plugin_version()}.zip"
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files_to_ship():
            entry = zipfile.ZipInfo(f"{PLUGIN_NAME}/{path.as_posix()}", ZIP_TIMESTAMP)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, (REPO_ROOT / path).read_bytes())
    os.replace(partial, target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "dist", help="folder for the zip (default: dist)")
    target = build(parser.parse_args().output)
    print(f"{target} ({target.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
