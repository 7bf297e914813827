"""Threshold and minimum-area calibration on synthetic probabilities whose best pair is known by construction."""

import re

import numpy as np
import pytest
import rasterio
import shapely.affinity
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import box

from spacenet_toolkit.core.extract import buildings, calibrate, calibrate_report
from spacenet_toolkit.core.score import f1

PIXEL_M = 0.5
TRANSFORM = Affine(PIXEL_M, 0, 500000.0, 0, -PIXEL_M, 4000000.0)  # a UTM-like grid, 0.5 m pixels
PITCH, COUNT, RAMP = 90, 4, 30  # buildings on a 4 x 4 lattice, 90 px apart; probability ramps over 2 x 30 px
SIDES = (8, 12, 16, 24, 32, 40)  # building sides in pixels: 16 m² to 400 m²
NOISE = 3  # noise blobs are 3 x 3 px (2.25 m²) of probability 0.95
SIMPLIFIED = buildings.BuildingOptions(simplify_m=0.5)


def on_map(r0, c0, r1, c1):
    """The pixel rectangle rows r0..r1, columns c0..c1 in the raster's CRS."""
    return box(TRANSFORM.c + c0 * PIXEL_M, TRANSFORM.f - r1 * PIXEL_M, TRANSFORM.c + c1 * PIXEL_M,
               TRANSFORM.f - r0 * PIXEL_M)


def synthetic():
    """Probabilities, truth rectangles (raster CRS) and the noise blob count.

    Each building's probability falls linearly across its edge: 0.5 on the edge, 0.5 + d / (2 * RAMP) at d pixels
    inside, 0.5 - d / (2 * RAMP) outside (a blur with a known profile). Threshold t therefore draws each outline
    (t - 0.5) * 2 * RAMP = 3 px per 0.05 of threshold away from the true edge: only 0.5 keeps the 8 px building
    at IoU >= 0.5, while wider buildings survive a step or two. Noise blobs of 2.25 m² sit between the buildings
    at every threshold: a minimum area of 5 m² removes them, and from 20 m² up the smallest buildings go too.
    """
    size = PITCH * COUNT
    inside = np.zeros((size, size), bool)
    truth = []
    for i in range(COUNT):
        for j in range(COUNT):
            height, width = SIDES[(i + j) % len(SIDES)], SIDES[(3 * i + j) % len(SIDES)]
            r0, c0 = i * PITCH + 20, j * PITCH + 20
            inside[r0 : r0 + height, c0 : c0 + width] = True
            truth.append(on_map(r0, c0, r0 + height, c0 + width))
    signed = np.where(inside, ndimage.distance_transform_edt(inside) - 0.5,
                      0.5 - ndimage.distance_transform_edt(~inside))
    prob = np.clip(0.5 + signed / (2 * RAMP), 0, 1).astype(np.float32)
    blobs = 0
    for i in range(COUNT):
        for j in range(COUNT - 1):  # in the gaps, beyond the widest dilation of the lowest threshold
            r, c = i * PITCH + 20, j * PITCH + 84
            prob[r : r + NOISE, c : c + NOISE] = 0.95
            blobs += 1
    return prob, truth, blobs


def reader(prob, reads=None):
    def read(row, col, h, w):
        if reads is not None:
            reads.append((row, col, h, w))
        return prob[row : row + h, col : col + w]

    return read


def run(prob, truth, **options):
    return calibrate.calibrate(reader(prob), prob.shape, TRANSFORM, PIXEL_M, truth, **options)


@pytest.fixture(scope="module")
def scene():
    return synthetic()


@pytest.fixture(scope="module")
def result(scene):
    prob, truth, _ = scene
    return run(prob, truth, options=SIMPLIFIED)


def test_the_blur_makes_the_middle_threshold_and_the_noise_a_minimum_area_win(scene, result):
    _, truth, blobs = scene
    assert (result.best.threshold, result.best.min_area_m2) == (0.5, 5.0)
    assert (result.best.tp, result.best.fp, result.best.fn) == (len(truth), 0, 0)
    # the same threshold without a minimum area keeps every noise blob as a false positive
    assert result.trial(0.5, 0.0).fp == blobs and result.trial(0.5, 0.0).tp == len(truth)
    # from 20 m² the smallest buildings (8 x 8 px = 16 m²) are dropped: false negatives
    assert result.trial(0.5, 20.0).fn > 0 and result.trial(0.5, 20.0).fp == 0
    # a threshold step either way moves every outline 3 px: the small buildings fail IoU 0.5
    grid = result.f1_grid()
    middle = result.thresholds.index(0.5)
    assert grid[middle].max() == 1.0 and grid[middle - 1].max() < 1.0 and grid[middle + 1].max() < 1.0
    assert grid[0].max() == 0.0 and grid[-1].max() == 0.0


def test_the_default_grid_and_its_shape(result):
    assert result.thresholds == calibrate.DEFAULT_THRESHOLDS == (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6,
                                                                 0.65, 0.7, 0.75, 0.8)
    assert result.min_areas_m2 == calibrate.DEFAULT_MIN_AREAS_M2
    assert len(result.trials) == 13 * 8 and result.f1_grid().shape == (13, 8)
    assert [(t.threshold, t.min_area_m2) for t in result.trials] == [
        (t, a) for t in result.thresholds for a in result.min_areas_m2]
    assert result.best.f1 == max(t.f1 for t in result.trials)


def test_ties_go_to_the_smaller_minimum_area(result):
    """Minimum areas 5, 10 and 15 m² all score F1 = 1 at threshold 0.5: the smallest is chosen."""
    assert [result.trial(0.5, a).f1 for a in (5.0, 10.0, 15.0)] == [1.0, 1.0, 1.0]
    assert result.best.min_area_m2 == 5.0


def test_ties_go_to_the_higher_threshold():
    """Sharp-edged buildings (probability 0.9 inside, 0 outside) look the same at every threshold up to 0.9."""
    prob = np.zeros((120, 120), np.float32)
    truth = []
    for r0, c0 in ((10, 10), (10, 70), (70, 40)):
        prob[r0 : r0 + 30, c0 : c0 + 30] = 0.9
        truth.append(on_map(r0, c0, r0 + 30, c0 + 30))
    result = run(prob, truth)
    assert {t.f1 for t in result.trials} == {1.0}
    assert (result.best.threshold, result.best.min_area_m2) == (0.8, 0.0)


def test_the_best_pair_scores_as_an_extraction_at_that_pair_would(scene, result):
    """An independent path: the engine's footprints at the best pair, placed on the map, scored by core.score.f1."""
    prob, truth, _ = scene
    best = result.best
    options = buildings.BuildingOptions(threshold=best.threshold, min_area_m2=best.min_area_m2, simplify_m=0.5)

    def keep(footprint):
        done = buildings.finish(footprint, options, PIXEL_M**2, PIXEL_M)
        return None if done is None else buildings.to_map(done.geometry, TRANSFORM)

    found = buildings.footprints_on_grid(lambda r, c, h, w: (prob[r : r + h, c : c + w], None), *prob.shape,
                                         options, PIXEL_M, keep=keep)
    geometries = np.empty(len(found), dtype=object)
    geometries[:] = found
    truth_set = np.empty(len(truth), dtype=object)
    truth_set[:] = truth
    expected = f1.score(f1.PolygonSet(truth_set), f1.PolygonSet(geometries), f1.F1Options(0.5, "greedy>=")).total
    assert (best.tp, best.fp, best.fn, best.proposals) == (expected.tp, expected.fp, expected.fn, len(found))
    assert best.f1 == pytest.approx(expected.f1, abs=1e-12)
    # and a pair that is not perfect, with false positives, false negatives and both
    for threshold, min_area in ((0.45, 0.0), (0.55, 20.0)):
        options = buildings.BuildingOptions(threshold=threshold, min_area_m2=min_area, simplify_m=0.5)
        found = buildings.footprints_on_grid(lambda r, c, h, w: (prob[r : r + h, c : c + w], None), *prob.shape,
                                             options, PIXEL_M, keep=keep)
        geometries = np.empty(len(found), dtype=object)
        geometries[:] = found
        counts = f1.score(f1.PolygonSet(truth_set), f1.PolygonSet(geometries)).total
        trial = result.trial(threshold, min_area)
        assert (trial.tp, trial.fp, trial.fn) == (counts.tp, counts.fp, counts.fn)


def test_one_vectorisation_per_threshold_and_one_read_of_a_single_block_grid(scene, monkeypatch):
    prob, truth, _ = scene
    calls = []
    vectorise = buildings.footprints_on_grid

    def counting(*args, **kwargs):
        calls.append(args[3].threshold)
        return vectorise(*args, **kwargs)

    monkeypatch.setattr(buildings, "footprints_on_grid", counting)
    reads = []
    thresholds, min_areas = (0.3, 0.5, 0.7), (0, 5, 10, 20, 50)
    result = calibrate.calibrate(reader(prob, reads), prob.shape, TRANSFORM, PIXEL_M, truth, thresholds=thresholds,
                                 min_areas_m2=min_areas)
    assert calls == [0.3, 0.5, 0.7]  # not one per pair
    assert len(result.trials) == 15
    assert len(reads) == 1  # the whole grid is one block: read once, kept for the next thresholds


def test_blocks_bound_the_reads_and_keep_the_scores(scene, result):
    """Read in blocks (each with its halo), the grid gives the same scores as read whole."""
    prob, truth, _ = scene
    reads = []
    blocked = calibrate.calibrate(reader(prob, reads), prob.shape, TRANSFORM, PIXEL_M, truth, thresholds=(0.45, 0.5),
                                  min_areas_m2=(0, 5, 20), options=SIMPLIFIED, block=128)
    assert len(reads) == 2 * 3 * 3  # per threshold, 3 x 3 blocks of 128 px over the 360 px grid
    for trial in blocked.trials:
        whole = result.trial(trial.threshold, trial.min_area_m2)
        assert (trial.tp, trial.fp, trial.fn) == (whole.tp, whole.fp, whole.fn)


def test_a_geographic_grid_scores_as_the_projected_one(scene, result):
    """Degrees instead of metres: the truth maps onto the same pixels, and areas come from the pixel's metres."""
    prob, truth, _ = scene
    degrees = Affine(PIXEL_M / 92000, 0, -84.4, 0, -PIXEL_M / 111000, 33.75)  # ~92 km per degree east at 33.75°N
    to_degrees = [1 / 92000, 0, 0, 1 / 111000, -84.4 - TRANSFORM.c / 92000, 33.75 - TRANSFORM.f / 111000]
    truth_degrees = [shapely.affinity.affine_transform(g, to_degrees) for g in truth]
    geographic = calibrate.calibrate(reader(prob), prob.shape, degrees, PIXEL_M, truth_degrees,
                                     options=SIMPLIFIED)
    assert [(t.tp, t.fp, t.fn) for t in geographic.trials] == [(t.tp, t.fp, t.fn) for t in result.trials]


def test_truth_is_clipped_to_the_labelled_area_and_outsiders_counted(scene):
    prob, truth, _ = scene
    far = box(0, 0, 10, 10)  # nowhere near the grid
    result = run(prob, [*truth, far, None], thresholds=(0.5,), min_areas_m2=(5,))
    assert result.truth_count == len(truth) and result.truth_outside == 2
    assert (result.best.tp, result.best.fn) == (len(truth), 0)


@pytest.mark.parametrize(("truth", "message"), [
    ([], "There are no truth polygons"),
    ([box(0, 0, 10, 10)], "None of the 1 truth polygons overlaps the probability raster"),
])
def test_truth_that_cannot_be_scored_is_explained(scene, truth, message):
    prob, _, _ = scene
    with pytest.raises(calibrate.CalibrationError, match=message):
        run(prob, truth)


def test_cancel_stops_at_the_next_poll_and_progress_rises_to_1(scene):
    prob, truth, _ = scene
    polls, fractions = [], []
    with pytest.raises(calibrate.Canceled):
        run(prob, truth, is_canceled=lambda: polls.append(1) or len(polls) > 5)
    assert len(polls) == 6

    run(prob, truth, thresholds=(0.4, 0.6), min_areas_m2=(0, 10),
        report=lambda fraction, message: fractions.append(fraction))
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 < fractions[0] < 0.5


def test_cancel_during_scoring_is_canceled_too(scene, monkeypatch):
    prob, truth, _ = scene

    def canceled_score(*args, **kwargs):
        raise f1.Canceled("scoring canceled")

    monkeypatch.setattr(f1, "score", canceled_score)
    with pytest.raises(calibrate.Canceled):
        run(prob, truth, thresholds=(0.5,))


@pytest.mark.parametrize(("text", "expected"), [
    ("", calibrate.DEFAULT_THRESHOLDS),
    ("0.5", (0.5,)),
    ("0.6, 0.4;0.5  0.4", (0.4, 0.5, 0.6)),
    ("0.3:0.5:0.1", (0.3, 0.4, 0.5)),
    ("0.2:0.8:0.05", calibrate.DEFAULT_THRESHOLDS),
    ("0.1, 0.7:0.9:0.1", (0.1, 0.7, 0.8, 0.9)),
])
def test_value_lists_and_ranges(text, expected):
    assert calibrate.parse_values(text, "THRESHOLDS", 0, 1, calibrate.DEFAULT_THRESHOLDS,
                                  low_inclusive=False) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "message"), [
    ("0.5, abc", "THRESHOLDS: 'abc' is not a number"),
    ("0, 0.5", "THRESHOLDS: 0 outside the allowed range \\(above 0 to 1\\)"),
    ("1.5", "THRESHOLDS: 1.5 outside the allowed range"),
    ("0.8:0.2:0.1", "needs a positive step"),
    ("0.2:0.8", "not a range"),
])
def test_bad_value_lists_are_explained(text, message):
    with pytest.raises(calibrate.CalibrationError, match=message):
        calibrate.parse_values(text, "THRESHOLDS", 0, 1, (), low_inclusive=False)


def write_raster(path, data, dtype="float32", nodata=None, transform=TRANSFORM, crs="EPSG:32616"):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[-1], height=data.shape[-2],
                       count=1 if data.ndim == 2 else data.shape[0], dtype=dtype, crs=crs, transform=transform,
                       nodata=nodata) as out:
        out.write(data.astype(dtype), *([1] if data.ndim == 2 else []))
    return path


def test_a_probability_geotiff_scores_as_the_array(scene, tmp_path):
    prob, truth, _ = scene
    options = dict(thresholds=(0.45, 0.5, 0.55), min_areas_m2=(0, 5, 20), options=SIMPLIFIED)
    in_memory = run(prob, truth, **options)
    on_disk = calibrate.calibrate_raster(write_raster(tmp_path / "p.tif", prob), truth, **options)
    assert on_disk.trials == in_memory.trials and on_disk.pixel_m == pytest.approx(PIXEL_M)
    # a Byte raster is read as value / 255, as the engine stitches its probabilities
    as_bytes = write_raster(tmp_path / "p8.tif", np.rint(prob * 255), dtype="uint8")
    assert calibrate.calibrate_raster(as_bytes, truth, **options).best == in_memory.best


def test_the_labelled_extent_limits_the_grid_and_the_truth(scene, tmp_path):
    prob, truth, _ = scene
    path = write_raster(tmp_path / "p.tif", prob)
    left, top = TRANSFORM.c, TRANSFORM.f
    # the top-left 2 x 2 buildings: rows and columns 0..179 px, widened to whole pixels
    extent = (left, top - 179.7 * PIXEL_M, left + 179.7 * PIXEL_M, top)
    result = calibrate.calibrate_raster(path, truth, extent=extent, thresholds=(0.5,), min_areas_m2=(5,))
    assert result.grid_shape == (180, 180)
    assert result.truth_count == 4 and result.truth_outside == len(truth) - 4
    assert (result.best.tp, result.best.fp, result.best.fn) == (4, 0, 0)
    with pytest.raises(calibrate.CalibrationError, match="does not overlap the probability raster"):
        calibrate.calibrate_raster(path, truth, extent=(0, 0, 10, 10))


def test_nodata_reads_as_no_building_and_out_of_range_values_are_refused(scene, tmp_path):
    prob, truth, _ = scene
    holed = prob.copy()
    holed[:, : PITCH * 2] = -1  # nodata over the first two columns of buildings
    result = calibrate.calibrate_raster(write_raster(tmp_path / "holed.tif", holed, nodata=-1), truth,
                                        thresholds=(0.5,), min_areas_m2=(5,))
    assert (result.best.tp, result.best.fn) == (len(truth) // 2, len(truth) // 2)
    with pytest.raises(calibrate.CalibrationError, match="holds uint16 values: a building probability raster "
                                                         "holds 0 to 1"):
        calibrate.calibrate_raster(write_raster(tmp_path / "u16.tif", np.rint(prob * 255), dtype="uint16"), truth)
    with pytest.raises(calibrate.CalibrationError, match="holds values from 0 to 2[0-9][0-9]: a probability "
                                                         "raster holds 0 to 1"):
        calibrate.calibrate_raster(write_raster(tmp_path / "f255.tif", np.rint(prob * 255)), truth)


def test_the_report_draws_one_curve_per_minimum_area(result):
    text = calibrate_report.render(result, notes=["a <note>"])
    assert text.startswith("<!DOCTYPE html>") and text.count("<svg") == 3
    first_chart = re.search(r"<svg.*?</svg>", text, re.S).group(0)
    assert first_chart.count("<polyline") == len(result.min_areas_m2)
    assert "min. area 5 m²" in first_chart and "best: 0.5, 5 m²" in first_chart
    assert "a &lt;note&gt;" in text and text.count("<tr>") >= len(result.trials)


def test_the_line_chart_places_points_in_its_axes():
    svg = calibrate_report.line_chart([("a & b", [0.2, 0.8], [0.0, 1.0])], "T", "x", "y", width=400, height=300)
    points = re.search(r'<polyline points="([^"]+)"', svg).group(1).split()
    (x0, y0), (x1, y1) = (tuple(map(float, p.split(","))) for p in points)
    assert x0 < x1 and y0 > y1  # left to right, bottom to top
    assert "a &amp; b" in svg
    assert "nothing to show" in calibrate_report.line_chart([], "T", "x", "y")


def test_the_engines_interior_band_splits_as_the_extraction_did(repo_root, fixtures, tmp_path):
    """Scored against the extraction's own footprints, the engine's probability raster (building and interior
    bands) scores F1 = 1 at the extraction's threshold and minimum area: calibration splits touching buildings
    with the interior band at the interior threshold the run stored. The building band alone does not."""
    from spacenet_toolkit.core.extract import extract

    path = tmp_path / "probability.tif"
    extraction = extract.extract_buildings(extract.ExtractRequest(
        str(fixtures / "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"),
        str(repo_root / "models" / "buildings_unet_small.onnx"), probability_path=str(path),
        options={"simplify_m": 0.0}))
    truth = [f.geometry for f in extraction.footprints]
    pair = dict(thresholds=(extraction.settings["threshold"],), min_areas_m2=(extraction.settings["min_area_m2"],))
    result = calibrate.calibrate_raster(path, truth, **pair)
    assert len(truth) > 30 and result.best.f1 == 1.0 and result.settings["interior_threshold"] is not None
    assert result.settings["min_score"] == extraction.settings["min_score"] > 0  # dropped as the extraction did
    assert "interior band ≥" in calibrate_report.render(result)
    with rasterio.open(path) as src:
        building_only = write_raster(tmp_path / "building_only.tif", src.read(1), transform=src.transform,
                                     crs=src.crs)
    assert calibrate.calibrate_raster(building_only, truth, **pair).best.f1 < 1.0
