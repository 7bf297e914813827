"""Imports go one way (DESIGN.md): ``processing_provider``/``ui`` -> ``qgis_adapter`` -> ``core``, and inside ``core``
between its wings (core/README.md). Read from the sources with ``ast``, so that imports inside functions count too; a
string naming a module (Processing's ``widget_wrapper``) is not an import."""

import ast
import sys

import pytest

PLUGIN = "spacenet_toolkit"
# folder -> what its modules must never import (top-level names inside the plugin, or "qgis")
FORBIDDEN = {
    "core": {"qgis", "qgis_adapter", "processing_provider", "ui", "plugin", "qgis_logging"},
    "qgis_adapter": {"processing_provider", "ui", "plugin"},
    "ui": {"processing_provider"},
}


def imported(source: str, module_parts: list, is_package: bool = False) -> list:
    """(line, top-level name) of every import in ``source``, a module at ``module_parts`` under the plugin root:
    the plugin's own folder or module for imports inside the plugin, the first name otherwise."""
    return [(line, target[0]) for line, target in imported_paths(source, module_parts, is_package)]


def imported_paths(source: str, module_parts: list, is_package: bool = False) -> list:
    """(line, dotted name as a list) of every import in ``source``, as :func:`imported` reads them: under the plugin
    root for imports inside the plugin (``["core", "score", "f1"]``), whole otherwise."""
    package = module_parts if is_package else module_parts[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            targets = [node.module.split(".")]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1]
            targets = ([base + node.module.split(".")] if node.module
                       else [base + [alias.name] for alias in node.names])
            targets = [[PLUGIN] + target for target in targets]
        else:
            continue
        for target in targets:
            if target[0] == PLUGIN:
                target = target[1:]
            if target:
                found.append((node.lineno, target))
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_go_one_way(repo_root, folder):
    offenders = []
    for path in sorted((repo_root / folder).rglob("*.py")):
        parts = list(path.relative_to(repo_root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        for line, name in imported(path.read_text(encoding="utf-8"), parts, is_package):
            if name in FORBIDDEN[folder]:
                offenders.append(f"{path.relative_to(repo_root)}:{line} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_the_reader_resolves_relative_absolute_and_nested_imports():
    source = (
        "import qgis.core\n"
        "from spacenet_toolkit.ui import band_wrapper\n"
        "from ..processing_provider.styles import X\n"
        "from .. import plugin\n"
        "from . import sibling\n"
        "def f():\n"
        "    from ..core import raster\n"
        "WRAPPER = 'spacenet_toolkit.processing_provider.extraction'\n"
    )
    assert sorted(imported(source, ["ui", "module"])) == [
        (1, "qgis"), (2, "ui"), (3, "processing_provider"), (4, "plugin"), (5, "ui"), (7, "core"),
    ]
    assert imported("from . import styles\n", ["qgis_adapter"], is_package=True) == [(1, "qgis_adapter")]


# core's wings (core/README.md): wing -> the wings it must never import; the shared top modules import no wing.
WINGS = {"fetch": {"extract", "score", "adapt"}, "extract": {"fetch", "score", "adapt"},
         "score": {"fetch", "extract", "adapt"}, "adapt": {"fetch"}}
# The one justified crossing: calibration chooses the extraction's thresholds by the F1 of what each gives.
WING_EXCEPTIONS = {("core/extract/calibrate.py", "score")}
MAX_CORE_LINES = 600


def test_core_folders_are_the_known_wings(repo_root):
    folders = {path.name for path in (repo_root / "core").iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders == set(WINGS)


def test_core_wings_import_one_way(repo_root):
    offenders = []
    for path in sorted((repo_root / "core").rglob("*.py")):
        relative = path.relative_to(repo_root)
        parts = list(relative.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        wing = parts[1] if len(parts) > 1 and parts[1] in WINGS else None
        forbidden = WINGS[wing] if wing else set(WINGS)
        for line, target in imported_paths(path.read_text(encoding="utf-8"), parts, is_package):
            crossing = target[0] == "core" and len(target) > 1 and target[1] in forbidden
            if crossing and (relative.as_posix(), target[1]) not in WING_EXCEPTIONS:
                offenders.append(f"{relative}:{line} imports core.{target[1]}")
    assert not offenders, "\n".join(offenders)


def test_the_adaptation_worker_imports_nothing_of_the_plugin(repo_root):
    """core/adapt/worker runs in the training Python (PyTorch, onnx, numpy), which has none of the plugin."""
    allowed = {"torch", "onnx", "numpy", "onnx_torch", "onnx_precision", "__future__"}
    offenders = []
    for path in sorted((repo_root / "core" / "adapt" / "worker").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                offenders.append(f"{path.name}:{node.lineno} relative import")
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] not in allowed and n.split(".")[0] not in sys.stdlib_module_names]
    assert not offenders, "\n".join(offenders)


def test_the_wing_reader_resolves_imports_from_inside_a_wing():
    source = "from .. import progress\nfrom ..score import f1\nfrom .raster import to_map\nfrom . import tiling\n"
    assert imported_paths(source, ["core", "extract", "buildings"]) == [
        (1, ["core", "progress"]), (2, ["core", "score"]), (3, ["core", "extract", "raster"]),
        (4, ["core", "extract", "tiling"]),
    ]


def test_no_core_file_is_over_the_line_limit(repo_root):
    long = [f"{path.relative_to(repo_root)}: {count} lines" for path in sorted((repo_root / "core").rglob("*.py"))
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_CORE_LINES]
    assert not long, "\n".join(long)
