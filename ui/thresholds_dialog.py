"""The thresholds dialog: building threshold, minimum area, simplification and regularisation, with a live preview.

Thin by design: the widgets gather a ``core.extract.building_options.BuildingOptions``; ``core.extract.preview`` turns
the chosen probability raster (read once per view, no model run) into the footprints of the map view, and, on Apply,
into the footprints of the whole raster, exactly as the preview showed them. The preview is a temporary
layer with dashed outlines whose features are replaced after every change, debounced, and computed on a
worker thread so that dragging a slider never waits for a segmentation.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeature,
    QgsField,
    QgsFillSymbol,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsSingleSymbolRenderer,
    QgsTask,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.gui import QgsFileWidget, QgsMapCanvas
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QObject, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox

from ..core import progress
from ..core.extract import preview
from ..core.extract.building_options import BuildingOptions
from ..qgis_adapter.geometry import from_wkb
from ..qgis_adapter.layers import NotARasterFileError
from ..qgis_adapter.qt_compat import FieldType
from ..qgis_adapter.sinks import fields_of
from ..qgis_adapter.styles import BuildingStyler
from ..qgis_adapter.web_sources import dataset_name

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("thresholds.ui")))

DEBOUNCE_MS = 100  # a drag produces a value every few ms: the preview follows once it pauses this long
ERROR_STYLE = "color: #b3261e;"
NOTE_STYLE = "color: #7a5a00;"
# slider position -> value: threshold in hundredths, minimum area in m², simplification in tenths of a metre
THRESHOLD_STEPS, MIN_AREA_STEP, SIMPLIFY_STEPS = 100, 1.0, 10
PREVIEW_NAME = "Building footprints (preview)"


def preview_renderer() -> QgsSingleSymbolRenderer:
    """The footprints' colour with a dashed outline and a faint fill: it reads as not yet written."""
    symbol = QgsFillSymbol.createSimple({
        "color": "255,170,0,35", "outline_color": "255,120,0,255", "outline_style": "dash",
        "outline_width": "0.5", "outline_width_unit": "MM",
    })
    return QgsSingleSymbolRenderer(symbol)


class ThresholdsStyler(BuildingStyler):
    """Styles the footprints Apply writes and records the settings in the layer's metadata."""

    ABSTRACT = "Building footprints from a building probability raster by SpaceNet Toolkit (Adjust thresholds)."


@dataclass(frozen=True)
class PreviewRequest:
    """What the worker computes: the preview's footprints of a view at some options."""

    preview: preview.FootprintPreview
    options: BuildingOptions
    bounds: tuple  # xmin, ymin, xmax, ymax in the raster's CRS


def _compute(request: PreviewRequest):
    try:
        return request.preview.footprints(request.options, request.bounds)
    except Exception as error:  # handed to the dialog, which says what went wrong
        return error


class PreviewRunner(QObject):
    """Runs preview requests on one worker thread; while one runs, only the newest waiting request is kept."""

    ready = pyqtSignal(object, object)  # PreviewRequest, preview.Footprints or the exception it raised
    _done = pyqtSignal(object, object)  # emitted on the worker thread, delivered queued on this object's thread

    def __init__(self, parent=None):
        super().__init__(parent)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spacenet-preview")
        self._running = False
        self._waiting = None
        self._done.connect(self._finished)

    def submit(self, request: PreviewRequest):
        if self._running:
            self._waiting = request
        else:
            self._start(request)

    def busy(self) -> bool:
        return self._running or self._waiting is not None

    def shutdown(self):
        """Drops what waits and returns once the running request is done."""
        self._waiting = None
        self._executor.shutdown(wait=True)

    def _start(self, request):
        self._running = True
        future = self._executor.submit(_compute, request)
        future.add_done_callback(lambda done: self._emit_done(request, done.result()))

    def _emit_done(self, request, outcome):
        with contextlib.suppress(RuntimeError):  # the runner was deleted with its dialog meanwhile
            self._done.emit(request, outcome)

    def _finished(self, request, outcome):
        self._running = False
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            self._start(waiting)
        self.ready.emit(request, outcome)


class ApplyTask(QgsTask):
    """The footprints of the whole probability raster, computed in the background (QGIS's task manager)."""

    def __init__(self, source: preview.ProbabilityRaster, options: BuildingOptions, on_done):
        super().__init__(QgsApplication.translate("ThresholdsDialog", "Building footprints from {name}").format(
            name=Path(source.path).name), QgsTask.Flag.CanCancel)
        self.source = source
        self.options = options
        self.footprints = None
        self.error = ""
        self._on_done = on_done

    def run(self):
        try:
            self.footprints = preview.footprints_of_raster(
                self.source, self.options, report=lambda fraction, _message: self.setProgress(100 * fraction),
                is_canceled=self.isCanceled)
        except progress.Canceled:
            return False
        except Exception as error:  # said in the dialog: a task must not raise
            self.error = str(error)
            return False
        return True

    def finished(self, result):  # QGIS API: called on the main thread
        self._on_done(self, result)


class ThresholdsDialog(QDialog, FORM_CLASS):
    """Threshold, minimum area, simplification and regularisation of building footprints, previewed on the map.

    ``target`` is the QGIS interface or a map canvas (tests pass a QgsMapCanvas).
    """

    previewUpdated = pyqtSignal(int)  # noqa: N815 - Qt naming; the number of footprints shown
    applied = pyqtSignal(object)  # the layer Apply wrote, added to the project

    def __init__(self, target, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self._iface = None if isinstance(target, QgsMapCanvas) else target
        self._canvas = target if isinstance(target, QgsMapCanvas) else target.mapCanvas()
        self._preview = None  # core.extract.preview.FootprintPreview of the chosen raster
        self._preview_layer = None
        self._problem = ""
        self._shown = None  # the PreviewRequest whose footprints the preview layer holds
        self._task = None
        self._closed = False
        self._syncing = False
        self._requested_at = 0.0
        self.last_footprints = None  # the core.extract.preview.Footprints on show

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._update_preview)
        self._runner = PreviewRunner(self)
        self._runner.ready.connect(self._show_preview)

        self.progressBar.setVisible(False)
        self.noteLabel.setVisible(False)
        self.outputFile.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.outputFile.setFilter(self.tr("GeoPackage (*.gpkg)"))
        self.outputFile.lineEdit().setPlaceholderText(self.tr("[Save to temporary layer]"))
        self.applyButton = self.buttonBox.button(QDialogButtonBox.StandardButton.Apply)
        self.applyButton.setText(self.tr("Apply: write the footprints"))
        self.applyButton.setToolTip(self.tr("Footprints of the whole raster (not only the view) at these settings."))
        self.applyButton.clicked.connect(self.apply)
        self.buttonBox.rejected.connect(self.reject)

        # the BuildingOptions each spin box holds; regularize is the check box
        self._spins = {"threshold": self.thresholdSpin, "min_area_m2": self.minAreaSpin,
                       "min_score": self.minScoreSpin, "simplify_m": self.simplifySpin}
        pairs = (
            (self.thresholdSlider, self.thresholdSpin, 1 / THRESHOLD_STEPS),
            (self.minAreaSlider, self.minAreaSpin, MIN_AREA_STEP),
            (self.minScoreSlider, self.minScoreSpin, 1 / THRESHOLD_STEPS),
            (self.simplifySlider, self.simplifySpin, 1 / SIMPLIFY_STEPS),
        )
        for slider, spin, step in pairs:
            slider.valueChanged.connect(lambda at, spin=spin, step=step: self._slider_moved(spin, at * step))
            spin.valueChanged.connect(lambda value, slider=slider, step=step: self._spin_changed(slider, value / step))
        self.regularizeCheck.toggled.connect(self._schedule)
        self.previewGroup.toggled.connect(self._preview_toggled)
        self.set_options(preview.DEFAULT_OPTIONS)

        self.layerCombo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.layerCombo.setAllowEmptyLayer(True)
        self.layerCombo.setLayer(self._default_layer())
        self.layerCombo.layerChanged.connect(self._layer_changed)
        self._canvas.extentsChanged.connect(self._schedule)
        self._canvas.destinationCrsChanged.connect(self._schedule)
        QgsProject.instance().layerWillBeRemoved.connect(self._layer_removed)
        self._layer_changed(self.layerCombo.currentLayer())

    # --- what callers use ---------------------------------------------------------------------------------------
    def options(self) -> BuildingOptions:
        """The settings as the engine takes them."""
        return BuildingOptions(regularize=self.regularizeCheck.isChecked(),
                               **{name: round(spin.value(), 4) for name, spin in self._spins.items()})

    def set_options(self, options: BuildingOptions):
        for name, spin in self._spins.items():
            spin.setValue(getattr(options, name))
        self.regularizeCheck.setChecked(options.regularize)

    def probability_layer(self):
        return self.layerCombo.currentLayer()

    def set_probability_layer(self, layer):
        self.layerCombo.setLayer(layer)

    def preview_layer(self):
        """The temporary layer the preview draws in (None while there is none)."""
        return self._preview_layer

    def message(self) -> str:
        return self.messageLabel.text()

    def is_valid(self) -> bool:
        return self._preview is not None and not self._problem

    def is_updating(self) -> bool:
        """Whether a preview is scheduled or being computed."""
        return self._timer.isActive() or self._runner.busy()

    # --- the raster ---------------------------------------------------------------------------------------------
    def _default_layer(self):
        """The active layer when it looks like a probability raster, else the first one in the project."""
        active = self._iface.activeLayer() if self._iface is not None else self._canvas.currentLayer()
        candidates = [active] + list(QgsProject.instance().mapLayers().values())
        for layer in candidates:
            if isinstance(layer, QgsRasterLayer) and layer.providerType() == "gdal" \
                    and preview.looks_like_probability(layer.source()):
                return layer
        return None

    def _layer_changed(self, layer):
        self._preview, self._problem, self._shown = None, "", None
        if layer is None:
            self._problem = self.tr("Choose a building probability raster: the probability output of Extract "
                                    "building footprints.")
        else:
            try:
                self._preview = preview.FootprintPreview(dataset_name(layer))
            except (NotARasterFileError, preview.PreviewError) as error:
                self._problem = str(error)
            else:
                self._start_from_extraction(self._preview.source.bands.settings)
        self._remove_preview_layer()
        self._describe_source()
        self._show_message("")
        self._refresh_apply()
        self._schedule()

    def _start_from_extraction(self, settings: dict):
        """The options the extraction that wrote the raster recorded in it (threshold, minimum area and score)."""
        for name, value in settings.items():
            if name in self._spins:
                self._spins[name].setValue(value)

    def _describe_source(self):
        if self._preview is None:
            self.sourceLabel.setText(self._problem)
            self.sourceLabel.setStyleSheet(ERROR_STYLE)
            return
        source = self._preview.source
        bands = source.bands
        text = self.tr("{name}: {width} × {height} px at {pixel:.2f} m, band {band} ({dtype}{scale})").format(
            name=Path(source.path).name, width=source.info.width, height=source.info.height, pixel=source.pixel_m,
            band=source.band, dtype=source.dtype, scale=", read as value / 255" if source.dtype == "uint8" else "")
        if bands.interior_band is not None:
            text += self.tr("; touching buildings split at interior band {band} ≥ {threshold:g}, as extracted").format(
                band=bands.interior_band, threshold=bands.interior_threshold)
        self.sourceLabel.setText(" ".join(t for t in (text, source.note) if t))
        self.sourceLabel.setStyleSheet("")

    def _layer_removed(self, layer):
        layer_id = layer if isinstance(layer, str) else layer.id()
        if self._preview_layer is not None and self._preview_layer.id() == layer_id:
            self._preview_layer, self._shown = None, None  # removed by the mapper: made again on the next change

    # --- the sliders ----------------------------------------------------------------------------------------------
    def _slider_moved(self, spin, value):
        if not self._syncing:
            self._syncing = True
            spin.setValue(value)
            self._syncing = False
        self._schedule()

    def _spin_changed(self, slider, position):
        if not self._syncing:
            self._syncing = True
            slider.setValue(int(round(position)))  # pinned at the end when the value goes beyond the slider
            self._syncing = False
        self._schedule()

    def _schedule(self, *_):
        if not self._closed:
            self._timer.start()  # restarted by every change: one update once the changes pause

    # --- the preview ----------------------------------------------------------------------------------------------
    def _preview_toggled(self, on):
        if on:
            self._schedule()
        else:
            self._remove_preview_layer()
            self.previewLabel.setText(self.tr("Preview off."))
            self._show_note("")

    def _update_preview(self):
        self._refresh_apply()
        if self._closed or not self.is_valid() or not self.previewGroup.isChecked():
            if not self.is_valid():
                self.previewLabel.setText(self.tr("No preview."))
            return
        request = PreviewRequest(self._preview, self.options(), self._view_bounds())
        if request != self._shown:
            self._requested_at = time.perf_counter()
            self._runner.submit(request)

    def _view_bounds(self) -> tuple:
        """The canvas extent in the raster's CRS; the whole raster when the canvas has no usable extent."""
        whole = self._preview.source.info.bounds
        extent = self._canvas.extent()
        layer = self.probability_layer()
        if extent.isEmpty() or layer is None:
            return whole
        destination = self._canvas.mapSettings().destinationCrs()
        if destination.isValid() and layer.crs().isValid() and destination != layer.crs():
            try:
                extent = QgsCoordinateTransform(destination, layer.crs(), QgsProject.instance()).transformBoundingBox(
                    extent)
            except QgsCsException:
                return whole
        return extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()

    def _show_preview(self, request, outcome):
        if self._closed or request.preview is not self._preview or not self.previewGroup.isChecked():
            return  # the raster changed or the dialog closed meanwhile
        if isinstance(outcome, Exception):
            self._problem = str(outcome)
            self._remove_preview_layer()
            self.previewLabel.setText(self.tr("No preview."))
            self._refresh_apply()
            self._show_message(self._problem, error=True)
            return
        layer = self._preview_layer or self._add_preview_layer()
        provider = layer.dataProvider()
        provider.truncate()
        features = []
        for wkb, score, area in zip(outcome.wkb(), outcome.scores.tolist(), outcome.areas_m2.tolist()):
            feature = QgsFeature(layer.fields())
            feature.setGeometry(from_wkb(wkb))
            feature.setAttributes([round(score, 4), round(area, 2)])
            features.append(feature)
        provider.addFeatures(features)
        layer.updateExtents()
        layer.triggerRepaint()
        self._shown = request
        self.last_footprints = outcome
        seconds = time.perf_counter() - getattr(self, "_requested_at", time.perf_counter())
        options = request.options
        self.previewLabel.setText(self.tr(
            "{count} footprints in view at threshold {threshold:.2f}, at least {area:g} m²{score}, simplified "
            "{simplify:g} m{regularized} (updated in {seconds:.2f} s).").format(
            count=len(outcome), threshold=options.threshold, area=options.min_area_m2,
            score=self.tr(" and score {score:.2f}").format(score=options.min_score) if options.min_score else "",
            simplify=options.simplify_m, regularized=self.tr(", regularized") if options.regularize else "",
            seconds=seconds))
        self._show_note(outcome.note)
        self.previewUpdated.emit(len(outcome))

    def _show_note(self, text):
        self.noteLabel.setText(text)
        self.noteLabel.setStyleSheet(NOTE_STYLE)
        self.noteLabel.setVisible(bool(text))

    def _add_preview_layer(self):
        layer = QgsVectorLayer("Polygon", self.tr(PREVIEW_NAME), "memory")
        layer.setCrs(self.probability_layer().crs())
        layer.dataProvider().addAttributes([QgsField("score", FieldType.Double),
                                            QgsField("area_m2", FieldType.Double)])
        layer.updateFields()
        layer.setRenderer(preview_renderer())
        QgsProject.instance().addMapLayer(layer)
        self._preview_layer = layer
        return layer

    def _remove_preview_layer(self):
        layer, self._preview_layer, self._shown = self._preview_layer, None, None
        if layer is not None and QgsProject.instance().mapLayer(layer.id()) is not None:
            QgsProject.instance().removeMapLayer(layer.id())

    # --- Apply ------------------------------------------------------------------------------------------------------
    def apply(self):
        """Writes the footprints of the whole raster in the background; ``applied`` carries the layer."""
        if not self.is_valid() or self._task is not None:
            return None
        task = ApplyTask(self._preview.source, self.options(), self._apply_done)
        task.output = self.outputFile.filePath().strip()
        task.started_at = time.perf_counter()
        task.progressChanged.connect(lambda percent: self.progressBar.setValue(int(percent)))
        self._task = task
        self._refresh_apply()
        self.progressBar.setValue(0)
        self.progressBar.setVisible(True)
        self._show_message(self.tr("Writing the footprints of the whole raster…"))
        QgsApplication.taskManager().addTask(task)
        return task

    def _apply_done(self, task, ok):
        if not self._closed:
            self._task = None
            self.progressBar.setVisible(False)
            self._refresh_apply()
        if not ok:
            if not self._closed:
                self._show_message(task.error or self.tr("Canceled: nothing was written."), error=bool(task.error))
            return
        try:
            layer = write_layer(task.footprints, task.source, task.options, task.output)
        except OSError as error:
            if not self._closed:
                self._show_message(str(error), error=True)
            return
        QgsProject.instance().addMapLayer(layer)
        if not self._closed:
            self._show_message(self.tr("{count} footprints written to {name} in {seconds:.1f} s.").format(
                count=len(task.footprints), name=task.output or self.tr("a temporary layer"),
                seconds=time.perf_counter() - task.started_at))
            self.applied.emit(layer)

    def _refresh_apply(self):
        self.applyButton.setEnabled(self.is_valid() and self._task is None and not self._closed)

    def _show_message(self, text, error=False):
        self.messageLabel.setText(text)
        self.messageLabel.setStyleSheet(ERROR_STYLE if error else "")

    # --- closing -------------------------------------------------------------------------------------------------
    def done(self, result):  # Qt API: every way of closing the dialog ends here
        self._shut_down()
        super().done(result)

    def _shut_down(self):
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        for signal, slot in ((self._canvas.extentsChanged, self._schedule),
                             (self._canvas.destinationCrsChanged, self._schedule),
                             (QgsProject.instance().layerWillBeRemoved, self._layer_removed)):
            with contextlib.suppress(TypeError, RuntimeError):
                signal.disconnect(slot)
        self._runner.shutdown()
        self._remove_preview_layer()


def write_layer(footprints: preview.Footprints, source: preview.ProbabilityRaster, options, output: str = ""):
    """The footprints as a styled polygon layer (as extractbuildings writes them): a GeoPackage at ``output``, or a
    memory layer when it is empty. Raises OSError when the file cannot be written."""
    name = QgsApplication.translate("ThresholdsDialog", "Building footprints (threshold {threshold:g})").format(
        threshold=options.threshold)
    fields = fields_of(("id", FieldType.Int), ("score", FieldType.Double), ("area_m2", FieldType.Double))
    memory = QgsVectorLayer("MultiPolygon", name, "memory")
    memory.setCrs(QgsCoordinateReferenceSystem.fromWkt(source.crs_wkt))
    memory.dataProvider().addAttributes(fields.toList())
    memory.updateFields()
    features = []
    for number, (wkb, score, area) in enumerate(zip(footprints.wkb(), footprints.scores.tolist(),
                                                    footprints.areas_m2.tolist()), start=1):
        feature = QgsFeature(memory.fields())
        feature.setGeometry(from_wkb(wkb, multi=True))
        feature.setAttributes([number, round(score, 4), round(area, 2)])
        features.append(feature)
    memory.dataProvider().addFeatures(features)
    memory.updateExtents()
    layer = memory
    if output:
        path = output if output.lower().endswith(".gpkg") else output + ".gpkg"
        save = QgsVectorFileWriter.SaveVectorOptions()
        save.driverName = "GPKG"
        save.layerName = "buildings"
        error, message, _, _ = QgsVectorFileWriter.writeAsVectorFormatV3(
            memory, path, QgsProject.instance().transformContext(), save)
        if error != QgsVectorFileWriter.WriterError.NoError:
            raise OSError(f"Cannot write {path}: {message}")
        layer = QgsVectorLayer(f"{path}|layername=buildings", name, "ogr")
    settings = {"source": source.path, **options.settings()}  # what the extraction records, and the source
    ThresholdsStyler(settings).postProcessLayer(layer, None, None)
    return layer


_open_dialog = None


def open_thresholds_dialog(iface) -> ThresholdsDialog:
    """Shows the thresholds dialog (one at a time, not modal: the map stays usable) and returns it."""
    global _open_dialog
    if _open_dialog is None:
        _open_dialog = ThresholdsDialog(iface, iface.mainWindow())
        _open_dialog.finished.connect(_forget_dialog)
    _open_dialog.show()
    _open_dialog.raise_()
    _open_dialog.activateWindow()
    return _open_dialog


def close_thresholds_dialog():
    """Closes the dialog if it is open (for the plugin's unload)."""
    if _open_dialog is not None:
        _open_dialog.reject()


def _forget_dialog(_result):
    global _open_dialog
    dialog, _open_dialog = _open_dialog, None
    if dialog is not None:
        dialog.deleteLater()
