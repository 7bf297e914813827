"""SpaceNet > Python dependencies…: the packages with their state, the Install buttons running the installer (real
pip, against indexes that cannot answer), why an install failed and the commands to run by hand, Cancel, and a
real install (a small package from the package index) after which the algorithm that needed it is offered."""

import os
import sys

import numpy
import pytest
from qgis.core import QgsProcessingOutputNumber
from qgis.PyQt.QtCore import QCoreApplication, QTimer
from qgis.PyQt.QtWidgets import QApplication, QMenu

from spacenet_toolkit.core import dependencies, installer
from spacenet_toolkit.plugin import MENU_OBJECT_NAME
from spacenet_toolkit.processing_provider.base import SpaceNetAlgorithm
from spacenet_toolkit.processing_provider.provider import SpaceNetProvider
from spacenet_toolkit.ui.dependencies_dialog import DependenciesDialog

UNREACHABLE = ["--index-url", "http://127.0.0.1:9/", "--no-cache-dir", "--retries", "1"]


@pytest.fixture
def pip_without_config(monkeypatch):
    """pip sees only the index the test names (this machine's pip configuration finds packages on its disk)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in list(os.environ):
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE":
            monkeypatch.delenv(name)


def rows(table) -> dict:
    return {table.item(r, 0).text(): [table.item(r, c).text() if table.item(r, c) else ""
                                      for c in range(table.columnCount())] for r in range(table.rowCount())}


@pytest.fixture
def dialog(qgis_processing, qtbot, register, tmp_path):
    """make(**options): the dialog for a provider registered for the test, installing into a scratch profile."""
    provider = register(SpaceNetProvider())

    def make(target=tmp_path / "profile" / "python" / "packages", **kwargs):
        provider.refreshAlgorithms()  # what the test hides is missing for the provider too, as at QGIS's start
        created = DependenciesDialog(provider=provider, target=target, **kwargs)
        qtbot.addWidget(created)
        return created

    return make


def test_it_lists_every_package_installed_or_missing_with_version_and_purpose(dialog, monkeypatch, qtbot, tmp_path,
                                                                              save_screenshot):
    monkeypatch.setitem(sys.modules, "rasterio", None)  # as if it were not installed
    shown = dialog(target=tmp_path / "profiles" / "default" / "python" / "spacenet_toolkit_packages")

    packages = rows(shown.table)
    assert list(packages) == list(dependencies.PACKAGES)
    assert packages["numpy"][1:3] == ["installed", numpy.__version__]
    assert packages["rasterio"][1:3] == ["missing", ""]
    assert packages["rasterio"][3] == dependencies.PACKAGES["rasterio"].purpose
    assert shown.install_button.isEnabled() and shown.install_button.text() == "Install missing (1)"
    assert "extractbuildings" in shown.unavailable_label.text()
    extras = rows(shown.extras_table)
    assert set(extras) == set(installer.EXTRAS)
    assert extras["torch"][1:3] == ["missing", f"about {installer.EXTRAS['torch'].download_mb} MB"]
    assert shown.extra_buttons["torch"].isEnabled()  # PyTorch is not in the test environment
    assert not shown.manual_box.isVisibleTo(shown) and not shown.cancel_button.isEnabled()
    shown.show()
    qtbot.wait(100)
    save_screenshot(shown, "dependencies_dialog")  # the README's install step


def test_install_shows_pips_log_why_it_failed_and_the_commands_to_run_by_hand(dialog, qtbot, pip_without_config,
                                                                             tmp_path, save_screenshot):
    shown = dialog(pip_args=UNREACHABLE)
    with qtbot.waitSignal(shown.installFinished, timeout=120_000) as finished:
        shown.extra_buttons["torch"].click()
        assert shown.cancel_button.isEnabled() and not shown.extra_buttons["torch"].isEnabled()  # while pip runs
    result = finished.args[0]

    assert result.status == "unreachable"
    assert shown.status_label.text().startswith("pip could not reach the package index")
    assert "Connection refused" in shown.status_label.text()
    assert "No matching distribution found for torch" in shown.log.toPlainText()
    assert shown.manual_box.isVisibleTo(shown)
    assert shown.manual_commands.toPlainText() == installer.plan_extra("torch").manual_command
    assert not shown.cancel_button.isEnabled() and shown.extra_buttons["torch"].isEnabled()
    assert not (tmp_path / "profile" / "python" / "packages").exists()
    assert [p.name for p in (tmp_path / "profile" / "python").iterdir()] == []  # no temporary leftover
    shown.show()
    qtbot.wait(100)  # the layout takes the manual commands box in
    save_screenshot(shown, "dependencies_dialog_pip_failed")


def test_install_missing_runs_the_installer_for_what_does_not_import(dialog, qtbot, monkeypatch, pip_without_config):
    monkeypatch.setitem(sys.modules, "networkx", None)  # blocked here, yet installed where pip looks
    shown = dialog(pip_args=UNREACHABLE)
    with qtbot.waitSignal(shown.installFinished, timeout=120_000) as finished:
        shown.install_button.click()
    result = finished.args[0]

    assert result.plan.modules == ("networkx",)
    assert result.status == "nothing-to-install"  # pip resolved it without the index: it is installed
    assert "restart QGIS" in shown.status_label.text()
    assert "Requirement already satisfied: networkx" in shown.log.toPlainText()


def test_cancel_stops_pip(dialog, qtbot, pip_without_config):
    import silent_server

    with silent_server.SilentServer() as index:  # an index that never answers: pip waits until stopped
        shown = dialog(pip_args=["--index-url", index.base_url + "/", "--no-cache-dir"])
        with qtbot.waitSignal(shown.installFinished, timeout=120_000) as finished:
            shown.extra_buttons["torch"].click()
            qtbot.waitUntil(lambda: bool(index.requests), timeout=60_000)
            shown.cancel_button.click()
    assert finished.args[0].status == "canceled"
    assert "Cancelled" in shown.status_label.text() and not shown.manual_box.isVisibleTo(shown)


def test_the_menu_item_opens_the_dialog(plugin, qgis_iface, monkeypatch):
    monkeypatch.setitem(sys.modules, "rasterio", None)
    seen = []

    def read_and_close():
        opened = QApplication.activeModalWidget()
        seen.append(rows(opened.table) if isinstance(opened, DependenciesDialog) else opened)
        opened.close()

    QTimer.singleShot(0, read_and_close)
    menu = qgis_iface.mainWindow().findChild(QMenu, MENU_OBJECT_NAME)
    next(a for a in menu.actions() if a.text() == "Python dependencies…").trigger()
    QCoreApplication.processEvents()
    assert seen and isinstance(seen[0], dict), seen
    assert seen[0]["rasterio"][1] == "missing" and seen[0]["numpy"][1] == "installed"


class NeedsTermcolor(SpaceNetAlgorithm):
    REQUIRES = ("termcolor",)  # small, pure Python, and not in the test environment

    def name(self):
        return "needstermcolor"

    def displayName(self):  # noqa: N802
        return "Needs termcolor"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addOutput(QgsProcessingOutputNumber("ANSWER", "Answer"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        return {"ANSWER": 42}


def test_after_an_install_the_algorithms_are_offered_without_a_restart(qgis_processing, register, qtbot, tmp_path):
    provider = register(SpaceNetProvider([NeedsTermcolor], models_dir=None))
    assert list(provider.unavailable) == ["spacenet:needstermcolor"]
    target = tmp_path / "profile" / "python" / "packages"
    shown = DependenciesDialog(provider=provider, target=target)
    qtbot.addWidget(shown)
    try:
        with qtbot.waitSignal(shown.installFinished, timeout=300_000) as finished:
            shown.install(installer.plan_required(["termcolor"], gpu=False))
        result = finished.args[0]
        assert result.status == "installed", "\n".join(result.log)
        assert (target / "termcolor").is_dir() and sys.path[-1] == str(target)
        assert [a.id() for a in provider.algorithms()] == ["spacenet:needstermcolor"] and provider.unavailable == {}
        assert "Now in the Processing Toolbox: spacenet:needstermcolor" in shown.status_label.text()
        assert shown.progress.value() == 100 and not shown.manual_box.isVisibleTo(shown)
    finally:
        if str(target) in sys.path:
            sys.path.remove(str(target))
        sys.modules.pop("termcolor", None)
