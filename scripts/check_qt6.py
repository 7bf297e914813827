#!/usr/bin/env python3
"""Fail on PyQt5-only idioms (QGIS 4 runs Qt 6, PyQt6) and on .ui enum forms QGIS 3's PyQt5 cannot read.

    python scripts/check_qt6.py [FILE_OR_FOLDER ...]    (default: every Python and Qt Designer .ui file git
                                                          tracks or would, here)

Each finding is printed as ``path:line:column: CODE message`` with the form to write instead; the exit status is 1
when there is one, 0 otherwise. The checks read the syntax tree (no regular expressions) and ask the PyQt this runs
on which names are enum values:

QT601  ``exec_`` (a call, a reference or a definition): PyQt6 has only ``exec()``.
QT602  ``PyQt5``/``PyQt6``/``sip`` imported directly: import from ``qgis.PyQt`` (QGIS maps it to the Qt it runs).
QT603  a Qt enum value read from its class (``Qt.AlignLeft``, ``QMessageBox.Yes``): PyQt6 knows only the scoped
       form (``Qt.AlignmentFlag.AlignLeft``), which PyQt5 5.11+ accepts too. Names are resolved through the file's
       imports from ``qgis.PyQt``, ``PyQt5``/``PyQt6`` and ``qgis.core``/``qgis.gui``/``qgis.analysis``, so a Qt
       enum read through a QGIS subclass (``QgsDockWidget.DockWidgetClosable``) counts; QGIS's own enums do not
       (QGIS 4 keeps their unscoped names). Values read from an instance (``self.Yes``) cannot be resolved here.
QT604  ``QVariant.Int``, ``QVariant.Type.String``: QVariant.Type is gone in Qt 6 and QgsField takes QMetaType.Type
       from QGIS 3.38; use ``FieldType`` from ``qgis_adapter/qt_compat.py``, which picks the one QGIS takes.
QT600  a Qt or QGIS module the file imports cannot be imported here, so its names could not be checked.

QT605  in a .ui file, a fully scoped enum value (``Qt::Orientation::Horizontal``, as Qt 6's Designer writes it):
       PyQt5's uic, which QGIS 3 loads forms with (5.15.9 on QGIS 3.22, 5.15.11 on 3.40), reads only
       ``Class::Member`` and fails on it. Write ``Qt::Horizontal``: PyQt6's uic maps that form to the scoped one
       (PyQt6/uic/enum_map.py), so it loads in both.

A line that must keep an old form (the Qt 5 branch of a compatibility helper) says so with ``# qt6-check: allow``.
"""

import argparse
import ast
import enum
import importlib
import subprocess
import sys
import xml.parsers.expat
from pathlib import Path

ALLOW = "qt6-check: allow"
# Modules whose names are resolved to find Qt enums; anything else (a local variable called Qt) is left alone.
RESOLVED_PREFIXES = ("qgis.PyQt", "PyQt5", "PyQt6", "qgis.core", "qgis.gui", "qgis.analysis")
DIRECT_QT = ("PyQt5", "PyQt6", "sip")
# Enum values Qt 6 renamed as well as scoped (from QGIS's own pyqt5_to_pyqt6 migration script).
RENAMED = {
    ("Qt", "MidButton"): "MouseButton.MiddleButton",
    ("Qt", "TextColorRole"): "ItemDataRole.ForegroundRole",
    ("Qt", "BackgroundColorRole"): "ItemDataRole.BackgroundRole",
    ("QPainter", "HighQualityAntialiasing"): "RenderHint.Antialiasing",
}
FIELD_TYPE_HINT = "from qgis_adapter/qt_compat.py, adding it there if missing (Qt 6 has no QVariant.Type)"
_MISSING = object()


def is_enum_type(obj) -> bool:
    """A PyQt enum class: sip's enumtype in PyQt5, a Python enum in PyQt6."""
    if not isinstance(obj, type):
        return False
    return type(obj).__name__ == "enumtype" or issubclass(obj, enum.Enum)


def has_member(enum_type, member) -> bool:
    """PyQt5's enums look their members up on demand (vars() does not list them): ask for the one wanted."""
    return isinstance(getattr(enum_type, member, None), enum_type)


def is_qt_class(obj) -> bool:
    module = getattr(obj, "__module__", "") or ""
    return module.startswith(("PyQt5", "PyQt6"))


def scoped_enum_name(owner, member):
    """The name of the Qt enum, nested in class ``owner``, whose value ``owner.member`` is; None when it is not one
    (or ``owner`` is itself an enum, the scoped form)."""
    if not isinstance(owner, type) or is_enum_type(owner):
        return None
    value = getattr(owner, member, _MISSING)
    if value is not _MISSING:
        kind = type(value)
        if not is_enum_type(kind) or not is_qt_class(kind):
            return None
        if getattr(owner, kind.__name__, None) is kind:
            return kind.__name__
        for name in dir(owner):  # an enum known under another name in this class
            if getattr(owner, name, None) is kind:
                return name
        return None
    # PyQt6 has no unscoped name: find the Qt enum nested in owner that has the member.
    for name in dir(owner):
        nested = getattr(owner, name, None)
        if is_enum_type(nested) and is_qt_class(nested) and has_member(nested, member):
            return name
    return None


class Finding:
    def __init__(self, path, node, code, message):
        self.path, self.line, self.column = path, node.lineno, node.col_offset + 1
        self.code, self.message = code, message

    @classmethod
    def at(cls, path, line, column, code, message):
        finding = cls.__new__(cls)
        finding.path, finding.line, finding.column, finding.code, finding.message = path, line, column, code, message
        return finding

    def __str__(self):
        return f"{self.path}:{self.line}:{self.column}: {self.code} {self.message}"


def dotted(node):
    """'a.b.c' for an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class Checker(ast.NodeVisitor):
    def __init__(self, path, source):
        self.path = path
        self.lines = source.splitlines()
        self.findings = []
        self.bindings = {}  # local name -> (module, attribute path or None)
        self.unimportable = set()

    # -- helpers
    def report(self, node, code, message):
        line = self.lines[node.lineno - 1] if node.lineno <= len(self.lines) else ""
        if ALLOW not in line:
            self.findings.append(Finding(self.path, node, code, message))

    def resolve(self, node):
        """The object an attribute chain or name of this file refers to, when it comes from a Qt or QGIS module."""
        chain = dotted(node)
        if chain is None:
            return _MISSING
        head, *rest = chain.split(".")
        if head not in self.bindings:
            return _MISSING
        module_name, attribute = self.bindings[head]
        try:
            obj = importlib.import_module(module_name)
        except Exception as error:  # not importable here: say so rather than pass what was not checked
            if module_name not in self.unimportable:
                self.unimportable.add(module_name)
                self.report(node, "QT600", f"cannot import {module_name} to check its names: {error}")
            return _MISSING
        for part in ([attribute] if attribute else []) + rest:
            obj = getattr(obj, part, _MISSING)
            if obj is _MISSING:
                return _MISSING
        return obj

    # -- imports
    def visit_Import(self, node):
        for alias in node.names:
            top = alias.name.split(".")[0]
            if top in DIRECT_QT:
                last = alias.name.split(".")[-1]
                instead = "import qgis.PyQt" if alias.name in ("PyQt5", "PyQt6") else f"from qgis.PyQt import {last}"
                self.report(node, "QT602", f"'import {alias.name}': use '{instead}' (qgis.PyQt is the Qt QGIS runs on)")
            if alias.name.startswith(RESOLVED_PREFIXES):
                if alias.asname:
                    self.bindings[alias.asname] = (alias.name, None)
                else:
                    self.bindings[top] = (top, None)
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        module = node.module or ""
        top = module.split(".")[0]
        if node.level == 0 and top in DIRECT_QT:
            names = ", ".join(alias.name for alias in node.names)
            target = "qgis.PyQt.sip" if top == "sip" else "qgis.PyQt" + module[len(top):]
            self.report(node, "QT602", f"'from {module} import {names}': use 'from {target} import {names}'")
        if node.level == 0 and module.startswith(RESOLVED_PREFIXES):
            for alias in node.names:
                if alias.name != "*":
                    self.bindings[alias.asname or alias.name] = (module, alias.name)
        self.generic_visit(node)

    # -- exec_
    def visit_FunctionDef(self, node):
        if node.name == "exec_":
            self.report(node, "QT601", "'def exec_': name it 'exec' (PyQt6 has no exec_)")
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node):
        self.visit_FunctionDef(node)

    def visit_Attribute(self, node):
        if node.attr == "exec_":
            target = dotted(node.value) or "..."
            self.report(node, "QT601", f"'{target}.exec_': use '{target}.exec' (PyQt6 has no exec_)")
        else:
            self.check_enum(node)
        self.generic_visit(node)

    def check_enum(self, node):
        owner_name = dotted(node.value)
        if owner_name is None:
            return
        owner = self.resolve(node.value)
        if owner is _MISSING or not isinstance(owner, type):
            return
        written = f"{owner_name}.{node.attr}"
        if owner.__name__ == "QVariant" and is_qt_class(owner):
            member = node.attr
            if member == "Type":
                member = getattr(node, "_parent_attr", None)
                written = f"{written}.{member}" if member else written
            if member is None:
                self.report(node, "QT604", f"'{written}': use FieldType {FIELD_TYPE_HINT}")
            elif is_enum_type(type(getattr(owner, member, None))):  # QGIS 4 maps QVariant.Int to QMetaType's
                self.report(node, "QT604", f"'{written}': use 'FieldType.{member}' {FIELD_TYPE_HINT}")
            return
        renamed = RENAMED.get((owner.__name__, node.attr))
        if renamed is not None and is_qt_class(owner):
            self.report(node, "QT603", f"'{written}': use '{owner_name}.{renamed}' (renamed in Qt 6)")
            return
        enum_name = scoped_enum_name(owner, node.attr)
        if enum_name is not None:
            scoped = f"{owner_name}.{enum_name}.{node.attr}"
            self.report(node, "QT603", f"'{written}': use '{scoped}' (PyQt6 enums are scoped)")


def _mark_parents(tree):
    """Let 'QVariant.Type' know the member read from it ('QVariant.Type.Int' -> 'Int') for its message."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            node.value._parent_attr = node.attr


def check_source(path, source):
    tree = ast.parse(source, filename=str(path))
    _mark_parents(tree)
    checker = Checker(path, source)
    checker.visit(tree)
    return checker.findings


def check_ui(path, text):
    """QT605 for each fully scoped value (``A::B::C``) of an <enum> or <set> property of a Qt Designer file."""
    findings, values = [], []
    parser = xml.parsers.expat.ParserCreate()

    def start(name, _attributes):
        if name in ("enum", "set"):
            values.append([parser.CurrentLineNumber, parser.CurrentColumnNumber + 1, ""])

    def data(chunk):
        if values:
            values[-1][2] += chunk

    def end(name):
        if name in ("enum", "set") and values:
            line, column, value = values.pop()
            for part in value.split("|"):
                names = part.strip().split("::")
                if len(names) > 2:
                    unscoped = f"{names[0]}::{names[-1]}"
                    findings.append(Finding.at(path, line, column, "QT605", f"'{part.strip()}': write '{unscoped}' "
                                               "(PyQt5's uic, QGIS 3's, reads no scoped form; PyQt6's maps this one)"))

    parser.StartElementHandler, parser.CharacterDataHandler, parser.EndElementHandler = start, data, end
    parser.Parse(text, True)
    return findings


CHECKED = ("*.py", "*.ui")


def tracked_files(root: Path):
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
                                 *CHECKED], cwd=root, capture_output=True, check=True)
        names = [name for name in listed.stdout.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked plugin zip)
        names = [str(path.relative_to(root)) for pattern in CHECKED for path in root.rglob(pattern)]
    return [root / name for name in sorted(set(names))
            if ".venv" not in Path(name).parts and (root / name).is_file()]


def checked_files(arguments, root: Path):
    if not arguments:
        return tracked_files(root)
    files = []
    for argument in arguments:
        path = Path(argument)
        files.extend(sorted(f for pattern in CHECKED for f in path.rglob(pattern)) if path.is_dir() else [path])
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*",
                        help="files or folders (default: the Python and .ui files git tracks or would)")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    findings = []
    for path in checked_files(args.paths, root):
        shown = path.relative_to(root) if path.is_absolute() and root in path.parents else path
        try:
            source = path.read_text(encoding="utf-8")
            findings.extend(check_ui(shown, source) if path.suffix == ".ui" else check_source(shown, source))
        except (OSError, UnicodeDecodeError, SyntaxError, xml.parsers.expat.ExpatError) as error:
            findings.append(f"{shown}: cannot check: {error}")
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} form(s) PyQt5 or PyQt6 cannot read: write the form each line names "
              "(scripts/check_qt6.py explains)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
