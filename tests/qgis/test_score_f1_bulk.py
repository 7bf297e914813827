"""spacenet:scoref1 reads files and writes GeoPackages in bulk through GDAL (issue 20): on real GeoPackage, GeoJSON and
shapefile inputs the bulk and the feature-by-feature paths (``SPACENET_BULK_IO=0``) give the same numbers, the same
scored layer (features, ids, values, geometries, CRS, fields) and the same table; a selection or a subset filter is
honoured; what is not a file is read feature by feature; a cancel while writing leaves nothing."""

from collections import Counter

import footprint_files  # tests/support
import pytest
import shapely
from osgeo import ogr
from qgis.core import (
    NULL,
    QgsApplication,
    QgsFeatureRequest,
    QgsProcessingContext,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProject,
    QgsVectorLayer,
)

from spacenet_toolkit.core import vector_bulk

ALGORITHM = "spacenet:scoref1"
BOW_TIE = shapely.Polygon([(500_000, 4_000_000), (500_010, 4_000_010), (500_010, 4_000_000),
                           (500_000, 4_000_010), (500_000, 4_000_000)])


@pytest.fixture
def calls(monkeypatch):
    """How often the bulk reader and writer ran."""
    counted = Counter()
    for name in ("read_columns", "write_polygons"):
        original = getattr(vector_bulk, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            counted[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(vector_bulk, name, spy)
    return counted


def scene_with_oddities(count=400):
    """A scene plus what real layers hold: a null geometry, an invalid polygon, null groups and confidences, a
    group named in more than ASCII."""
    truth, proposals = footprint_files.scene(count)
    for layer in (truth, proposals):
        layer.shapes += [None, BOW_TIE, layer.shapes[0], layer.shapes[1]]
        for name, (_, values) in layer.fields.items():
            values += [None, "tile_01" if name == "tile" else 0.5, None, "tuile_été" if name == "tile" else 0.25]
    return truth, proposals


def write_inputs(folder, suffix, dimensions=2):
    truth, proposals = scene_with_oddities()
    return (footprint_files.write(folder / f"truth{suffix}", truth, dimensions=dimensions),
            footprint_files.write(folder / f"proposals{suffix}", proposals, dimensions=dimensions))


def run(parameters, context=None, feedback=None):
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM)
    context = context or QgsProcessingContext()
    context.setProject(QgsProject.instance())
    results, ok = algorithm.run(parameters, context, feedback or QgsProcessingFeedback())
    assert ok or not results, results
    return results


def run_both_ways(monkeypatch, parameters, folder):
    """(results, output folder) of the bulk run, then of the feature-by-feature run, of ``parameters`` whose
    outputs are named relative to an output folder."""
    runs = []
    for mode in ("bulk", "features"):
        out = folder / mode
        out.mkdir()
        if mode == "features":
            monkeypatch.setenv("SPACENET_BULK_IO", "0")
        given = {key: str(out / value[4:]) if isinstance(value, str) and value.startswith("out:") else value
                 for key, value in parameters.items()}
        runs.append((run(given), out))
    monkeypatch.delenv("SPACENET_BULK_IO", raising=False)
    return runs


def assert_same_outputs(bulk, features):
    (bulk_results, bulk_folder), (feature_results, feature_folder) = bulk, features
    numbers = ("TP", "FP", "FN", "PRECISION", "RECALL", "F1")
    assert {key: bulk_results[key] for key in numbers} == {key: feature_results[key] for key in numbers}
    assert bulk_results["OUTPUT"] == str(bulk_folder / "scored.gpkg")
    bulk_layer, feature_layer = bulk_folder / "scored.gpkg", feature_folder / "scored.gpkg"
    assert footprint_files.layer_facts(bulk_layer) == footprint_files.layer_facts(feature_layer)
    assert footprint_files.features(bulk_layer) == footprint_files.features(feature_layer)
    if (bulk_folder / "table.csv").exists():
        assert (bulk_folder / "table.csv").read_text() == (feature_folder / "table.csv").read_text()
    assert sorted(p.name for p in bulk_folder.iterdir()) == sorted(p.name for p in feature_folder.iterdir())


@pytest.mark.parametrize(("suffix", "dimensions"), [(".gpkg", 2), (".geojson", 2), (".geojson", 3), (".shp", 2)])
@pytest.mark.parametrize("extra", [
    {},
    {"ORDER_FIELD": "confidence", "MIN_AREA_TRUTH": 150.0, "MIN_AREA_PROPOSALS": 150.0, "MATCHING": 1},
])
def test_bulk_and_feature_by_feature_give_the_same_outputs(provider, monkeypatch, calls, tmp_path, suffix, dimensions,
                                                           extra):
    truth, proposals = write_inputs(tmp_path, suffix, dimensions)
    parameters = {"TRUTH": truth, "PROPOSALS": proposals, "GROUP_FIELD": "tile", "OUTPUT": "out:scored.gpkg",
                  "OUTPUT_TABLE": "out:table.csv", **extra}
    bulk, features = run_both_ways(monkeypatch, parameters, tmp_path)
    assert calls == {"read_columns": 2, "write_polygons": 1}  # the bulk run only
    assert_same_outputs(bulk, features)
    scored = footprint_files.features(bulk[1] / "scored.gpkg")
    assert Counter(items["status"] for _, items, _ in scored) == {
        "TP": bulk[0]["TP"], "FP": bulk[0]["FP"], "FN": bulk[0]["FN"]}
    assert "" in {items["group_name"] for _, items, _ in scored}  # null groups are the group ""
    assert all(shapely.get_num_coordinates(shapely.from_wkb(wkb)) > 0 for _, _, wkb in scored)


def test_a_layer_by_name_in_a_geopackage_of_several(provider, monkeypatch, calls, tmp_path):
    truth, proposals = scene_with_oddities()
    both = tmp_path / "both.gpkg"
    footprint_files.write(both, proposals, layer_name="proposals")
    footprint_files.write(both, truth, layer_name="truth")
    parameters = {"TRUTH": f"{both}|layername=truth", "PROPOSALS": f"{both}|layername=proposals",
                  "GROUP_FIELD": "tile", "OUTPUT": "out:scored.gpkg"}
    bulk, features = run_both_ways(monkeypatch, parameters, tmp_path)
    assert calls["read_columns"] == 2
    assert_same_outputs(bulk, features)
    assert bulk[0]["TP"] > 0


def test_a_subset_filter_is_honoured_in_bulk(provider, monkeypatch, calls, tmp_path):
    truth_path, proposals_path = write_inputs(tmp_path, ".gpkg")
    layers = []
    for path in (truth_path, proposals_path):
        layer = QgsVectorLayer(path, "filtered", "ogr")
        assert layer.setSubsetString("tile IN ('tile_01', 'tile_02')")
        QgsProject.instance().addMapLayer(layer)
        layers.append(layer)
    parameters = {"TRUTH": layers[0].id(), "PROPOSALS": layers[1].id(), "GROUP_FIELD": "tile",
                  "OUTPUT": "out:scored.gpkg", "OUTPUT_TABLE": "out:table.csv"}
    bulk, features = run_both_ways(monkeypatch, parameters, tmp_path)
    assert calls == {"read_columns": 2, "write_polygons": 1}
    assert_same_outputs(bulk, features)
    scored = footprint_files.features(bulk[1] / "scored.gpkg")
    assert {items["group_name"] for _, items, _ in scored} == {"tile_01", "tile_02"}
    proposal_rows = [items for _, items, _ in scored if items["layer"] == "proposal"]
    assert len(proposal_rows) == layers[1].featureCount()  # every filtered proposal, none other


def test_selected_features_only_are_read_feature_by_feature_and_honoured(provider, calls, tmp_path):
    truth_path, proposals_path = write_inputs(tmp_path, ".gpkg")
    proposals = QgsVectorLayer(proposals_path, "proposals", "ogr")
    QgsProject.instance().addMapLayer(proposals)
    selected = [feature.id() for feature in proposals.getFeatures() if feature.id() % 3 == 0]
    proposals.selectByIds(selected)
    results = run({"TRUTH": truth_path, "GROUP_FIELD": "tile", "OUTPUT": str(tmp_path / "selected.gpkg"),
                   "PROPOSALS": QgsProcessingFeatureSourceDefinition(proposals.id(), True)})
    assert calls == {"read_columns": 1, "write_polygons": 1}  # the truth in bulk, the selection feature by feature
    # the same as scoring a copy that holds the selected features only
    copy = proposals.materialize(QgsFeatureRequest().setFilterFids(selected))
    expected = run({"TRUTH": truth_path, "PROPOSALS": copy, "GROUP_FIELD": "tile",
                    "OUTPUT": str(tmp_path / "copy.gpkg")})
    assert (results["TP"], results["FP"], results["FN"]) == (expected["TP"], expected["FP"], expected["FN"])
    scored = footprint_files.features(tmp_path / "selected.gpkg")
    assert {items["source_id"] for _, items, _ in scored if items["layer"] == "proposal"} <= set(selected)
    assert [(items, wkb) for _, items, wkb in scored if items["layer"] == "truth"] == [
        (items, wkb) for _, items, wkb in footprint_files.features(tmp_path / "copy.gpkg") if items["layer"] == "truth"]


def test_memory_and_other_outputs_are_written_feature_by_feature_with_the_same_features(provider, calls, tmp_path):
    truth, proposals = write_inputs(tmp_path, ".gpkg")
    parameters = {"TRUTH": truth, "PROPOSALS": proposals, "GROUP_FIELD": "tile"}
    memory = QgsProcessingContext()  # the memory layer lives in the run's context
    layer = memory.takeResultLayer(run({**parameters, "OUTPUT": "memory:"}, memory)["OUTPUT"])
    geojson = run({**parameters, "OUTPUT": str(tmp_path / "scored.geojson")})
    gpkg = run({**parameters, "OUTPUT": str(tmp_path / "scored.gpkg")})
    assert calls == {"read_columns": 6, "write_polygons": 1}  # the GeoPackage output only
    in_bulk = [(items, wkb) for _, items, wkb in footprint_files.features(gpkg["OUTPUT"])]
    in_memory = [({field.name(): None if value == NULL else value
                   for field, value in zip(feature.fields(), feature.attributes())},
                  bytes(feature.geometry().asWkb())) for feature in layer.getFeatures()]
    assert in_memory == in_bulk
    # GeoJSON keeps 15 significant digits: the same features, to that precision
    in_geojson = footprint_files.features(geojson["OUTPUT"])
    assert [items["status"] for _, items, _ in in_geojson] == [items["status"] for items, _ in in_bulk]
    assert [items["source_id"] for _, items, _ in in_geojson] == [items["source_id"] for items, _ in in_bulk]


def test_a_cancel_while_writing_in_bulk_leaves_nothing(provider, tmp_path):
    truth, proposals = write_inputs(tmp_path, ".gpkg")
    out = tmp_path / "out"
    out.mkdir()

    class CancelWhileWriting(QgsProcessingFeedback):
        def setProgress(self, progress):  # noqa: N802 - QGIS API
            if progress > 90:  # the scored layer is being written
                self.cancel()
            super().setProgress(progress)

    results = run({"TRUTH": truth, "PROPOSALS": proposals, "OUTPUT": str(out / "scored.gpkg"),
                   "OUTPUT_TABLE": str(out / "table.csv"), "OUTPUT_HTML": str(out / "report.html")},
                  feedback=CancelWhileWriting())
    assert results == {}
    assert list(out.iterdir()) == []


def test_bulk_written_layers_load_styled_by_status_run_after_run(provider, qgis_new_project, tmp_path):
    """Each run's layer is styled; a second run in the same session once failed on the first one's deleted styler."""
    import processing

    truth, proposals = write_inputs(tmp_path, ".gpkg")
    for name in ("first.gpkg", "second.gpkg", "memory:"):
        processing.runAndLoadResults(ALGORITHM, {"TRUTH": truth, "PROPOSALS": proposals,
                                                 "OUTPUT": name if name == "memory:" else str(tmp_path / name)})
    layers = QgsProject.instance().mapLayersByName("Scored footprints")
    assert len(layers) == 3 and layers[0].source().startswith(str(tmp_path / "first.gpkg"))
    for layer in layers:
        assert layer.featureCount() > 0
        assert layer.renderer().type() == "categorizedSymbol" and layer.renderer().classAttribute() == "status"
        assert {c.value() for c in layer.renderer().categories()} == {"TP", "FP", "FN"}
    assert ogr.Open(str(tmp_path / "first.gpkg")).GetLayer(0).TestCapability(ogr.OLCFastSpatialFilter)


def test_what_gdal_would_read_differently_is_left_to_the_feature_by_feature_path(tmp_path, monkeypatch):
    from spacenet_toolkit.qgis_adapter import bulk_io

    truth, _ = write_inputs(tmp_path, ".gpkg")
    plain = QgsVectorLayer(truth, "truth", "ogr")
    assert bulk_io.ogr_file(plain)[0] == bulk_io.OgrFile(truth, "", 0, "")
    with_options = QgsVectorLayer(f"{truth}|option:LIST_ALL_TABLES=YES", "truth", "ogr")
    query = QgsVectorLayer(truth, "truth", "ogr")
    query.setSubsetString("SELECT * FROM truth WHERE fid < 10")
    edited = QgsVectorLayer(truth, "truth", "ogr")
    edited.startEditing()
    edited.deleteFeature(1)
    cases = {
        "not a vector layer": None,
        "a layer of the memory provider, not a file": plain.materialize(QgsFeatureRequest()),
        "open options": with_options,
        "a subset filter that is an SQL query": query,
        "unsaved edits": edited,
    }
    for why, layer in cases.items():
        assert bulk_io.ogr_file(layer) == (None, why)
    assert bulk_io.ogr_file(plain, QgsProcessingFeatureSourceDefinition(truth, True)) == (
        None, "the selected features only")
    assert bulk_io.bulk_fields(plain, ["tile"]) == "" and bulk_io.bulk_fields(plain, ["nope"]) == "no field nope"
    edited.rollBack()
    monkeypatch.setenv("SPACENET_BULK_IO", "0")
    assert bulk_io.ogr_file(plain) == (None, "SPACENET_BULK_IO is off")
    assert bulk_io.geopackage_destination(str(tmp_path / "x.gpkg"), QgsProcessingContext()) == ""
    monkeypatch.delenv("SPACENET_BULK_IO")
    for value, expected in ((str(tmp_path / "x.gpkg"), str(tmp_path / "x.gpkg")), (str(tmp_path / "x.shp"), ""),
                            (f"{tmp_path / 'x.gpkg'}|layername=y", ""), ("memory:", ""), ("TEMPORARY_OUTPUT", "")):
        assert bulk_io.geopackage_destination(value, QgsProcessingContext()) == expected


@pytest.mark.parametrize("with_version", [True, False])
def test_the_report_names_the_same_models_when_the_proposals_are_read_in_bulk(provider, monkeypatch, calls, tmp_path,
                                                                              with_version):
    truth, proposals = scene_with_oddities(120)
    count = len(proposals.shapes)
    proposals.fields["model"] = (ogr.OFTString, ["buildings_unet_small"] * (count - 3) + ["other", None, "other"])
    proposals.fields["device"] = (ogr.OFTString, ["CPU"] * count)
    if with_version:
        proposals.fields["model_version"] = (ogr.OFTString, ["0.4.1"] * (count - 3) + ["2", None, None])
    truth_path = footprint_files.write(tmp_path / "truth.gpkg", truth)
    proposals_path = footprint_files.write(tmp_path / "proposals.gpkg", proposals)
    parameters = {"TRUTH": truth_path, "PROPOSALS": proposals_path, "OUTPUT_HTML": "out:report.html"}
    bulk, features = run_both_ways(monkeypatch, parameters, tmp_path)
    assert calls == {"read_columns": 2}

    def model_line(folder):
        report = (folder / "report.html").read_text()
        start = report.index("<td>Model of the proposals</td>")
        return report[start:report.index("</tr>", start)]

    assert model_line(bulk[1]) == model_line(features[1])
    expected = ("buildings_unet_small 0.4.1", "other 2", "other") if with_version else ("buildings_unet_small", "other")
    assert all(name in model_line(bulk[1]) for name in expected)
