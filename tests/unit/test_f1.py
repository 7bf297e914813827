"""The SpaceNet F1 engine (core.score.f1): the reference oracle, the metric's properties, bad geometry, and the API."""

import csv
import json
import math

import numpy as np
import pytest
import shapely
from shapely import affinity
from shapely.geometry import box, shape

from spacenet_toolkit.core.score import convex_clip, f1, polygon_cleaning
from spacenet_toolkit.core.score.challenge_csv import read_challenge_csv

SOLARIS_SN2 = f1.F1Options(iou_threshold=0.5, matching="greedy>", min_area_truth=20, min_area_proposals=20)


@pytest.fixture(scope="module")
def sn2_result(oracle):
    truth = read_challenge_csv(oracle / "SN2_sample_truth.csv")
    proposals = read_challenge_csv(oracle / "SN2_sample_preds.csv")
    proposals.order = None  # solaris takes the proposals in file order
    return f1.score(truth, proposals, SOLARIS_SN2)


def read_rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def polygons(*geometries, groups=None, order=None, areas=None) -> f1.PolygonSet:
    array = np.empty(len(geometries), dtype=object)
    array[:] = list(geometries)
    return f1.PolygonSet(array, groups=groups, order=order, areas=areas)


def counts(result) -> tuple:
    return result.total.tp, result.total.fp, result.total.fn


# --- the oracle -------------------------------------------------------------------------------------------------


def test_sn2_every_image_matches_the_solaris_results(oracle, sn2_result):
    expected = {row["imageID"]: row for row in read_rows(oracle / "SN2_test_results_full.csv")}
    assert list(sn2_result.groups) == sorted(expected)  # includes img463, whose only rows are POLYGON EMPTY
    for image, row in expected.items():
        got = sn2_result.groups[image]
        assert (got.tp, got.fp, got.fn) == (int(row["TruePos"]), int(row["FalsePos"]), int(row["FalseNeg"])), image
        assert got.precision == pytest.approx(float(row["Precision"]), abs=1e-12)
        assert got.recall == pytest.approx(float(row["Recall"]), abs=1e-12)
        assert got.f1 == pytest.approx(float(row["F1Score"]), abs=1e-12)


def test_sn2_every_aoi_matches_the_solaris_results(oracle, sn2_result):
    # The file has no AOI column: its rows are AOI_2_Vegas then AOI_5_Khartoum (fixtures README).
    rows = read_rows(oracle / "SN2_test_results.csv")
    by_aoi = sn2_result.by_aoi()
    assert list(by_aoi) == ["AOI_2_Vegas", "AOI_5_Khartoum"]
    for got, row in zip(by_aoi.values(), rows):
        assert (got.tp, got.fp, got.fn) == (int(row["TruePos"]), int(row["FalsePos"]), int(row["FalseNeg"]))
        assert got.f1 == pytest.approx(float(row["F1Score"]), abs=1e-12)
        assert got.precision == pytest.approx(float(row["Precision"]), abs=1e-12)
        assert got.recall == pytest.approx(float(row["Recall"]), abs=1e-12)


def test_sn2_per_building_iou_matches_solaris(oracle, sn2_result):
    """``iou_score`` per truth row: the best IoU offered by a proposal that picked that truth (0 if none did, and 0
    for truth under the area limit), which is what ``truth_iou_offered`` reports."""
    rows = read_rows(oracle / "SN2_sample_iou_by_building.csv")
    truth_rows = read_rows(oracle / "SN2_sample_truth.csv")
    assert [(r["ImageId"], r["BuildingId"]) for r in rows] == [(r["ImageId"], r["BuildingId"]) for r in truth_rows]
    expected = np.array([float(row["iou_score"]) for row in rows])
    got = np.nan_to_num(sn2_result.truth_iou_offered, nan=0.0)
    assert np.abs(got - expected).max() < 1e-9

    matched = sn2_result.truth_status == "TP"
    assert matched.sum() == 87
    assert np.abs(sn2_result.truth_iou[matched] - expected[matched]).max() < 1e-9
    # truth_iou differs for missed truth only: there it is the best IoU with any proposal, picked or not.
    missed = sn2_result.truth_status == "FN"
    assert np.all(sn2_result.truth_iou[missed] >= expected[missed] - 1e-12)


def test_sn2_cleaning_report_counts_the_empty_rows_and_the_small_truth(sn2_result):
    assert sn2_result.truth_cleaning.skipped_null_or_empty == 1
    assert sn2_result.truth_cleaning.skipped_small == 2
    assert sn2_result.proposal_cleaning.skipped_null_or_empty == 1
    assert sn2_result.truth_cleaning.repaired == sn2_result.proposal_cleaning.repaired == 0
    assert np.count_nonzero(sn2_result.truth_status == "") == 3
    assert np.all(np.isnan(sn2_result.truth_iou[sn2_result.truth_status == ""]))


@pytest.mark.parametrize("matching", f1.MATCHING)
def test_geojson_oracle_gives_8_tp_20_fp_20_fn(oracle, matching):
    def load(name):
        features = json.loads((oracle / name).read_text())["features"]
        return polygons(*(shape(feature["geometry"]) for feature in features))

    result = f1.score(load("gt.geojson"), load("pred.geojson"), f1.F1Options(matching=matching))
    assert counts(result) == (8, 20, 20)
    assert result.total.precision == result.total.recall == result.total.f1 == pytest.approx(0.2857142857, abs=1e-10)


# --- properties of the metric ------------------------------------------------------------------------------------


def rotated_rectangles(rng, count, origin=(500_000.0, 4_000_000.0), spacing=40.0):
    """Non-overlapping rotated rectangles 8-30 m on a grid, at UTM-sized coordinates."""
    side = int(math.ceil(math.sqrt(count)))
    cells = rng.permutation(side * side)[:count]
    cx = origin[0] + (cells % side) * spacing + rng.uniform(-2, 2, count)
    cy = origin[1] + (cells // side) * spacing + rng.uniform(-2, 2, count)
    return rectangles(cx, cy, rng.uniform(8, 20, count), rng.uniform(8, 20, count), rng.uniform(0, np.pi, count))


def rectangles(cx, cy, width, height, angle):
    unit_x, unit_y = np.array([-0.5, 0.5, 0.5, -0.5, -0.5]), np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    dx, dy = width[:, None] * unit_x, height[:, None] * unit_y
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return shapely.polygons(np.stack([cx[:, None] + dx * cos - dy * sin, cy[:, None] + dx * sin + dy * cos], -1))


def perturbed(rng, geometries, shift=1.5):
    """Each geometry shifted, resized and turned a little: partial overlaps on both sides of IoU 0.5."""
    moved = np.empty(len(geometries), dtype=object)
    moved[:] = [
        affinity.rotate(affinity.scale(affinity.translate(g, *rng.normal(0, shift, 2)), *rng.uniform(0.8, 1.2, 2)),
                        rng.normal(0, 8))
        for g in geometries
    ]
    return moved


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(7)
    truth = rotated_rectangles(rng, 400)
    found = rng.random(len(truth)) < 0.8
    false_alarms = rotated_rectangles(rng, 60)
    proposals = np.concatenate([perturbed(rng, truth[found]), false_alarms])
    groups_t = np.array([f"tile_{i % 4}" for i in range(len(truth))], dtype=object)
    groups_p = np.concatenate([groups_t[found], np.array([f"tile_{i % 4}" for i in range(60)], dtype=object)])
    return truth, groups_t, proposals, groups_p


@pytest.mark.parametrize("matching", f1.MATCHING)
def test_a_set_scored_against_itself_is_perfect(scene, matching):
    truth, groups, _, _ = scene
    options = f1.F1Options(matching=matching)
    result = f1.score(f1.PolygonSet(truth, groups), f1.PolygonSet(truth.copy(), groups), options)
    assert counts(result) == (len(truth), 0, 0)
    assert result.total.f1 == 1.0
    assert np.all(result.proposal_iou == 1.0)
    assert np.array_equal(result.proposal_match, np.arange(len(truth)))


def test_sn2_truth_against_itself_is_perfect(oracle):
    truth = read_challenge_csv(oracle / "SN2_sample_truth.csv")
    result = f1.score(truth, read_challenge_csv(oracle / "SN2_sample_truth.csv"))
    assert result.total.f1 == 1.0
    assert all(c.f1 == 1.0 for name, c in result.groups.items() if name != "AOI_5_Khartoum_img463")


def test_shifting_every_proposal_far_away_scores_zero(scene):
    truth, groups_t, proposals, groups_p = scene
    far = shapely.transform(proposals, lambda xy: xy + 10_000.0)
    result = f1.score(f1.PolygonSet(truth, groups_t), f1.PolygonSet(far, groups_p))
    assert counts(result) == (0, len(proposals), len(truth))
    assert result.total.f1 == 0.0
    assert np.all(result.proposal_iou == 0.0)


@pytest.mark.parametrize("matching", ["greedy>=", "greedy>", "optimal"])
@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_counts_do_not_depend_on_proposal_order_at_half_or_more(scene, matching, threshold):
    truth, groups_t, proposals, groups_p = scene
    options = f1.F1Options(iou_threshold=threshold, matching=matching)
    reference = f1.score(f1.PolygonSet(truth, groups_t), f1.PolygonSet(proposals, groups_p), options)
    for seed in range(3):
        shuffle = np.random.default_rng(seed).permutation(len(proposals))
        shuffled_proposals = f1.PolygonSet(proposals[shuffle], groups_p[shuffle])
        shuffled = f1.score(f1.PolygonSet(truth, groups_t), shuffled_proposals, options)
        assert counts(shuffled) == counts(reference)
        assert shuffled.groups == reference.groups
        # Which of two passing proposals takes a truth may change with the order; the truth matched may not.
        assert np.array_equal(shuffled.truth_status, reference.truth_status)


def test_greedy_and_optimal_agree_at_half(scene):
    truth, groups_t, proposals, groups_p = scene
    results = {m: f1.score(f1.PolygonSet(truth, groups_t), f1.PolygonSet(proposals, groups_p), f1.F1Options(0.5, m))
               for m in ("greedy>=", "optimal")}
    assert counts(results["greedy>="]) == counts(results["optimal"])


def test_optimal_beats_greedy_below_half_on_a_constructed_case():
    # p1 overlaps A (IoU 0.467) and B (0.294); p2 overlaps A only (0.333). Greedy gives A to p1 and leaves p2
    # with nothing; the optimal matching gives B to p1 and A to p2.
    truth = polygons(box(0, 0, 10, 10), box(10, 0, 20, 10))
    proposals = polygons(box(3, 0, 15, 10), box(-5, 0, 5, 10))
    greedy = f1.score(truth, proposals, f1.F1Options(0.25, "greedy>="))
    optimal = f1.score(truth, proposals, f1.F1Options(0.25, "optimal"))
    assert counts(greedy) == (1, 1, 1)
    assert counts(optimal) == (2, 0, 0)
    assert list(optimal.proposal_match) == [1, 0]
    assert optimal.proposal_iou[0] == pytest.approx(50 / 170)
    at_half = [counts(f1.score(truth, proposals, f1.F1Options(0.5, m))) for m in ("greedy>=", "optimal")]
    assert at_half[0] == at_half[1] == (0, 2, 2)


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.45])
def test_optimal_never_counts_fewer_true_positives_than_greedy(scene, threshold):
    truth, groups_t, proposals, groups_p = scene
    # Overlapping truth makes the matchings compete.
    crowded = np.concatenate([truth, perturbed(np.random.default_rng(3), truth[:100], shift=4.0)])
    crowded_groups = np.concatenate([groups_t, groups_t[:100]])
    args = f1.PolygonSet(crowded, crowded_groups), f1.PolygonSet(proposals, groups_p)
    greedy = f1.score(*args, f1.F1Options(threshold, "greedy>="))
    optimal = f1.score(*args, f1.F1Options(threshold, "optimal"))
    assert optimal.total.tp >= greedy.total.tp
    assert optimal.total.tp == reference_maximum_matching(crowded, crowded_groups, proposals, groups_p, threshold)


def reference_maximum_matching(truth, groups_t, proposals, groups_p, threshold) -> int:
    """The size of a maximum matching over pairs with IoU >= threshold, by augmenting paths (Kuhn's algorithm)."""
    edges = {}
    for i, p in enumerate(proposals):
        for j, t in enumerate(truth):
            if groups_p[i] == groups_t[j] and p.intersects(t):
                iou = p.intersection(t).area / p.union(t).area
                if iou >= threshold:
                    edges.setdefault(i, []).append(j)
    owner = {}

    def augment(i, seen):
        for j in edges.get(i, []):
            if j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, set()) for i in edges)


@pytest.mark.parametrize("matching", ["greedy>=", "greedy>"])
@pytest.mark.parametrize("use_order", [False, True])
def test_greedy_matches_a_plain_per_proposal_loop(scene, matching, use_order):
    """Against the textbook loop (shapely per pair), with overlapping truth so that proposals compete."""
    truth, groups_t, proposals, groups_p = scene
    rng = np.random.default_rng(11)
    crowded = np.concatenate([truth, perturbed(rng, truth[:150], shift=3.0)])
    crowded_groups = np.concatenate([groups_t, groups_t[:150]])
    confidence = rng.random(len(proposals)) if use_order else None
    options = f1.F1Options(0.3, matching)
    result = f1.score(f1.PolygonSet(crowded, crowded_groups), f1.PolygonSet(proposals, groups_p, order=confidence),
                      options)
    sequence = np.argsort(-confidence, kind="stable") if use_order else np.arange(len(proposals))
    expected_match, expected_offer = reference_greedy(crowded, crowded_groups, proposals, groups_p, sequence, options)
    assert np.array_equal(result.proposal_match, expected_match)
    assert np.abs(result.truth_iou_offered - expected_offer).max() < 1e-9


def reference_greedy(truth, groups_t, proposals, groups_p, sequence, options):
    match = np.full(len(proposals), -1)
    offered = np.zeros(len(truth))
    taken = set()
    for i in sequence:
        best, best_j = 0.0, -1
        for j in range(len(truth)):
            if j in taken or groups_t[j] != groups_p[i] or not proposals[i].intersects(truth[j]):
                continue
            iou = proposals[i].intersection(truth[j]).area / proposals[i].union(truth[j]).area
            if iou > best:
                best, best_j = iou, j
        if best_j < 0:
            continue
        offered[best_j] = max(offered[best_j], best)
        if best > options.iou_threshold or (options.matching == "greedy>=" and best == options.iou_threshold):
            match[i] = best_j
            taken.add(best_j)
    return match, offered


def test_iou_agrees_with_shapely_for_convex_and_other_shapes():
    """Convex pairs are clipped in numpy, the others in GEOS: both must give shapely's IoU."""
    rng = np.random.default_rng(5)
    origin = np.array([731_000.0, 3_720_000.0])
    convex = [affinity.translate(shapely.Point(0, 0).buffer(rng.uniform(4, 9), quad_segs=int(q)), *origin)
              for q in rng.integers(1, 7, 30)]  # 4- to 24-sided convex polygons
    holed = [affinity.translate(box(-8, -8, 8, 8).difference(box(-2, -2, 2, 2)), *origin) for _ in range(5)]
    l_shapes = [affinity.translate(box(-6, -6, 6, 0).union(box(-6, 0, 0, 6)), *origin) for _ in range(5)]
    truth = convex + holed + l_shapes
    proposals = [affinity.rotate(affinity.translate(g, *rng.normal(0, 3, 2)), rng.uniform(0, 90))
                 for g in truth]
    # One truth per group, so each proposal's IoU is with its own truth.
    groups = [str(i) for i in range(len(truth))]
    result = f1.score(polygons(*truth, groups=groups), polygons(*proposals, groups=groups), f1.F1Options(0.01))
    expected = [p.intersection(t).area / p.union(t).area for p, t in zip(proposals, truth)]
    assert np.abs(result.proposal_iou - expected).max() < 1e-9


def test_clockwise_and_counter_clockwise_rings_give_the_same_iou():
    square = box(0, 0, 10, 10)
    shifted = box(5, 0, 15, 10)
    forward = f1.score(polygons(square), polygons(shifted))
    backward = f1.score(polygons(square.reverse()), polygons(shifted.reverse()))
    assert forward.proposal_iou[0] == backward.proposal_iou[0] == pytest.approx(1 / 3)


# --- threshold, order, touching ----------------------------------------------------------------------------------


def test_iou_of_exactly_the_threshold_counts_for_greedy_ge_not_greedy_gt():
    truth, proposals = polygons(box(0, 0, 10, 10)), polygons(box(0, 0, 10, 20))  # IoU 0.5 exactly
    assert counts(f1.score(truth, proposals, f1.F1Options(0.5, "greedy>="))) == (1, 0, 0)
    assert counts(f1.score(truth, proposals, f1.F1Options(0.5, "greedy>"))) == (0, 1, 1)
    assert counts(f1.score(truth, proposals, f1.F1Options(0.5, "optimal"))) == (1, 0, 0)


def test_confidence_order_decides_which_proposal_gets_the_truth():
    truth = polygons(box(0, 0, 10, 10))
    weak, strong = box(0, 0, 10, 16), box(0, 0, 10, 11)  # IoU 0.625 and 0.909
    by_input = f1.score(truth, polygons(weak, strong))
    by_confidence = f1.score(truth, polygons(weak, strong, order=np.array([0.2, 0.9])))
    assert list(by_input.proposal_status) == ["TP", "FP"]
    assert list(by_confidence.proposal_status) == ["FP", "TP"]
    assert by_confidence.truth_iou[0] == pytest.approx(10 / 11)


def test_polygons_that_only_touch_never_match_even_at_threshold_zero():
    result = f1.score(polygons(box(0, 0, 10, 10)), polygons(box(10, 0, 20, 10)), f1.F1Options(iou_threshold=0.0))
    assert counts(result) == (0, 1, 1)
    assert result.proposal_iou[0] == 0.0


def test_fp_and_fn_report_their_best_iou_and_no_match():
    truth = polygons(box(0, 0, 10, 10))
    result = f1.score(truth, polygons(box(6, 0, 16, 10)))  # IoU 0.25
    assert list(result.proposal_status) == ["FP"] and list(result.truth_status) == ["FN"]
    assert result.proposal_iou[0] == result.truth_iou[0] == pytest.approx(0.25)
    assert result.proposal_match[0] == result.truth_match[0] == -1


# --- bad geometry ----------------------------------------------------------------------------------------------


def test_a_bow_tie_is_repaired_counted_and_scored():
    bow_tie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10), (0, 0)])
    assert not bow_tie.is_valid
    result = f1.score(polygons(box(0, 0, 10, 10)), polygons(bow_tie))
    assert result.proposal_cleaning.repaired == 1
    assert result.proposal_iou[0] == pytest.approx(0.5)  # its two triangles cover half the square
    assert counts(result) == (1, 0, 0)


def test_a_spike_is_repaired_and_its_line_part_dropped_and_counted():
    spiked = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10), (0, 5), (-5, 5), (0, 5), (0, 0)])
    result = f1.score(polygons(spiked), polygons(box(0, 0, 10, 10)))
    assert result.truth_cleaning.repaired == 1
    assert result.truth_cleaning.non_polygonal_parts_dropped == 1
    assert result.truth_iou[0] == pytest.approx(1.0)


def test_null_empty_lines_and_points_are_skipped_and_counted():
    truth = polygons(box(0, 0, 10, 10), None, shapely.Polygon(), shapely.LineString([(0, 0), (5, 5)]),
                     shapely.Point(1, 1), shapely.Polygon([(0, 0), (1, 1), (2, 2), (0, 0)]))
    result = f1.score(truth, polygons(box(0, 0, 10, 10), None))
    report = result.truth_cleaning
    assert report.skipped_null_or_empty == 2
    assert report.skipped_zero_area == 3  # the line, the point and the flat polygon
    assert report.non_polygonal_parts_dropped >= 2
    assert report.skipped == 5
    assert list(result.truth_status) == ["TP", "", "", "", "", ""]
    assert np.isnan(result.truth_iou[1:]).all() and (result.truth_match[1:] == -1).all()
    assert result.proposal_cleaning.skipped_null_or_empty == 1
    assert list(result.proposal_status) == ["TP", ""]
    assert counts(result) == (1, 0, 0)


def test_multipolygons_and_holes_are_scored():
    donut = box(0, 0, 10, 10).difference(box(2, 2, 8, 8))  # area 64
    two_parts = shapely.MultiPolygon([box(0, 0, 10, 2), box(0, 8, 10, 10)])  # area 40, inside the donut
    result = f1.score(polygons(donut), polygons(two_parts))
    assert result.proposal_iou[0] == pytest.approx(40 / 64)


def test_a_geometry_collection_keeps_its_polygons():
    collection = shapely.GeometryCollection([box(0, 0, 10, 10), shapely.LineString([(20, 20), (30, 30)])])
    result = f1.score(polygons(box(0, 0, 10, 10)), polygons(collection))
    assert result.proposal_cleaning.non_polygonal_parts_dropped == 1
    assert counts(result) == (1, 0, 0)


# --- area filters: degrees vs metres ---------------------------------------------------------------------------


def test_min_area_in_degrees_drops_everything_unless_areas_in_square_metres_are_given():
    # A 20 m x 20 m building in EPSG:4326 near the equator: about 3.2e-8 square degrees.
    degrees = box(30.0, 0.0, 30.00018, 0.00018)
    truth, proposals = polygons(degrees), polygons(degrees)
    options = f1.F1Options(min_area_truth=20, min_area_proposals=20)
    in_degrees = f1.score(truth, proposals, options)
    assert counts(in_degrees) == (0, 0, 0)
    assert in_degrees.truth_cleaning.skipped_small == in_degrees.proposal_cleaning.skipped_small == 1

    square_metres = np.array([400.0])
    truth.areas, proposals.areas = square_metres, square_metres
    assert counts(f1.score(truth, proposals, options)) == (1, 0, 0)


def test_given_areas_take_precedence_over_geometry_area():
    big = box(0, 0, 100, 100)
    truth = polygons(big, box(200, 0, 300, 100), areas=np.array([5.0, np.nan]))  # NaN: use the geometry's area
    result = f1.score(truth, polygons(big), f1.F1Options(min_area_truth=20))
    assert list(result.truth_status) == ["", "FN"]
    assert result.truth_cleaning.skipped_small == 1


def test_area_limits_are_inclusive_for_truth_and_exclusive_for_proposals():
    square = box(0, 0, 4, 5)  # area 20 exactly
    result = f1.score(polygons(square), polygons(square), f1.F1Options(min_area_truth=20, min_area_proposals=20))
    assert list(result.truth_status) == ["FN"] and list(result.proposal_status) == [""]


# --- groups ----------------------------------------------------------------------------------------------------


def test_groups_only_in_proposals_count_as_false_positives_and_only_in_truth_as_false_negatives():
    truth = polygons(box(0, 0, 10, 10), box(0, 0, 10, 10), groups=["a", "b"])
    proposals = polygons(box(0, 0, 10, 10), box(0, 0, 10, 10), groups=["a", "c"])
    result = f1.score(truth, proposals)
    assert list(result.groups) == ["a", "b", "c"]
    assert result.groups["b"] == f1.Counts(0, 0, 1)
    assert result.groups["c"] == f1.Counts(0, 1, 0)
    assert result.groups["a"] == f1.Counts(1, 0, 0)
    assert counts(result) == (1, 1, 1)


def test_same_shapes_in_different_groups_never_match():
    square = box(0, 0, 10, 10)
    result = f1.score(polygons(square, groups=["img1"]), polygons(square, groups=["img2"]))
    assert counts(result) == (0, 1, 1)


def test_a_group_with_only_empty_rows_is_listed_with_zero_counts():
    truth = polygons(box(0, 0, 1, 1), shapely.Polygon(), groups=["x", "y"])
    result = f1.score(truth, polygons(box(0, 0, 1, 1), groups=["x"]))
    assert result.groups["y"] == f1.Counts(0, 0, 0)
    assert result.groups["y"].f1 == 0.0


def test_an_empty_truth_set_makes_every_proposal_a_false_positive():
    result = f1.score(polygons(), polygons(box(0, 0, 1, 1), box(5, 5, 6, 6)))
    assert counts(result) == (0, 2, 0)
    assert result.total.f1 == result.total.precision == result.total.recall == 0.0
    assert list(result.groups) == [""]
    assert len(result.truth_status) == 0


def test_nothing_at_all_scores_zero_with_no_groups():
    result = f1.score(polygons(), polygons())
    assert counts(result) == (0, 0, 0) and result.groups == {} and result.total.f1 == 0.0


def test_aoi_of_and_by_aoi():
    assert f1.aoi_of("AOI_2_Vegas_img3457") == "AOI_2_Vegas"
    assert f1.aoi_of("AOI_2_Vegas") == "AOI_2_Vegas"
    assert f1.aoi_of("tile7") == "tile7"
    truth = polygons(box(0, 0, 1, 1), box(0, 0, 1, 1), box(0, 0, 1, 1), groups=["AOI_1_A_img1", "AOI_1_A_img2", "t"])
    by_aoi = f1.score(truth, polygons(box(0, 0, 1, 1), groups=["AOI_1_A_img2"])).by_aoi()
    assert by_aoi == {"AOI_1_A": f1.Counts(1, 0, 1), "t": f1.Counts(0, 0, 1)}


# --- progress, cancellation, options ----------------------------------------------------------------------------


def test_progress_rises_to_1(scene):
    truth, groups_t, proposals, groups_p = scene
    seen = []
    f1.score(f1.PolygonSet(truth, groups_t), f1.PolygonSet(proposals, groups_p),
             report=lambda fraction, message: seen.append(fraction))
    assert seen[-1] == 1.0
    assert seen == sorted(seen) and seen[0] >= 0.0
    assert len(seen) >= 4  # at least once per group


def test_progress_reaches_1_with_nothing_to_score():
    seen = []
    f1.score(polygons(), polygons(), report=lambda fraction, message: seen.append(fraction))
    assert seen[-1] == 1.0


def test_cancellation_raises_canceled(scene):
    truth, groups_t, proposals, groups_p = scene
    asked = []

    def is_canceled():
        asked.append(True)
        return len(asked) > 2  # cancel during the third group

    with pytest.raises(f1.Canceled):
        f1.score(f1.PolygonSet(truth, groups_t), f1.PolygonSet(proposals, groups_p), is_canceled=is_canceled)
    assert issubclass(f1.Canceled, Exception)


def test_options_are_checked():
    with pytest.raises(ValueError, match="matching"):
        f1.F1Options(matching="hungarian")
    with pytest.raises(ValueError, match="iou_threshold"):
        f1.F1Options(iou_threshold=1.5)
    assert f1.F1Options() == f1.F1Options(0.5, "greedy>=", 0.0, 0.0)


def test_per_feature_arrays_must_match_the_geometries():
    with pytest.raises(ValueError, match="groups"):
        f1.score(polygons(box(0, 0, 1, 1), groups=["a", "b"]), polygons())


def test_counts_ratios_are_zero_where_a_denominator_is_zero():
    assert f1.Counts(0, 0, 0).f1 == f1.Counts(0, 0, 0).precision == f1.Counts(0, 0, 0).recall == 0.0
    c = f1.Counts(tp=3, fp=1, fn=2)
    assert (c.precision, c.recall) == (0.75, 0.6)
    assert c.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_optimal_reports_no_offered_iou_and_result_arrays_have_the_documented_types(scene):
    truth, groups_t, proposals, groups_p = scene
    result = f1.score(f1.PolygonSet(truth, groups_t), f1.PolygonSet(proposals, groups_p), f1.F1Options(0.5, "optimal"))
    assert result.truth_iou_offered is None
    assert set(result.proposal_status) <= {"TP", "FP", ""} and set(result.truth_status) <= {"TP", "FN", ""}
    assert result.proposal_match.dtype.kind == result.truth_match.dtype.kind == "i"
    matched = result.proposal_match >= 0
    assert np.array_equal(result.truth_match[result.proposal_match[matched]], np.flatnonzero(matched))


# --- internals that guard the fast path --------------------------------------------------------------------------


def test_ring_areas_follow_shapely(oracle):
    geometries = np.concatenate([read_challenge_csv(oracle / name).geometries
                                 for name in ("SN2_sample_truth.csv", "SN2_sample_preds.csv")])
    cleaned = polygon_cleaning.clean(geometries, 0.0, inclusive=True)
    assert np.count_nonzero(cleaned.rings.count) > 150  # the numpy path really ran
    expected = shapely.area(geometries)
    assert np.allclose(cleaned.shape_areas, expected, rtol=1e-12, atol=0)


def test_a_clip_that_crosses_its_line_more_than_once_is_flagged_for_geos():
    # A "W" is not convex: it leaves the half-plane y <= 0.5 twice, which the fast clipping must not trust.
    w_x = np.array([[0.0, 1, 2, 3, 4, 4, 0]]).T
    w_y = np.array([[0.0, 1, 0, 1, 0, -1, -1]]).T
    start, end = (np.array([10.0]), np.array([0.5])), (np.array([0.0]), np.array([0.5]))
    _, _, ambiguous = convex_clip.clip_by_edge(w_x, w_y, start, end)
    assert ambiguous.tolist() == [True]


def test_an_iou_of_exactly_the_threshold_passes_at_or_above_and_not_strictly_above():
    """A box and its left half at two-decimal coordinates: IoU 0.5 computed as 0.49999999999999994 was a miss."""
    truth = f1.PolygonSet(np.array([box(10.37, 20.11, 30.93, 47.29)], dtype=object))
    proposal = f1.PolygonSet(np.array([box(10.37, 20.11, (10.37 + 30.93) / 2, 47.29)], dtype=object))
    assert shapely.area(shapely.intersection(truth.geometries[0], proposal.geometries[0])) / shapely.area(
        shapely.union(truth.geometries[0], proposal.geometries[0])) == pytest.approx(0.5, abs=1e-15)
    at_or_above = f1.score(truth, proposal, f1.F1Options(matching="greedy>="))
    above = f1.score(truth, proposal, f1.F1Options(matching="greedy>"))
    assert (at_or_above.total.tp, above.total.tp) == (1, 0)
