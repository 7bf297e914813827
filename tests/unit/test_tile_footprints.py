"""Footprints from GeoTIFF headers read by byte ranges, the GeoPackage footprint cache, and the catalog's key rules."""

from pathlib import Path

import numpy
import pytest
import rasterio
from rasterio.warp import transform_bounds
from shapely.geometry import box

from spacenet_toolkit.core.fetch import catalog
from spacenet_toolkit.core.fetch.geotiff_header import NotAGeoTiff, read_header
from spacenet_toolkit.core.fetch.s3 import S3Object
from spacenet_toolkit.core.fetch.tileindex import Tile, TileIndex, cache_path, footprint_from_header

SPACENET = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "spacenet"
GEOREFERENCED = sorted(p for p in SPACENET.glob("*/*.tif") if "fp_mask" not in p.name)


def ranged_reader(path: Path, reads: list):
    data = path.read_bytes()

    def read_range(start, end):
        reads.append((start, end))
        return data[start:end]

    return read_range


@pytest.mark.parametrize("path", GEOREFERENCED, ids=lambda p: p.name)
def test_header_ranges_give_what_gdal_reads_from_the_whole_file(path):
    reads = []
    header = read_header(ranged_reader(path, reads), path.stat().st_size)
    with rasterio.open(path) as tif:
        assert (header.width, header.height, header.count, header.dtype) == (tif.width, tif.height, tif.count,
                                                                             tif.dtypes[0])
        assert header.transform == tuple(tif.transform.to_gdal())
        assert rasterio.crs.CRS.from_wkt(header.crs_wkt) == tif.crs
        expected = transform_bounds(tif.crs, "EPSG:4326", *tif.bounds, densify_pts=21)
    assert len(reads) <= 2 and sum(end - start for start, end in reads) <= 64 * 1024
    footprint = footprint_from_header(header)
    assert footprint.bounds == pytest.approx(expected, abs=1e-7)


def test_a_file_that_is_not_a_geotiff_is_named_so(tmp_path):
    with pytest.raises(NotAGeoTiff, match="TIFF header"):
        read_header(lambda start, end: b'{"type": "FeatureCollection"}'[start:end], 30)
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as tif:
        tif.write(numpy.zeros((8, 8), "uint8"), 1)
    with pytest.raises(NotAGeoTiff, match="coordinate reference system"):
        read_header(ranged_reader(plain, []), plain.stat().st_size)


def test_the_cache_round_trips_and_queries_by_extent(tmp_path):
    tiles = [Tile(f"img{i}", S3Object(f"k/img{i}.tif", 100 + i, f"{i:032x}", "2019-01-01"),
                  box(i * 0.01, 0, i * 0.01 + 0.009, 0.009), "EPSG:32611") for i in range(50)]
    tiles.append(Tile("img999", S3Object("k/img999.tif", 5)))  # listed, footprint not read yet
    index = TileIndex(cache_path(tmp_path, "http://127.0.0.1:9/spacenet-dataset", *("SN2_buildings", "train",
                                                                                   "AOI_2_Vegas", "PS-RGB")))
    assert index.age_seconds() is None and index.read() == []
    index.write(tiles)
    assert 0 <= index.age_seconds() < 60
    back = {tile.tile_id: tile for tile in index.read()}
    assert back["img7"].obj == tiles[7].obj and back["img7"].footprint.equals(tiles[7].footprint)
    assert back["img999"].footprint is None
    assert index.query((0.0305, 0.001, 0.0505, 0.002)) == ["img3", "img4", "img5"]
    assert not list(index.path.parent.glob(".*tmp*"))  # written through a temporary name
    index.path.write_bytes(b"not a geopackage")
    assert index.read() == [] and index.age_seconds() is None  # a damaged cache is rebuilt, never trusted


def test_cache_files_are_per_endpoint(tmp_path):
    one = cache_path(tmp_path, "https://spacenet-dataset.s3.amazonaws.com", "SN2_buildings", "train", "AOI_2_Vegas",
                     "PS-RGB")
    two = cache_path(tmp_path, "http://127.0.0.1:9000/spacenet-dataset", "SN2_buildings", "train", "AOI_2_Vegas",
                     "PS-RGB")
    assert one != two and one.name == two.name and one.parent.parent == tmp_path


def test_tile_ids_come_from_listed_keys():
    key = "spacenet/SN2_buildings/train/AOI_2_Vegas/geojson_buildings/SN2_buildings_train_AOI_2_Vegas_geojson_" \
          "buildings_img1234.geojson"
    assert catalog.tile_id(key, "SN2_buildings", "train", "AOI_2_Vegas", "labels") == "img1234"
    assert catalog.tile_id("spacenet/SN4_buildings/train/AOI_6_Atlanta/PAN/PAN_Atlanta_nadir7_732701_3720839.tif",
                           "SN4_buildings", "train", "AOI_6_Atlanta", "PAN") == "Atlanta_nadir7_732701_3720839"
    assert catalog.tile_id("spacenet/SN2_buildings/train/AOI_2_Vegas/PS-RGB/README.txt", "SN2_buildings", "train",
                           "AOI_2_Vegas", "PS-RGB") is None
    assert sorted(["img10", "img9", "img100"], key=catalog.natural_key) == ["img9", "img10", "img100"]
    assert catalog.product_prefix("SN5_roads", "train", "AOI_8_Mumbai", "labels") == \
        "spacenet/SN5_roads/train/AOI_8_Mumbai/geojson_roads_speed/"
