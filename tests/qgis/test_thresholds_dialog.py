"""The thresholds dialog in QGIS: defaults from a real probability raster, a live preview that follows the sliders
and the map, refusal of what is not a probability raster, and Apply writing what the preview showed."""

import time

import numpy as np
import pytest
import rasterio
import shapely
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QSize, Qt
from rasterio.transform import from_origin
from scipy import ndimage

ATLANTA = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"
CRS = "EPSG:32616"
# the synthetic raster: 4 rows of 5 square buildings (12 m) whose probability peaks at these values
ROW_PEAKS = (0.35, 0.55, 0.75, 0.95)
ORIGIN = (740000.0, 3740000.0)
PIXEL_M = 0.5
SIZE = 400  # px: 200 m


@pytest.fixture(scope="module")
def engine_probability(fixtures, brightness_model, tmp_path_factory):
    """What extractbuildings writes as its probability output for the Atlanta tile (Float32, 0..1: building and
    interior bands)."""
    from spacenet_toolkit.core.extract import extract

    path = tmp_path_factory.mktemp("engine") / "probability.tif"
    extract.extract_buildings(extract.ExtractRequest(str(fixtures / ATLANTA), brightness_model,
                                                     probability_path=str(path)))
    return path


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """Known buildings: at threshold t, 5 per row whose peak is over t."""
    prob = np.zeros((SIZE, SIZE), np.float32)
    for row, peak in enumerate(ROW_PEAKS):
        for column in range(5):
            top, left = 30 + row * 95, 30 + column * 75
            prob[top : top + 24, left : left + 24] = peak
    prob = ndimage.gaussian_filter(prob, 0.7)
    path = tmp_path_factory.mktemp("blobs") / "blobs_probability.tif"
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="float32", crs=CRS,
                       transform=from_origin(*ORIGIN, PIXEL_M, PIXEL_M)) as out:
        out.write(prob, 1)
        out.set_band_description(1, "building probability")
    return path


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    path = tmp_path_factory.mktemp("rgb") / "photo_rgb.tif"
    data = np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs=CRS,
                       transform=from_origin(*ORIGIN, PIXEL_M, PIXEL_M), photometric="RGB") as out:
        out.write(data)
    return path


@pytest.fixture
def layers(qgis_app):
    """Raster layers in the project while a test runs."""
    added = []

    def add(path, name=None):
        layer = QgsRasterLayer(str(path), name or path.stem)
        assert layer.isValid()
        QgsProject.instance().addMapLayer(layer)
        added.append(layer.id())
        return layer

    yield add
    QgsProject.instance().removeMapLayers([i for i in added if QgsProject.instance().mapLayer(i)])


@pytest.fixture
def canvas(qgis_app, qtbot):
    created = QgsMapCanvas()
    created.resize(600, 600)
    created.setDestinationCrs(QgsCoordinateReferenceSystem(CRS))
    qtbot.addWidget(created)
    created.show()
    qtbot.waitExposed(created)
    return created


def whole(layer) -> QgsRectangle:
    return layer.extent()


@pytest.fixture
def open_dialog(qtbot, canvas):
    from spacenet_toolkit.ui.thresholds_dialog import ThresholdsDialog

    opened = []

    def make(layer=None):
        if layer is not None:
            canvas.setExtent(whole(layer))
            canvas.setCurrentLayer(layer)
        dialog = ThresholdsDialog(canvas)
        qtbot.addWidget(dialog)
        opened.append(dialog)
        return dialog

    yield make
    for dialog in opened:
        dialog.reject()  # stops the worker and removes the preview layer
    assert all(d.preview_layer() is None for d in opened)


def shown(dialog) -> int:
    layer = dialog.preview_layer()
    return -1 if layer is None else layer.featureCount()


def settle(dialog, qtbot, count=None, timeout=5000):
    """Waits for the preview to be up to date (and to hold ``count`` features)."""
    qtbot.waitUntil(lambda: not dialog.is_updating() and shown(dialog) >= 0
                    and (count is None or shown(dialog) == count), timeout=timeout)


def wkbs(layer) -> list:
    """The layer's polygons as sorted 2D WKB (multi-polygons of one part taken as that part)."""
    found = []
    for feature in layer.getFeatures():
        geometry = shapely.from_wkb(bytes(feature.geometry().asWkb()))
        if geometry.geom_type == "MultiPolygon":
            assert len(geometry.geoms) == 1
            geometry = geometry.geoms[0]
        found.append(shapely.to_wkb(geometry, output_dimension=2))
    return sorted(found)


def test_opens_with_the_extractions_settings_on_the_engines_probability_raster(layers, open_dialog,
                                                                                engine_probability, fixtures, qtbot):
    """The threshold and minimum area the extraction stored in its probability raster (the brightness model's
    card: 0.5 and 0 m²); the simplification is the extraction's default."""
    from dataclasses import replace

    from spacenet_toolkit.core.extract import preview

    image = layers(fixtures / ATLANTA, "atlanta image")  # a raster, but not a probability
    probability = layers(engine_probability, "building probability")
    dialog = open_dialog(image)  # the active layer is the image: the probability raster is picked instead
    assert dialog.probability_layer() is probability
    assert dialog.options() == replace(preview.DEFAULT_OPTIONS, threshold=0.5, min_area_m2=0.0)
    assert (dialog.thresholdSlider.value(), dialog.minAreaSlider.value(), dialog.simplifySlider.value()) == (50, 0, 5)
    assert (dialog.thresholdSpin.value(), dialog.minAreaSpin.value(), dialog.simplifySpin.value()) == (0.5, 0, 0.5)
    assert not dialog.regularizeCheck.isChecked() and dialog.previewGroup.isChecked()
    assert dialog.sourceLabel.text() == ("probability.tif: 900 × 900 px at 0.50 m, band 1 (float32); touching "
                                         "buildings split at interior band 2 ≥ 0.5, as extracted")
    assert dialog.is_valid() and dialog.applyButton.isEnabled()

    settle(dialog, qtbot)
    layer = dialog.preview_layer()
    assert layer.featureCount() > 50 and layer.crs() == probability.crs()
    assert QgsProject.instance().mapLayer(layer.id()) is layer
    assert [f.name() for f in layer.fields()] == ["score", "area_m2"]
    symbol_layer = layer.renderer().symbol().symbolLayer(0)
    assert symbol_layer.strokeStyle() == Qt.PenStyle.DashLine  # reads as a preview
    assert dialog.previewLabel.text().startswith(f"{layer.featureCount()} footprints in view at threshold 0.50")

    layer_id = layer.id()
    dialog.reject()
    assert dialog.preview_layer() is None and QgsProject.instance().mapLayer(layer_id) is None


def test_the_active_probability_layer_is_the_default(layers, open_dialog, blobs, engine_probability):
    layers(engine_probability, "another probability")
    mine = layers(blobs)
    assert open_dialog(mine).probability_layer() is mine


def test_moving_the_threshold_slider_updates_the_preview_after_the_debounce(layers, open_dialog, blobs, qtbot):
    dialog = open_dialog(layers(blobs))
    settle(dialog, qtbot, count=15)  # threshold 0.5: the rows peaking at 0.55, 0.75 and 0.95
    updates = []
    dialog.previewUpdated.connect(updates.append)

    started = time.perf_counter()
    dialog.thresholdSlider.setValue(80)
    assert dialog.thresholdSpin.value() == 0.8 and dialog.options().threshold == 0.8
    assert shown(dialog) == 15 and dialog.is_updating()  # not yet: the debounce waits for the slider to rest
    qtbot.waitUntil(lambda: shown(dialog) == 5, timeout=1000)
    assert time.perf_counter() - started < 1.0  # a fraction of a second, debounce included
    assert updates == [5]

    for position in range(30, 61, 2):  # a drag: a value every few milliseconds
        dialog.thresholdSlider.setValue(position)
        qtbot.wait(5)
    settle(dialog, qtbot, count=10)
    assert updates[-1] == 10 and len(updates) <= 3  # debounced: not one update per position

    dialog.thresholdSpin.setValue(0.3)  # the spin box moves the slider too
    assert dialog.thresholdSlider.value() == 30
    settle(dialog, qtbot, count=20)


def test_minimum_area_simplify_and_regularize_update_the_preview(layers, open_dialog, blobs, qtbot):
    dialog = open_dialog(layers(blobs))
    settle(dialog, qtbot, count=15)
    areas = [f["area_m2"] for f in dialog.preview_layer().getFeatures()]
    assert all(100 < a < 170 for a in areas)  # 12 m squares (144 m²), blurred

    dialog.minAreaSpin.setValue(200)  # beyond the slider: the slider stays at its end
    assert dialog.minAreaSlider.value() == dialog.minAreaSlider.maximum()
    settle(dialog, qtbot, count=0)
    dialog.minAreaSlider.setValue(90)
    assert dialog.minAreaSpin.value() == 90
    settle(dialog, qtbot, count=15)

    dialog.minScoreSlider.setValue(80)  # the rows peaking at 0.55 and 0.75 score under 0.8
    assert dialog.minScoreSpin.value() == 0.8 and dialog.options().min_score == 0.8
    settle(dialog, qtbot, count=5)
    assert all(f["score"] >= 0.8 for f in dialog.preview_layer().getFeatures())
    assert "at least 90 m² and score 0.80," in dialog.previewLabel.text()
    dialog.minScoreSpin.setValue(0)
    settle(dialog, qtbot, count=15)

    dialog.simplifySlider.setValue(20)
    assert dialog.options().simplify_m == 2.0
    dialog.regularizeCheck.setChecked(True)
    settle(dialog, qtbot, count=15)
    assert dialog.last_footprints is not None and len(dialog.last_footprints) == 15
    assert all(len(g.exterior.coords) == 5 for g in dialog.last_footprints.geometries)  # squared: rectangles


def test_the_preview_follows_the_map_view(layers, open_dialog, blobs, canvas, qtbot):
    dialog = open_dialog(layers(blobs))
    settle(dialog, qtbot, count=15)
    x0, y0 = ORIGIN
    # a square view on the first building of the second row (pixels 125..149 down, 30..54 across)
    canvas.setExtent(QgsRectangle(x0 + 5, y0 - 80, x0 + 45, y0 - 40))
    settle(dialog, qtbot, count=1)
    dialog.thresholdSlider.setValue(60)  # over its peak, 0.55
    settle(dialog, qtbot, count=0)
    dialog.thresholdSlider.setValue(50)
    settle(dialog, qtbot, count=1)
    canvas.setExtent(QgsRectangle(x0 - 500, y0 - 1500, x0 - 400, y0 - 1400))  # off the raster
    settle(dialog, qtbot, count=0)
    assert "does not overlap" in dialog.noteLabel.text()


def test_a_map_in_another_crs_is_transformed_to_the_rasters(layers, open_dialog, blobs, canvas, qtbot):
    layer = layers(blobs)
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    dialog = open_dialog()
    dialog.set_probability_layer(layer)
    from qgis.core import QgsCoordinateTransform

    to_wgs84 = QgsCoordinateTransform(layer.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    canvas.setExtent(to_wgs84.transformBoundingBox(layer.extent()))
    settle(dialog, qtbot, count=15)


def test_an_rgb_raster_is_refused_with_a_message(layers, open_dialog, blobs, rgb, qtbot):
    probability = layers(blobs)
    dialog = open_dialog(probability)
    settle(dialog, qtbot, count=15)
    photo = layers(rgb)
    dialog.set_probability_layer(photo)
    assert not dialog.is_valid() and not dialog.applyButton.isEnabled()
    assert dialog.sourceLabel.text().startswith("photo_rgb.tif has 3 bands (red, green, blue): it is not a building "
                                                "probability raster")
    assert "color" in dialog.sourceLabel.styleSheet()
    assert dialog.preview_layer() is None
    qtbot.wait(200)
    assert dialog.preview_layer() is None and dialog.previewLabel.text() == "No preview."
    assert dialog.apply() is None  # Apply refuses too

    dialog.set_probability_layer(probability)
    assert dialog.is_valid() and dialog.applyButton.isEnabled() and dialog.sourceLabel.styleSheet() == ""
    settle(dialog, qtbot, count=15)


def test_save_to_says_what_an_empty_path_does(layers, open_dialog, blobs):
    dialog = open_dialog(layers(blobs))
    assert dialog.outputFile.filePath() == ""
    assert dialog.outputFile.lineEdit().placeholderText() == "[Save to temporary layer]"


def test_a_layer_that_is_not_a_raster_file_is_refused_with_what_to_do(layers, open_dialog, blobs, qtbot):
    dialog = open_dialog(layers(blobs))
    settle(dialog, qtbot, count=15)
    tiles = QgsRasterLayer("type=xyz&url=http://127.0.0.1:9/{z}/{x}/{y}.png&zmin=0&zmax=19", "web tiles", "wms")
    assert tiles.isValid()
    QgsProject.instance().addMapLayer(tiles)
    try:
        dialog.set_probability_layer(tiles)
        assert not dialog.is_valid() and not dialog.applyButton.isEnabled()
        assert dialog.sourceLabel.text().startswith("'web tiles' is not a raster file (provider wms): save it as a "
                                                    "GeoTIFF first")
        assert dialog.preview_layer() is None and dialog.apply() is None
    finally:
        QgsProject.instance().removeMapLayer(tiles.id())


def test_apply_writes_what_the_preview_shows_for_a_view_of_the_whole_raster(layers, open_dialog, engine_probability,
                                                                            qtbot, tmp_path):
    from spacenet_toolkit.qgis_adapter.styles import building_renderer

    probability = layers(engine_probability, "building probability")
    dialog = open_dialog(probability)
    dialog.thresholdSlider.setValue(45)
    dialog.regularizeCheck.setChecked(True)
    settle(dialog, qtbot)
    preview_layer = dialog.preview_layer()
    assert preview_layer.featureCount() > 50

    with qtbot.waitSignal(dialog.applied, timeout=30000) as applied:
        qtbot.mouseClick(dialog.applyButton, Qt.MouseButton.LeftButton)
        assert not dialog.applyButton.isEnabled()
    written = applied.args[0]
    try:
        assert QgsProject.instance().mapLayer(written.id()) is written
        assert written.featureCount() == preview_layer.featureCount()
        assert wkbs(written) == wkbs(preview_layer)  # the very same polygons, to the last bit
        assert [f.name() for f in written.fields()] == ["id", "score", "area_m2"]
        assert written.crs() == probability.crs()
        expected = building_renderer()  # held: its symbol lives as long as the renderer
        assert written.renderer().symbol().symbolLayer(0).strokeColor() == \
            expected.symbol().symbolLayer(0).strokeColor()
        assert "threshold: 0.45" in written.metadata().abstract()
        assert "regularize: True" in written.metadata().abstract()
        assert dialog.applyButton.isEnabled() and "footprints written to a temporary layer" in dialog.message()
    finally:
        QgsProject.instance().removeMapLayer(written.id())

    dialog.outputFile.setFilePath(str(tmp_path / "buildings"))
    with qtbot.waitSignal(dialog.applied, timeout=30000) as applied:
        dialog.apply()
    saved = applied.args[0]
    try:
        assert (tmp_path / "buildings.gpkg").is_file() and saved.providerType() == "ogr"
        assert wkbs(saved) == wkbs(preview_layer)
    finally:
        QgsProject.instance().removeMapLayer(saved.id())


def test_apply_records_every_setting_the_extraction_records_min_score_included(layers, open_dialog, blobs, qtbot):
    probability = layers(blobs, "building probability")
    dialog = open_dialog(probability)
    dialog.minScoreSpin.setValue(0.6)
    settle(dialog, qtbot)
    with qtbot.waitSignal(dialog.applied, timeout=30000) as applied:
        dialog.apply()
    written = applied.args[0]
    try:
        recorded = dict(keyword.split("=", 1) for keyword in written.metadata().keywords()["spacenet"])
        assert recorded["min_score"] == "0.6" and "min_score: 0.6" in written.metadata().abstract()
        assert set(recorded) == {"source", "threshold", "min_area_m2", "min_score", "simplify_m", "regularize"}
    finally:
        QgsProject.instance().removeMapLayer(written.id())


def test_closing_while_busy_leaves_no_preview_and_apply_still_writes(layers, open_dialog, engine_probability, qtbot):
    probability = layers(engine_probability, "building probability")
    dialog = open_dialog(probability)
    settle(dialog, qtbot)
    preview_id = dialog.preview_layer().id()
    added = []
    QgsProject.instance().layerWasAdded.connect(added.append)
    try:
        assert dialog.apply() is not None
        dialog.thresholdSlider.setValue(30)
        dialog._update_preview()  # a preview on the worker thread as the dialog closes
        dialog.reject()
        assert QgsProject.instance().mapLayer(preview_id) is None
        qtbot.waitUntil(lambda: any(layer.name() == "Building footprints (threshold 0.5)" for layer in added),
                        timeout=30000)
        qtbot.wait(100)  # the preview computed meanwhile arrives, and is dropped
        assert not [layer for layer in added if layer.name() == "Building footprints (preview)"]
    finally:
        QgsProject.instance().layerWasAdded.disconnect(added.append)
        QgsProject.instance().removeMapLayers([layer.id() for layer in added
                                               if QgsProject.instance().mapLayer(layer.id())])


def test_open_thresholds_dialog_shows_one_dialog(qgis_iface, layers, blobs, qtbot, monkeypatch):
    from spacenet_toolkit.ui import thresholds_dialog

    layer = layers(blobs)
    canvas = QgsMapCanvas()
    canvas.resize(400, 400)
    canvas.setExtent(layer.extent())
    qtbot.addWidget(canvas)
    monkeypatch.setattr(qgis_iface, "mapCanvas", lambda: canvas)
    monkeypatch.setattr(qgis_iface, "activeLayer", lambda: layer)
    first = thresholds_dialog.open_thresholds_dialog(qgis_iface)
    try:
        assert first.isVisible() and first.probability_layer() is layer
        assert thresholds_dialog.open_thresholds_dialog(qgis_iface) is first
        settle(first, qtbot, count=15)
    finally:
        thresholds_dialog.close_thresholds_dialog()
    assert thresholds_dialog._open_dialog is None and first.preview_layer() is None


def test_screenshot_of_the_dialog_and_its_preview(layers, open_dialog, engine_probability, canvas, save_screenshot,
                                                  qtbot):
    """artifacts/screenshots/thresholds_dialog.png for a person to look at (docs/screenshots/ holds a copy), and
    the map with the preview over the probability raster (thresholds_preview.png)."""
    probability = layers(engine_probability, "building probability")
    dialog = open_dialog(probability)
    dialog.thresholdSlider.setValue(55)
    settle(dialog, qtbot)
    dialog.resize(540, 480)
    dialog.show()
    qtbot.waitExposed(dialog)
    folder = save_screenshot(dialog, "thresholds_dialog").parent

    settings = QgsMapSettings()
    settings.setLayers([dialog.preview_layer(), probability])
    settings.setDestinationCrs(probability.crs())
    extent = probability.extent()
    extent.scale(0.5)  # the middle, where the dashes show
    settings.setExtent(extent)
    settings.setOutputSize(QSize(700, 700))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    assert job.renderedImage().save(str(folder / "thresholds_preview.png"))
