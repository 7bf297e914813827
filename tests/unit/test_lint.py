"""`make test` is what CI runs, so it also holds the code to the project's ruff rules."""

import subprocess
import sys

import pytest


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


# A form as Qt 6's Designer writes it (line 8: one value; line 11: a set of two) beside the two-part forms.
SCRATCH_UI = '''\
<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0">
 <class>Scratch</class>
 <widget class="QDialog" name="Scratch">
  <layout class="QVBoxLayout" name="layout">
   <item>
    <widget class="QSlider" name="slider">
     <property name="orientation"><enum>Qt::Orientation::Horizontal</enum></property>
    </widget>
   </item>
   <item>
    <widget class="QLabel" name="label">
     <property name="alignment"><set>Qt::AlignmentFlag::AlignRight|Qt::AlignVCenter</set></property>
    </widget>
   </item>
   <item>
    <widget class="QDialogButtonBox" name="buttons">
     <property name="standardButtons"><set>QDialogButtonBox::Apply|QDialogButtonBox::Close</set></property>
    </widget>
   </item>
  </layout>
 </widget>
</ui>
'''


def test_qt6_check_names_a_scoped_enum_form_in_a_ui_file(repo_root, tmp_path):
    (tmp_path / "scratch.ui").write_text(SCRATCH_UI, encoding="utf-8")
    result = check_qt6(repo_root, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    findings = result.stdout.splitlines()
    assert len(findings) == 2, findings
    assert findings[0].startswith(f"{tmp_path / 'scratch.ui'}:8:") and " QT605 " in findings[0]
    assert "'Qt::Orientation::Horizontal': write 'Qt::Horizontal'" in findings[0]
    assert findings[1].startswith(f"{tmp_path / 'scratch.ui'}:13:") and " QT605 " in findings[1]
    assert "'Qt::AlignmentFlag::AlignRight': write 'Qt::AlignRight'" in findings[1]


def test_the_form_qt6_check_asks_for_is_the_one_this_qgis_loads(tmp_path):
    """Why QT605: the uic of QGIS's PyQt (5.15 on QGIS 3.22 and 3.40) builds the form with two-part names and fails
    on the scoped one. (PyQt6's uic reads both: it maps the two-part names, PyQt6/uic/enum_map.py.)"""
    from qgis.PyQt import uic

    planted, fixed = tmp_path / "scoped.ui", tmp_path / "two_part.ui"
    planted.write_text(SCRATCH_UI, encoding="utf-8")
    fixed.write_text(SCRATCH_UI.replace("Qt::Orientation::", "Qt::").replace("Qt::AlignmentFlag::", "Qt::"),
                     encoding="utf-8")
    form, base = uic.loadUiType(str(fixed))
    assert form.__name__ == "Ui_Scratch" and base.__name__ == "QDialog"
    with pytest.raises(SyntaxError):  # PyQt5's uic writes 'Qt::Orientation::Horizontal' into the code it runs
        uic.loadUiType(str(planted))
