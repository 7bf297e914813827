"""The review dock: a live F1 of real layers that follows edit sessions through the layer's signals."""

import shutil

import pytest
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QMainWindow

TIMEOUT_MS = 5000


@pytest.fixture
def project_layers():
    """Adds layers to the project for one test and removes them afterwards."""
    added = []

    def add(layer):
        assert layer.isValid(), layer.source()
        QgsProject.instance().addMapLayer(layer)
        added.append(layer.id())
        return layer

    yield add
    QgsProject.instance().removeMapLayers([i for i in added if QgsProject.instance().mapLayer(i) is not None])


@pytest.fixture
def oracle_layers(oracle, tmp_path, project_layers):
    """gt.geojson (read only) and an editable copy of pred.geojson, loaded in the project."""
    shutil.copy(oracle / "pred.geojson", tmp_path / "pred.geojson")
    truth = project_layers(QgsVectorLayer(str(oracle / "gt.geojson"), "gt", "ogr"))
    proposals = project_layers(QgsVectorLayer(str(tmp_path / "pred.geojson"), "pred", "ogr"))
    return truth, proposals


@pytest.fixture
def dock(qgis_app, qtbot, oracle_layers):
    from spacenet_toolkit.ui.review_dock import ReviewDock

    created = ReviewDock()
    qtbot.addWidget(created)
    yield created
    created.stop()


def shown(dock):
    return {name: getattr(dock, f"{name}Label").text() for name in ("precision", "recall", "f1", "tp", "fp", "fn")}


def test_opens_with_the_oracle_layers_chosen_and_scores_them(dock, oracle_layers):
    truth, proposals = oracle_layers
    assert dock.truth_layer() is truth and dock.proposals_layer() is proposals
    assert dock.startButton.isEnabled() and dock.startButton.text() == "Start"
    assert dock.message() == "Press Start to score 'pred' against 'gt'."
    assert shown(dock)["f1"] == "–"
    dock.startButton.click()
    assert dock.is_running() and dock.startButton.isChecked() and dock.startButton.text() == "Stop live scoring"
    assert shown(dock) == {"precision": "0.2857", "recall": "0.2857", "f1": "0.2857", "tp": "8", "fp": "20",
                           "fn": "20"}
    assert "28 proposal(s) of 'pred' against 28 truth polygon(s) of 'gt'" in dock.message()
    assert not dock.truthCombo.isEnabled()  # the layers are fixed while scoring
    dock.startButton.click()
    assert not dock.is_running() and dock.truthCombo.isEnabled() and shown(dock)["tp"] == "8"


def test_deleting_a_false_positive_raises_f1_live_and_rolling_back_restores_it(dock, oracle_layers, qtbot):
    _, proposals = oracle_layers
    assert dock.start()
    score = dock.live_score().score
    false_positive = next(fid for fid in score.fids() if score.status(fid) == "FP")
    true_positive = next(fid for fid in score.fids() if score.status(fid) == "TP")

    proposals.startEditing()
    with qtbot.waitSignal(dock.scoreChanged, timeout=TIMEOUT_MS):
        assert proposals.deleteFeature(false_positive)
    qtbot.waitUntil(lambda: dock.fpLabel.text() == "19", timeout=TIMEOUT_MS)
    assert shown(dock)["f1"] == "0.2909" and shown(dock)["tp"] == "8"  # 2·8 / (2·8 + 19 + 20)
    assert dock.live_score().score.last_edit.proposals + dock.live_score().score.last_edit.truths == 0

    far_away = QgsGeometry.fromPolygonXY([[QgsPointXY(0, 0), QgsPointXY(10, 0), QgsPointXY(10, 10),
                                           QgsPointXY(0, 0)]])
    assert proposals.changeGeometry(true_positive, far_away)  # a reshape that loses its building
    qtbot.waitUntil(lambda: (dock.tpLabel.text(), dock.fpLabel.text(), dock.fnLabel.text()) == ("7", "20", "21"),
                    timeout=TIMEOUT_MS)
    assert "re-matched" in dock.message()

    assert proposals.rollBack()
    qtbot.waitUntil(lambda: (dock.tpLabel.text(), dock.fpLabel.text()) == ("8", "20"), timeout=TIMEOUT_MS)
    assert shown(dock)["f1"] == "0.2857"


def test_adding_a_copy_of_a_missed_truth_polygon_raises_tp_and_survives_the_commit(dock, oracle_layers, qtbot):
    truth, proposals = oracle_layers
    assert dock.start()
    live = dock.live_score()
    missed = live.score.truth_status().tolist().index("FN")
    copy = QgsFeature(proposals.fields())
    copy.setGeometry(truth.getFeature(live.truth_fids[missed]).geometry())

    proposals.startEditing()
    assert proposals.addFeature(copy)
    qtbot.waitUntil(lambda: (dock.tpLabel.text(), dock.fnLabel.text()) == ("9", "19"), timeout=TIMEOUT_MS)
    assert shown(dock)["fp"] == "20" and shown(dock)["f1"] == "0.3158"  # 2·9 / (2·9 + 20 + 19)
    assert [fid for fid in live.score.fids() if fid < 0]  # the edit buffer's temporary id

    assert proposals.commitChanges()  # the added feature gets its permanent id: deleted and added again
    qtbot.wait(50)
    assert all(fid >= 0 for fid in live.score.fids()) and len(live.score) == 29
    assert (dock.tpLabel.text(), dock.fpLabel.text(), dock.fnLabel.text()) == ("9", "20", "19")

    dock.stop()  # a fresh full scoring of the saved layer agrees
    assert dock.start() and (dock.counts().tp, dock.counts().fp, dock.counts().fn) == (9, 20, 19)


def test_an_edit_of_the_truth_layer_rescored_all(dock, oracle_layers, qtbot, tmp_path, project_layers):
    truth, _ = oracle_layers
    shutil.copy(truth.source().split("|")[0], tmp_path / "gt_copy.geojson")
    editable_truth = project_layers(QgsVectorLayer(str(tmp_path / "gt_copy.geojson"), "gt copy", "ogr"))
    assert dock.set_layers(editable_truth, dock.proposals_layer()) and dock.start()
    missed = dock.live_score().truth_fids[dock.live_score().score.truth_status().tolist().index("FN")]
    editable_truth.startEditing()
    assert editable_truth.deleteFeature(missed)
    qtbot.waitUntil(lambda: dock.fnLabel.text() == "19", timeout=TIMEOUT_MS)
    editable_truth.rollBack()


def test_a_scored_layer_is_taken_without_its_missed_truth_copies(provider, oracle, tmp_path, project_layers,
                                                                 qgis_app, qtbot):
    import processing

    from spacenet_toolkit.ui.review_dock import ReviewDock

    results = processing.run("spacenet:scoref1", {"TRUTH": str(oracle / "gt.geojson"),
                                                  "PROPOSALS": str(oracle / "pred.geojson"),
                                                  "OUTPUT": str(tmp_path / "scored.gpkg")})
    project_layers(QgsVectorLayer(str(oracle / "gt.geojson"), "gt", "ogr"))
    scored = project_layers(QgsVectorLayer(results["OUTPUT"], "scored", "ogr"))
    assert scored.featureCount() == 48  # 28 proposals and 20 missed truth polygons
    dock = ReviewDock()
    qtbot.addWidget(dock)
    assert dock.proposals_layer() is scored  # the default: a scored layer
    assert dock.start()
    assert (dock.counts().tp, dock.counts().fp, dock.counts().fn) == (8, 20, 20)
    dock.stop()


def test_layers_that_cannot_be_scored_are_refused_with_a_message(dock, oracle_layers, project_layers):
    truth, proposals = oracle_layers
    points = project_layers(QgsVectorLayer("Point?crs=EPSG:32616", "points", "memory"))
    lines = project_layers(QgsVectorLayer("LineString?crs=EPSG:32616", "roads", "memory"))
    assert not dock.set_layers(truth, points)
    assert dock.message() == ("'points' cannot be the proposals layer: it is not a polygon layer (its geometries "
                              "are Point), and buildings are scored as polygons.")
    assert "color" in dock.messageLabel.styleSheet() and dock.proposals_layer() is proposals  # choice unchanged
    assert not dock.set_layers(lines, proposals) and "'roads' cannot be the truth layer" in dock.message()
    combo_layers = [dock.proposalsCombo.layer(i) for i in range(dock.proposalsCombo.count())]
    assert points not in combo_layers and lines not in combo_layers and proposals in combo_layers

    assert not dock.set_layers(truth, truth)
    assert dock.message() == "'gt' is chosen as both truth and proposals: choose two different layers."
    assert not dock.startButton.isEnabled() and not dock.start() and not dock.is_running()
    dock.proposalsCombo.setLayer(None)
    assert dock.message() == "Choose a proposals layer."
    dock.proposalsCombo.setLayer(proposals)  # the mapper picks a good layer: the message clears
    assert dock.startButton.isEnabled() and "color" not in dock.messageLabel.styleSheet()


class MainWindowInterface:
    """The part of QgisInterface that show_review_dock uses, over a real main window (pytest-qgis' stub does not
    dock)."""

    def __init__(self):
        self.window = QMainWindow()

    def mainWindow(self):  # noqa: N802 - QGIS API
        return self.window

    def addDockWidget(self, area, dock):  # noqa: N802 - QGIS API
        self.window.addDockWidget(area, dock)

    def removeDockWidget(self, dock):  # noqa: N802 - QGIS API
        self.window.removeDockWidget(dock)


def test_show_review_dock_creates_it_once_docked_right(qgis_app, qtbot, oracle_layers):
    from spacenet_toolkit.ui.review_dock import ReviewDock, close_review_dock, show_review_dock

    iface = MainWindowInterface()
    qtbot.addWidget(iface.window)
    iface.window.show()
    first = show_review_dock(iface)
    assert isinstance(first, ReviewDock) and first.isVisible() and show_review_dock(iface) is first
    assert iface.window.dockWidgetArea(first) == Qt.DockWidgetArea.RightDockWidgetArea
    assert first.truth_layer() is oracle_layers[0]
    close_review_dock(iface)
    assert iface.window.findChild(ReviewDock, "SpaceNetReviewDock") is None
    assert show_review_dock(iface) is not first  # after a close, a new one


def test_screenshot_of_the_dock(dock, oracle_layers, save_screenshot, qtbot):
    """artifacts/screenshots/review_dock.png, for a person to look at (docs/screenshots/ holds a copy)."""
    _, proposals = oracle_layers
    assert dock.start()
    score = dock.live_score().score
    proposals.startEditing()
    proposals.deleteFeature(next(fid for fid in score.fids() if score.status(fid) == "FP"))
    qtbot.waitUntil(lambda: dock.fpLabel.text() == "19", timeout=TIMEOUT_MS)
    dock.resize(360, 420)
    dock.show()
    save_screenshot(dock, "review_dock", min_bytes=5_000)
    proposals.rollBack()


@pytest.mark.parametrize("running", [False, True])
def test_a_chosen_layer_leaving_the_project_empties_its_choice(dock, oracle_layers, running):
    """The proposals combo moved to the truth layer by itself, Start stayed enabled and the message named the layer
    that had gone."""
    truth, proposals = oracle_layers
    assert dock.set_layers(truth, proposals)
    if running:
        assert dock.start()
    QgsProject.instance().removeMapLayer(proposals.id())
    assert dock.truth_layer() is truth and dock.proposals_layer() is None
    assert not dock.is_running() and not dock.startButton.isEnabled()
    assert dock.message() == "'pred' left the project. Choose a proposals layer."
