"""``core`` is the QGIS-free engine: it must import and work where ``qgis`` cannot be imported."""

import ast
import os
import subprocess
import sys
import textwrap

IMPORT_CORE_WITH_QGIS_BLOCKED = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    class RefuseQgis(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "qgis" or name.startswith("qgis."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, RefuseQgis())
    try:
        import qgis.core
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("qgis could still be imported: the block did not work")

    import spacenet_toolkit.core as core
    # core.adapt.worker runs in the training Python (PyTorch), never in QGIS's: not imported here
    names = [m.name for m in pkgutil.walk_packages(core.__path__, "spacenet_toolkit.core.")
             if not m.name.startswith("spacenet_toolkit.core.adapt.worker")]
    for name in names:
        importlib.import_module(name)
    leaked = sorted(m for m in sys.modules if m == "qgis" or m.startswith("qgis."))
    assert not leaked, leaked
    print(len(names), "modules")
    """
)


def test_core_imports_in_a_process_where_qgis_cannot_be_imported(repo_root, plugin_path):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["PYTHONPATH"] = str(plugin_path)
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CORE_WITH_QGIS_BLOCKED], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    module_count = int(result.stdout.split()[0])
    worker = len(list((repo_root / "core" / "adapt" / "worker").glob("*.py")))
    assert module_count == len(list((repo_root / "core").rglob("*.py"))) - 1 - worker  # every module and wing


def test_no_core_source_imports_qgis_or_leaves_core(repo_root):
    """Catches imports hidden inside functions too, which the import test above would not run."""
    core = repo_root / "core"
    offenders = []
    for path in core.rglob("*.py"):
        depth = len(path.relative_to(core).parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else [f".{node.module}"]
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] == "qgis"]
            if isinstance(node, ast.ImportFrom) and node.level > depth:
                offenders.append(f"{path.name}:{node.lineno} relative import out of core")
    assert not offenders
