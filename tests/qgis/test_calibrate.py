"""spacenet:calibrate inside QGIS: processing.run on the engine's own probability raster of a real SpaceNet tile."""

import csv
import warnings

import pytest
import rasterio
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsVectorLayer,
)

ALGORITHM = "spacenet:calibrate"
ATLANTA = "spacenet/sn4_atlanta_pan"
THRESHOLDS, MIN_AREAS = "0.3:0.7:0.1", "0, 5, 20"  # a small grid: 5 vectorisations of the 900 x 900 px tile


@pytest.fixture(scope="module")
def calibrate_provider(qgis_processing):
    """The provider with the calibration algorithm, whether or not provider.py lists it yet."""
    from spacenet_toolkit.processing_provider.calibrate import Calibrate
    from spacenet_toolkit.processing_provider.provider import ALGORITHMS, SpaceNetProvider

    registry = QgsApplication.processingRegistry()
    if registry.algorithmById(ALGORITHM) is not None:
        yield registry.providerById("spacenet")
        return
    assert registry.providerById("spacenet") is None, "a spacenet provider without calibrate is registered"
    provider = SpaceNetProvider(algorithm_classes=(*ALGORITHMS, Calibrate) if Calibrate not in ALGORITHMS
                                else ALGORITHMS)
    assert registry.addProvider(provider)
    yield provider
    registry.removeProvider(provider)


@pytest.fixture(scope="module")
def probability(fixtures, brightness_model, tmp_path_factory):
    """The building probability the extraction engine writes for the Atlanta tile (Float32, 0..1: building and
    interior bands)."""
    from spacenet_toolkit.core.extract import extract

    path = tmp_path_factory.mktemp("probability") / "probability.tif"
    extract.extract_buildings(extract.ExtractRequest(str(fixtures / ATLANTA / "sample_geotiff.tif"), brightness_model,
                                                     probability_path=str(path)))
    return path


@pytest.fixture(scope="module")
def truth(fixtures):
    return str(fixtures / ATLANTA / "geotiff_labels.geojson")


@pytest.fixture(scope="module")
def labels_image(fixtures, tmp_path_factory):
    """The tile's footprint mask (0 / 255, rasterised from the truth) georeferenced as the tile: an image in which
    the brightness model sees the labelled buildings, so that F1 is far from 0 and depends on the threshold."""
    path = tmp_path_factory.mktemp("labels") / "labels.tif"
    with rasterio.open(fixtures / ATLANTA / "sample_geotiff.tif") as tile:
        profile = tile.profile | {"dtype": "uint8", "nodata": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # the mask has no georeference
        with rasterio.open(fixtures / ATLANTA / "sample_fp_mask_from_geojson.tif") as mask:
            values = mask.read(1)
    with rasterio.open(path, "w", **profile) as out:
        out.write(values, 1)
    return path


@pytest.fixture(scope="module")
def building_only_model(tmp_path_factory):
    """The brightness model without an interior channel: its extraction splits touching buildings with distance
    seeds, as a calibration on the one-band probability raster does, so the two give the same footprints."""
    import onnx_models

    card = onnx_models.card(input={"tile_size": 256, "overlap": 96},
                            outputs={"name": "probabilities", "activation": "none", "channels": ["building", "wide"]})
    return str(onnx_models.brightness_model(tmp_path_factory.mktemp("models") / "building_only.onnx", card))


@pytest.fixture(scope="module")
def labels_probability(labels_image, building_only_model, tmp_path_factory):
    from spacenet_toolkit.core.extract import extract

    path = tmp_path_factory.mktemp("labels_probability") / "probability.tif"
    extract.extract_buildings(extract.ExtractRequest(str(labels_image), building_only_model,
                                                     probability_path=str(path)))
    return path


def run(parameters, feedback=None):
    import processing

    return processing.run(ALGORITHM, parameters, feedback=feedback or QgsProcessingFeedback())


def read_table(path):
    with open(path, newline="") as table:
        return list(csv.DictReader(table))


def test_outputs_and_the_best_pair_of_the_table(calibrate_provider, probability, truth, tmp_path):
    results = run({"PROBABILITY": str(probability), "TRUTH": truth, "THRESHOLDS": THRESHOLDS, "MIN_AREAS": MIN_AREAS,
                   "OUTPUT_TABLE": str(tmp_path / "table.csv"), "OUTPUT_HTML": str(tmp_path / "report.html")})
    rows = read_table(tmp_path / "table.csv")
    assert [(float(r["threshold"]), float(r["min_area_m2"])) for r in rows] == [
        (t, a) for t in (0.3, 0.4, 0.5, 0.6, 0.7) for a in (0.0, 5.0, 20.0)]
    assert results["BEST_F1"] == max(float(r["f1"]) for r in rows)  # the brightness model sees no building
    (best,) = [r for r in rows if r["best"] == "1"]
    assert (float(best["threshold"]), float(best["min_area_m2"]), float(best["f1"])) == (
        results["BEST_THRESHOLD"], results["BEST_MIN_AREA"], results["BEST_F1"])
    for row in rows:
        tp, fp, fn = int(row["tp"]), int(row["fp"]), int(row["fn"])
        assert tp + fp == int(row["footprints"]) and tp + fn == int(rows[0]["tp"]) + int(rows[0]["fn"])
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert report.count("<svg") == 3 and report.count("<polyline") >= 3
    assert "F1 by threshold, one line per minimum area" in report
    assert not list(tmp_path.glob("*.part"))


def test_the_best_pair_scores_the_same_through_extraction_and_scoref1(calibrate_provider, labels_probability,
                                                                      labels_image, building_only_model, truth,
                                                                      tmp_path):
    """The engine's blur of the labelled buildings: a clear best pair; extracting at it over the whole tile and
    scoring with spacenet:scoref1 gives the same counts and F1."""
    import processing

    from spacenet_toolkit.core.extract import extract

    with rasterio.open(labels_probability) as src:
        left, bottom, right, top = src.bounds
    results = run({"PROBABILITY": str(labels_probability), "TRUTH": truth, "THRESHOLDS": THRESHOLDS,
                   "MIN_AREAS": MIN_AREAS, "EXTENT": f"{left},{right},{bottom},{top} [EPSG:32616]",
                   "OUTPUT_TABLE": str(tmp_path / "table.csv")})
    rows = read_table(tmp_path / "table.csv")
    (best,) = [r for r in rows if r["best"] == "1"]
    assert results["BEST_F1"] == max(float(r["f1"]) for r in rows) > 0.5
    assert len({round(float(r["f1"]), 6) for r in rows}) > 3  # the threshold and the area matter

    extraction = extract.extract_buildings(extract.ExtractRequest(
        str(labels_image), building_only_model, options={"threshold": results["BEST_THRESHOLD"],
                                                    "min_area_m2": results["BEST_MIN_AREA"], "simplify_m": 0.5}))
    proposals = memory_layer("Polygon?crs=EPSG:32616", [f.geometry.wkt for f in extraction.footprints])
    scored = processing.run("spacenet:scoref1", {"TRUTH": truth, "PROPOSALS": proposals, "OUTPUT": "memory:"})
    assert len(extraction.footprints) == int(best["footprints"])
    assert (scored["TP"], scored["FP"], scored["FN"]) == (int(best["tp"]), int(best["fp"]), int(best["fn"]))
    assert scored["F1"] == pytest.approx(results["BEST_F1"], abs=1e-12)


def test_truth_in_another_crs_is_transformed_to_the_rasters(calibrate_provider, probability, truth, tmp_path):
    import processing

    truth_4326 = processing.run("native:reprojectlayer", {
        "INPUT": truth, "TARGET_CRS": QgsCoordinateReferenceSystem("EPSG:4326"), "OUTPUT": str(tmp_path / "t.gpkg"),
    })["OUTPUT"]
    parameters = {"PROBABILITY": str(probability), "THRESHOLDS": "0.4, 0.5", "MIN_AREAS": "0, 10"}
    utm = run({**parameters, "TRUTH": truth})
    geographic = run({**parameters, "TRUTH": truth_4326})
    assert (geographic["BEST_THRESHOLD"], geographic["BEST_MIN_AREA"]) == (utm["BEST_THRESHOLD"],
                                                                          utm["BEST_MIN_AREA"])
    assert geographic["BEST_F1"] == pytest.approx(utm["BEST_F1"], abs=1e-9)


def test_a_raster_with_more_bands_is_read_from_band_1(calibrate_provider, probability, truth, tmp_path):
    two_bands = tmp_path / "two.tif"
    with rasterio.open(probability) as src:
        values, profile = src.read(1), src.profile
    with rasterio.open(two_bands, "w", **(profile | {"count": 2})) as out:
        out.write(values, 1)
        out.write(1 - values, 2)
    feedback = QgsProcessingFeedback()
    warnings = []
    feedback.pushWarning = warnings.append
    parameters = {"TRUTH": truth, "THRESHOLDS": "0.5", "MIN_AREAS": "5"}
    two = run({**parameters, "PROBABILITY": str(two_bands)}, feedback)
    assert any("has 2 bands: band 1 is read as the building probability" in w for w in warnings)
    assert two["BEST_F1"] == run({**parameters, "PROBABILITY": str(probability)})["BEST_F1"]


def memory_layer(definition, wkts=()):
    layer = QgsVectorLayer(definition, "layer", "memory")
    features = []
    for wkt in wkts:
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromWkt(wkt))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


@pytest.mark.parametrize(("parameters", "message"), [
    ({"TRUTH": "lines"}, "TRUTH must be a polygon layer"),
    ({"TRUTH": "empty"}, "TRUTH has no features"),
    ({"TRUTH": "far"}, "The truth polygons .* do not overlap the probability raster"),
    ({"EXTENT": "0,10,0,10 [EPSG:32616]"}, "The labelled area .* does not overlap the probability raster"),
    ({"THRESHOLDS": "0.5, half"}, "THRESHOLDS: 'half' is not a number"),
    ({"MIN_AREAS": "-5"}, "MIN_AREAS: -5 outside the allowed range"),
])
def test_bad_inputs_get_a_clear_error(calibrate_provider, probability, truth, parameters, message):
    layers = {
        "lines": memory_layer("LineString?crs=EPSG:32616", ["LINESTRING(733700 3725000, 733800 3725000)"]),
        "empty": memory_layer("Polygon?crs=EPSG:32616"),
        "far": memory_layer("Polygon?crs=EPSG:32616", ["POLYGON((0 0, 10 0, 10 10, 0 10, 0 0))"]),
    }
    full = {"PROBABILITY": str(probability), "TRUTH": truth, "THRESHOLDS": "0.5", "MIN_AREAS": "0"}
    full.update({key: layers.get(value, value) for key, value in parameters.items()})
    with pytest.raises(QgsProcessingException, match=message):
        run(full)


def test_a_cancelled_run_writes_nothing(calibrate_provider, probability, truth, tmp_path):
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM)
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    output = tmp_path / "out"
    output.mkdir()
    results, _ok = algorithm.run({"PROBABILITY": str(probability), "TRUTH": truth,
                                  "OUTPUT_TABLE": str(output / "table.csv"), "OUTPUT_HTML": str(output / "r.html")},
                                 QgsProcessingContext(), feedback)
    assert "BEST_F1" not in results
    assert list(output.iterdir()) == []


def test_the_labelled_area_limits_what_is_scored(calibrate_provider, probability, truth, tmp_path):
    """A labelled area of the tile's western half scores only the truth and footprints there."""
    with rasterio.open(probability) as src:
        left, bottom, right, top = src.bounds
    parameters = {"PROBABILITY": str(probability), "TRUTH": truth, "THRESHOLDS": "0.5", "MIN_AREAS": "5"}
    run({**parameters, "OUTPUT_TABLE": str(tmp_path / "whole.csv")})
    run({**parameters, "EXTENT": f"{left},{(left + right) / 2},{bottom},{top} [EPSG:32616]",
         "OUTPUT_TABLE": str(tmp_path / "west.csv")})
    (whole,), (west,) = read_table(tmp_path / "whole.csv"), read_table(tmp_path / "west.csv")
    assert 0 < int(west["tp"]) + int(west["fn"]) < int(whole["tp"]) + int(whole["fn"])
    assert 0 < int(west["footprints"]) < int(whole["footprints"])
