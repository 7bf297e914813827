"""The plugin inside a real QGIS application: provider, menu and toolbar come with it and leave with it."""

import logging
from xml.etree import ElementTree

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, QEvent
from qgis.PyQt.QtWidgets import QAction, QMenu, QToolBar

import spacenet_toolkit
from spacenet_toolkit.plugin import MENU_OBJECT_NAME, TOOLBAR_OBJECT_NAME
from spacenet_toolkit.processing_provider.provider import ALGORITHMS, MODELS_DIR

PACKAGE_LOGGER = logging.getLogger("spacenet_toolkit")


def offered_models(offered_ids):
    """The shipped models whose steps are all offered: the provider offers no model that could not run."""
    models = set()
    for path in MODELS_DIR.glob("*.model3"):
        steps = {o.get("value") for o in ElementTree.parse(path).iter("Option") if o.get("name") == "alg_id"}
        if steps <= set(offered_ids):
            models.add(f"spacenet:{path.stem}")
    return models


def flush_deleted_objects():
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def footprint(iface):
    """Everything a plugin can leave behind in QGIS, counted."""
    window = iface.mainWindow()
    registry = QgsApplication.processingRegistry()
    return {
        "actions": len(window.findChildren(QAction)),
        "menus": len(window.findChildren(QMenu)),
        "menu bar entries": len(window.menuBar().actions()),
        "toolbars": len(window.findChildren(QToolBar)),
        "providers": sorted(p.id() for p in registry.providers()),
        "log handlers": len(PACKAGE_LOGGER.handlers),
    }


def test_plugin_registers_the_spacenet_provider_menu_and_toolbar(plugin, qgis_iface):
    provider = QgsApplication.processingRegistry().providerById("spacenet")
    assert provider is plugin.provider
    assert provider.longName() == "SpaceNet Toolkit"
    assert not provider.icon().isNull()

    menu_bar = qgis_iface.mainWindow().menuBar()
    menu = qgis_iface.mainWindow().findChild(QMenu, MENU_OBJECT_NAME)
    assert menu.menuAction() in menu_bar.actions()
    assert menu.title().replace("&", "") == "SpaceNet"
    assert plugin.toolbar.objectName() == TOOLBAR_OBJECT_NAME

    offered = {algorithm.id() for algorithm in provider.algorithms()}
    expected = {f"spacenet:{cls().name()}" for cls in ALGORITHMS if not cls.missing_dependencies()}
    assert "spacenet:fetchextractscore" in offered_models(expected)
    assert offered == expected | offered_models(expected)
    menu_texts = [action.text() for action in menu.actions()]
    assert all(algorithm.displayName() in menu_texts for algorithm in provider.algorithms())
    assert "Python dependencies…" in menu_texts


def test_unload_removes_everything_even_after_twenty_cycles(qgis_iface):
    before = footprint(qgis_iface)
    for _ in range(20):
        plugin = spacenet_toolkit.classFactory(qgis_iface)
        plugin.initGui()
        loaded = footprint(qgis_iface)
        plugin.unload()
        flush_deleted_objects()
    after = footprint(qgis_iface)

    # The plugin really added things while loaded, so the comparison below means something.
    assert loaded["menu bar entries"] == before["menu bar entries"] + 1
    assert loaded["toolbars"] == before["toolbars"] + 1
    assert "spacenet" in loaded["providers"] and "spacenet" not in before["providers"]
    assert after == before


def test_qgis_process_style_loading_registers_only_the_provider(qgis_iface):
    """qgis_process calls initProcessing and never initGui."""
    before = footprint(qgis_iface)
    plugin = spacenet_toolkit.classFactory(qgis_iface)
    plugin.initProcessing()
    plugin.initProcessing()  # desktop QGIS may call it again through initGui
    assert [p.id() for p in QgsApplication.processingRegistry().providers()].count("spacenet") == 1
    assert footprint(qgis_iface)["menu bar entries"] == before["menu bar entries"]
    plugin.unload()
    assert footprint(qgis_iface) == before


