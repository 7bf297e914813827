"""The extraction engine on real rasters: exact known outputs, seams, nodata, CRSs, bands, cancel, devices."""

import numpy as np
import pytest
import rasterio
from rasterio import features
from rasterio.warp import Resampling, reproject, transform_geom
from shapely.geometry import box, mapping, shape
from shapely.ops import unary_union

from spacenet_toolkit.core.extract import extract, raster, runtime, tiling

ATLANTA = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"
VEGAS_RGB = "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"
FOTOMAP = "onnx_plumbing/dummy_fotomap_small.tif"


def run(raster_path, model_path, **options):
    return extract.extract_buildings(extract.ExtractRequest(str(raster_path), str(model_path), **options))


def rasterise(footprints, path):
    with rasterio.open(path) as src:
        shapes = [(mapping(f.geometry), 1) for f in footprints]
        if not shapes:
            return np.zeros((src.height, src.width), bool)
        return features.rasterize(shapes, out_shape=(src.height, src.width), transform=src.transform).astype(bool)


def test_the_red_detector_outlines_exactly_the_red_areas(fixtures):
    """Deepness' red detector fires where red / 255 > 0.5: the footprints are those pixels, no more, no less."""
    image = fixtures / FOTOMAP
    result = run(image, fixtures / "onnx_plumbing/one_output_sigmoid_red_detector.onnx",
                 options={"simplify_m": 0, "hole_area_m2": 0, "min_area_m2": 0})
    with rasterio.open(image) as src:
        expected = src.read(1) >= 128
    found = rasterise(result.footprints, image)
    assert result.device == "CPU" and result.tiles_run == len(tiling.tiles(841, 1243, 512, 77, align=32))
    assert (found != expected).sum() == 0


@pytest.mark.parametrize(
    "name", ["one_output_sigmoid_bsx512x512.onnx", "two_outputs_softmax_bsx2x512x512.onnx",
             "different_output_size_512_to_484.onnx", "dummy_model.onnx"],
)
def test_every_deepness_plumbing_model_runs(fixtures, name):
    result = run(fixtures / FOTOMAP, fixtures / "onnx_plumbing" / name, batch_size=3)
    assert result.tiles_run == len(tiling.tiles(841, 1243, 512, 77, align=32))
    for f in result.footprints:
        assert f.geometry.is_valid and 0 <= f.score <= 1 and f.area_m2 > 0


def test_one_big_window_and_many_small_tiles_give_the_same_buildings(fixtures, brightness_model):
    big = run(fixtures / ATLANTA, brightness_model, tile_size=1088)  # the 900 px tile and its borders
    small = run(fixtures / ATLANTA, brightness_model, tile_size=192)
    assert big.tiles_run == 1 and small.tiles_run > 30
    assert len(big.footprints) > 20
    assert abs(len(big.footprints) - len(small.footprints)) <= max(1, len(big.footprints) // 100)
    index = {i: f.geometry for i, f in enumerate(small.footprints)}
    ious = []
    for f in big.footprints:
        best = max((f.geometry.intersection(g).area / f.geometry.union(g).area for g in index.values()
                    if g.intersects(f.geometry)), default=0)
        ious.append(best)
    assert np.mean(ious) >= 0.99 and np.quantile(ious, 0.05) >= 0.95


def test_blocks_of_the_footprint_stage_do_not_change_the_result(fixtures, brightness_model):
    whole = run(fixtures / ATLANTA, brightness_model)
    blocked = run(fixtures / ATLANTA, brightness_model, block=256)
    union_a = unary_union([f.geometry for f in whole.footprints])
    union_b = unary_union([f.geometry for f in blocked.footprints])
    assert union_a.symmetric_difference(union_b).area / union_a.area < 0.01


def test_nothing_is_found_in_nodata_or_along_its_edge(fixtures, brightness_model, tmp_path):
    source = fixtures / ATLANTA
    holed = tmp_path / "holed.tif"
    with rasterio.open(source) as src:
        data, profile = src.read(), src.profile
    data[:, :, :450] = 0  # the tile's nodata value
    with rasterio.open(holed, "w", **profile) as out:
        out.write(data)
    full = run(source, brightness_model)
    result = run(holed, brightness_model)
    with rasterio.open(holed) as src:
        nodata_edge = src.bounds.left + 450 * 0.5 + extract.EDGE_M
    assert result.footprints and len(result.footprints) < len(full.footprints)
    assert min(f.geometry.bounds[0] for f in result.footprints) >= nodata_edge - 1e-6


def test_the_model_sees_no_black_edge_beside_nodata(repo_root, fixtures, tmp_path):
    """Scattered scenes (a chequerboard of 200 px squares, the rest transparent): the real model's probabilities
    where there is data stay close to those of the whole tile, because the blank is filled from the nearest
    pixels with data rather than shown to the model as black (that moved them by 0.19 on average)."""
    model = repo_root / "models" / "buildings_unet_small.onnx"
    scattered = tmp_path / "scattered.tif"
    with rasterio.open(fixtures / VEGAS_RGB) as src:  # red, green, blue, alpha
        data, profile = src.read(), src.profile
    rows, cols = np.mgrid[: data.shape[1], : data.shape[2]]
    with_data = (rows // 200 + cols // 200) % 2 == 0
    data[3][~with_data] = 0
    with rasterio.open(scattered, "w", **profile) as out:
        out.write(data)
    run(fixtures / VEGAS_RGB, model, probability_path=str(tmp_path / "whole.tif"))
    run(scattered, model, probability_path=str(tmp_path / "scattered_probability.tif"))
    with rasterio.open(tmp_path / "whole.tif") as whole, rasterio.open(tmp_path / "scattered_probability.tif") as part:
        on_grid = np.zeros(part.shape, np.uint8)  # where the scenes are, on the model's grid
        reproject(with_data.astype(np.uint8), on_grid, src_transform=profile["transform"], src_crs=profile["crs"],
                  dst_transform=part.transform, dst_crs=part.crs, resampling=Resampling.nearest)
        difference = np.abs(part.read(1) - whole.read(1))[on_grid.astype(bool)]
    assert difference.mean() < 0.05, difference.mean()


def test_a_black_blank_without_declared_nodata_counts_as_nodata(fixtures, brightness_model, tmp_path):
    """A gdalbuildvrt or gdal_merge mosaic declares no nodata: its blank is plain 0. It must give the buildings
    of the same raster with nodata 0 declared, not a stretch dragged down and black land beside the data."""
    with rasterio.open(fixtures / ATLANTA) as src:
        data, profile = np.repeat(src.read(), 3, axis=0), src.profile | {"count": 3}  # as a gray RGB image
    data[:, :, :450] = 0
    paths = {}
    for name, nodata in (("declared", 0), ("undeclared", None)):
        paths[name] = tmp_path / f"{name}.tif"
        with rasterio.open(paths[name], "w", **{**profile, "nodata": nodata}) as out:
            out.write(data)
    assert raster.describe(paths["undeclared"]).zero_is_nodata
    assert not raster.describe(paths["declared"]).zero_is_nodata
    # one band alone may be a mask or hold dark shadows at 0: nothing is assumed
    single = tmp_path / "single.tif"
    with rasterio.open(single, "w", **{**profile, "count": 1, "nodata": None}) as out:
        out.write(data[:1])
    assert not raster.describe(single).zero_is_nodata
    declared, undeclared = run(paths["declared"], brightness_model), run(paths["undeclared"], brightness_model)
    assert undeclared.footprints
    assert [f.geometry.wkt for f in undeclared.footprints] == [f.geometry.wkt for f in declared.footprints]


def test_wholly_nodata_tiles_are_skipped(fixtures, brightness_model, tmp_path):
    holed = tmp_path / "mostly_empty.tif"
    with rasterio.open(fixtures / ATLANTA) as src:
        data, profile = src.read(), src.profile
    data[:, :, 300:] = 0
    with rasterio.open(holed, "w", **profile) as out:
        out.write(data)
    result = run(holed, brightness_model, tile_size=128)
    assert result.tiles_skipped > 0 and result.tiles_run > 0


def test_geographic_and_projected_copies_give_the_same_buildings(fixtures, brightness_model, tmp_path):
    """The Vegas tile in EPSG:4326 and warped to UTM 11N: the model grid is in metres either way."""
    source = fixtures / VEGAS_RGB
    utm = tmp_path / "vegas_utm.tif"
    with rasterio.open(source) as src:
        from rasterio.vrt import WarpedVRT
        with WarpedVRT(src, crs="EPSG:32611", resampling=rasterio.enums.Resampling.bilinear) as vrt:
            profile = vrt.profile | {"driver": "GTiff"}
            with rasterio.open(utm, "w", **profile) as out:
                out.write(vrt.read())
                out.colorinterp = src.colorinterp  # keep the alpha band: the warped corners are no data
    geographic = run(source, brightness_model, bands=(1, 2, 3))
    projected = run(utm, brightness_model, bands=(1, 2, 3))
    assert abs(geographic.settings["gsd_m"] - 0.5) < 0.01 and abs(projected.settings["gsd_m"] - 0.5) < 0.01
    in_utm = [shape(transform_geom("EPSG:4326", "EPSG:32611", mapping(f.geometry))) for f in geographic.footprints]
    with rasterio.open(source) as src:
        footprint = shape(transform_geom("EPSG:4326", "EPSG:32611", mapping(box(*src.bounds))))
    inner = footprint.buffer(-10)  # the warped copy has nodata corners, with their own edge rule
    a = unary_union(in_utm).intersection(inner)
    b = unary_union([f.geometry for f in projected.footprints]).intersection(inner)
    assert a.area > 1000 and a.area == pytest.approx(b.area, rel=0.12)
    # the two grids sample the ground differently, so noisy brightness blobs differ at their edges
    assert a.intersection(b).area / a.union(b).area > 0.8
    # areas are square metres in both
    assert sum(f.area_m2 for f in geographic.footprints) == pytest.approx(unary_union(in_utm).area, rel=0.02)


def test_band_mismatch_is_explained(fixtures, brightness_model, tmp_path):
    with pytest.raises(raster.BandMappingError, match="2 band\\(s\\) were chosen .* the model takes 3"):
        run(fixtures / VEGAS_RGB, brightness_model, bands=(1, 2))
    with pytest.raises(raster.BandMappingError, match="do not exist: the raster has bands 1 to 4"):
        run(fixtures / VEGAS_RGB, brightness_model, bands=(1, 2, 7))
    two_bands = tmp_path / "two.tif"
    with rasterio.open(fixtures / "spacenet/sn6_rotterdam_ms_pan/ms1.tif") as src:
        profile = src.profile | {"count": 2}
        with rasterio.open(two_bands, "w", **profile) as out:
            out.write(src.read([1, 2]))
    with pytest.raises(raster.BandMappingError, match="has 2 data band\\(s\\) but the model needs 3"):
        run(two_bands, brightness_model)


def test_default_bands_follow_the_raster(fixtures, tmp_path):
    def bands_of(path):
        return raster.default_bands(raster.describe(path), ("red", "green", "blue"))

    assert bands_of(fixtures / ATLANTA) == (1, 1, 1)  # panchromatic
    assert bands_of(fixtures / VEGAS_RGB) == (1, 2, 3)  # RGBA: the alpha band is no colour
    eight = tmp_path / "eight.tif"
    with rasterio.open(eight, "w", driver="GTiff", width=8, height=8, count=8, dtype="uint16",
                       crs="EPSG:32611", transform=rasterio.transform.from_origin(0, 8, 1, 1)) as out:
        out.write(np.ones((8, 8, 8), np.uint16))
    assert bands_of(eight) == (5, 3, 2)  # WorldView 8-band true colour


def test_probability_output_and_stretch_once_per_run(fixtures, brightness_model, tmp_path):
    destination = tmp_path / "probability.tif"
    run(fixtures / ATLANTA, brightness_model, probability_path=str(destination), tile_size=128)
    with rasterio.open(destination) as src:
        probability = src.read(1)
        assert src.dtypes[0] == "float32" and src.crs.to_epsg() == 32616
        assert src.res == pytest.approx((0.5, 0.5))
    assert probability.min() >= 0 and probability.max() <= 1 and probability.std() > 0.1
    assert not list(tmp_path.glob(".*partial"))


def test_the_minimum_score_drops_the_less_sure_footprints_and_is_stored(fixtures, brightness_model, tmp_path):
    every = run(fixtures / ATLANTA, brightness_model, options={"min_area_m2": 0})  # the brightness card: min score 0
    cut = sorted(f.score for f in every.footprints)[len(every.footprints) // 2]
    destination = tmp_path / "probability.tif"
    surer = run(fixtures / ATLANTA, brightness_model, options={"min_area_m2": 0, "min_score": cut},
                probability_path=str(destination))
    assert every.settings["min_score"] == 0 and surer.settings["min_score"] == cut
    expected = [f.geometry.wkb for f in every.footprints if f.score >= cut]
    assert 0 < len(expected) < len(every.footprints)
    assert [f.geometry.wkb for f in surer.footprints] == expected
    with rasterio.open(destination) as src:
        assert float(src.tags()["SPACENET_MIN_SCORE"]) == cut  # Adjust thresholds and Calibrate read it back


def test_cancel_raises_and_leaves_nothing(fixtures, brightness_model, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    destination = tmp_path / "probability.tif"
    polls = []
    with pytest.raises(extract.Canceled):
        extract.extract_buildings(
            extract.ExtractRequest(str(fixtures / ATLANTA), brightness_model, tile_size=128, batch_size=2,
                                   probability_path=str(destination), work_dir=str(work)),
            is_canceled=lambda: polls.append(1) or len(polls) > 3,
        )
    assert len(polls) == 4  # stopped at the first poll that said so
    assert not destination.exists() and not any(work.iterdir())


def test_a_gpu_that_cannot_run_is_said_plainly(brightness_model, monkeypatch):
    monkeypatch.setattr(runtime, "nvidia_gpu_present", lambda: True)  # a GPU answers, and the CPU build runs
    runtime.clear_cache()
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        try:
            predictor = runtime.load(brightness_model, "auto")
        except runtime.RuntimeUnavailableError:
            pytest.fail("auto must fall back to the CPU")
        if predictor.on_gpu:
            pytest.skip("a working GPU is present: the GPU path is measured by make bench")
    else:
        predictor = runtime.load(brightness_model, "auto")
    assert predictor.provider == "CPUExecutionProvider" and "Running on the CPU" in predictor.note
    # said once a session
    monkeypatch.setattr(runtime, "_HINTS_GIVEN", set())
    assert runtime.gpu_hint(predictor) == predictor.note and runtime.gpu_hint(predictor) == ""
    with pytest.raises(runtime.RuntimeUnavailableError, match="A GPU was requested but cannot be used: .*"):
        runtime.load(brightness_model, "gpu")


def test_without_an_nvidia_gpu_running_on_the_cpu_is_not_worth_a_note(brightness_model, monkeypatch):
    monkeypatch.setattr(runtime, "nvidia_gpu_present", lambda: False)
    runtime.clear_cache()
    predictor = runtime.load(brightness_model, "auto")
    runtime.clear_cache()
    assert not predictor.on_gpu and predictor.note == ""


def test_sessions_are_cached_and_io_binding_matches_run(brightness_model):
    first = runtime.load(brightness_model, "cpu")
    assert runtime.load(brightness_model, "cpu") is first
    batch = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    plain = first.run(batch)
    bound = runtime.to_probabilities(first._run_io_bound(batch), first.card.activation)
    np.testing.assert_allclose(plain, bound, atol=1e-6)


def test_the_shipped_model_and_its_fp16_variant(repo_root, fixtures):
    """The card is complete, the GPU variant is found beside it and agrees with it (run here on the CPU)."""
    path = repo_root / "models" / "buildings_unet_small.onnx"
    half = runtime.fp16_variant(path)
    assert half == path.with_name("buildings_unet_small.fp16.onnx")
    assert runtime.fp16_variant(half) is None
    assert path.stat().st_size <= 25 * 2**20 and half.stat().st_size < path.stat().st_size
    full = runtime.load(path, "cpu")
    card = full.card
    assert card.source == "spacenet" and card.gsd_m == 0.3 and card.bands == ("red", "green", "blue")
    assert card.channels == ("building", "interior") and 0 < card.threshold < 1
    import onnxruntime

    session = onnxruntime.InferenceSession(str(half), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(2).random((1, 3, 256, 256), dtype=np.float32)
    reference = full.run(batch)
    halved = session.run(None, {card.input_name: batch})[0]
    assert np.abs(reference - halved).max() < 0.05


def test_the_shipped_model_tiles_without_seams(repo_root, fixtures, tmp_path):
    """Real imagery, the real U-Net: its own tiling gives the probabilities of one window over the whole tile, to
    the stored precision (1/255), and so the same buildings; a building whose split is decided within that step
    may come out split differently, nothing more."""
    model = repo_root / "models" / "buildings_unet_small.onnx"
    whole = run(fixtures / VEGAS_RGB, model, tile_size=1600, probability_path=str(tmp_path / "whole.tif"))
    tiled = run(fixtures / VEGAS_RGB, model, probability_path=str(tmp_path / "tiled.tif"))  # 1299 x 1052 px grid
    assert whole.tiles_run == 1 and tiled.tiles_run >= 4 and tiled.settings["tile_size"] == 1024
    with rasterio.open(tmp_path / "whole.tif") as a, rasterio.open(tmp_path / "tiled.tif") as b:
        assert np.abs(a.read(1) - b.read(1)).max() <= 1 / 255 + 1e-6
    assert len(whole.footprints) > 30 and abs(len(tiled.footprints) - len(whole.footprints)) <= 1
    same = sum(
        max(f.geometry.intersection(g.geometry).area / f.geometry.union(g.geometry).area
            for g in tiled.footprints if g.geometry.intersects(f.geometry)) >= 0.99
        for f in whole.footprints
    )
    assert same >= len(whole.footprints) - 2


@pytest.mark.parametrize("gsd_m", [0.3, 0.5])
def test_a_window_of_the_model_grid_reads_as_the_same_pixels_of_the_whole(fixtures, gsd_m):
    """The warped grid read window by window (as tiles are, overlapping) gives the values of one read of the whole
    grid, on any GDAL: GDAL 3.10 worked the resampling scale out per window read and differed by up to 6 levels."""
    info = raster.describe(fixtures / VEGAS_RGB)
    grid = raster.model_grid(info, None, gsd_m)
    with raster.open_on_grid(info, grid) as reader:
        whole, whole_valid = reader.read((1, 2, 3), 0, 0, grid.height, grid.width)
        for row in range(0, grid.height, 300):
            for col in range(0, grid.width, 300):
                h, w = min(700, grid.height - row), min(700, grid.width - col)
                values, valid = reader.read((1, 2, 3), row, col, h, w)
                assert np.array_equal(values, whole[:, row:row + h, col:col + w]), (row, col)
                assert np.array_equal(valid, whole_valid[row:row + h, col:col + w])


@pytest.mark.parametrize("size, from_overview", [(1650, False), (1700, False), (1740, True), (2048, True)])
def test_the_stretch_sample_comes_from_the_overview_the_engine_chooses(tmp_path, size, from_overview):
    """The stretch's sample (1024 px across) of a raster with a 2x overview holding other values: read from the
    overview from a decimation of 1.2 x 2 / 1.2 = 1.67 on (1740 / 1024 = 1.70), from the full resolution below it
    (1650 and 1700: 1.61 and 1.66), on any GDAL (3.10 by itself read the overview from 1.59 on)."""
    from affine import Affine

    from spacenet_toolkit.core.extract.modelcard import Normalisation

    def values(low, n):  # low, low + 1 ... low + 49 over and over: the 2nd and 98th percentiles are low + 1, + 48
        return np.tile(np.arange(low, low + 50, dtype=np.uint8), n * n // 50 + 1)[: n * n].reshape(1, n, n)

    path = tmp_path / "with_overview.tif"
    profile = dict(driver="GTiff", count=1, dtype="uint8", crs="EPSG:32611", tiled=True)
    with rasterio.open(path, "w", width=size, height=size, transform=Affine(0.5, 0, 500_000, 0, -0.5, 4_000_000),
                       **profile) as out:
        out.write(values(10, size))
    # its overview, an external .ovr beside it, holds other values than its pixels would give: 200 to 249
    with rasterio.open(f"{path}.ovr", "w", width=size // 2, height=size // 2,
                       transform=Affine(1, 0, 500_000, 0, -1, 4_000_000), **profile) as out:
        out.write(values(200, size // 2))
    info = raster.describe(path)
    stretch = raster.measure_stretch(info, (1,), raster.model_grid(info, None, None), Normalisation())
    assert (stretch.low[0] >= 200) == from_overview and (stretch.high[0] >= 200) == from_overview


@pytest.mark.parametrize("name, bands", [("ms1.tif", None), ("pan1.tif", None), ("ms1.tif", (4, 3, 2))])
def test_float_multispectral_and_panchromatic_crops_run(fixtures, brightness_model, name, bands):
    """SpaceNet 6 Rotterdam: 4-band float64 at 1 m and uint16 panchromatic at 0.5 m, both onto the 0.5 m grid."""
    result = run(fixtures / "spacenet/sn6_rotterdam_ms_pan" / name, brightness_model, bands=bands)
    assert result.settings["gsd_m"] == pytest.approx(0.5, abs=0.01)
    assert result.bands == (bands or ((1, 2, 3) if name.startswith("ms") else (1, 1, 1)))
    assert result.tiles_run >= 1
    assert all(f.geometry.is_valid and f.area_m2 > 0 for f in result.footprints)
