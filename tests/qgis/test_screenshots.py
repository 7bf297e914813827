"""Every algorithm's dialog opens offscreen with the plugin's defaults and is saved as a screenshot a person can
open: artifacts/screenshots/<algorithm>.png (git-ignored, written on every run)."""

import pytest
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

from spacenet_toolkit.processing_provider.provider import ALGORITHMS

ATLANTA = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"


@pytest.fixture
def dialogs(provider, qgis_iface, monkeypatch):
    """Processing's dialogs need a browser model; pytest-qgis's iface stub answers a MagicMock."""
    from qgis.gui import QgsBrowserGuiModel

    model = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model)
    return provider


@pytest.mark.parametrize("name", [cls().name() for cls in ALGORITHMS])
def test_the_dialog_opens_and_is_saved_as_a_screenshot(dialogs, name, fixtures, save_screenshot, qtbot):
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    raster = QgsRasterLayer(str(fixtures / ATLANTA), "atlanta")
    QgsProject.instance().addMapLayer(raster)
    try:
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(f"spacenet:{name}")
        dialog = AlgorithmDialog(algorithm)
        qtbot.addWidget(dialog)
        if algorithm.parameterDefinition("INPUT") is not None:
            dialog.setParameters({"INPUT": raster.id()})
        dialog.resize(900, 760)
        dialog.show()
        # the help panel shows the algorithm's help text, and every parameter has a widget
        assert algorithm.shortHelpString() and len(algorithm.shortHelpString()) > 200
        wrappers = dialog.mainWidget().wrappers
        assert {p.name() for p in algorithm.parameterDefinitions()} <= set(wrappers)
        # nothing is cut at the right edge: the parameters fit the panel's width (they may scroll down)
        from qgis.PyQt.QtWidgets import QScrollArea

        qtbot.wait(50)  # the layout settles
        overflow = [area.horizontalScrollBar().maximum() for area in dialog.mainWidget().findChildren(QScrollArea)
                    if area.isVisible()]
        save_screenshot(dialog, name)
        assert overflow and max(overflow) <= 4, overflow
    finally:
        QgsProject.instance().removeAllMapLayers()
