#!/usr/bin/env python3
"""`make bench`: run every bench/bench_*.py (each compares against its own baseline in the same run)."""

import importlib.util
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def main(argv) -> int:
    selected = argv[1:]  # optional names, e.g. `bench/run.py startup`
    failures = 0
    for path in sorted(BENCH_DIR.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if selected and name not in selected:
            continue
        print(f"\n=== {name} ===", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        failures += bool(module.main([]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
