"""This Python's interpreter, as a program another process can start (Dask's local workers, the training process,
pip for the dependency installer).

An embedded Python (QGIS, qgis_process) may name another program in ``sys.executable`` (QGIS itself, or
whatever "python3" is first on the PATH: ENVIRONMENT.md trap 9), so the interpreter is looked up beside this
Python's own standard library first.
"""

from __future__ import annotations

import os
import sys
from pathlib import PurePosixPath, PureWindowsPath


def python_candidates(exec_prefix: str = sys.exec_prefix, executable: str = sys.executable,
                      version=sys.version_info[:2], platform: str = sys.platform) -> list:
    """Where QGIS's Python interpreter may be, most likely first: beside the standard library of the running
    Python (sys.exec_prefix), then QGIS's own folder (OSGeo4W's python3.exe beside qgis-bin.exe), then
    sys.executable when it is a Python at all."""
    path = PureWindowsPath if platform == "win32" else PurePosixPath  # the platform's paths, on any machine
    prefix, beside = path(exec_prefix), path(executable).parent if executable else None
    if platform == "win32":
        candidates = [prefix / "python.exe", prefix / "python3.exe"]
        if beside is not None:
            candidates += [beside / "python3.exe", beside / "python.exe"]
    else:
        candidates = [prefix / "bin" / f"python{version[0]}.{version[1]}", prefix / "bin" / "python3",
                      prefix / "bin" / "python"]
        if beside is not None:
            candidates += [beside / f"python{version[0]}.{version[1]}", beside / "python3"]
    if executable and path(executable).name.lower().startswith("python"):
        candidates.append(path(executable))
    unique = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def this_python() -> str:
    """The first candidate that exists; FileNotFoundError when none does."""
    for candidate in map(str, python_candidates()):
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"No Python interpreter found in {sys.exec_prefix}")
