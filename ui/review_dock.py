"""The review dock: the SpaceNet F1 of a proposal layer against a truth layer, kept live while a mapper edits.

Thin by design: ``core.score.live_score`` does the matching and the counting. ``LayerLiveScore`` turns the two layers
and the proposal layer's edit signals into ``LiveScore`` updates (only the features an edit names are read again);
``ReviewDock`` shows the layers chosen and the numbers. numpy and shapely are imported when scoring starts, so this
module loads with the plugin even where they are missing.
"""

import contextlib
import re
import time
from pathlib import Path

from qgis.core import (
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsDockWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QObject, Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QApplication

from ..core import dependencies
from ..qgis_adapter.geometry import to_shapely, to_wkb

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("review_dock.ui")))

DOCK_OBJECT_NAME = "SpaceNetReviewDock"
ERROR_STYLE = "color: #b3261e;"
# spacenet:scoref1 writes the missed truth polygons into the scored layer too, marked layer = "truth": they are
# shown for reference and are not proposals.
SCORED_LAYER_FIELD, TRUTH_COPY = "layer", "truth"
TRUTH_NAME = re.compile(r"truth|ground|reference|label|(^|[^a-z])gt([^a-z]|$)", re.IGNORECASE)
PROPOSALS_NAME = re.compile(r"pred|proposal|scored|detect|extract|footprint|result", re.IGNORECASE)


# --- choosing the layers ------------------------------------------------------------------------------------------


def is_polygon_layer(layer) -> bool:
    return (isinstance(layer, QgsVectorLayer) and layer.isValid()
            and layer.geometryType() == QgsWkbTypes.GeometryType.PolygonGeometry)


def is_scored_layer(layer) -> bool:
    """A spacenet:scoref1 output: it has the status and layer fields."""
    names = set(layer.fields().names())
    return {"status", SCORED_LAYER_FIELD} <= names


def layer_problem(truth, proposals) -> str:
    """Why ``truth`` and ``proposals`` cannot be scored against each other; "" when they can."""
    for role, layer in (("truth", truth), ("proposals", proposals)):
        if layer is None:
            return QApplication.translate("ReviewDock", "Choose a {role} layer.").format(role=role)
        if not is_polygon_layer(layer):
            kind = QgsWkbTypes.displayString(layer.wkbType()) if isinstance(layer, QgsVectorLayer) else "not vectors"
            return QApplication.translate(
                "ReviewDock", "'{name}' cannot be the {role} layer: it is not a polygon layer (its geometries are "
                              "{kind}), and buildings are scored as polygons.").format(
                name=layer.name(), role=role, kind=kind)
    if truth.id() == proposals.id():
        return QApplication.translate(
            "ReviewDock", "'{name}' is chosen as both truth and proposals: choose two different layers.").format(
            name=truth.name())
    return ""


def default_layers(layers):
    """(truth, proposals) to offer among ``layers``: a layer named like truth (gt, ground truth, reference,
    labels) for the truth; a scored layer, else one named like proposals, else another polygon layer for the
    proposals."""
    polygons = [layer for layer in layers if is_polygon_layer(layer)]
    named_truth = [layer for layer in polygons if TRUTH_NAME.search(layer.name()) and not is_scored_layer(layer)]
    truth = (named_truth or polygons or [None])[0]
    others = [layer for layer in polygons if layer is not truth]
    scored = [layer for layer in others if is_scored_layer(layer)]
    named = [layer for layer in others if PROPOSALS_NAME.search(layer.name())]
    proposals = (scored or named or others or [None])[0]
    return truth, proposals


# --- the layers as core.score.live_score sees them --------------------------------------------------------------------


class LayerLiveScore(QObject):
    """Keeps a ``core.score.live_score.LiveScore`` in step with a truth layer and an edited proposals layer.

    Edit signals only mark feature ids; the marked features are read again (in the truth's CRS) and handed to
    ``LiveScore.update`` together once control returns to the event loop, so a burst of signals (a multi-delete,
    a commit that renumbers added features, an undo) costs one update. An edit of the truth layer rebuilds all.
    """

    updated = pyqtSignal()
    stopped = pyqtSignal(str)  # why: a layer went away

    def __init__(self, truth_layer, proposals_layer, parent=None):
        super().__init__(parent)
        self.truth_layer, self.proposals_layer = truth_layer, proposals_layer
        self.score = None
        self.truth_fids = []  # the truth layer's feature id of each truth index of the LiveScore
        self.last_update_ms = 0.0
        self.last_edited = 0  # features read again in the last update
        self._pending = set()
        self._truth_edited = False
        self._connections = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.flush)

    def start(self):
        """Reads both layers and scores them; then follows the edits."""
        self._load()
        proposals, truth = self.proposals_layer, self.truth_layer
        follow = [(proposals.featureAdded, self._mark), (proposals.featureDeleted, self._mark),
                  (proposals.geometryChanged, self._geometry_changed),
                  (proposals.attributeValueChanged, self._attribute_changed),
                  (truth.featureAdded, self._truth_changed), (truth.featureDeleted, self._truth_changed),
                  (truth.geometryChanged, self._truth_changed),
                  (proposals.willBeDeleted, self._layer_gone), (truth.willBeDeleted, self._layer_gone)]
        for signal, slot in follow:
            signal.connect(slot)
            self._connections.append((signal, slot))

    def stop(self):
        for signal, slot in self._connections:
            with contextlib.suppress(TypeError, RuntimeError):  # the layer is already gone
                signal.disconnect(slot)
        self._connections = []
        self._timer.stop()
        self._pending.clear()
        self.score = None

    def counts(self):
        return None if self.score is None else self.score.counts()

    def flush(self):
        """Applies the marked edits now (the event loop calls it; callers may too)."""
        self._timer.stop()
        if self.score is None:
            return
        started = time.perf_counter()
        if self._truth_edited:
            self._truth_edited = False
            self._pending.clear()
            self._load()
            self.last_edited = len(self.score)
        elif self._pending:
            from ..core.score.live_score import LiveScore

            fids, self._pending = sorted(self._pending), set()
            request = QgsFeatureRequest()
            request.setFilterFids(fids)
            found = dict(zip(*self._read_proposals(request)))
            self.last_edited = len(fids)
            self.score.update({fid: found.get(fid, LiveScore.REMOVED) for fid in fids})
        else:
            return
        self.last_update_ms = (time.perf_counter() - started) * 1000
        self.updated.emit()

    def _load(self):
        from ..core.score.live_score import LiveScore

        self.truth_fids, truth = _read(self.truth_layer, QgsFeatureRequest(), None)
        self.score = LiveScore(truth)
        self.score.load(*self._read_proposals(QgsFeatureRequest()))

    def _read_proposals(self, request):
        """(fids, shapely geometries in the truth's CRS) of the proposals among the features ``request`` asks for."""
        transform = QgsCoordinateTransform(self.proposals_layer.crs(), self.truth_layer.crs(), QgsProject.instance())
        field = self.proposals_layer.fields().lookupField(SCORED_LAYER_FIELD)
        return _read(self.proposals_layer, request, transform, field)

    def _mark(self, fid):
        self._pending.add(fid)
        self._timer.start()

    def _geometry_changed(self, fid, _geometry):
        self._mark(fid)

    def _attribute_changed(self, fid, index, _value):
        if index == self.proposals_layer.fields().lookupField(SCORED_LAYER_FIELD):
            self._mark(fid)  # a feature marked "truth" is left out, and back in when unmarked

    def _truth_changed(self, *_args):
        self._truth_edited = True
        self._timer.start()

    def _layer_gone(self):
        self.stop()
        self.stopped.emit(QApplication.translate("ReviewDock", "A layer was removed: scoring stopped."))


def _read(layer, request, transform, scored_field=-1):
    """(fids, shapely geometries) of ``layer``'s features that ``request`` asks for; features marked as truth
    copies (``scored_field``) are left out; geometries are transformed with ``transform`` (None or a
    short-circuited one: as they are); what cannot be transformed comes back as None (skipped by the scorer)."""
    if scored_field >= 0:
        request.setSubsetOfAttributes([scored_field])
    else:
        request.setNoAttributes()
    transform = None if transform is None or transform.isShortCircuited() else transform
    fids, wkbs = [], []
    for feature in layer.getFeatures(request):
        if scored_field >= 0 and feature.attribute(scored_field) == TRUTH_COPY:
            continue
        fids.append(feature.id())
        wkbs.append(to_wkb(feature.geometry(), transform))
    return fids, to_shapely(wkbs)


# --- the dock -------------------------------------------------------------------------------------------------------


def _ratio(value) -> str:
    return f"{value:.4f}"


class ReviewDock(QgsDockWidget, FORM_CLASS):
    """Truth and proposals layers, a Start toggle, and precision / recall / F1 / TP / FP / FN kept live."""

    scoreChanged = pyqtSignal()  # noqa: N815 - Qt naming: after every update of the numbers

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.setObjectName(DOCK_OBJECT_NAME)
        for combo in (self.truthCombo, self.proposalsCombo):
            combo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
            combo.setAllowEmptyLayer(True)
        self._live = None
        self._problem = ""
        self._chosen = (None, None)  # the truth's and the proposals' layer ids, as last checked
        self.set_layers(*default_layers(_project_layers()))
        self.truthCombo.layerChanged.connect(self._layers_changed)
        self.proposalsCombo.layerChanged.connect(self._layers_changed)
        self.startButton.toggled.connect(self._start_toggled)
        QgsProject.instance().layersAdded.connect(self._layers_added)
        QgsProject.instance().layersWillBeRemoved.connect(self._layers_leaving)
        self._show_counts(None)

    # --- what callers use -------------------------------------------------------------------------------------
    def truth_layer(self):
        return self.truthCombo.currentLayer()

    def proposals_layer(self):
        return self.proposalsCombo.currentLayer()

    def set_layers(self, truth, proposals) -> bool:
        """Chooses the two layers; a layer that is not a polygon layer is refused (the choice stays as it was) and
        the message says why. True when the two can be scored."""
        for layer in (truth, proposals):
            if layer is not None and not is_polygon_layer(layer):
                self._show_problem(layer_problem(truth, proposals))
                return False
        self.stop()
        for combo, layer in ((self.truthCombo, truth), (self.proposalsCombo, proposals)):
            combo.blockSignals(True)
            combo.setLayer(layer)
            combo.blockSignals(False)
        return self._check()

    def start(self) -> bool:
        """Scores the chosen layers and follows the edits of the proposals; False (and the message says why) when
        the layers cannot be scored."""
        if self.is_running():
            return True
        if not self._check():
            self._set_button(False)
            return False
        absent = dependencies.missing(["numpy", "shapely"])
        if absent:
            self._show_problem(dependencies.describe_missing(absent))
            self._set_button(False)
            return False
        live = LayerLiveScore(self.truth_layer(), self.proposals_layer(), self)
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            live.start()
        except Exception as error:  # noqa: BLE001 - a mapper gets the reason in the dock, not a Python trace
            live.stop()
            self._show_problem(self.tr("Scoring failed: {error}").format(error=error))
            self._set_button(False)
            return False
        finally:
            QApplication.restoreOverrideCursor()
        live.updated.connect(self._updated)
        live.stopped.connect(self._stopped)
        self._live = live
        self._set_button(True)
        for combo in (self.truthCombo, self.proposalsCombo):
            combo.setEnabled(False)
        score = live.score
        self._show_message(self.tr(
            "Scoring {proposals} proposal(s) of '{name}' against {truth} truth polygon(s) of '{truth_name}'. "
            "Edit '{name}': the score follows every edit.").format(
            proposals=len(score), name=self.proposals_layer().name(), truth=score.truth_count,
            truth_name=self.truth_layer().name()))
        self._show_counts(score.counts())
        return True

    def stop(self):
        """Stops following the edits; the last numbers stay shown."""
        if self._live is not None:
            self._live.stop()
            self._live.deleteLater()
            self._live = None
        self._set_button(False)
        for combo in (self.truthCombo, self.proposalsCombo):
            combo.setEnabled(True)

    def is_running(self) -> bool:
        return self._live is not None

    def counts(self):
        """The current core.score.f1.Counts, None before scoring starts."""
        return self._live.counts() if self._live is not None else None

    def live_score(self):
        """The LayerLiveScore in use (None when stopped): its ``score`` is the core.score.live_score.LiveScore."""
        return self._live

    def message(self) -> str:
        return self.messageLabel.text()

    def closeEvent(self, event):  # noqa: N802 - Qt API
        self.stop()
        super().closeEvent(event)

    # --- display ----------------------------------------------------------------------------------------------
    def _check(self) -> bool:
        self._chosen = tuple(layer.id() if layer is not None else None
                             for layer in (self.truth_layer(), self.proposals_layer()))
        self._problem = layer_problem(self.truth_layer(), self.proposals_layer())
        if self._problem:
            self._show_problem(self._problem)
        elif not self.is_running():
            self._show_message(self.tr("Press Start to score '{proposals}' against '{truth}'.").format(
                proposals=self.proposals_layer().name(), truth=self.truth_layer().name()))
        self.startButton.setEnabled(not self._problem or self.is_running())
        return not self._problem

    def _show_counts(self, counts):
        if counts is None:
            for label in (self.f1Label, self.precisionLabel, self.recallLabel, self.tpLabel, self.fpLabel,
                          self.fnLabel):
                label.setText("–")
            return
        self.f1Label.setText(_ratio(counts.f1))
        self.precisionLabel.setText(_ratio(counts.precision))
        self.recallLabel.setText(_ratio(counts.recall))
        self.tpLabel.setText(str(counts.tp))
        self.fpLabel.setText(str(counts.fp))
        self.fnLabel.setText(str(counts.fn))

    def _show_message(self, text):
        self.messageLabel.setText(text)
        self.messageLabel.setStyleSheet("")

    def _show_problem(self, text):
        self.messageLabel.setText(text)
        self.messageLabel.setStyleSheet(ERROR_STYLE)

    def _set_button(self, running):
        self.startButton.blockSignals(True)
        self.startButton.setChecked(running)
        self.startButton.blockSignals(False)
        self.startButton.setText(self.tr("Stop live scoring") if running else self.tr("Start"))
        self.startButton.setToolTip(self.tr("Stop following the edits; the last scores stay shown.") if running
                                    else self.tr("Score the layers now and again after every edit."))

    # --- what the mapper does ---------------------------------------------------------------------------------
    def _start_toggled(self, checked):
        if checked:
            self.start()
        else:
            self.stop()
            self._check()

    def _layers_changed(self, _layer):
        self.stop()
        self._check()

    def _layers_added(self, _layers):
        if not self.is_running() and self._problem:  # offer the new layers only where the choice was unusable
            self.set_layers(*default_layers(_project_layers()))

    def _layers_leaving(self, layer_ids):
        """A chosen layer leaving the project empties its choice: its combo would silently pick another layer
        (the truth, as proposals) and the message would still name the one that left."""
        gone = []
        # the ids chosen last: the combos' own models may have dropped the layer (and moved on) already
        for combo, chosen in zip((self.truthCombo, self.proposalsCombo), self._chosen):
            if chosen in layer_ids:
                layer = QgsProject.instance().mapLayer(chosen)
                gone.append(layer.name() if layer is not None else chosen)
                combo.blockSignals(True)
                combo.setLayer(None)
                combo.blockSignals(False)
        if gone:
            self.stop()
            self._check()
            self._show_problem(self.tr("'{names}' left the project. {problem}").format(
                names="', '".join(gone), problem=self._problem))

    def _updated(self):
        stats = self._live.score.last_edit
        self._show_counts(self._live.counts())
        self._show_message(self.tr(
            "Following the edits of '{name}'. Last update: {edited} feature(s) read again, {polygons} polygon(s) "
            "re-matched, {ms:.1f} ms.").format(
            name=self.proposals_layer().name(), edited=self._live.last_edited,
            polygons=stats.proposals + stats.truths, ms=self._live.last_update_ms))
        self.scoreChanged.emit()

    def _stopped(self, why):
        self._live.deleteLater()
        self._live = None
        self._set_button(False)
        for combo in (self.truthCombo, self.proposalsCombo):
            combo.setEnabled(True)
        self._show_problem(why)


def _project_layers():
    """The project's layers in the order of the layers panel."""
    return [node.layer() for node in QgsProject.instance().layerTreeRoot().findLayers() if node.layer() is not None]


def show_review_dock(iface):
    """Creates the review dock once (docked right in the main window) and shows it; returns it."""
    main_window = iface.mainWindow()
    dock = main_window.findChild(ReviewDock, DOCK_OBJECT_NAME)
    if dock is None:
        dock = ReviewDock(main_window)
        iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    dock.show()
    dock.raise_()
    return dock


def close_review_dock(iface):
    """Removes the review dock, if there is one (for the plugin's unload)."""
    dock = iface.mainWindow().findChild(ReviewDock, DOCK_OBJECT_NAME)
    if dock is not None:
        dock.stop()
        QgsProject.instance().layersAdded.disconnect(dock._layers_added)
        QgsProject.instance().layersWillBeRemoved.disconnect(dock._layers_leaving)
        iface.removeDockWidget(dock)
        dock.setParent(None)
        dock.deleteLater()
