"""Imports go one way (DESIGN.md): ``processing_provider``/``ui`` -> ``qgis_adapter`` -> ``core``. Read from the
sources with ``ast``, so that imports inside functions count too; a string naming a module (Processing's
``widget_wrapper``) is not an import."""

import ast

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
                found.append((node.lineno, target[0]))
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
