"""The thresholds dialog's preview: the same footprints as core.extract.buildings and Apply, cached per threshold,
bounded."""

from dataclasses import replace

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import box

from spacenet_toolkit.core.extract import buildings, preview

PIXEL_M = 0.3
TRANSFORM = from_origin(740000, 3740000, PIXEL_M, PIXEL_M)
OPTIONS = buildings.BuildingOptions(threshold=0.5, min_area_m2=5.0, simplify_m=0.5)
SETTINGS = [
    OPTIONS,
    replace(OPTIONS, threshold=0.35, min_area_m2=0.0),
    replace(OPTIONS, threshold=0.65, simplify_m=0.0),
    replace(OPTIONS, threshold=0.45, regularize=True, min_area_m2=20.0),
]


def scene(size=480, seed=0) -> np.ndarray:
    """Blurred buildings: separate ones, touching pairs (a watershed), one with a courtyard and a small hole, a
    large one joined to another (distances past the watershed's flat cost), ones cut by the raster's edge, speckle."""
    rng = np.random.default_rng(seed)
    prob = np.zeros((size, size), np.float32)
    for _ in range(size * size // 4000):
        r, c = rng.integers(-10, size, 2)
        h, w = rng.integers(8, 45, 2)
        prob[max(r, 0) : r + h, max(c, 0) : c + w] = np.maximum(prob[max(r, 0) : r + h, max(c, 0) : c + w],
                                                                rng.uniform(0.4, 0.95))
    for rows, cols in ((slice(10, 70), slice(290, 395)), (slice(190, 340), slice(140, 300)),
                       (slice(370, 480), slice(0, 170))):
        prob[rows, cols] = 0  # room for the buildings drawn on purpose
    prob[20:60, 300:340] = 0.9  # two squares joined by a neck: split by the watershed
    prob[20:60, 348:388] = 0.85
    prob[38:42, 338:350] = 0.9
    prob[200:330, 150:290] = 0.92  # large, with a courtyard
    prob[240:280, 200:240] = 0.0
    prob[210:212, 160:162] = 0.0  # a hole of noise
    prob[380:470, 10:100] = 0.9  # large and solid, joined to a neighbour: its watershed's middle lies farther
    prob[380:470, 108:160] = 0.8  # than 32 px from the background, where the cost is flat
    prob[423:427, 98:110] = 0.9
    prob = ndimage.gaussian_filter(prob, 1.2)
    speckle = ndimage.gaussian_filter(rng.normal(0, 1, prob.shape).astype(np.float32), 3)
    return np.clip(prob + np.clip(speckle / speckle.std() - 1.5, 0, None) * 0.3, 0, 1).astype(np.float32)


def write(path, band, dtype="float32", nodata=None, description=preview.DESCRIPTION):
    """A one-band GeoTIFF as extractbuildings writes its probability output (tiled, deflate)."""
    profile = {"driver": "GTiff", "width": band.shape[1], "height": band.shape[0], "count": 1, "dtype": dtype,
               "crs": "EPSG:32616", "transform": TRANSFORM, "nodata": nodata, "tiled": True, "blockxsize": 256,
               "blockysize": 256, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as out:
        out.write(np.asarray(band).astype(dtype), 1)
        if description:
            out.set_band_description(1, description)
    return path


@pytest.fixture(scope="module")
def probability(tmp_path_factory):
    prob = scene()
    return write(tmp_path_factory.mktemp("preview") / "probability.tif", prob), prob


def wkbs(geometries) -> list:
    """The geometries as sorted 2D WKB: equal lists are the same footprints to the last bit."""
    return sorted(shapely.to_wkb(g, output_dimension=2) for g in geometries)


def buildings_own(prob, options, transform=TRANSFORM):
    """core.extract.buildings itself over the whole grid: footprints_on_grid, finish, to_map."""
    found = []

    def keep(footprint):
        done = buildings.finish(footprint, options, PIXEL_M**2, PIXEL_M)
        if done is not None:
            found.append((buildings.to_map(done.geometry, transform), done.score, done.geometry.area * PIXEL_M**2))

    buildings.footprints_on_grid(lambda r, c, h, w: (prob[r : r + h, c : c + w], None), *prob.shape, options, PIXEL_M,
                                 keep=keep)
    return found


# --- buildings.segment's fast seeds and distances give the labels of the whole distance transform -----------------


def whole_transform_segment(prob, options, pixel_m):
    """buildings.segment without an interior channel as it was first written: one distance transform of the whole
    array for the seeds and the watershed's cost (slow, and the reference for the fast path)."""
    mask = prob >= options.threshold
    if not mask.any():
        return np.zeros(prob.shape, dtype=np.int32)
    mask = buildings._fill_small_holes(mask, int(options.hole_area_m2 / pixel_m**2))
    distance = ndimage.distance_transform_edt(mask)
    seeds, _ = ndimage.label(distance >= max(1.0, buildings.SEED_DEPTH_M / pixel_m))
    components, n_components = ndimage.label(mask)
    labels = components.copy()
    for window, region, markers in buildings.seeded_components(components, n_components, seeds):
        cost = np.clip(254 - distance[window] * 8, 0, 254)
        labels[window][region] = buildings._watershed(cost.astype(np.uint8), markers, region)[region] + n_components
    return labels


@pytest.mark.parametrize("depth", [1.0, 1.5, 2.0, 10 / 3, 5.0, 7.5])
def test_the_seed_erosion_is_the_distance_transform_test(depth):
    mask = scene(200, seed=3) >= 0.4
    mask[:3] = True  # buildings on the array's edge: outside is not background
    assert (buildings._at_least(mask, depth) == (ndimage.distance_transform_edt(mask) >= depth)).all()


@pytest.mark.parametrize("seed, threshold, pixel_m", [(0, 0.5, 0.3), (1, 0.3, 0.3), (2, 0.6, 0.5), (3, 0.45, 0.15)])
def test_segment_labels_equal_the_whole_transform(seed, threshold, pixel_m):
    prob = scene(seed=seed)
    options = buildings.BuildingOptions(threshold=threshold)
    labels = buildings.segment(prob, None, options, pixel_m)
    assert labels.max() > 10
    np.testing.assert_array_equal(labels, whole_transform_segment(prob, options, pixel_m))


def test_segment_of_nothing_and_of_all():
    options = buildings.BuildingOptions()
    assert not buildings.segment(np.zeros((50, 60), np.float32), None, options, 0.3).any()
    full = np.full((40, 40), 0.9, np.float32)
    expected = whole_transform_segment(full, options, 0.3)
    np.testing.assert_array_equal(buildings.segment(full, None, options, 0.3), expected)


# --- the preview shows what Apply writes ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", SETTINGS, ids=["default", "low", "high-unsimplified", "regularized"])
def test_the_preview_of_the_whole_raster_is_buildings_own_and_applys(probability, options):
    path, prob = probability
    shown = preview.FootprintPreview(path).footprints(options)
    applied = preview.footprints_of_raster(path, options)
    own = buildings_own(prob, options)
    assert len(shown) > 20
    assert wkbs(shown.geometries) == wkbs(applied.geometries) == wkbs(g for g, _, _ in own)
    by_wkb = {shapely.to_wkb(g, output_dimension=2): (s, a) for g, s, a in own}
    for geometry, score, area in zip(shown.geometries, shown.scores, shown.areas_m2):
        assert by_wkb[shapely.to_wkb(geometry, output_dimension=2)] == (score, area)
    assert not (shown.areas_m2 < options.min_area_m2).any()
    assert shown.crs_wkt == applied.crs_wkt and shown.note == ""


def test_a_view_inside_the_raster_shows_applys_buildings_there(probability):
    path, _ = probability
    xmin, ymin, xmax, ymax = 740000 + 20, 3740000 - 130, 740000 + 110, 3740000 - 25  # 300 x 350 px of 480 x 480
    view_box = box(xmin, ymin, xmax, ymax)
    shown = preview.FootprintPreview(path).footprints(OPTIONS, (xmin, ymin, xmax, ymax))
    applied = preview.footprints_of_raster(path, OPTIONS)
    # what the view shows, and only that: built from the view and a halo, so whole where the view cuts it
    touching = [g for g in applied.geometries if view_box.intersects(g)]
    assert 4 <= len(touching) < len(applied)
    assert wkbs(shown.geometries) == wkbs(touching)


def test_the_engines_byte_raster_reads_as_value_over_255(tmp_path, probability):
    _, prob = probability
    levels = np.rint(prob * 255).astype(np.uint8)
    byte = write(tmp_path / "stitched.tif", levels, dtype="uint8", description=None)
    as_float = write(tmp_path / "float.tif", levels.astype(np.float32) / 255)
    source = preview.open_probability(byte)
    assert (source.band, source.dtype) == (1, "uint8")
    assert not preview.looks_like_probability(byte) and preview.looks_like_probability(as_float)
    assert wkbs(preview.FootprintPreview(byte).footprints(OPTIONS).geometries) == \
        wkbs(preview.FootprintPreview(as_float).footprints(OPTIONS).geometries)


def test_nodata_reads_as_no_building(tmp_path, probability):
    _, prob = probability
    with_nodata = prob.copy()
    with_nodata[:, :240] = -1
    path = write(tmp_path / "nodata.tif", with_nodata, nodata=-1)
    cleared = prob.copy()
    cleared[:, :240] = 0
    assert wkbs(preview.FootprintPreview(path).footprints(OPTIONS).geometries) == \
        wkbs(g for g, _, _ in buildings_own(cleared, OPTIONS))


# --- the caches -------------------------------------------------------------------------------------------------------


def test_minimum_area_simplify_and_a_threshold_seen_before_do_not_segment_again(probability, monkeypatch):
    path, _ = probability
    calls = []
    segment = buildings.segment
    monkeypatch.setattr(buildings, "segment", lambda *args: calls.append(args[2].threshold) or segment(*args))
    shown = preview.FootprintPreview(path)
    first = shown.footprints(OPTIONS)
    fewer = shown.footprints(replace(OPTIONS, min_area_m2=40.0))
    assert calls == [0.5] and shown.counts == {"reads": 1, "segmentations": 1, "finishes": 1}
    assert 0 < len(fewer) < len(first) and wkbs(fewer.geometries) == wkbs(
        g for g, a in zip(first.geometries, first.areas_m2) if a >= 40.0)
    shown.footprints(replace(OPTIONS, simplify_m=1.0))
    shown.footprints(replace(OPTIONS, regularize=True))
    assert calls == [0.5] and shown.counts["finishes"] == 3
    shown.footprints(replace(OPTIONS, threshold=0.6))
    again = shown.footprints(replace(OPTIONS, min_area_m2=40.0))
    assert calls == [0.5, 0.6] and shown.counts["finishes"] == 4
    assert wkbs(again.geometries) == wkbs(fewer.geometries)


def test_a_view_inside_the_held_window_is_not_read_again(probability):
    path, _ = probability
    shown = preview.FootprintPreview(path)
    assert shown.set_view(None) is True
    shown.footprints(OPTIONS)
    assert shown.set_view((740000 + 20, 3740000 - 100, 740000 + 60, 3740000 - 50)) is False  # zoomed in
    shown.footprints(OPTIONS)
    assert shown.counts["reads"] == 1 and shown.counts["segmentations"] == 1


def test_a_view_larger_than_the_cap_is_decimated_with_a_note(probability):
    path, _ = probability
    shown = preview.FootprintPreview(path, max_view_px=200)
    coarse = shown.footprints(OPTIONS)
    view = shown.view
    assert view.factor == 3 and view.shape == (160, 160)
    assert "1/3 resolution" in coarse.note and "Zoom in" in coarse.note
    assert view.pixel_m == pytest.approx(0.9)
    exact = preview.footprints_of_raster(path, OPTIONS)
    assert 0.5 * len(exact) < len(coarse) < 1.5 * len(exact)
    left, bottom, right, top = shown.source.info.bounds
    assert box(left, bottom, right, top).buffer(1e-6).contains(shapely.union_all(coarse.geometries))
    # zoomed in to a view within the cap: read again at full resolution, and exact there
    bounds = (740000 + 30, 3740000 - 100, 740000 + 80, 3740000 - 45)  # 167 x 184 px
    zoomed = shown.footprints(OPTIONS, bounds)
    assert shown.view.factor == 1 and zoomed.note == "" and shown.counts["reads"] == 2
    inside = box(*bounds)
    assert wkbs(g for g in zoomed.geometries if inside.contains(g)) == wkbs(
        g for g in exact.geometries if inside.contains(g))


def test_a_view_off_the_raster_is_empty_and_says_so(probability):
    path, _ = probability
    found = preview.FootprintPreview(path).footprints(OPTIONS, (0, 0, 10, 10))
    assert len(found) == 0 and "does not overlap" in found.note


def test_a_view_too_large_even_to_decimate_waits_for_a_zoom(probability):
    path, _ = probability
    shown = preview.FootprintPreview(path, max_view_px=100)  # 480 px: a factor 5, over the limit of 4
    found = shown.footprints(OPTIONS)
    assert len(found) == 0 and shown.counts["reads"] == 0
    assert found.note == ("The view is 480 x 480 px of the probability raster: too large to preview. Zoom in to at "
                          "most 400 px across.")
    assert len(shown.footprints(OPTIONS, (740000, 3740000 - 100, 740000 + 100, 3740000))) > 0  # 333 px: factor 4
    assert shown.view.factor == 4


# --- what is not a probability raster ---------------------------------------------------------------------------------


def test_rasters_that_are_not_probabilities_are_refused(tmp_path):
    rgb = np.zeros((3, 40, 40), np.uint8)
    path = tmp_path / "rgb.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=3, dtype="uint8", crs="EPSG:32616",
                       transform=TRANSFORM, photometric="RGB") as out:
        out.write(rgb)
    with pytest.raises(preview.PreviewError, match=r"rgb.tif has 3 bands \(red, green, blue\): it is not a building"):
        preview.FootprintPreview(path)
    assert not preview.looks_like_probability(path)

    pan = write(tmp_path / "pan.tif", np.full((40, 40), 700), dtype="uint16", description=None)
    with pytest.raises(preview.PreviewError, match="holds uint16 values"):
        preview.open_probability(pan)

    heights = write(tmp_path / "dem.tif", np.linspace(0, 30, 1600).reshape(40, 40), description=None)
    assert preview.looks_like_probability(heights)  # one float band: a candidate, until its values are read
    with pytest.raises(preview.PreviewError, match="holds values from 0 to 30"):
        preview.FootprintPreview(heights).footprints(OPTIONS)
    with pytest.raises(preview.PreviewError, match="holds values from 0 to 30"):
        preview.footprints_of_raster(heights, OPTIONS)


def test_a_described_band_of_several_is_read_with_a_note(tmp_path, probability):
    _, prob = probability
    path = tmp_path / "two.tif"
    with rasterio.open(path, "w", driver="GTiff", width=prob.shape[1], height=prob.shape[0], count=2,
                       dtype="float32", crs="EPSG:32616", transform=TRANSFORM) as out:
        out.write(np.stack([np.zeros_like(prob), prob]))
        out.set_band_description(2, "Building probability")
    source = preview.open_probability(path)
    assert source.band == 2 and "Band 2" in source.note
    assert len(preview.FootprintPreview(path).footprints(OPTIONS)) > 20


def test_apply_can_be_canceled_and_reports_progress(probability):
    path, _ = probability
    seen = []
    found = preview.footprints_of_raster(path, OPTIONS, report=lambda fraction, _: seen.append(fraction), block=256)
    assert len(found) > 20
    assert seen == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(preview.Canceled):
        preview.footprints_of_raster(path, OPTIONS, is_canceled=lambda: True)


def test_the_engines_probability_raster_gives_back_the_extractions_footprints(repo_root, fixtures, tmp_path):
    """The shipped model has an interior channel: the engine writes it as band 2 with the run's settings, and the
    preview (what Adjust thresholds shows and Apply writes) splits touching buildings with it, exactly as the
    extraction did. Without it (the building band alone, distance seeds) the split differs."""
    from spacenet_toolkit.core.extract import extract, probability

    path = tmp_path / "probability.tif"
    extraction = extract.extract_buildings(extract.ExtractRequest(
        str(fixtures / "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"),
        str(repo_root / "models" / "buildings_unet_small.onnx"), probability_path=str(path)))
    with rasterio.open(path) as src:
        assert src.descriptions == (probability.BUILDING, probability.INTERIOR) and src.dtypes[1] == "float32"
        building_only = tmp_path / "building_only.tif"
        with rasterio.open(building_only, "w", **(src.profile | {"count": 1})) as out:
            out.write(src.read(1), 1)
    source = preview.open_probability(path)
    settings = extraction.settings
    assert source.bands.interior_band == 2 and source.bands.settings["threshold"] == settings["threshold"]
    assert source.bands.settings["min_area_m2"] == settings["min_area_m2"]
    assert source.bands.settings["min_score"] == settings["min_score"] > 0  # the shipped card's
    options = buildings.BuildingOptions(threshold=settings["threshold"], min_area_m2=settings["min_area_m2"],
                                        min_score=settings["min_score"], simplify_m=settings["simplify_m"])
    found = preview.footprints_of_raster(source, options)
    assert len(extraction.footprints) > 30
    assert wkbs(found.geometries) == wkbs(f.geometry for f in extraction.footprints)
    assert wkbs(preview.FootprintPreview(path).footprints(options).geometries) == wkbs(found.geometries)
    every = replace(options, min_score=0.0)  # the minimum score drops some: the preview drops the same ones
    assert len(preview.FootprintPreview(path).footprints(every).geometries) > len(found.geometries)
    assert wkbs(preview.footprints_of_raster(building_only, options).geometries) != wkbs(found.geometries)
