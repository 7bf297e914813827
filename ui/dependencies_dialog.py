"""The *SpaceNet > Python dependencies…* dialog: which packages the plugin uses and whether they are here, an
*Install missing* button and one button per optional extra (with its download size), pip's log and progress, and,
when pip cannot install, why and the commands to run by hand.

Thin by design: ``core.installer`` decides what to install and runs pip; the install runs in a QgsTask, so QGIS
stays responsive and the task manager shows it, and Cancel stops pip. Afterwards the plugin's packages folder is
put on the path and the provider loads its algorithms again, or, where a package had been imported before,
the dialog asks for a restart.
"""

from __future__ import annotations

import sys

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ..core import dependencies, installer
from ..qgis_adapter import plugin_packages

MISSING_COLOUR = QColor("#b3261e")
ERROR_STYLE = "color: #b3261e;"
BY_HAND_NOTE = ("Run it in the Python that QGIS uses: on Windows in the OSGeo4W Shell, on macOS with QGIS's "
                "bundled python3, on Linux with the python3 of your QGIS packages. Then restart QGIS.")


def tr(text: str) -> str:
    return QgsApplication.translate("DependenciesDialog", text)


class InstallTask(QgsTask):
    """``core.installer.install`` on a worker thread; ``line`` carries pip's output to the dialog."""

    line = pyqtSignal(float, str)

    def __init__(self, plan, target, python=None, pip_args=()):
        super().__init__(tr("Installing Python packages for SpaceNet Toolkit"), QgsTask.Flag.CanCancel)
        self.plan, self.target, self.python, self.pip_args = plan, target, python, tuple(pip_args)
        self.outcome = None

    def run(self) -> bool:
        try:
            self.outcome = installer.install(self.plan, self.target, self.python, report=self._report,
                                             is_canceled=self.isCanceled, pip_args=self.pip_args)
        except Exception as error:  # noqa: BLE001 - the dialog shows it, with the commands to run by hand
            self.outcome = installer.InstallResult("failed", f"The installer stopped: {error!r}", self.plan)
        return self.outcome.ok

    def _report(self, fraction, message) -> None:
        self.setProgress(100.0 * fraction)
        self.line.emit(float(fraction), message or "")


class DependenciesDialog(QDialog):
    """``provider``: the plugin's Processing provider (its algorithms are loaded again after an install);
    ``target``: the packages folder (the profile's, by default); ``python`` and ``pip_args`` go to the installer."""

    installFinished = pyqtSignal(object)  # noqa: N815 - Qt's naming: the InstallResult

    def __init__(self, parent=None, provider=None, target=None, python=None, pip_args=()):
        super().__init__(parent)
        self.setObjectName("SpaceNetDependenciesDialog")
        self.setWindowTitle(tr("SpaceNet Toolkit: Python dependencies"))
        self.resize(900, 860)
        self.provider = provider
        self.target = target if target is not None else plugin_packages.packages_folder()
        self.python, self.pip_args = python, tuple(pip_args)
        self.task = None
        self.last_result = None
        self._close_when_done = False
        self._build()
        self.refresh()

    # ---------------------------------------------------------------------------------------------- layout
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        intro = QLabel(tr(
            "SpaceNet Toolkit uses these Python packages. <b>Install missing</b> downloads what is missing with "
            "pip into <code>{folder}</code>, a folder of your QGIS profile; packages QGIS ships (numpy, GDAL) "
            "are never replaced.").format(folder=self.target))
        intro.setWordWrap(True)
        intro.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(intro)

        self.table = self._table(["Package", "Status", "Version", "Used for"])
        self.table.setObjectName("packagesTable")
        layout.addWidget(self.table)
        row = QHBoxLayout()
        self.unavailable_label = QLabel()
        self.unavailable_label.setObjectName("unavailableLabel")
        self.unavailable_label.setWordWrap(True)
        row.addWidget(self.unavailable_label, 1)
        self.install_button = QPushButton(tr("Install missing"))
        self.install_button.setObjectName("installMissingButton")
        self.install_button.clicked.connect(self.install_missing)
        row.addWidget(self.install_button)
        layout.addLayout(row)

        extras = QGroupBox(tr("Optional extras"))
        extras_layout = QVBoxLayout(extras)
        self.extras_table = self._table(["Package", "Status", "Download", "Used for", ""])
        self.extras_table.setObjectName("extrasTable")
        extras_layout.addWidget(self.extras_table)
        self.extra_buttons = {}
        layout.addWidget(extras)

        self.progress = QProgressBar()
        self.progress.setObjectName("installProgress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status_label = QLabel()
        self.status_label.setObjectName("statusLabel")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)
        self.log = QPlainTextEdit()
        self.log.setMinimumHeight(80)
        self.log.setObjectName("pipLog")
        self.log.setReadOnly(True)
        self.log.setPlaceholderText(tr("pip's log appears here during an install."))
        layout.addWidget(self.log, 2)
        self.manual_box = QGroupBox(tr("Install by hand"))
        self.manual_box.setObjectName("manualBox")
        manual_layout = QVBoxLayout(self.manual_box)
        self.manual_commands = QPlainTextEdit()
        self.manual_commands.setObjectName("manualCommands")
        self.manual_commands.setReadOnly(True)
        self.manual_commands.setFixedHeight(self.manual_commands.fontMetrics().lineSpacing() * 2 + 12)
        manual_layout.addWidget(self.manual_commands)
        note = QLabel(tr(BY_HAND_NOTE))
        note.setWordWrap(True)
        manual_layout.addWidget(note)
        self.manual_box.setVisible(False)
        layout.addWidget(self.manual_box)

        self.buttons = QDialogButtonBox()
        self.cancel_button = self.buttons.addButton(tr("Cancel install"), QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.clicked.connect(self.reject)
        layout.addWidget(self.buttons)

    @staticmethod
    def _table(headers) -> QTableWidget:
        table = QTableWidget(0, len(headers))
        table.setHorizontalHeaderLabels([tr(h) for h in headers])
        table.verticalHeader().setVisible(False)
        table.setWordWrap(False)  # one line a package (the whole purpose in the tooltip): every row in view
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        return table

    # ---------------------------------------------------------------------------------------------- state
    def missing(self) -> list:
        return dependencies.missing(dependencies.PACKAGES)

    def refresh(self) -> None:
        """Fill both tables and the buttons from what imports now."""
        self.table.setRowCount(0)
        for package in dependencies.PACKAGES.values():
            self._add_row(self.table, package.module, package.purpose)
        absent = self.missing()
        running = self.task is not None
        self.install_button.setEnabled(bool(absent) and not running)
        self.install_button.setText(tr("Install missing ({count})").format(count=len(absent)) if absent
                                    else tr("Nothing missing"))
        unavailable = getattr(self.provider, "unavailable", {}) or {}
        self.unavailable_label.setText(
            tr("Algorithms not available: {ids}").format(ids=", ".join(sorted(unavailable))) if unavailable
            else tr("Every algorithm is available."))

        self.extras_table.setRowCount(0)
        self.extra_buttons = {}
        for extra in installer.EXTRAS.values():
            row = self._add_row(self.extras_table, extra.module, extra.purpose, size=extra.download_mb)
            self.extras_table.item(row, 2).setToolTip(tr("Source of the figure: {source}").format(
                source=extra.size_source))
            button = QPushButton(tr("Install (about {mb} MB)").format(mb=extra.download_mb))
            button.setObjectName(f"installExtra_{extra.module}")
            button.setEnabled(not dependencies.is_installed(extra.module) and not running)
            button.clicked.connect(lambda _checked=False, module=extra.module: self.install_extra(module))
            self.extras_table.setCellWidget(row, 4, button)
            self.extra_buttons[extra.module] = button
        for table in (self.table, self.extras_table):
            _fit_rows(table)

    def _add_row(self, table, module, purpose, size=None) -> int:
        row = table.rowCount()
        table.insertRow(row)
        installed = dependencies.is_installed(module)
        cells = [module, tr("installed") if installed else tr("missing"),
                 (dependencies.installed_version(module) if installed else "") if size is None
                 else tr("about {mb} MB").format(mb=size),
                 purpose]
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            if column == 1 and not installed:
                item.setForeground(MISSING_COLOUR)
            table.setItem(row, column, item)
        return row

    # ---------------------------------------------------------------------------------------------- installing
    def install_missing(self) -> None:
        self.install(installer.plan_required(self.missing(), exclude=[self.target]))

    def install_extra(self, module: str) -> None:
        self.install(installer.plan_extra(module, exclude=[self.target]))

    def install(self, plan) -> None:
        """Run the installer for ``plan`` (a core.installer.Plan) in a task; installFinished tells the end."""
        self.log.clear()
        self.manual_box.setVisible(False)
        self.status_label.setStyleSheet("")
        self.status_label.setText(tr("Installing {packages}…").format(packages=", ".join(plan.requirements)))
        self.progress.setValue(0)
        self.task = InstallTask(plan, self.target, self.python, self.pip_args)
        self.task.line.connect(self._on_line)
        self.task.taskCompleted.connect(self._on_ended)
        self.task.taskTerminated.connect(self._on_ended)
        self.cancel_button.setEnabled(True)
        self.refresh()  # the install buttons wait while pip runs
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self) -> None:
        if self.task is not None:
            self.status_label.setText(tr("Cancelling: stopping pip…"))
            self.task.cancel()

    def _on_line(self, fraction: float, line: str) -> None:
        self.progress.setValue(int(round(100 * fraction)))
        if line:
            self.log.appendPlainText(line)

    def _on_ended(self) -> None:
        task, self.task = self.task, None
        if task is None:
            return
        result = task.outcome or installer.InstallResult("canceled", tr("Cancelled before pip started."),
                                                         task.plan)
        self.cancel_button.setEnabled(False)
        self.last_result = result
        if result.status == "installed":
            self.progress.setValue(100)
            self.status_label.setText(result.message + " " + self._after_install(result))
        elif result.ok:
            self.status_label.setText(result.message)
        else:
            self.progress.setValue(0)
            self.status_label.setStyleSheet(ERROR_STYLE)
            self.status_label.setText(result.message)
            if result.manual_commands:
                self.manual_commands.setPlainText("\n".join(result.manual_commands))
                self.manual_box.setVisible(True)
        self.refresh()
        self.installFinished.emit(result)
        if self._close_when_done:
            super().reject()

    def _after_install(self, result) -> str:
        """Make the new packages usable now, or say that QGIS must restart."""
        plugin_packages.add_to_path(self.target)
        imported_before = [module for module in result.plan.modules if module in sys.modules]
        if imported_before:
            return tr("Restart QGIS to use them ({modules} had been imported before).").format(
                modules=", ".join(imported_before))
        if self.provider is None:
            return tr("Restart QGIS to use them.")
        before = set(getattr(self.provider, "unavailable", {}))
        self.provider.refreshAlgorithms()
        now_available = sorted(before - set(self.provider.unavailable))
        if now_available:
            return tr("Now in the Processing Toolbox: {ids}. The SpaceNet menu lists them after QGIS restarts."
                      ).format(ids=", ".join(now_available))
        return tr("Available now.")

    def reject(self) -> None:
        if self.task is not None:  # closing stops pip first: nothing is left half-installed
            self._close_when_done = True
            self.cancel()
            return
        super().reject()


def _fit_rows(table) -> None:
    """Every row in view where there is room (the lists are short); on a small screen they scroll."""
    table.resizeRowsToContents()
    frame = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth() + 2
    rows = [table.rowHeight(row) for row in range(table.rowCount())]
    table.setMaximumHeight(frame + sum(rows))
    table.setMinimumHeight(frame + sum(rows[:3]))


def show_dependencies_dialog(parent, provider) -> DependenciesDialog:
    dialog = DependenciesDialog(parent, provider=provider)
    dialog.exec()
    return dialog
