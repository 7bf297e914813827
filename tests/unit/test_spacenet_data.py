"""The SpaceNet-folder dataset builder of the training pipeline, on a tiny folder made from the real fixtures."""

import json
import shutil

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import transform_geom

from spacenet_toolkit.training import spacenet_data


def _fetched_layout(fixtures, root):
    """A folder as spacenet:fetchtiles writes it: two SN3 Vegas tiles with road labels, one SN4 Atlanta tile."""
    spacenet = fixtures / "spacenet"
    files = {
        "SN3_roads/train/AOI_2_Vegas/PS-RGB/SN3_roads_train_AOI_2_Vegas_PS-RGB_img0.tif":
            spacenet / "sn3_vegas_rgb_roads" / "RGB-PanSharpen_AOI_2_Vegas_img0.tif",
        "SN3_roads/train/AOI_2_Vegas/geojson_roads/SN3_roads_train_AOI_2_Vegas_geojson_roads_img0.geojson":
            spacenet / "sn3_vegas_rgb_roads" / "AOI_2_Vegas_img0.geojson",
        "SN3_roads/train/AOI_2_Vegas/PAN/SN3_roads_train_AOI_2_Vegas_PAN_img12.tif":
            spacenet / "sn3_vegas_pan_roads" / "road_mask_input.tif",
        "SN3_roads/train/AOI_2_Vegas/geojson_roads/SN3_roads_train_AOI_2_Vegas_geojson_roads_img12.geojson":
            spacenet / "sn3_vegas_pan_roads" / "sample_roads_for_masking.geojson",
        # imagery without labels: not a training pair
        "SN3_roads/train/AOI_2_Vegas/PS-RGB/SN3_roads_train_AOI_2_Vegas_PS-RGB_img3.tif":
            spacenet / "sn3_vegas_rgb_roads" / "RGB-PanSharpen_AOI_2_Vegas_img0.tif",
        "SN4_buildings/train/AOI_6_Atlanta/PAN/SN4_buildings_train_AOI_6_Atlanta_PAN_img5.tif":
            spacenet / "sn4_atlanta_pan" / "sample_geotiff.tif",
        "SN4_buildings/train/AOI_6_Atlanta/geojson_buildings/SN4_buildings_train_AOI_6_Atlanta_geojson_buildings_img5.geojson":
            spacenet / "sn4_atlanta_pan" / "geotiff_labels.geojson",
    }
    for relative, source in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / relative)
    return root


@pytest.fixture(scope="module")
def fetched(fixtures, tmp_path_factory):
    return _fetched_layout(fixtures, tmp_path_factory.mktemp("fetched"))


def test_pairs_imagery_and_labels_by_tile_id_in_id_order(fetched):
    pairs = spacenet_data.find_pairs(fetched / "SN3_roads")
    assert [p.tile_id for p in pairs] == ["img0", "img12"]  # img3 has no labels
    assert all(p.image.stem.endswith(p.tile_id) and p.labels.stem.endswith(p.tile_id) for p in pairs)


def test_a_folder_without_pairs_is_refused_with_what_to_fetch(tmp_path):
    (tmp_path / "PS-RGB").mkdir()
    (tmp_path / "PS-RGB" / "x_img1.tif").write_bytes(b"")
    with pytest.raises(spacenet_data.DatasetError, match="labels"):
        spacenet_data.find_pairs(tmp_path)


def test_road_labels_follow_the_spacenet_convention_exactly(fixtures):
    """Buffered 2 m in UTM 11N and rasterised on the tile: the SpaceNet mask, to the pixel."""
    folder = fixtures / "spacenet" / "sn3_vegas_pan_roads"
    lines = spacenet_data.read_label_geometries(folder / "sample_roads_for_masking.geojson", CRS.from_epsg(32611))
    areas = [transform_geom("EPSG:32611", "EPSG:4326", shapely.geometry.mapping(a))
             for a in spacenet_data.road_areas(lines)]
    with rasterio.open(folder / "sample_road_raster_mask.tif") as reference:
        expected = reference.read(1) > 0
        mine = rasterize(areas, out_shape=expected.shape, transform=reference.transform) > 0
    assert expected.sum() > 10_000
    assert int((mine != expected).sum()) == 0


def test_roads_cache_on_a_metric_grid_with_labels_on_the_lines(fetched, tmp_path):
    index = spacenet_data.build_cache(fetched / "SN3_roads", "roads", tmp_path, val_every=2, log=lambda *_: None)
    assert [(e["name"], e["split"]) for e in index] == [("AOI_2_Vegas_PS-RGB_img0", "train"),
                                                         ("AOI_2_Vegas_PAN_img12", "val")]
    assert json.loads((tmp_path / "index.json").read_text()) == index
    cached = np.load(tmp_path / "AOI_2_Vegas_PS-RGB_img0.npz")
    crs, transform = CRS.from_wkt(str(cached["crs"])), rasterio.Affine(*cached["transform"])
    assert crs.to_epsg() == 32611 and transform.a == pytest.approx(0.3) and transform.e == pytest.approx(-0.3)
    images, valid, road = cached["images"], cached["valid"], cached["road"]
    assert images.shape == (1, *road.shape, 3) and images.dtype == np.uint8 and valid.shape == (1, *road.shape)
    # 1300 px of 2.7e-6 degrees at 36.24 N: 315 m east-west and 390 m north-south, plus the few metres that
    # UTM's grid convergence (about 1 degree here) adds to the box around the turned tile
    assert 315 <= road.shape[1] * 0.3 <= 325 and 390 <= road.shape[0] * 0.3 <= 400
    lines = spacenet_data.read_label_geometries(
        fetched / "SN3_roads/train/AOI_2_Vegas/geojson_roads/SN3_roads_train_AOI_2_Vegas_geojson_roads_img0.geojson",
        crs)
    points = [line.interpolate(f, normalized=True) for line in lines for f in (0.25, 0.5, 0.75)]
    rows, cols = rasterio.transform.rowcol(transform, [p.x for p in points], [p.y for p in points])
    assert road[rows, cols].all()
    assert 0.05 < road.mean() < 0.3  # 4 m wide roads, not the whole tile


def test_panchromatic_is_replicated_to_gray_rgb(fetched, tmp_path):
    spacenet_data.build_cache(fetched / "SN3_roads", "roads", tmp_path, log=lambda *_: None)
    image = np.load(tmp_path / "AOI_2_Vegas_PAN_img12.npz")["images"][0]
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 0] == image[..., 2]).all()
    assert image.max() == 255 and image.min() == 0  # uint16 scaled to the full 8 bits


def test_buildings_cache_keeps_every_building_apart(fetched, tmp_path):
    index = spacenet_data.build_cache(fetched / "SN4_buildings", "buildings", tmp_path, log=lambda *_: None)
    assert [e["split"] for e in index] == ["train"]  # one tile: nothing left to validate on
    cached = np.load(tmp_path / f"{index[0]['name']}.npz")
    instances, building, interior = cached["instances"], cached["building"], cached["interior"]
    assert len(np.unique(instances[instances > 0])) == 43  # every labelled building of the tile
    assert (building == (instances > 0)).all()
    assert interior.any() and not (interior & ~building.astype(bool)).any()
    # 900 px at 0.5 m, now at 0.3 m (the tile is already in UTM 16N)
    assert building.shape == (1500, 1500) and CRS.from_wkt(str(cached["crs"])).to_epsg() == 32616


def test_the_contact_zone_is_where_two_buildings_meet():
    """Two roofs sharing a wall and a third standing 4 m away: the zone is the band across the shared wall (3 px
    either side, chessboard), nothing around the lone roof or along the outer walls."""
    instances = np.zeros((30, 60), np.int32)
    instances[5:25, 5:20] = 1
    instances[5:25, 20:35] = 2
    instances[5:25, 49:58] = 3  # 14 px (4.2 m) from roof 2
    zone = spacenet_data.contact_zone(instances)
    rows, cols = np.nonzero(zone)
    assert set(cols) == set(range(17, 23)) and rows.min() == 2 and rows.max() == 27
    assert not zone[:, 36:].any() and not zone[:, :16].any()


def test_small_buildings_get_the_whole_extra_weight_and_large_ones_a_share():
    instances = np.zeros((40, 60), np.int32)
    instances[2:12, 2:12] = 1  # 100 px, under the reference
    instances[15:35, 5:55] = 2  # 1000 px
    share = spacenet_data.small_building_share(instances, reference_px=200)
    assert np.all(share[instances == 1] == 1.0)
    assert np.allclose(share[instances == 2], 0.2)
    assert not share[instances == 0].any()
