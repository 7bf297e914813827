"""Which optional Python packages are installed, and how to install the missing ones.

Checks use ``importlib.util.find_spec``: it finds a package without importing it, so
the plugin can start without paying for heavy imports such as onnxruntime.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Package:
    module: str  # what ``import`` uses
    pip_name: str  # what ``pip install`` uses
    purpose: str


PACKAGES = {
    package.module: package
    for package in (
        Package("numpy", "numpy", "arrays for rasters and metrics"),
        Package("shapely", "shapely>=2", "polygon geometry for scoring and vectorising"),
        Package("rasterio", "rasterio", "windowed raster reads and writes"),
        Package("onnxruntime", "onnxruntime", "model inference (onnxruntime-gpu for NVIDIA GPUs)"),
        Package("requests", "requests", "downloads from the SpaceNet bucket"),
        Package("scipy", "scipy", "watershed splitting of buildings; road graphs and APLS shortest paths; "
                                  "optimal matching in the F1 scorer"),
        Package("skimage", "scikit-image", "thinning road masks to centerlines"),
        Package("networkx", "networkx", "editing road graphs (comes with scikit-image)"),
    )
}


# Offered, never required: what works without them works the same, they add to it.
OPTIONAL = {
    package.module: package
    for package in (
        Package("distributed", "dask[distributed]", "optional: extraction spread over worker processes on this "
                                                    "machine or over a Dask cluster; without it, in QGIS's process"),
    )
}


def is_installed(module: str) -> bool:
    """True when ``module`` can be imported (found on the path and not blocked)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        # A parent package that fails to import, or a module whose spec was cleared.
        return False


def missing(modules) -> list[str]:
    """The modules of ``modules`` that are not installed, in the order given."""
    return [module for module in modules if not is_installed(module)]


def installed_version(module: str) -> str:
    """The version of the installed distribution that provides ``module`` (read from its metadata, without
    importing it); "" when the module is missing, "version unknown" when no metadata says."""
    if not is_installed(module):
        return ""
    for name in _distributions(module):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    version = getattr(sys.modules.get(module), "__version__", "")
    return version if isinstance(version, str) and version else "version unknown"


def _distributions(module: str):
    """Distribution names that may provide ``module``: its pip name, its own name, then (only when those are not
    installed: it reads every distribution's metadata) what the metadata says, e.g. onnxruntime-gpu."""
    known = PACKAGES | OPTIONAL
    if module in known:
        yield re.split(r"[<>=!~ \[;]", known[module].pip_name, maxsplit=1)[0]
    yield module
    lookup = getattr(importlib.metadata, "packages_distributions", None)  # Python 3.10+
    if lookup is not None:
        yield from lookup().get(module.split(".")[0], [])


def install_command(modules) -> str:
    """A pip command line that installs ``modules`` into the running Python."""
    known = PACKAGES | OPTIONAL
    names = [known[m].pip_name if m in known else m for m in modules]
    quoted = [f'"{n}"' if any(c in n for c in "<>=[") else n for n in names]  # shells read these
    return "python -m pip install " + " ".join(quoted)


def describe_missing(modules) -> str:
    """One sentence naming the missing packages, what they are for and how to install them."""
    absent = missing(modules)
    if not absent:
        return ""
    parts = [f"{m} ({PACKAGES[m].purpose})" if m in PACKAGES else m for m in absent]
    return (
        "Missing Python package(s): " + ", ".join(parts) + ". "
        "Install them into the Python that QGIS uses: " + install_command(absent) + " "
        "(on Windows from the OSGeo4W Shell; on macOS with QGIS's bundled python3)."
    )


def report() -> str:
    """Every package the plugin uses, whether it is installed, and how to install what is not."""
    lines = [
        f"{'installed' if is_installed(p.module) else 'MISSING'}: {p.module} - {p.purpose}"
        for p in PACKAGES.values()
    ]
    absent = missing(PACKAGES)
    if absent:
        lines += ["", "To install what is missing into QGIS's Python:", install_command(absent)]
    lines += ["", "Optional:"] + [
        f"{'installed' if is_installed(p.module) else 'not installed'}: {p.module} - {p.purpose}"
        + ("" if is_installed(p.module) else f" ({install_command([p.module])})")
        for p in OPTIONAL.values()
    ]
    return "\n".join(lines)
