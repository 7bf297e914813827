"""spacenet:scoref1 inside QGIS: processing.run on real layers and challenge CSVs, styles, errors, cancel, modeler."""

import csv
from collections import Counter

import pytest
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsDistanceArea,
    QgsFeatureRequest,
    QgsField,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterVectorLayer,
    QgsProject,
    QgsUnitTypes,
    QgsVectorLayer,
)

from spacenet_toolkit.qgis_adapter.qt_compat import FieldType

ALGORITHM = "spacenet:scoref1"


def run(parameters, feedback=None):
    import processing

    return processing.run(ALGORITHM, parameters, feedback=feedback or QgsProcessingFeedback())


def layer_features(path):
    layer = QgsVectorLayer(str(path), "scored", "ogr")
    assert layer.isValid(), path
    return list(layer.getFeatures())


def test_geojson_layers_give_the_reference_counts(provider, oracle, tmp_path):
    results = run({
        "TRUTH": str(oracle / "gt.geojson"), "PROPOSALS": str(oracle / "pred.geojson"),
        "OUTPUT": str(tmp_path / "scored.gpkg"), "OUTPUT_HTML": str(tmp_path / "report.html"),
    })
    assert (results["TP"], results["FP"], results["FN"]) == (8, 20, 20)
    assert results["F1"] == pytest.approx(0.2857142857, abs=1e-9)

    features = layer_features(results["OUTPUT"])
    assert Counter(f["status"] for f in features) == {"TP": 8, "FP": 20, "FN": 20}
    assert Counter(f["layer"] for f in features) == {"proposal": 28, "truth": 20}
    assert all(f["iou"] >= 0.5 and f["match_id"] is not None for f in features if f["status"] == "TP")
    assert all(f["iou"] < 0.5 for f in features if f["status"] == "FP")
    report = (tmp_path / "report.html").read_text()
    assert "<svg" in report and "What was scored" in report
    assert "F1 per group" not in report  # one group: the summary says it all
    assert not list(tmp_path.glob("*.part"))


def test_challenge_csvs_reproduce_every_image_of_the_oracle(provider, oracle, tmp_path):
    results = run({
        "TRUTH": str(oracle / "SN2_sample_truth.csv"), "PROPOSALS": str(oracle / "SN2_sample_preds.csv"),
        "MATCHING": 1, "MIN_AREA_TRUTH": 20, "MIN_AREA_PROPOSALS": 20,  # solaris' SN2 settings
        "OUTPUT": str(tmp_path / "scored.gpkg"), "OUTPUT_TABLE": str(tmp_path / "table.csv"),
    })
    with open(tmp_path / "table.csv", newline="") as table:
        rows = {(r["level"], r["group_name"]): r for r in csv.DictReader(table)}
    with open(oracle / "SN2_test_results_full.csv", newline="") as expected_file:
        expected = list(csv.DictReader(expected_file))
    image_column = next(c for c in expected[0] if c not in {"F1Score", "FalseNeg", "FalsePos", "Precision",
                                                             "Recall", "TruePos"})
    for image in expected:
        row = rows[("group", image[image_column])]
        assert (int(row["tp"]), int(row["fp"]), int(row["fn"])) == (
            int(image["TruePos"]), int(image["FalsePos"]), int(image["FalseNeg"])), image[image_column]
        assert float(row["f1"]) == pytest.approx(float(image["F1Score"]), abs=1e-9)
    assert results["TP"] == sum(int(image["TruePos"]) for image in expected)
    assert results["FN"] == sum(int(image["FalseNeg"]) for image in expected)
    aoi_f1 = sorted(float(r["f1"]) for (level, _), r in rows.items() if level == "aoi")
    with open(oracle / "SN2_test_results.csv", newline="") as expected_file:
        assert aoi_f1 == pytest.approx(sorted(float(r["F1Score"]) for r in csv.DictReader(expected_file)), abs=1e-9)


def reprojected_copy(path, epsg, target):
    import processing

    return processing.run("native:reprojectlayer", {
        "INPUT": str(path), "TARGET_CRS": QgsCoordinateReferenceSystem(f"EPSG:{epsg}"), "OUTPUT": str(target),
    })["OUTPUT"]


def test_proposals_in_another_crs_are_transformed_to_the_truth_crs(provider, oracle, tmp_path):
    proposals_4326 = reprojected_copy(oracle / "pred.geojson", 4326, tmp_path / "pred_4326.gpkg")
    results = run({"TRUTH": str(oracle / "gt.geojson"), "PROPOSALS": proposals_4326, "OUTPUT": "memory:"})
    assert (results["TP"], results["FP"], results["FN"]) == (8, 20, 20)


def test_minimum_area_is_in_square_metres_for_a_geographic_crs(provider, oracle, tmp_path):
    truth_utm = QgsVectorLayer(str(oracle / "gt.geojson"), "gt", "ogr")
    areas = sorted(feature.geometry().area() for feature in truth_utm.getFeatures())  # EPSG:32616: metres
    threshold = (areas[5] + areas[6]) / 2  # six truth buildings are smaller than this
    truth_4326 = reprojected_copy(oracle / "gt.geojson", 4326, tmp_path / "gt_4326.gpkg")

    feedback = QgsProcessingFeedback()
    warnings = []
    feedback.reportError = lambda text, fatal=False: warnings.append(text)
    feedback.pushWarning = lambda text: warnings.append(text)
    results = run({"TRUTH": truth_4326, "PROPOSALS": str(oracle / "pred.geojson"), "MIN_AREA_TRUTH": threshold,
                   "OUTPUT": "memory:"}, feedback)
    assert "6 truth polygon(s) below the minimum area left out" in warnings
    assert results["TP"] + results["FN"] == 28 - 6

    # The same threshold read as degrees² would drop every building: prove the measure is metric.
    measure = QgsDistanceArea()
    layer = QgsVectorLayer(truth_4326, "t", "ogr")
    measure.setSourceCrs(layer.crs(), QgsProject.instance().transformContext())
    measure.setEllipsoid("EPSG:7030")
    first = next(layer.getFeatures()).geometry()
    metric = measure.convertAreaMeasurement(measure.measureArea(first), QgsUnitTypes.AreaUnit.AreaSquareMeters)
    assert first.area() < 1e-6 < metric


@pytest.mark.parametrize(("parameters", "message"), [
    ({"TRUTH": "lines"}, "TRUTH must be a polygon layer"),
    ({"GROUP_FIELD": "tile"}, "The group field 'tile' is missing from PROPOSALS"),
    ({"PROPOSALS": "csv"}, "must both be polygon layers or both challenge CSV files"),
])
def test_bad_inputs_get_a_clear_error(provider, oracle, tmp_path, parameters, message):
    lines = QgsVectorLayer("LineString?crs=EPSG:32616&field=id:integer", "lines", "memory")
    truth_with_tile = QgsVectorLayer(str(oracle / "gt.geojson"), "gt", "ogr").materialize(QgsFeatureRequest())
    truth_with_tile.dataProvider().addAttributes([QgsField("tile", FieldType.String)])
    truth_with_tile.updateFields()
    values = {"lines": lines, "csv": str(oracle / "SN2_sample_preds.csv")}
    full = {"TRUTH": truth_with_tile, "PROPOSALS": str(oracle / "pred.geojson"), "OUTPUT": "memory:"}
    full.update({k: values.get(v, v) for k, v in parameters.items()})
    with pytest.raises(QgsProcessingException, match=message):
        run(full)


def test_scored_layer_is_styled_by_status_when_loaded(provider, oracle, qgis_new_project):
    import processing

    results = processing.runAndLoadResults(ALGORITHM, {
        "TRUTH": str(oracle / "gt.geojson"), "PROPOSALS": str(oracle / "pred.geojson"), "OUTPUT": "memory:",
    })
    layer = QgsProject.instance().mapLayer(results["OUTPUT"])
    renderer = layer.renderer()
    assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == "status"
    colours = {c.value(): c.symbol().color().name() for c in renderer.categories()}
    assert colours == {"TP": "#2e9e44", "FP": "#d7301f", "FN": "#2b6cd6"}


def test_a_cancelled_run_writes_nothing(provider, oracle, tmp_path):
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM)
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    output = tmp_path / "scored.gpkg"
    results, _ok = algorithm.run(
        {"TRUTH": str(oracle / "gt.geojson"), "PROPOSALS": str(oracle / "pred.geojson"), "OUTPUT": str(output),
         "OUTPUT_HTML": str(tmp_path / "report.html")},
        QgsProcessingContext(), feedback,
    )
    assert "F1" not in results
    assert list(tmp_path.iterdir()) == []


def test_runs_as_a_step_of_a_graphical_model(provider, oracle):
    model = QgsProcessingModelAlgorithm("score", "tests")
    for name in ("truth", "proposals"):
        model.addModelParameter(QgsProcessingParameterVectorLayer(name, name),
                                QgsProcessingModelParameter(name))
    child = QgsProcessingModelChildAlgorithm(ALGORITHM)
    child.setChildId("score")
    child.addParameterSources("TRUTH", [QgsProcessingModelChildParameterSource.fromModelParameter("truth")])
    child.addParameterSources("PROPOSALS", [QgsProcessingModelChildParameterSource.fromModelParameter("proposals")])
    child.addParameterSources("OUTPUT", [QgsProcessingModelChildParameterSource.fromStaticValue("memory:")])
    f1_output = QgsProcessingModelOutput("scored", "scored")
    f1_output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"scored": f1_output})
    model.addChildAlgorithm(child)

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    results, ok = model.run({"truth": str(oracle / "gt.geojson"), "proposals": str(oracle / "pred.geojson"),
                             "score:scored": "memory:"}, context, QgsProcessingFeedback())
    assert ok
    child_results = results["CHILD_RESULTS"]["score"]
    assert (child_results["TP"], child_results["FP"], child_results["FN"]) == (8, 20, 20)



def test_one_instance_runs_row_after_row_as_batch_mode_does(provider, oracle, tmp_path):
    """Batch mode runs the same algorithm object once per row, each in a fresh context, under one feedback."""
    from qgis.core import QgsProcessingMultiStepFeedback

    algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM)
    rows = [("gt.geojson", "pred.geojson"), ("gt.geojson", "gt.geojson")]  # the second: truth against itself
    dialog_feedback = QgsProcessingFeedback()  # kept referenced: the multi-step feedback does not own it
    feedback = QgsProcessingMultiStepFeedback(len(rows), dialog_feedback)
    statuses = []
    for row, (truth, proposals) in enumerate(rows):
        feedback.setCurrentStep(row)
        output = tmp_path / f"row{row}.gpkg"
        results, ok = algorithm.run({"TRUTH": str(oracle / truth), "PROPOSALS": str(oracle / proposals),
                                     "OUTPUT": str(output)}, QgsProcessingContext(), feedback)
        assert ok
        statuses.append(Counter(f["status"] for f in layer_features(output)))
    assert statuses == [{"TP": 8, "FP": 20, "FN": 20}, {"TP": 28}]


def proposals_layer(oracle, fields=()):
    """pred.geojson as a memory layer, with ``fields`` (name, value) added to every feature."""
    layer = QgsVectorLayer(str(oracle / "pred.geojson"), "pred", "ogr").materialize(QgsFeatureRequest())
    layer.dataProvider().addAttributes([QgsField(name, FieldType.String) for name, _ in fields])
    layer.updateFields()
    values = {layer.fields().lookupField(name): value for name, value in fields}
    layer.dataProvider().changeAttributeValues({feature.id(): values for feature in layer.getFeatures()})
    return layer


@pytest.mark.parametrize(("fields", "keywords", "model"), [
    ((("model", "buildings_unet_small"), ("model_version", "0.4.1"), ("device", "CPU")), None,
     "buildings_unet_small 0.4.1"),
    ((("model", "buildings_unet_small"), ("device", "CPU")), None, "buildings_unet_small"),  # older outputs
    ((), ["model=roads_effnet_lite0", "model_version=1.0.0", "device=CPU"], "roads_effnet_lite0 1.0.0"),
    ((("model", "Citroën 2CV"),), None, None),  # a "model" field alone is not our extraction's
    ((), None, None),
])
def test_the_report_names_the_model_only_where_the_proposals_record_it(provider, oracle, tmp_path, fields, keywords,
                                                                       model):
    proposals = proposals_layer(oracle, fields)
    if keywords:  # what BuildingStyler records in a layer loaded into a project
        metadata = proposals.metadata()
        metadata.setKeywords({"spacenet": keywords})
        proposals.setMetadata(metadata)
    run({"TRUTH": str(oracle / "gt.geojson"), "PROPOSALS": proposals, "OUTPUT_HTML": str(tmp_path / "r.html")})
    report = (tmp_path / "r.html").read_text()
    if model is None:
        assert "Model of the proposals" not in report
    else:
        assert f"<td>Model of the proposals</td><td>{model}</td>" in report
