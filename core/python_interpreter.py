"""This Python's interpreter, as a program another process can start.

An embedded Python (QGIS, qgis_process) may name another program in ``sys.executable`` (QGIS itself, or
whatever "python3" is first on the PATH: ENVIRONMENT.md trap 9), so the interpreter is looked up beside this
Python's own standard library first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def this_python() -> str:
    """The path of an interpreter of this Python's installation; raises FileNotFoundError when none is found."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefix = Path(sys.exec_prefix)
    candidates = [prefix / "bin" / f"python{version}", prefix / "bin" / "python3", prefix / "python.exe",
                  prefix / "python3.exe", getattr(sys, "_base_executable", ""), sys.executable]
    for candidate in map(str, candidates):
        if candidate and Path(candidate).name.lower().startswith("python") and os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"No Python interpreter found in {prefix}")
