"""Training chips line up with the footprints they are made from (a real GeoTIFF, real polygons), and the
hold-out takes whole blocks."""

import json

import numpy as np
import pytest
import rasterio
import shapely

from spacenet_toolkit.core.adapt import chips, holdout
from spacenet_toolkit.core.extract import modelcard, onnx_file

SAMPLE = "sample_data/sn4_atlanta_pan.tif"
BUILDINGS = "sample_data/sn4_atlanta_buildings.geojson"


@pytest.fixture(scope="module")
def card(repo_root):
    return modelcard.read_card(*onnx_file.read(repo_root / "models" / "buildings_unet_small.onnx"))


@pytest.fixture(scope="module")
def footprints(repo_root):
    with open(repo_root / BUILDINGS) as f:  # in the raster's CRS (EPSG:32616), as its "crs" member says
        features = json.load(f)["features"]
    return [shapely.geometry.shape(f["geometry"]) for f in features]


@pytest.fixture(scope="module")
def atlanta_chips(repo_root, card, footprints):
    return chips.make_chips(str(repo_root / SAMPLE), footprints, None, card)


def test_chip_masks_lie_under_the_footprints(atlanta_chips, footprints):
    made = atlanta_chips
    building = made.labels[:, list(made.channels).index("building")]
    interior = made.labels[:, list(made.channels).index("interior")]
    assert building.sum() > 0
    assert not (interior & ~building.astype(bool)).any(), "an interior pixel off its building"
    hits = 0
    union = shapely.union_all(footprints)
    for i in range(len(made.origins)):
        transform = made.transform(i)
        rows, cols = np.nonzero(building[i])
        sample = np.random.default_rng(0).choice(len(rows), size=min(200, len(rows)), replace=False)
        for k in sample:
            x, y = transform @ (cols[k] + 0.5, rows[k] + 0.5)
            hits += union.buffer(made.gsd_m * 1.5).contains(shapely.Point(x, y))
        empty_rows, empty_cols = np.nonzero((building[i] == 0) & (made.known[i] == 1))
        for k in range(0, len(empty_rows), max(1, len(empty_rows) // 100)):
            x, y = transform @ (empty_cols[k] + 0.5, empty_rows[k] + 0.5)
            assert not union.buffer(-made.gsd_m * 1.5).contains(shapely.Point(x, y)), "a roof pixel labelled ground"
    assert hits == sum(min(200, int(b.sum())) for b in building), "a building pixel off every footprint"


def test_the_area_limits_what_is_known(repo_root, card, footprints):
    with rasterio.open(repo_root / SAMPLE) as src:
        left, bottom, right, top = src.bounds
    west = [shapely.box(left, bottom, (left + right) / 2, top)]
    made = chips.make_chips(str(repo_root / SAMPLE), footprints, west, card)
    for i in range(len(made.origins)):
        cols = np.nonzero(made.known[i].any(axis=0))[0]
        if len(cols):
            x, _ = made.transform(i) @ (cols.max() + 0.5, 0)
            assert x <= (left + right) / 2 + made.gsd_m
    assert 0 < len(made.footprint_centroids) < len(footprints)


def test_written_chips_carry_their_georeference(tmp_path, atlanta_chips, card):
    folder = chips.write_chips(atlanta_chips, tmp_path / "chips", card)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["chips"]) == len(atlanta_chips.origins)
    first = manifest["chips"][0]
    with rasterio.open(folder / first["mask"]) as src:
        assert src.descriptions == chips.MASK_BANDS
        assert np.array_equal(src.read(1), atlanta_chips.labels[0][0])
        assert tuple(src.bounds) == pytest.approx(first["bounds"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips"]  # no staging folder left
    with pytest.raises(chips.AdaptInputError, match="not empty"):
        chips.write_chips(atlanta_chips, folder, card)


def test_a_file_in_the_way_is_refused_and_a_users_partial_folder_is_left_alone(tmp_path, atlanta_chips, card):
    """The staging folder was the output's name + '.partial', emptied first: a user's folder of that name went."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(chips.AdaptInputError, match="notes.txt is a file: choose a new folder"):
        chips.write_chips(atlanta_chips, tmp_path / "notes.txt", card)
    mine = tmp_path / "chips.partial"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    chips.write_chips(atlanta_chips, tmp_path / "chips", card)
    assert (mine / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips", "chips.partial", "notes.txt"]


def test_an_area_off_the_raster_is_refused(repo_root, card, footprints):
    with pytest.raises(chips.AdaptInputError, match="does not overlap the raster"):
        chips.make_chips(str(repo_root / SAMPLE), footprints, [shapely.box(0, 0, 10, 10)], card)


def test_footprints_elsewhere_are_refused(repo_root, card):
    with pytest.raises(chips.AdaptInputError, match="lie on the raster"):
        chips.make_chips(str(repo_root / SAMPLE), [shapely.box(0, 0, 10, 10)], None, card)


def test_the_hold_out_takes_whole_blocks_and_a_fifth():
    origins = [(r * 256, c * 256) for r in range(8) for c in range(8)]
    split = holdout.split(origins, np.full(64, 1000), 256)
    assert split.block_chips == 4 or len({split.blocks[i] for i in range(64)}) >= holdout.MIN_BLOCKS
    held_blocks = {split.blocks[i] for i in split.held_out}
    assert all(split.blocks[i] not in held_blocks for i in split.training + split.tuning)
    assert 0.15 <= len(split.held_out) / 64 <= 0.5
    assert set(split.training).isdisjoint(split.tuning) and split.training
    assert holdout.split(origins, np.full(64, 1000), 256) == split  # the same area, the same blocks


def test_uneven_blocks_still_hold_out_about_a_fifth_and_leave_a_tuning_share():
    # a row of chips, full ones beside slivers at the area's edge (the labelled pixels of Kampala's west half)
    known = np.array([1782, 65499, 14060, 1750, 63972, 13748, 3011, 61053])
    split = holdout.split([(0, c * 256) for c in range(len(known))], known, 256)
    share = {name: known[getattr(split, name)].sum() / known.sum() for name in ("held_out", "tuning", "training")}
    assert 0.1 <= share["held_out"] <= 0.3, share
    assert 0.1 <= share["tuning"] <= 0.3, share
    assert share["training"] >= 0.5, share


def test_two_chips_still_hold_one_out():
    # a block weighing more than twice the share is still taken first: the smallest areas can be measured
    split = holdout.split([(0, 0), (0, 256)], np.array([900, 1000]), 256)
    assert len(split.held_out) == 1 and len(split.training) == 1 and not split.tuning


def test_a_single_chip_cannot_hold_anything_out():
    with pytest.raises(ValueError, match="too small"):
        holdout.split([(0, 0), (0, 256)], np.array([100, 0]), 256)


def test_buildings_on_nodata_are_not_counted(repo_root, tmp_path, card, footprints):
    """A raster blank over its top half counted every footprint: a half-blank area passed the 15-building minimum."""
    half = tmp_path / "top_blank.tif"
    with rasterio.open(repo_root / SAMPLE) as src:
        data, profile = src.read(), src.profile
        middle_y = src.xy(src.height // 2, 0)[1]
    data[:, : data.shape[1] // 2] = 0
    with rasterio.open(half, "w", **{**profile, "nodata": 0}) as out:
        out.write(data)
    made = chips.make_chips(str(half), footprints, None, card)
    below = [g for g in footprints if g.centroid.y < middle_y - made.gsd_m * 2]
    above = [g for g in footprints if g.centroid.y > middle_y + made.gsd_m * 2]
    assert below and above
    assert len(below) <= len(made.footprint_centroids) <= len(footprints) - len(above)
    assert made.buildings_in(range(len(made.origins))) == len(made.footprint_centroids)
