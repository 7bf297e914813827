"""spacenet:extractbuildings inside QGIS: parameters, outputs, styling, errors, cancel."""

import pytest
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

ALGORITHM = "spacenet:extractbuildings"
ATLANTA = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"
VEGAS_RGB = "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"


def run(parameters, feedback=None):
    import processing

    return processing.run(ALGORITHM, parameters, feedback=feedback or QgsProcessingFeedback())


def test_footprints_with_fields_crs_and_the_run_recorded(provider, fixtures, brightness_model, tmp_path):
    output = tmp_path / "buildings.gpkg"
    probability = tmp_path / "probability.tif"
    result = run({"INPUT": str(fixtures / ATLANTA), "MODEL": brightness_model, "OUTPUT": str(output),
                  "OUTPUT_PROBABILITY": str(probability), "DEVICE": "cpu", "MIN_AREA": 4, "REGULARIZE": True})
    layer = QgsVectorLayer(result["OUTPUT"], "buildings")
    assert layer.isValid() and layer.featureCount() == result["BUILDING_COUNT"] > 10
    assert [f.name() for f in layer.fields()][-6:] == ["id", "score", "area_m2", "model", "model_version", "device"]
    assert layer.crs().authid() == "EPSG:32616"
    features = list(layer.getFeatures())
    assert all(f["area_m2"] >= 4 and 0.5 <= f["score"] <= 1 for f in features)
    assert {f["model"] for f in features} == {"brightness_test_model"} and {f["device"] for f in features} == {"CPU"}
    assert {f["model_version"] for f in features} == {"0.0.1"}  # the card's: the scoring reports name it
    assert abs(features[0].geometry().area() - features[0]["area_m2"]) < 0.01 * features[0]["area_m2"] + 0.01
    assert result["DEVICE_USED"] == "CPU" and result["MODEL_NAME"] == "brightness_test_model"
    raster = QgsRasterLayer(result["OUTPUT_PROBABILITY"], "p")
    assert raster.isValid() and raster.crs().authid() == "EPSG:32616"


def test_a_minimum_score_keeps_the_surer_footprints(provider, fixtures, brightness_model):
    every = run({"INPUT": str(fixtures / ATLANTA), "MODEL": brightness_model, "OUTPUT": "memory:"})
    surer = run({"INPUT": str(fixtures / ATLANTA), "MODEL": brightness_model, "OUTPUT": "memory:", "MIN_SCORE": 0.7})
    scores = [f["score"] for f in every["OUTPUT"].getFeatures()]
    assert surer["BUILDING_COUNT"] == sum(s >= 0.7 for s in scores) < len(scores)
    assert all(f["score"] >= 0.7 for f in surer["OUTPUT"].getFeatures())


def test_an_extent_in_another_crs_limits_the_search(provider, fixtures, brightness_model):
    whole = run({"INPUT": str(fixtures / ATLANTA), "MODEL": brightness_model, "OUTPUT": "memory:"})
    # the western half of the tile, given in WGS 84
    layer = QgsRasterLayer(str(fixtures / ATLANTA), "atlanta")
    e = layer.extent()
    from qgis.core import QgsCoordinateTransform, QgsRectangle

    to_wgs84 = QgsCoordinateTransform(layer.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    west = to_wgs84.transformBoundingBox(QgsRectangle(e.xMinimum(), e.yMinimum(), e.center().x(), e.yMaximum()))
    extent = f"{west.xMinimum()},{west.xMaximum()},{west.yMinimum()},{west.yMaximum()} [EPSG:4326]"
    half = run({"INPUT": str(fixtures / ATLANTA), "MODEL": brightness_model, "EXTENT": extent, "OUTPUT": "memory:"})
    assert 0 < half["BUILDING_COUNT"] < whole["BUILDING_COUNT"]
    limit = to_wgs84.transformBoundingBox(west, Qgis.TransformDirection.Reverse).xMaximum()
    right = max(f.geometry().boundingBox().xMaximum() for f in half["OUTPUT"].getFeatures())
    assert right <= limit + 0.5  # the model grid ends on a whole pixel (0.5 m)


def test_errors_name_the_problem(provider, fixtures, brightness_model):
    with pytest.raises(QgsProcessingException, match="2 band\\(s\\) were chosen .* takes 3"):
        run({"INPUT": str(fixtures / VEGAS_RGB), "MODEL": brightness_model, "BANDS": [1, 2], "OUTPUT": "memory:"})
    with pytest.raises(QgsProcessingException, match="No model 'no_such_model': give the name of a shipped model"):
        run({"INPUT": str(fixtures / ATLANTA), "MODEL": "no_such_model", "OUTPUT": "memory:"})
    with pytest.raises(QgsProcessingException, match="does not overlap the raster"):
        run({"INPUT": str(fixtures / ATLANTA), "MODEL": brightness_model, "EXTENT": "0,1,0,1 [EPSG:4326]",
             "OUTPUT": "memory:"})


class CancelAfter(QgsProcessingFeedback):
    def __init__(self, progress):
        super().__init__()
        self.progressChanged.connect(lambda value: value >= progress and self.cancel())


def test_cancel_writes_nothing(provider, fixtures, brightness_model, tmp_path):
    output, probability = tmp_path / "buildings.gpkg", tmp_path / "probability.tif"
    result = run({"INPUT": str(fixtures / ATLANTA), "MODEL": brightness_model, "OUTPUT": str(output), "BATCH_SIZE": 1,
                  "OUTPUT_PROBABILITY": str(probability)}, feedback=CancelAfter(10))
    assert result == {}
    assert not output.exists() and not probability.exists()


def test_loaded_footprints_are_styled_and_carry_the_run(provider, fixtures, brightness_model):
    from spacenet_toolkit.qgis_adapter.styles import BuildingStyler

    layer = QgsVectorLayer("Polygon?crs=EPSG:32616", "footprints", "memory")
    BuildingStyler.for_run({"model": "m", "device": "CPU", "threshold": 0.5}).postProcessLayer(layer, None, None)
    assert layer.renderer().symbol().color().name() == "#ffaa00"
    assert "model: m" in layer.metadata().abstract() and "device: CPU" in layer.metadata().abstract()


def test_the_loaded_probability_raster_shows_band_1_as_probability(provider, fixtures, brightness_model, tmp_path,
                                                                   qgis_new_project):
    """Two bands (building, interior) would load as a colour composite; it is shown as probability instead."""
    import processing

    results = processing.runAndLoadResults(ALGORITHM, {
        "INPUT": str(fixtures / ATLANTA), "MODEL": brightness_model, "OUTPUT": "memory:",
        "OUTPUT_PROBABILITY": str(tmp_path / "probability.tif")})
    (layer,) = [layer for layer in QgsProject.instance().mapLayers().values()
                if isinstance(layer, QgsRasterLayer) and layer.source() == results["OUTPUT_PROBABILITY"]]
    assert layer.bandCount() == 2
    renderer = layer.renderer()
    band = renderer.inputBand() if hasattr(renderer, "inputBand") else renderer.band()  # band() is deprecated in 3.38
    assert renderer.type() == "singlebandpseudocolor" and band == 1
    assert (renderer.classificationMin(), renderer.classificationMax()) == (0.0, 1.0)
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert [round(item.value, 1) for item in items] == [step / 10 for step in range(11)]


def test_the_dialog_starts_on_the_active_raster_and_the_canvas(provider, fixtures, qgis_iface, qgis_canvas):
    from spacenet_toolkit.plugin import SpaceNetToolkitPlugin

    layer = QgsRasterLayer(str(fixtures / ATLANTA), "atlanta")
    QgsProject.instance().addMapLayer(layer)
    qgis_iface.setActiveLayer(layer)
    qgis_canvas.setDestinationCrs(layer.crs())
    qgis_canvas.setExtent(layer.extent())
    try:
        defaults = SpaceNetToolkitPlugin(qgis_iface).dialog_defaults(ALGORITHM)
        assert defaults["INPUT"] == layer.id()
        assert defaults["EXTENT"].endswith("[EPSG:32616]")
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_bands_the_model_cannot_take_are_refused_before_the_run(provider, fixtures, brightness_model):
    from qgis.core import QgsApplication, QgsProcessingContext

    algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM)
    context = QgsProcessingContext()
    base = {"INPUT": str(fixtures / VEGAS_RGB), "MODEL": brightness_model, "OUTPUT": "memory:"}
    assert algorithm.checkParameterValues({**base, "BANDS": [3, 2, 1]}, context) == (True, "")
    assert algorithm.checkParameterValues(base, context)[0]  # automatic
    ok, message = algorithm.checkParameterValues({**base, "BANDS": [1, 2]}, context)
    assert not ok and "2 band(s) were chosen (1, 2) but the model takes 3" in message
    ok, message = algorithm.checkParameterValues({**base, "BANDS": [7]}, context)
    assert not ok and message == "Band(s) 7, 7, 7 do not exist: the raster has bands 1 to 4."
