"""The scorers on inputs that used to give a wrong score without a word (or a traceback): a shapefile subset on a
field the bulk read left out, a layer without a CRS facing one with a CRS, minimum areas in Web Mercator, an empty
GeoJSON on either side, group ids typed differently in the two layers."""

import json

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer

gdal.UseExceptions()


def run(algorithm, parameters):
    import processing

    return processing.run(algorithm, parameters, feedback=QgsProcessingFeedback())


def counts(result):
    return result["TP"], result["FP"], result["FN"]


def translate(source, destination, **options):
    gdal.VectorTranslate(str(destination), str(source), **options)
    return str(destination)


def test_a_shapefile_subset_on_a_field_not_scored_keeps_its_features(provider, oracle, tmp_path):
    truth = translate(oracle / "gt.geojson", tmp_path / "gt.shp", SQLStatement="SELECT osm_id FROM gt")
    subset = f'{truth}|subset="osm_id" > 100000'
    expected = run("spacenet:scoref1", {"TRUTH": translate(oracle / "gt.geojson", tmp_path / "kept.geojson",
                                                           where="osm_id > 100000"),
                                        "PROPOSALS": str(oracle / "pred.geojson")})
    assert QgsVectorLayer(subset, "subset", "ogr").featureCount() == 17
    assert counts(run("spacenet:scoref1", {"TRUTH": subset, "PROPOSALS": str(oracle / "pred.geojson")})) == \
        counts(expected) == (3, 25, 14)


def test_one_side_without_a_crs_is_refused_by_name(provider, oracle, tmp_path):
    without = translate(oracle / "gt.geojson", tmp_path / "gt.csv", format="CSV",
                        layerCreationOptions=["GEOMETRY=AS_WKT"])
    wgs84 = translate(oracle / "pred.geojson", tmp_path / "pred4326.geojson", dstSRS="EPSG:4326")
    with pytest.raises(QgsProcessingException, match="TRUTH has no CRS while PROPOSALS is in EPSG:4326: set the CRS "
                                                     "of TRUTH"):
        run("spacenet:scoref1", {"TRUTH": without, "PROPOSALS": wgs84})


def test_minimum_areas_are_square_metres_in_web_mercator_too(provider, oracle, tmp_path):
    """Web Mercator's planar areas are 1.44 times the ground's at Atlanta's latitude: the filters took too much."""
    areas = {"MIN_AREA_TRUTH": 20, "MIN_AREA_PROPOSALS": 100}
    utm = run("spacenet:scoref1", {"TRUTH": str(oracle / "gt.geojson"), "PROPOSALS": str(oracle / "pred.geojson"),
                                   **areas})
    mercator = run("spacenet:scoref1", {
        "TRUTH": translate(oracle / "gt.geojson", tmp_path / "gt3857.geojson", dstSRS="EPSG:3857"),
        "PROPOSALS": translate(oracle / "pred.geojson", tmp_path / "pred3857.geojson", dstSRS="EPSG:3857"),
        **areas})
    assert counts(mercator) == counts(utm) == (8, 12, 18)


def test_an_empty_geojson_truth_leaves_the_scored_layer_in_the_proposals_crs(provider, oracle, tmp_path):
    empty = tmp_path / "empty.geojson"
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    result = run("spacenet:scoref1", {"TRUTH": str(empty), "PROPOSALS": str(oracle / "pred.geojson"),
                                      "OUTPUT": str(tmp_path / "scored.gpkg")})
    assert counts(result) == (0, 28, 0)
    assert QgsVectorLayer(result["OUTPUT"], "scored", "ogr").crs().authid() == "EPSG:32616"


def roads(fixtures, tmp_path, name, tile_value, **options):
    source = fixtures / "apls_oracle" / "spacenet" / "AOI_2_Vegas_img99.geojson"
    collection = json.loads(source.read_text())
    for feature in collection["features"]:
        feature["properties"] = {"tile": tile_value}
    path = tmp_path / name
    path.write_text(json.dumps(collection))
    return translate(path, tmp_path / f"out_{name}", **options) if options else str(path)


def test_an_empty_geojson_proposal_scores_apls_0_and_a_proposal_without_crs_is_refused(provider, fixtures, tmp_path):
    truth = roads(fixtures, tmp_path, "truth.geojson", 1)
    empty = tmp_path / "empty.geojson"
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    assert run("spacenet:scoreapls", {"TRUTH": truth, "PROPOSALS": str(empty)})["APLS"] == 0
    in_utm = roads(fixtures, tmp_path, "utm.geojson", 1, dstSRS="EPSG:32611")
    without = translate(in_utm, tmp_path / "nocrs.csv", format="CSV", layerCreationOptions=["GEOMETRY=AS_WKT"])
    with pytest.raises(QgsProcessingException, match="The proposal layer has no CRS while the truth is in EPSG:4326"):
        run("spacenet:scoreapls", {"TRUTH": truth, "PROPOSALS": without})


def with_tile(source, destination, tile):
    collection = json.loads(source.read_text())
    for feature in collection["features"]:
        feature["properties"] = {**feature["properties"], "tile": tile}
    destination.write_text(json.dumps(collection))
    return str(destination)


def test_a_tile_id_typed_integer_in_one_layer_and_real_in_the_other_is_one_group(provider, fixtures, oracle,
                                                                                 tmp_path):
    truth, proposals = roads(fixtures, tmp_path, "t.geojson", 1), roads(fixtures, tmp_path, "p.geojson", 1.0)
    assert QgsVectorLayer(proposals, "p", "ogr").fields().field("tile").typeName().lower().startswith("real")
    result = run("spacenet:scoreapls", {"TRUTH": truth, "PROPOSALS": proposals, "GROUP_FIELD": "tile",
                                        "OUTPUT_TABLE": str(tmp_path / "table.csv")})
    assert result["APLS"] == pytest.approx(1.0)
    assert (tmp_path / "table.csv").read_text().splitlines()[1].startswith("group,1,")
    truth = with_tile(oracle / "gt.geojson", tmp_path / "gt.geojson", 7)
    proposals = with_tile(oracle / "pred.geojson", tmp_path / "pred.geojson", 7.0)
    assert counts(run("spacenet:scoref1", {"TRUTH": truth, "PROPOSALS": proposals, "GROUP_FIELD": "tile"})) == (
        8, 20, 20)


def test_challenge_csvs_with_a_wkt_column_odd_ids_and_no_shared_image(provider, oracle, tmp_path):
    """A CSV that ogr2ogr wrote (a WKT column first) was read as one polygon layer: proposals matched across
    images. A BuildingId past 64 bits was a traceback. Image ids named differently in the two files scored 0 without
    a word."""
    import csv

    import processing

    def rewrite(source, name, change):
        with open(source, newline="") as f:
            rows = list(csv.DictReader(f))
        rows = [change(dict(row)) for row in rows]
        path = tmp_path / name
        with open(path, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return str(path)

    truth, proposals = oracle / "SN2_sample_truth.csv", oracle / "SN2_sample_preds.csv"
    expected = counts(run("spacenet:scoref1", {"TRUTH": str(truth), "PROPOSALS": str(proposals)}))
    with_wkt = [rewrite(path, f"wkt_{path.name}", lambda row: {"WKT": row["PolygonWKT_Pix"], **row})
                for path in (truth, proposals)]
    assert counts(run("spacenet:scoref1", {"TRUTH": with_wkt[0], "PROPOSALS": with_wkt[1]})) == expected
    huge = rewrite(proposals, "huge_ids.csv", lambda row: {**row, "BuildingId": "99999999999999999999"})
    assert counts(run("spacenet:scoref1", {"TRUTH": str(truth), "PROPOSALS": huge})) == expected
    renamed = rewrite(proposals, "renamed.csv", lambda row: {**row, "ImageId": row["ImageId"] + ".tif"})
    from web_layers import Log  # tests/support: a feedback that keeps its warnings

    log = Log()
    result = processing.run("spacenet:scoref1", {"TRUTH": str(truth), "PROPOSALS": renamed}, feedback=log)
    assert result["TP"] == 0
    assert any(line.startswith("TRUTH and PROPOSALS share no group (e.g. 'AOI_2_Vegas_img3457' and "
                               "'AOI_2_Vegas_img3457.tif')") for line in log.warnings), log.warnings
