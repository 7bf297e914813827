#!/usr/bin/env python3
"""Keep models/registry.json in step with the model files in models/.

    scripts/model_registry.py            refresh the size and SHA-256 of every registered file present in models/
    scripts/model_registry.py --check    only say what differs (exit 1 if anything does)
    scripts/model_registry.py --add NAME --task buildings --summary "When to use it." [--fetched]
                                         register models/NAME.onnx (and NAME.fp16.onnx when present)

Flip a model between the zip and first-use download by setting its "delivery" to "bundled" or "fetched" in
registry.json. Every file listed must also be uploaded to the release at release_url (the command prints them).
"""

import argparse
import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # core/ imports nothing outside itself: usable without QGIS or the plugin link

from core.model_registry import (  # noqa: E402
    HALF_SUFFIX,
    REGISTRY_PATH,
    TASKS,
    RegistryError,
    parse_registry,
    sha256_of,
    stale_files,
    unregistered_files,
)

MODELS_DIR = REGISTRY_PATH.parent


def refreshed(data: dict) -> list:
    """Update sizes and hashes in ``data`` from models/; returns the names of the files that changed."""
    changed = []
    for model in data["models"].values():
        for file_name, info in model["files"].items():
            path = MODELS_DIR / file_name
            if not path.is_file():
                continue
            fresh = {"size": path.stat().st_size, "sha256": sha256_of(path)}
            if info != fresh:
                info.update(fresh)
                changed.append(file_name)
    return changed


def add(data: dict, name: str, task: str, summary: str, fetched: bool) -> None:
    if name in data["models"]:
        raise SystemExit(f"{name} is registered already: edit registry.json, or run without --add to refresh.")
    files = [f"{name}.onnx"] + ([f"{name}{HALF_SUFFIX}"] if (MODELS_DIR / f"{name}{HALF_SUFFIX}").is_file() else [])
    if not (MODELS_DIR / files[0]).is_file():
        raise SystemExit(f"No {MODELS_DIR / files[0]}: put the model file there first.")
    data["models"][name] = {"task": task, "summary": summary, "delivery": "fetched" if fetched else "bundled",
                            "files": {file_name: {"size": 0, "sha256": ""} for file_name in files}}


def write(data: dict) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    # one line per file keeps the diff of a retrained model to the lines that changed
    text = re.sub(r'\{\s+"size": (\d+),\s+"sha256": ("[0-9a-f]*")\s+\}', r'{"size": \1, "sha256": \2}', text)
    partial = REGISTRY_PATH.with_suffix(".json.part")
    partial.write_text(text + "\n", encoding="utf-8")
    partial.replace(REGISTRY_PATH)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when the registry is stale")
    parser.add_argument("--add", metavar="NAME", help="register models/NAME.onnx")
    parser.add_argument("--task", choices=TASKS)
    parser.add_argument("--summary", help="one line: when to use the model (the extraction dialogs show it)")
    parser.add_argument("--fetched", action="store_true", help="leave it out of the zip; download on first use")
    args = parser.parse_args()
    data = json.loads(REGISTRY_PATH.read_text(encoding="utf-8"))

    if args.check:
        registry = parse_registry(data, str(REGISTRY_PATH))
        problems = stale_files(registry, MODELS_DIR) + [
            f"{name}: not in the registry" for name in unregistered_files(registry, MODELS_DIR)]
        for problem in problems:
            print(problem)
        if problems:
            print("Run scripts/model_registry.py (with --add NAME ... for a new model).", file=sys.stderr)
        return 1 if problems else 0

    if args.add:
        if not (args.task and args.summary):
            parser.error("--add needs --task and --summary")
        add(data, args.add, args.task, args.summary, args.fetched)
    changed = refreshed(data)
    try:
        registry = parse_registry(data, str(REGISTRY_PATH))
    except RegistryError as error:
        raise SystemExit(f"Not written: {error}") from error
    write(data)
    for file_name in changed:
        print(f"updated {file_name}")
    for name in unregistered_files(registry, MODELS_DIR):
        print(f"{name} is not registered: scripts/model_registry.py --add NAME --task ... --summary ...",
              file=sys.stderr)
    print(f"Upload these to {registry.release_url} (a changed file needs a new release tag):")
    for entry in registry.models.values():
        for file in entry.files:
            print(f"  {file.name}  {file.size} bytes  {entry.task}  {'bundled' if entry.bundled else 'fetched'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
