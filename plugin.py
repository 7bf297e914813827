"""The QGIS plugin object: registers the Processing provider and adds the SpaceNet menu and toolbar."""

import sys
from functools import partial

from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QMenu

from . import qgis_logging
from .processing_provider.base import tr
from .processing_provider.provider import SpaceNetProvider
from .qgis_adapter import gdal_messages, plugin_packages

MENU_OBJECT_NAME = "SpaceNetMenu"
TOOLBAR_OBJECT_NAME = "SpaceNetToolbar"
# The mapper's one-click jobs (toolbar and top of the menu): label, algorithm. Each opens the algorithm's
# dialog with the active layer and the canvas extent filled in.
QUICK_ACTIONS = (
    ("Extract buildings in view", "spacenet:extractbuildings"),
    ("Extract roads in view", "spacenet:extractroads"),
    ("Fetch tiles here", "spacenet:fetchtiles"),
    ("Score layers", "spacenet:scoref1"),
    ("Adapt model to this area…", "spacenet:adaptmodel"),
)


class SpaceNetToolkitPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None  # kept referenced: an unreferenced provider is garbage-collected
        self.menu = None
        self.toolbar = None
        self.actions = []
        self._log_handler = None
        self._review_dock_shown = False
        self._thresholds_shown = False

    # qgis_process calls only initProcessing; the desktop calls initGui, which calls it too.
    def initProcessing(self):  # noqa: N802 - QGIS API
        if self._log_handler is None:
            self._log_handler = qgis_logging.install()
        gdal_messages.install()  # qgis_process only: no raw GDAL "ERROR" for a raster that is all nodata
        plugin_packages.add_to_path()  # what the Install button put in the profile, after QGIS's own packages
        if self.provider is None:
            self.provider = SpaceNetProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 - QGIS API
        self.initProcessing()
        main_window = self.iface.mainWindow()

        self.toolbar = self.iface.addToolBar(tr("SpaceNet"))
        self.toolbar.setObjectName(TOOLBAR_OBJECT_NAME)

        self.menu = QMenu(tr("&SpaceNet"), main_window.menuBar())
        self.menu.setObjectName(MENU_OBJECT_NAME)
        help_menu = self.iface.helpMenu()
        if isinstance(help_menu, QMenu):  # put "SpaceNet" before "Help", as QGIS's own menus are
            main_window.menuBar().insertMenu(help_menu.menuAction(), self.menu)
        else:
            main_window.menuBar().addMenu(self.menu)

        offered = {algorithm.id(): algorithm for algorithm in self.provider.algorithms()}
        for label, algorithm_id in QUICK_ACTIONS:
            if algorithm_id in offered:  # an algorithm whose packages are missing is not offered
                self._add_action(offered[algorithm_id].icon(), tr(label), partial(self._open_algorithm, algorithm_id),
                                 on_toolbar=True)
        self._add_action(QIcon(), tr("Adjust thresholds…"), self._show_thresholds, on_toolbar=True)
        self._add_action(QIcon(), tr("Review and score…"), self._show_review_dock, on_toolbar=True)
        self.menu.addSeparator()
        for algorithm in offered.values():
            self._add_action(algorithm.icon(), algorithm.displayName(), partial(self._open_algorithm, algorithm.id()))
        self.menu.addSeparator()
        self._add_action(QIcon(), tr("Python dependencies…"), self._show_dependencies)

    def _add_action(self, icon, text, slot, on_toolbar=False):
        action = QAction(icon, text, self.iface.mainWindow())
        action.triggered.connect(slot)
        self.menu.addAction(action)
        if on_toolbar:
            self.toolbar.addAction(action)
        self.actions.append(action)
        return action

    def _open_algorithm(self, algorithm_id, _checked=False):
        import processing  # QGIS's Processing plugin: only loaded in the desktop

        processing.execAlgorithmDialog(algorithm_id, self.dialog_defaults(algorithm_id))

    def dialog_defaults(self, algorithm_id) -> dict:
        """Values a mapper expects from the map: EXTENT starts as the canvas extent, a raster INPUT or the
        PROPOSALS of a scorer as the active layer."""
        algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
        if algorithm is None:
            return {}
        defaults = {}
        input_parameter = algorithm.parameterDefinition("INPUT")
        active = self.iface.activeLayer()
        if input_parameter is not None and input_parameter.type() == "raster" and isinstance(active, QgsRasterLayer):
            defaults["INPUT"] = active.id()
        for layer_parameter in ("PROPOSALS", "FOOTPRINTS"):  # the layer a mapper scores, or has corrected
            if algorithm.parameterDefinition(layer_parameter) is not None and isinstance(active, QgsVectorLayer):
                defaults[layer_parameter] = active.id()
        canvas = self.iface.mapCanvas()
        if algorithm.parameterDefinition("EXTENT") is not None and canvas is not None and not canvas.extent().isEmpty():
            extent = canvas.extent()
            crs = canvas.mapSettings().destinationCrs().authid()
            defaults["EXTENT"] = (
                f"{extent.xMinimum()},{extent.xMaximum()},{extent.yMinimum()},{extent.yMaximum()} [{crs}]"
            )
        return defaults

    def _show_thresholds(self, _checked=False):
        from .ui.thresholds_dialog import open_thresholds_dialog  # widgets load when first asked for

        open_thresholds_dialog(self.iface)
        self._thresholds_shown = True

    def _show_review_dock(self, _checked=False):
        from .ui.review_dock import show_review_dock  # widgets load when first asked for

        show_review_dock(self.iface)
        self._review_dock_shown = True

    def _show_dependencies(self, _checked=False):
        from .ui.dependencies_dialog import show_dependencies_dialog  # widgets load when first asked for

        show_dependencies_dialog(self.iface.mainWindow(), self.provider)

    def unload(self):
        if self._thresholds_shown:
            from .ui.thresholds_dialog import close_thresholds_dialog

            close_thresholds_dialog()
            self._thresholds_shown = False
        if self._review_dock_shown:
            from .ui.review_dock import close_review_dock

            close_review_dock(self.iface)
            self._review_dock_shown = False
        cluster = sys.modules.get(f"{__package__}.core.extract.cluster")
        if cluster is not None:  # worker processes of a local Dask cluster end with the plugin
            cluster.close_local()
        for action in self.actions:
            action.deleteLater()
        self.actions = []
        if self.menu is not None:
            self.iface.mainWindow().menuBar().removeAction(self.menu.menuAction())
            self.menu.deleteLater()
            self.menu = None
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self._log_handler is not None:
            qgis_logging.remove(self._log_handler)
            self._log_handler = None
