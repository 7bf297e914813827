"""The mapper's one-click jobs on the SpaceNet toolbar and menu: each opens the right algorithm with the map's
active layer and extent filled in."""

from qgis.core import QgsCoordinateReferenceSystem, QgsProject, QgsRasterLayer, QgsRectangle, QgsVectorLayer
from qgis.PyQt.QtWidgets import QMenu

import spacenet_toolkit
from spacenet_toolkit.plugin import MENU_OBJECT_NAME, QUICK_ACTIONS

ATLANTA = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"


def test_the_toolbar_holds_the_four_jobs_and_the_menu_starts_with_them(plugin, qgis_iface):
    labels = [label for label, _ in QUICK_ACTIONS] + ["Adjust thresholds…", "Review and score…"]
    assert [action.text() for action in plugin.toolbar.actions()] == labels
    menu = qgis_iface.mainWindow().findChild(QMenu, MENU_OBJECT_NAME)
    assert [action.text() for action in menu.actions()][: len(labels)] == labels


def test_each_job_opens_its_algorithm_with_the_map_filled_in(plugin, qgis_iface, fixtures, monkeypatch):
    raster = QgsRasterLayer(str(fixtures / ATLANTA), "atlanta")
    polygons = QgsVectorLayer(str(fixtures / "f1_oracle" / "pred.geojson"), "proposals")
    QgsProject.instance().addMapLayers([raster, polygons])
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32616"))
    canvas.setExtent(QgsRectangle(741000, 3737000, 741200, 3737200))
    opened = []
    monkeypatch.setattr(plugin, "_open_algorithm", lambda algorithm_id, _checked=False: opened.append(
        (algorithm_id, plugin.dialog_defaults(algorithm_id))))
    # the actions call the plugin's method through functools.partial bound at initGui: rebuild them
    plugin.unload()
    plugin.initGui()
    try:
        for layer, (label, algorithm_id) in zip((raster, raster, raster, polygons, polygons), QUICK_ACTIONS):
            qgis_iface.setActiveLayer(layer)
            next(a for a in plugin.toolbar.actions() if a.text() == label).trigger()
            assert opened[-1][0] == algorithm_id
        by_id = dict(opened)
        for algorithm_id in ("spacenet:extractbuildings", "spacenet:extractroads"):
            assert by_id[algorithm_id]["INPUT"] == raster.id()
            assert by_id[algorithm_id]["EXTENT"].endswith("[EPSG:32616]")
        assert by_id["spacenet:fetchtiles"]["EXTENT"] == by_id["spacenet:extractbuildings"]["EXTENT"]
        assert by_id["spacenet:scoref1"] == {"PROPOSALS": polygons.id()}
        # the mapper's corrected layer is the active one; the canvas is the area they reviewed
        assert by_id["spacenet:adaptmodel"]["FOOTPRINTS"] == polygons.id()
        assert by_id["spacenet:adaptmodel"]["EXTENT"] == by_id["spacenet:extractbuildings"]["EXTENT"]
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_review_and_score_opens_the_dock_once_and_unload_removes_it(qgis_iface):
    from spacenet_toolkit.ui.review_dock import ReviewDock

    loaded = spacenet_toolkit.classFactory(qgis_iface)
    loaded.initGui()
    try:
        action = next(a for a in loaded.toolbar.actions() if a.text() == "Review and score…")
        action.trigger()
        action.trigger()
        docks = qgis_iface.mainWindow().findChildren(ReviewDock)
        assert len(docks) == 1 and not docks[0].isHidden()
    finally:
        loaded.unload()
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert qgis_iface.mainWindow().findChildren(ReviewDock) == []


def test_adjust_thresholds_opens_one_dialog_and_unload_closes_it(qgis_iface):
    from spacenet_toolkit.ui import thresholds_dialog

    loaded = spacenet_toolkit.classFactory(qgis_iface)
    loaded.initGui()
    try:
        action = next(a for a in loaded.toolbar.actions() if a.text() == "Adjust thresholds…")
        action.trigger()
        first = thresholds_dialog._open_dialog
        action.trigger()
        assert first is not None and thresholds_dialog._open_dialog is first and not first.isHidden()
    finally:
        loaded.unload()
    assert thresholds_dialog._open_dialog is None
