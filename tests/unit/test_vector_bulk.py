"""Vector files in bulk through GDAL (core.vector_bulk) and the bulk-loaded GeoPackage spatial index
(core.sqlite_rtree): what GDAL reads back from what is written, the same as feature by feature; nulls, filters,
layers; an index that SQLite's own check accepts and that finds exactly what a scan finds; nothing left behind by a
cancel or a failure."""

import json
import sqlite3

import numpy as np
import pytest
import shapely
from osgeo import ogr, osr

from spacenet_toolkit.core import progress, sqlite_rtree, vector_bulk

UTM = 32616


def srs_wkt(epsg=UTM) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def squares(count, seed=1):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(500_000, 510_000, count), rng.uniform(4_000_000, 4_010_000, count)
    size = rng.uniform(5, 30, count)
    return shapely.box(x, y, x + size, y + size)


def write_with_ogr(path, layer_name, rows, geometry_type=ogr.wkbPolygon, fields=(("tile", ogr.OFTString),),
                   driver="GPKG"):
    """``rows`` (WKT or None, {field: value}) written feature by feature with OGR."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM)
    dataset = ogr.GetDriverByName(driver).CreateDataSource(str(path)) if not path.exists() else ogr.Open(str(path), 1)
    layer = dataset.CreateLayer(layer_name, srs, geometry_type)
    for name, kind in fields:
        layer.CreateField(ogr.FieldDefn(name, kind))
    for wkt, values in rows:
        feature = ogr.Feature(layer.GetLayerDefn())
        if wkt is not None:
            feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        for name, value in values.items():
            if value is not None:
                feature.SetField(name, value)
        layer.CreateFeature(feature)
    dataset = None


def features_of(path, layer=0):
    """(fid, attributes, ISO WKB) of every feature, read feature by feature with OGR."""
    dataset = ogr.Open(str(path))
    found = dataset.GetLayer(layer)
    result = [(f.GetFID(), f.items(), bytes(f.GetGeometryRef().ExportToIsoWkb()) if f.GetGeometryRef() else None)
              for f in found]
    return result


# --- reading --------------------------------------------------------------------------------------------------


ROWS = [
    ("POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0))", {"tile": "é_1", "conf": 0.5, "n": 3}),
    (None, {"tile": None, "conf": None, "n": None}),
    ("POLYGON EMPTY", {"tile": "", "conf": 1.0, "n": 4}),
    ("MULTIPOLYGON (((20 0, 30 0, 30 10, 20 0)))", {"tile": "b", "conf": None, "n": 5}),
    ("POLYGON ((0 0, 10 10, 10 0, 0 10, 0 0))", {"tile": "b", "conf": 0.25, "n": None}),  # a bow-tie: invalid
]
FIELDS = (("tile", ogr.OFTString), ("conf", ogr.OFTReal), ("n", ogr.OFTInteger))


@pytest.mark.parametrize(("driver", "name"), [("GPKG", "in.gpkg"), ("GeoJSON", "in.geojson"),
                                               ("ESRI Shapefile", "in.shp")])
def test_read_columns_gives_what_ogr_gives_feature_by_feature(tmp_path, driver, name):
    path = tmp_path / name
    write_with_ogr(path, "in", ROWS, fields=FIELDS, driver=driver)
    expected = features_of(path)
    columns = vector_bulk.read_columns(path, fields=["tile", "conf", "n"])
    assert columns.fids.tolist() == [fid for fid, _, _ in expected]
    assert [None if wkb is None else bytes(wkb) for wkb in columns.wkbs] == [wkb for _, _, wkb in expected]
    assert vector_bulk.strings(columns.values["tile"]).tolist() == [items["tile"] for _, items, _ in expected]
    assert columns.values["conf"].tolist() == [items["conf"] for _, items, _ in expected]
    assert columns.values["n"].tolist() == [items["n"] for _, items, _ in expected]
    shapes = vector_bulk.geometries(columns.wkbs)
    assert shapes[1] is None and (shapes[2] is None or shapes[2].is_empty) and not shapes[4].is_valid


def test_read_columns_applies_the_filter_and_finds_a_layer_by_name_or_number(tmp_path):
    path = tmp_path / "two.gpkg"
    write_with_ogr(path, "first", ROWS[:1], fields=FIELDS)
    write_with_ogr(path, "second", ROWS, fields=FIELDS)
    assert len(vector_bulk.read_columns(path).fids) == 1  # the first layer
    assert len(vector_bulk.read_columns(path, layer_index=1).fids) == len(ROWS)
    filtered = vector_bulk.read_columns(path, layer_name="second", where="tile = 'b' AND conf < 0.3",
                                        fields=["tile"])
    assert filtered.fids.tolist() == [5] and list(filtered.values) == ["tile"]


@pytest.mark.parametrize(("driver", "name"), [("GPKG", "in.gpkg"), ("GeoJSON", "in.geojson"),
                                               ("ESRI Shapefile", "in.shp")])
def test_a_filter_on_fields_not_read_filters_on_their_values(tmp_path, driver, name):
    """The shapefile driver filtered on the fields left out of the read as if they were null: no feature passed."""
    path = tmp_path / name
    write_with_ogr(path, "in", ROWS, fields=FIELDS, driver=driver)
    for where in ("n > 3", '"N" > 3', "conf = 1 OR n = 5"):
        assert vector_bulk.read_columns(path, where=where).fids.tolist() == [
            fid for fid, items, _ in features_of(path) if (items["n"] or 0) > 3], where


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"layer_name": "missing"}, "has no layer missing"),
    ({"fields": ["nope"]}, "no field nope"),
    ({"where": "no_such_column = 3"}, "cannot apply the filter"),
])
def test_what_gdal_cannot_read_says_why(tmp_path, kwargs, why):
    path = tmp_path / "in.gpkg"
    write_with_ogr(path, "in", ROWS, fields=FIELDS)
    with pytest.raises(vector_bulk.BulkUnavailable, match=why):
        vector_bulk.read_columns(path, **kwargs)


def test_curved_layers_are_left_to_the_feature_by_feature_path(tmp_path):
    path = tmp_path / "curves.gpkg"
    write_with_ogr(path, "curves", [("CURVEPOLYGON (CIRCULARSTRING (0 0, 1 1, 2 0, 1 -1, 0 0))", {})],
                   geometry_type=ogr.wkbCurvePolygon, fields=())
    with pytest.raises(vector_bulk.BulkUnavailable, match="curved"):
        vector_bulk.read_columns(path)


def test_reading_stops_when_canceled(tmp_path):
    path = tmp_path / "in.gpkg"
    write_with_ogr(path, "in", ROWS, fields=FIELDS)
    with pytest.raises(progress.Canceled):
        vector_bulk.read_columns(path, is_canceled=lambda: True)


# --- writing --------------------------------------------------------------------------------------------------


def scored_fields(count):
    return [
        vector_bulk.Field("status", "string", ["TP" if i % 3 else "FP" for i in range(count)]),
        vector_bulk.Field("iou", "real", [None if i % 5 == 0 else i / 7 for i in range(count)]),
        vector_bulk.Field("match_id", "integer64", [None if i % 4 == 0 else 2**40 + i for i in range(count)]),
        vector_bulk.Field("group_name", "string", [f"tile_{i % 3}ü'\"" for i in range(count)]),
    ]


def test_written_layer_reads_back_as_written(tmp_path):
    shapes = squares(500)
    shapes[7] = shapely.MultiPolygon([shapes[7], shapely.box(0, 0, 1, 1)])
    fields = scored_fields(len(shapes))
    path = tmp_path / "scored.gpkg"
    vector_bulk.write_polygons(path, "scored", srs_wkt(), shapes, fields)

    dataset = ogr.Open(str(path))
    layer = dataset.GetLayer(0)
    assert (layer.GetName(), layer.GetGeomType(), layer.GetFeatureCount()) == ("scored", ogr.wkbMultiPolygon, 500)
    assert layer.GetSpatialRef().GetAuthorityCode(None) == str(UTM)
    definition = layer.GetLayerDefn()
    assert [(definition.GetFieldDefn(i).GetName(), definition.GetFieldDefn(i).GetType())
            for i in range(definition.GetFieldCount())] == [
        ("status", ogr.OFTString), ("iou", ogr.OFTReal), ("match_id", ogr.OFTInteger64), ("group_name", ogr.OFTString)]
    rows = features_of(path)
    assert [fid for fid, _, _ in rows] == list(range(1, 501))
    for (_, items, wkb), index in zip(rows, range(500)):
        assert items == {field.name: field.values[index] for field in fields}
        expected = shapes[index] if shapes[index].geom_type == "MultiPolygon" else shapely.MultiPolygon([shapes[index]])
        assert shapely.from_wkb(wkb).equals_exact(expected, 0)
    bounds = shapely.total_bounds(shapes)
    assert layer.GetExtent() == pytest.approx((bounds[0], bounds[2], bounds[1], bounds[3]), rel=1e-14)
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents").fetchone() == tuple(bounds)
    assert connection.execute("SELECT feature_count FROM gpkg_ogr_contents").fetchone() == (500,)
    assert connection.execute("SELECT rtreecheck('rtree_scored_geom')").fetchone() == ("ok",)
    assert not [p.name for p in tmp_path.iterdir() if p.name != "scored.gpkg"]


def test_the_spatial_index_finds_what_a_scan_finds_and_edits_keep_it_up_to_date(tmp_path):
    shapes = squares(3000)
    path = tmp_path / "scored.gpkg"
    vector_bulk.write_polygons(path, "scored", srs_wkt(), shapes, [])
    bounds = shapely.bounds(shapes)
    dataset = ogr.Open(str(path), 1)
    layer = dataset.GetLayer(0)
    for window in ((502_000, 4_002_000, 503_000, 4_003_500), (500_000, 4_000_000, 500_050, 4_000_050),
                   (499_000, 3_999_000, 511_000, 4_011_000)):
        layer.SetSpatialFilterRect(*window)
        found = sorted(feature.GetFID() for feature in layer)
        inside = (bounds[:, 0] <= window[2]) & (bounds[:, 2] >= window[0]) & (bounds[:, 1] <= window[3]) & (
            bounds[:, 3] >= window[1])
        assert found == (np.flatnonzero(inside) + 1).tolist()
    layer.SetSpatialFilter(None)
    # an edit through GDAL (QGIS edits the same way) goes through the triggers the writer put back
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt("MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)))"))
    layer.CreateFeature(feature)
    layer.DeleteFeature(5)
    dataset = None
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT rtreecheck('rtree_scored_geom')").fetchone() == ("ok",)
    assert connection.execute("SELECT count(*) FROM rtree_scored_geom").fetchone() == (3000,)
    assert connection.execute("SELECT feature_count FROM gpkg_ogr_contents").fetchone() == (3000,)


def test_an_existing_file_is_replaced_and_a_layer_without_crs_or_features_is_written(tmp_path):
    path = tmp_path / "scored.gpkg"
    path.write_text("an older file")
    vector_bulk.write_polygons(path, "scored", "", np.empty(0, dtype=object), scored_fields(0))
    dataset = ogr.Open(str(path))
    assert dataset.GetLayer(0).GetFeatureCount() == 0
    # none: GDAL 3.6 writes srs_id 0 (undefined), GDAL 3.9 and later 99999, its "Undefined SRS"
    srs_id = sqlite3.connect(path).execute("SELECT srs_id FROM gpkg_geometry_columns").fetchone()[0]
    assert srs_id <= 0 or srs_id == 99999


def test_a_canceled_write_leaves_nothing(tmp_path):
    path = tmp_path / "scored.gpkg"
    with pytest.raises(progress.Canceled):
        vector_bulk.write_polygons(path, "scored", srs_wkt(), squares(50), [], is_canceled=lambda: True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", [None, shapely.Polygon(), shapely.LineString([(0, 0), (1, 1)])])
def test_what_is_not_a_polygon_is_refused_before_anything_is_written(tmp_path, shape):
    shapes = squares(3)
    shapes[1] = shape
    with pytest.raises(vector_bulk.BulkUnavailable):
        vector_bulk.write_polygons(tmp_path / "scored.gpkg", "scored", srs_wkt(), shapes, [])
    assert list(tmp_path.iterdir()) == []


# --- the R*Tree on its own ------------------------------------------------------------------------------------


def rtree_table(count, page_size=4096):
    connection = sqlite3.connect(":memory:")
    connection.execute(f"PRAGMA page_size = {page_size}")
    connection.execute("CREATE VIRTUAL TABLE rt USING rtree(id, minx, maxx, miny, maxy)")
    rng = np.random.default_rng(count)
    low = rng.uniform(-1e6, 1e6, (count, 2))
    boxes = np.hstack([low, low + rng.uniform(0, 500, (count, 2))])
    boxes[: count // 10, 2:] = boxes[: count // 10, :2]  # points: boxes of no size
    ids = rng.permutation(np.arange(1, count + 1) * 3)
    return connection, ids, boxes


@pytest.mark.parametrize(("count", "page_size"), [(1, 4096), (51, 4096), (52, 4096), (2601, 4096), (2602, 4096),
                                                  (20_000, 4096), (5000, 1024)])
def test_bulk_loaded_rtree_passes_sqlites_check_and_answers_queries(count, page_size):
    connection, ids, boxes = rtree_table(count, page_size)
    sqlite_rtree.fill(connection, "rt", ids, boxes)
    assert connection.execute("SELECT rtreecheck('rt')").fetchone() == ("ok",)
    assert connection.execute("SELECT count(*) FROM rt").fetchone() == (count,)
    for x, y in ((0, 0), (5e5, -5e5), tuple(boxes[0, :2])):
        found = sorted(row[0] for row in connection.execute(
            "SELECT id FROM rt WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?", (x + 1e4, x, y + 1e4, y)))
        inside = (boxes[:, 0] <= x + 1e4) & (boxes[:, 2] >= x) & (boxes[:, 1] <= y + 1e4) & (boxes[:, 3] >= y)
        assert found == sorted(ids[inside].tolist())
    # SQLite keeps editing the tree it was handed
    connection.execute("DELETE FROM rt WHERE id = ?", (int(ids[0]),))
    connection.executemany("INSERT INTO rt VALUES (?, 0, 1, 0, 1)", [(int(i),) for i in range(-500, 0)])
    assert connection.execute("SELECT rtreecheck('rt')").fetchone() == ("ok",)


def test_a_tree_sqlite_rejects_is_rebuilt_row_by_row(monkeypatch):
    connection, ids, boxes = rtree_table(500)

    def broken(connection, rtree, ids, boxes, capacity, node_size):
        connection.execute('INSERT INTO "rt_rowid" (rowid, nodeno) VALUES (123456789, 99)')  # points at no node

    monkeypatch.setattr(sqlite_rtree, "_write_packed", broken)
    sqlite_rtree.fill(connection, "rt", ids, boxes)
    assert connection.execute("SELECT rtreecheck('rt')").fetchone() == ("ok",)
    assert connection.execute("SELECT count(*) FROM rt").fetchone() == (500,)


def test_stored_boxes_hold_their_geometry():
    boxes = np.array([[0.1, 0.2, 0.30000001, 1e7 + 0.3], [-1e-30, -5.5, 1e-30, -5.4]])
    stored = sqlite_rtree._outward_float32(boxes)  # minx, maxx, miny, maxy
    assert (stored[:, 0] <= boxes[:, 0]).all() and (stored[:, 1] >= boxes[:, 2]).all()
    assert (stored[:, 2] <= boxes[:, 1]).all() and (stored[:, 3] >= boxes[:, 3]).all()
    assert json.dumps(stored.tolist())  # plain finite numbers


def test_the_wkb_shapes_were_read_from_is_written_as_shapely_would_write_it(tmp_path):
    shapes = squares(6)
    shapes[1] = shapely.MultiPolygon([shapes[1], shapely.box(0, 0, 1, 1)])
    wkbs = np.array([shapely.to_wkb(shapes[0]), shapely.to_wkb(shapes[1]),
                     shapely.to_wkb(shapely.force_3d(shapes[2])),  # 3-D: written 2-D
                     shapely.to_wkb(shapes[3], byte_order=0),  # big-endian: written by shapely
                     None, shapely.to_wkb(shapes[5])], dtype=object)
    vector_bulk.write_polygons(tmp_path / "given.gpkg", "scored", srs_wkt(), shapes, [], wkbs=wkbs)
    vector_bulk.write_polygons(tmp_path / "written.gpkg", "scored", srs_wkt(), shapes, [])
    given, written = features_of(tmp_path / "given.gpkg"), features_of(tmp_path / "written.gpkg")
    assert given == written
    assert all(shapely.get_type_id(shapely.from_wkb(wkb)) == 6 and not shapely.has_z(shapely.from_wkb(wkb))
               for _, _, wkb in given)
