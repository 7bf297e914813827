"""`make test` is what CI runs, so it also holds the code to the project's ruff rules."""

import subprocess
import sys


def test_ruff_finds_nothing(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(repo_root)],
        cwd=repo_root, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------- Qt 6 readiness
# scripts/check_qt6.py (run by `make lint`) keeps PyQt5-only forms out; QGIS 4 runs on Qt 6 (issue 23).

SCRATCH = '''\
from PyQt5.QtCore import pyqtSignal
from qgis.core import QgsField
from qgis.PyQt.QtCore import Qt, QVariant
from qgis.PyQt.QtWidgets import QMessageBox


def show(dialog):
    answer = dialog.exec_()
    dialog.label.setAlignment(Qt.AlignLeft)
    return answer == QMessageBox.Yes, QgsField("name", QVariant.String)
'''


def check_qt6(repo_root, *paths):
    return subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "check_qt6.py"), *map(str, paths)],
        cwd=repo_root, capture_output=True, text=True,
    )


def test_qt6_check_names_each_pyqt5_form_with_file_line_and_replacement(repo_root, tmp_path):
    scratch = tmp_path / "scratch.py"
    scratch.write_text(SCRATCH, encoding="utf-8")
    result = check_qt6(repo_root, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    findings = result.stdout.splitlines()
    expected = [
        (1, "QT602", "use 'from qgis.PyQt.QtCore import pyqtSignal'"),
        (8, "QT601", "use 'dialog.exec'"),
        (9, "QT603", "use 'Qt.AlignmentFlag.AlignLeft'"),
        (10, "QT603", "use 'QMessageBox.StandardButton.Yes'"),
        (10, "QT604", "use 'FieldType.String'"),
    ]
    for line, code, replacement in expected:
        assert any(finding.startswith(f"{scratch}:{line}:") and f" {code} " in finding and replacement in finding
                   for finding in findings), (line, code, findings)
    assert len(findings) == len(expected), findings


def test_qt6_check_passes_the_scoped_forms_and_an_allowed_line(repo_root, tmp_path):
    (tmp_path / "scoped.py").write_text('''\
from qgis.core import QgsProcessing
from qgis.PyQt import QtCore
from qgis.PyQt.QtCore import Qt, QVariant, pyqtSignal
from qgis.PyQt.QtWidgets import QMessageBox

ALIGN = Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop
BUTTONS = QMessageBox.StandardButton.Yes, QgsProcessing.TypeVectorPolygon  # QGIS's own enums keep their names
OLD = QVariant.Type.Int  # qt6-check: allow (a Qt 5 branch)


def run(dialog, exec_count=0):
    return dialog.exec(), pyqtSignal
''', encoding="utf-8")
    result = check_qt6(repo_root, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_repository_has_no_pyqt5_only_forms(repo_root):
    result = check_qt6(repo_root)
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_lint_runs_the_qt6_check(repo_root):
    makefile = (repo_root / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/check_qt6.py" in lint
