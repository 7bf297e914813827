"""spacenet:scoreapls inside QGIS: the reference scores, groups, CRSs, outputs and errors."""

import csv
import json

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer
from rasterio.warp import transform_geom

ALGORITHM = "spacenet:scoreapls"
TILES = ("AOI_2_Vegas_img99", "AOI_2_Vegas_img998")


def run(parameters, feedback=None):
    import processing

    return processing.run(ALGORITHM, parameters, feedback=feedback or QgsProcessingFeedback())


@pytest.fixture(scope="module")
def reference(fixtures):
    with open(fixtures / "apls_oracle" / "reference_scores.csv") as f:
        return {row["outroot"]: row for row in csv.DictReader(f)}


def merged(fixtures, side, tmp_path, crs=None, field="tile"):
    """The tiles' lines in one GeoJSON with a ``field`` naming the tile (optionally reprojected)."""
    features = []
    for tile in TILES:
        with open(fixtures / "apls_oracle" / side / f"{tile}.geojson") as f:
            for feature in json.load(f)["features"]:
                geometry = feature["geometry"] if crs is None else transform_geom("EPSG:4326", crs, feature["geometry"])
                features.append({"type": "Feature", "properties": {field: tile}, "geometry": geometry})
    collection = {"type": "FeatureCollection", "features": features}
    if crs:
        collection["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs.split(':')[1]}"}}
    path = tmp_path / f"{side}_{(crs or 'wgs84').replace(':', '')}_{field}.geojson"
    path.write_text(json.dumps(collection))
    return str(path)


def test_one_tile_scores_as_the_reference(provider, fixtures, reference, tmp_path):
    tile = "AOI_2_Vegas_img99"
    result = run({"TRUTH": str(fixtures / "apls_oracle" / "spacenet" / f"{tile}.geojson"),
                  "PROPOSALS": str(fixtures / "apls_oracle" / "osm" / f"{tile}.geojson"),
                  "OUTPUT_HTML": str(tmp_path / "report.html")})
    expected = reference[tile]
    assert result["APLS"] == pytest.approx(float(expected["APLS"]), abs=0.02)
    assert result["APLS_GT_TO_PROP"] == pytest.approx(float(expected["APLS_gt_onto_prop"]), abs=0.02)
    assert result["APLS_PROP_TO_GT"] == pytest.approx(float(expected["APLS_prop_onto_gt"]), abs=0.02)
    html = (tmp_path / "report.html").read_text()
    assert "APLS" in html and f"{result['APLS']:.4f}" in html and "What was scored" in html
    assert "<svg" not in html  # one tile, no groups: no per-group chart


def test_groups_are_scored_apart_and_averaged(provider, fixtures, reference, tmp_path):
    result = run({"TRUTH": merged(fixtures, "spacenet", tmp_path), "PROPOSALS": merged(fixtures, "osm", tmp_path),
                  "GROUP_FIELD": "tile", "OUTPUT_TABLE": "memory:"})
    expected = [float(reference[t]["APLS"]) for t in TILES]
    assert result["APLS"] == pytest.approx(sum(expected) / 2, abs=0.02)
    rows = {(f["level"], f["group_name"]): f for f in result["OUTPUT_TABLE"].getFeatures()}
    assert set(rows) == {*(("group", tile) for tile in TILES), ("mean", "")}
    for tile, value in zip(TILES, expected):
        assert rows["group", tile]["apls"] == pytest.approx(value, abs=0.02) and rows["group", tile]["truth_km"] > 0.1
    assert rows["mean", ""]["apls"] == pytest.approx(result["APLS"])


def test_a_group_field_under_its_old_name_is_still_read(provider, fixtures, tmp_path):
    """Layers of older versions name the group field `group`; newer ones `group_name`: either answers for the
    other, on either side."""
    old_truth = merged(fixtures, "spacenet", tmp_path, field="group")
    new_proposals = merged(fixtures, "osm", tmp_path, field="group_name")
    by_tile = run({"TRUTH": merged(fixtures, "spacenet", tmp_path), "PROPOSALS": merged(fixtures, "osm", tmp_path),
                   "GROUP_FIELD": "tile"})
    for name in ("group_name", "group"):
        result = run({"TRUTH": old_truth, "PROPOSALS": new_proposals, "GROUP_FIELD": name, "OUTPUT_TABLE": "memory:"})
        assert result["APLS"] == pytest.approx(by_tile["APLS"])
        groups = {f["group_name"] for f in result["OUTPUT_TABLE"].getFeatures() if f["level"] == "group"}
        assert groups == set(TILES)


def test_lengths_are_metres_whatever_the_crs(provider, fixtures, tmp_path):
    """Truth in WGS 84, proposals in UTM 11N, or both in UTM: the same score."""
    wgs84 = run({"TRUTH": merged(fixtures, "spacenet", tmp_path), "PROPOSALS": merged(fixtures, "osm", tmp_path)})
    mixed = run({"TRUTH": merged(fixtures, "spacenet", tmp_path),
                 "PROPOSALS": merged(fixtures, "osm", tmp_path, "EPSG:32611")})
    utm = run({"TRUTH": merged(fixtures, "spacenet", tmp_path, "EPSG:32611"),
               "PROPOSALS": merged(fixtures, "osm", tmp_path, "EPSG:32611")})
    assert 0.3 < wgs84["APLS"] < 0.95
    assert mixed["APLS"] == pytest.approx(wgs84["APLS"], abs=1e-3) and utm["APLS"] == pytest.approx(wgs84["APLS"],
                                                                                                   abs=1e-3)


def test_a_network_against_itself_is_perfect_and_nothing_scores_zero(provider, fixtures, tmp_path):
    truth = merged(fixtures, "spacenet", tmp_path)
    assert run({"TRUTH": truth, "PROPOSALS": truth})["APLS"] == pytest.approx(1.0)
    empty = QgsVectorLayer("LineString?crs=EPSG:4326", "empty", "memory")
    feedback = QgsProcessingFeedback()
    assert run({"TRUTH": truth, "PROPOSALS": empty}, feedback)["APLS"] == 0.0


def test_errors_name_the_problem(provider, fixtures, tmp_path):
    truth = merged(fixtures, "spacenet", tmp_path)
    polygons = str(fixtures / "f1_oracle" / "gt.geojson")
    with pytest.raises(QgsProcessingException, match="polygons; APLS compares road centerlines: choose a line layer"):
        run({"TRUTH": truth, "PROPOSALS": polygons})
    with pytest.raises(QgsProcessingException, match="The truth layer has no lines"):
        run({"TRUTH": QgsVectorLayer("LineString?crs=EPSG:4326", "empty", "memory"), "PROPOSALS": truth})
    no_field = str(fixtures / "apls_oracle" / "osm" / "AOI_2_Vegas_img99.geojson")
    with pytest.raises(QgsProcessingException, match="The proposal layer has no field 'tile'"):
        run({"TRUTH": truth, "PROPOSALS": no_field, "GROUP_FIELD": "tile"})
    with pytest.raises(QgsProcessingException, match="The truth layer has no field 'tile'"):
        run({"TRUTH": no_field, "PROPOSALS": truth, "GROUP_FIELD": "tile"})


class CancelAt(QgsProcessingFeedback):
    """Cancels once the bar reaches ``percent``; keeps every value it showed."""

    def __init__(self, percent):
        super().__init__()
        self.values = []
        self.progressChanged.connect(lambda value: self.values.append(value) or (value >= percent and self.cancel()))


def test_reading_moves_the_bar_and_a_cancel_there_writes_nothing(provider, fixtures, tmp_path):
    tile = "AOI_2_Vegas_img99"
    feedback = CancelAt(5)  # reached when the proposals start: the truth's read takes 0-10 %, theirs 10-20 %
    result = run({"TRUTH": str(fixtures / "apls_oracle" / "spacenet" / f"{tile}.geojson"),
                  "PROPOSALS": str(fixtures / "apls_oracle" / "osm" / f"{tile}.geojson"),
                  "OUTPUT_HTML": str(tmp_path / "report.html")}, feedback=feedback)
    assert "APLS" not in result
    assert feedback.values == [10.0]
    assert not (tmp_path / "report.html").exists()
