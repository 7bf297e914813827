"""The APLS engine (core.score.apls): the reference oracle, the metric's properties, coordinates, bad input, the API."""

import csv
import json
from dataclasses import fields

import numpy as np
import pytest
import rasterio.crs
import shapely
from networkx_apls import networkx_half
from shapely.geometry import LineString, MultiLineString, Point, Polygon, shape

from spacenet_toolkit.core.score import apls

ORACLE_TOLERANCE = 0.02  # implementations differ in how they inject control points (fixtures README)


# --- the oracle: CosmiQ's apls on 7 SpaceNet Vegas tiles, OSM roads as the proposal -------------------------------


def read_lines(path):
    return [shape(feature["geometry"]) for feature in json.loads(path.read_text())["features"]]


@pytest.fixture(scope="module")
def apls_oracle(fixtures):
    """(reference rows by tile, {tile: (truth lines, proposal lines)}), in EPSG:4326."""
    folder = fixtures / "apls_oracle"
    with open(folder / "reference_scores.csv", newline="") as stream:
        rows = {row["outroot"]: row for row in csv.DictReader(stream) if row["outroot"].startswith("AOI_")}
    tiles = {tile: (read_lines(folder / "spacenet" / f"{tile}.geojson"), read_lines(folder / "osm" / f"{tile}.geojson"))
             for tile in rows}
    return rows, tiles


@pytest.fixture(scope="module")
def oracle_result(apls_oracle):
    _, tiles = apls_oracle
    truth = [line for truth, _ in tiles.values() for line in truth]
    truth_tiles = [tile for tile, (truth, _) in tiles.items() for _ in truth]
    proposals = [line for _, proposals in tiles.values() for line in proposals]
    proposal_tiles = [tile for tile, (_, proposals) in tiles.items() for _ in proposals]
    return apls.score_by_group(truth, truth_tiles, proposals, proposal_tiles, crs="EPSG:4326")


def test_every_oracle_tile_is_within_tolerance_of_the_reference(apls_oracle, oracle_result):
    rows, _ = apls_oracle
    assert list(oracle_result.groups) == sorted(rows)
    for tile, row in rows.items():
        got = oracle_result.groups[tile]
        assert got.apls == pytest.approx(float(row["APLS"]), abs=ORACLE_TOLERANCE), tile
        assert got.gt_to_prop == pytest.approx(float(row["APLS_gt_onto_prop"]), abs=ORACLE_TOLERANCE), tile
        assert got.prop_to_gt == pytest.approx(float(row["APLS_prop_onto_gt"]), abs=ORACLE_TOLERANCE), tile
        # The graphs themselves: road lengths as the reference measured them (it drops the loop roads too).
        assert got.length_truth_m == pytest.approx(float(row["tot_meters_gt"]), rel=0.002), tile
        assert got.length_proposal_m == pytest.approx(float(row["tot_meters_p"]), rel=0.002), tile


def test_oracle_mean_over_tiles_is_within_tolerance(oracle_result):
    # 0.6490 is the mean of the 7 tiles; the reference's printed "Tot APLS" 0.5889 wrongly averages its summary rows.
    assert oracle_result.mean_apls == pytest.approx(0.6489601662738805, abs=ORACLE_TOLERANCE)
    assert oracle_result.mean_gt_to_prop == pytest.approx(0.5512780716741668, abs=ORACLE_TOLERANCE)
    assert oracle_result.mean_prop_to_gt == pytest.approx(0.8904977887030465, abs=ORACLE_TOLERANCE)


def test_oracle_matches_closely_not_just_within_tolerance(apls_oracle, oracle_result):
    """Guards the fidelity reached: what remains comes from the reference's edge lengths measured on a sphere."""
    rows, _ = apls_oracle
    for tile, row in rows.items():
        got = oracle_result.groups[tile]
        assert got.apls == pytest.approx(float(row["APLS"]), abs=0.002), tile
        assert got.gt_to_prop == pytest.approx(float(row["APLS_gt_onto_prop"]), abs=0.005), tile
        assert got.prop_to_gt == pytest.approx(float(row["APLS_prop_onto_gt"]), abs=0.005), tile
    assert oracle_result.mean_apls == pytest.approx(0.6489601662738805, abs=0.001)


def test_a_tile_scored_alone_equals_its_group_result(apls_oracle, oracle_result):
    truth, proposals = apls_oracle[1]["AOI_2_Vegas_img998"]
    assert apls.score(truth, proposals, crs="EPSG:4326") == oracle_result.groups["AOI_2_Vegas_img998"]


def test_small_blocks_of_pairs_give_the_same_score(apls_oracle, oracle_result, monkeypatch):
    truth, proposals = apls_oracle[1]["AOI_2_Vegas_img990"]
    monkeypatch.setattr(apls, "_PAIRS_PER_BLOCK", 7 * 150)  # a handful of source rows per block
    blocked = apls.score(truth, proposals, crs="EPSG:4326")
    assert blocked.apls == pytest.approx(oracle_result.groups["AOI_2_Vegas_img990"].apls, abs=1e-12)


def test_half_scores_agree_with_networkx_on_graphs_with_a_node_per_control_point(apls_oracle):
    truth, proposals = apls_oracle[1]["AOI_2_Vegas_img991"]
    truth_m, utm = apls.to_utm(apls._line_parts(truth, "truth"), "EPSG:4326")
    proposals_m = apls.reproject_lines(apls._line_parts(proposals, "proposals"), "EPSG:4326", utm)
    options = apls.AplsOptions()
    for half in apls.compare_halves(apls.build_graph(truth_m), apls.build_graph(proposals_m), options):
        expected = networkx_half(half, options.min_path_length_m)
        assert apls.half_score(half, options.min_path_length_m) == pytest.approx(expected, abs=1e-12)


def grid(size=5, spacing=100.0, origin=(500_000.0, 4_000_000.0)):
    """Streets of a ``size`` x ``size`` grid, one line per block side, meeting at shared ends (as SpaceNet labels)."""
    x0, y0 = origin
    lines = []
    for i in range(size):
        for j in range(size - 1):
            lines.append(LineString([(x0 + i * spacing, y0 + j * spacing), (x0 + i * spacing, y0 + (j + 1) * spacing)]))
            lines.append(LineString([(x0 + j * spacing, y0 + i * spacing), (x0 + (j + 1) * spacing, y0 + i * spacing)]))
    return lines


def two_districts():
    """Two 3 x 3 grids joined by one road (a bridge), and the index of that road."""
    west, east = grid(3), grid(3, origin=(500_400.0, 4_000_000.0))
    bridge = LineString([(500_200.0, 4_000_100.0), (500_400.0, 4_000_100.0)])
    return west + east + [bridge], len(west) + len(east)


def test_a_graph_against_itself_scores_one():
    lines = grid()
    result = apls.score(lines, lines)
    assert result.apls == result.gt_to_prop == result.prop_to_gt == 1.0
    assert result.control_points_truth == result.snapped_truth == 25 + 40  # 25 junctions, 40 blocks of 100 m
    assert result.paths_truth == result.paths_proposal == 65 * 64


def test_the_same_roads_drawn_differently_score_one():
    # Whole streets (reversed) and avenues (one MultiLineString) that share a vertex at each junction, OSM style,
    # give the same graph as one line per block side.
    x0, y0 = 500_000.0, 4_000_000.0
    streets = [LineString([(x0 + 100 * i, y0 + 100 * j) for j in range(5)][::-1]) for i in range(5)]
    avenues = MultiLineString([[(x0 + 100 * i, y0 + 100 * j) for i in range(5)] for j in range(5)])
    result = apls.score(grid(), streets + [avenues])
    assert result.apls == 1.0
    assert result.control_points_proposal == result.control_points_truth


def test_an_empty_proposal_scores_zero():
    result = apls.score(grid(), [])
    assert (result.apls, result.gt_to_prop, result.prop_to_gt) == (0.0, 0.0, 0.0)
    assert result.length_truth_m == pytest.approx(4000.0)
    assert apls.score(grid(), [None, LineString()]).apls == 0.0


def test_an_empty_truth_scores_zero_with_or_without_a_proposal():
    assert apls.score([], grid()).apls == 0.0
    assert apls.score([], []) == apls.AplsResult()


def test_removing_a_bridge_lowers_the_score_more_than_removing_a_redundant_road():
    lines, bridge = two_districts()
    without_bridge = apls.score(lines, lines[:bridge] + lines[bridge + 1:])
    without_block_side = apls.score(lines, lines[1:])  # a road inside the west grid: detours remain
    assert without_bridge.apls < without_block_side.apls < 1.0
    assert without_bridge.gt_to_prop < 0.6  # every path between the districts is missing


def test_swapping_truth_and_proposal_swaps_the_halves():
    truth = grid()
    proposals = [shapely.affinity.translate(line, 1.5, -1.0) for line in truth[3:]] + [
        LineString([(500_200.0, 4_000_200.0), (500_260.0, 4_000_260.0)])]
    forward, backward = apls.score(truth, proposals), apls.score(proposals, truth)
    assert forward.gt_to_prop == backward.prop_to_gt
    assert forward.prop_to_gt == backward.gt_to_prop
    assert forward.apls == pytest.approx(backward.apls, abs=1e-15)
    assert forward.gt_to_prop != forward.prop_to_gt  # the case is not trivially symmetric


def test_symmetric_inputs_give_symmetric_halves():
    truth = grid()
    proposals = [shapely.affinity.translate(line, 2.0, 0.0) for line in truth]
    result = apls.score(truth, proposals)
    assert result.gt_to_prop == pytest.approx(result.prop_to_gt, abs=1e-12)


def test_points_within_max_snap_count_and_points_beyond_are_missing():
    truth = [LineString([(0, 0), (300, 0)])]

    def alongside(offset):
        return [LineString([(0, offset), (300, offset)])]

    near = apls.score(truth, alongside(3.9))
    assert near.apls == pytest.approx(1.0, abs=1e-12) and near.snapped_truth == near.control_points_truth == 7
    far = apls.score(truth, alongside(4.1))
    assert far.apls == 0.0 and far.snapped_truth == 0
    assert apls.score(truth, alongside(4.1), apls.AplsOptions(max_snap_m=5.0)).apls == pytest.approx(1.0, abs=1e-12)


def test_control_points_every_spacing_along_each_edge():
    def control_points(length):
        return apls.score([LineString([(0, 0), (length, 0)])], [LineString([(0, 0), (length, 0)])]
                          ).control_points_truth

    # Ends only below 0.75 spacing, one midpoint up to 1 spacing, then cut into ceil(length / spacing) parts.
    assert [control_points(length) for length in (30, 40, 50, 120, 150, 151)] == [2, 3, 3, 4, 4, 5]
    spaced = apls.score([LineString([(0, 0), (120, 0)])], [LineString([(0, 0), (120, 0)])],
                        apls.AplsOptions(control_spacing_m=20.0))
    assert spaced.control_points_truth == 7


def test_lines_that_cross_without_a_shared_vertex_do_not_meet():
    crossing = [LineString([(0, 100), (200, 100)]), LineString([(100, 0), (100, 200)])]
    junction = [LineString([(0, 100), (100, 100), (200, 100)]), LineString([(100, 0), (100, 100), (100, 200)])]
    assert apls.score(junction, junction).apls == 1.0
    overpass = apls.score(junction, crossing)  # bridges and tunnels: no turn between the roads
    assert overpass.apls < 0.9


def test_vertices_closer_than_the_tolerance_are_one_junction():
    gap = 0.004
    lines = [LineString([(0, 0), (100, 0)]), LineString([(100 + gap, 0), (100 + gap, 100)])]
    joined = [LineString([(0, 0), (100, 0)]), LineString([(100, 0), (100, 100)])]
    assert apls.score(joined, lines).apls == pytest.approx(1.0, abs=1e-4)
    apart = apls.score(joined, lines, apls.AplsOptions(node_tolerance_m=0.001))
    assert apart.apls < 0.9


def test_small_pieces_of_road_are_ignored():
    main_road = [LineString([(0, 0), (300, 0)])]
    fragment = [LineString([(0, 50), (4, 50)])]
    result = apls.score(main_road + fragment, main_road)
    assert result.apls == 1.0 and result.length_truth_m == 300.0
    kept = apls.score(main_road + fragment, main_road, apls.AplsOptions(min_subgraph_length_m=0))
    assert kept.gt_to_prop < 1.0 and kept.length_truth_m == 304.0


def test_loop_roads_hanging_on_a_junction_are_dropped_as_in_the_reference():
    road = LineString([(0, 0), (200, 0)])
    loop = LineString([(200, 0), (260, 40), (260, -40), (200, 0)])  # a cul-de-sac loop at the road's end
    assert apls.score([road, loop], [road]).length_truth_m == 200.0
    kept = apls.score([road, loop], [road], apls.AplsOptions(drop_loops=False))
    assert kept.length_truth_m == pytest.approx(200.0 + loop.length) and kept.gt_to_prop < 1.0
    ring = LineString([(0, 0), (100, 0), (100, 100), (0, 100), (0, 0)])  # a ring on its own stays
    alone = apls.score([ring], [ring])
    assert alone.length_truth_m == 400.0 and alone.apls == 1.0 and alone.control_points_truth == 8


def test_points_snapped_to_one_spot_keep_it_once_as_in_the_reference():
    proposal = [LineString([(0, 0), (100, 0)])]
    # Two truth junctions 1 m and 3 m past the proposal's dead end: both land on that end.
    truth = [LineString([(0, 0), (101, 0)]), LineString([(101, 0), (101, 50)]), LineString([(101, 0), (103, 0)]),
             LineString([(103, 0), (103, -50)]), LineString([(103, 0), (103, 50)])]
    quirk = apls.score(truth, proposal)
    shared = apls.score(truth, proposal, apls.AplsOptions(one_point_per_node=False))
    assert quirk.snapped_truth == shared.snapped_truth - 1
    assert quirk.gt_to_prop < shared.gt_to_prop


def test_paths_are_compared_by_length_difference():
    truth = [LineString([(0, 0), (100, 0)])]
    detour = [LineString([(0, 0), (0, 2), (50, 30), (100, 2), (100, 0)])]  # ends snap, the path is longer
    result = apls.score(truth, detour)
    # Only the two ends (and the truth midpoint, 30 m off, missing) take part: L' / L = detour length / 100.
    assert result.snapped_truth == 2
    end_to_end = min(1.0, abs(100 - detour[0].length) / 100)
    assert result.gt_to_prop == pytest.approx(1 - (2 * end_to_end + 4 * 1.0) / 6)


# --- coordinates ------------------------------------------------------------------------------------------------


def test_geographic_input_is_measured_in_metres():
    # About 975 m east-west at 36 degrees north (not 975 thousandths of a degree).
    degrees = [LineString([(-115.30, 36.17), (-115.30 + 975 / (111_320 * np.cos(np.radians(36.17))), 36.17)])]
    result = apls.score(degrees, degrees, crs="EPSG:4326")
    assert result.length_truth_m == pytest.approx(975.0, rel=0.003)
    assert result.control_points_truth == 2 + 19  # 20 parts of at most 50 m
    assert apls.utm_crs_for(degrees, "EPSG:4326") == "EPSG:32611"
    wkt = rasterio.crs.CRS.from_epsg(4326).to_wkt()  # QGIS hands over WKT
    assert apls.score(degrees, degrees, crs=wkt) == result
    assert apls.utm_crs_for([Point(151.2, -33.9)], "EPSG:4326") == "EPSG:32756"  # Sydney: south


def test_epsg4326_input_and_the_same_lines_in_utm_score_the_same(apls_oracle, oracle_result):
    tile = "AOI_2_Vegas_img995"
    tile_truth, tile_proposals = apls_oracle[1][tile]
    truth_m, utm = apls.to_utm(tile_truth, "EPSG:4326")
    in_utm = apls.score(truth_m, apls.reproject_lines(tile_proposals, "EPSG:4326", utm))
    assert in_utm == oracle_result.groups[tile]
    # Web Mercator metres are not ground metres (x 1.24 here): they are reprojected too.
    mercator = [apls.reproject_lines(lines, "EPSG:4326", "EPSG:3857") for lines in (tile_truth, tile_proposals)]
    from_mercator = apls.score(*mercator, crs="EPSG:3857")
    assert from_mercator.apls == pytest.approx(in_utm.apls, abs=1e-6)
    assert from_mercator.length_truth_m == pytest.approx(in_utm.length_truth_m, rel=1e-6)


def test_reprojection_keeps_none_and_empty_geometries():
    out = apls.reproject_lines([None, LineString(), LineString([(-115.3, 36.17), (-115.29, 36.17)])], "EPSG:4326",
                               "EPSG:32611")
    assert out[0] is None and out[1].is_empty and out[2].length == pytest.approx(900, rel=0.01)


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [Point(0, 0), Polygon([(0, 0), (1, 0), (1, 1)]),
                                 shapely.GeometryCollection([LineString([(0, 0), (1, 1)])]), "LINESTRING (0 0, 1 1)"])
def test_non_line_input_raises_a_clear_error(bad):
    with pytest.raises(apls.AplsInputError, match="proposals"):
        apls.score(grid(), [LineString([(0, 0), (1, 1)]), bad])
    assert issubclass(apls.AplsInputError, ValueError)


def test_non_finite_coordinates_raise_a_clear_error():
    with pytest.raises(apls.AplsInputError, match="finite"):
        apls.score([LineString([(0, 0), (np.nan, 1)])], grid())


def test_three_dimensional_lines_are_scored_in_2d():
    flat = grid(3)
    raised = [shapely.force_3d(line, 12.0) for line in flat]
    assert apls.score(flat, raised).apls == 1.0


@pytest.mark.parametrize("options", [dict(max_snap_m=0), dict(control_spacing_m=-1), dict(min_path_length_m=-1),
                                     dict(node_tolerance_m=0)])
def test_options_are_checked(options):
    with pytest.raises(ValueError):
        apls.AplsOptions(**options)


def test_every_option_has_help_text():
    assert all(option.metadata.get("help") for option in fields(apls.AplsOptions))


# --- groups -------------------------------------------------------------------------------------------------------


def test_groups_are_scored_apart_and_averaged():
    a, b = grid(3), grid(3, origin=(600_000.0, 4_000_000.0))
    truth, truth_groups = a + b, ["a"] * len(a) + ["b"] * len(b)
    proposals, proposal_groups = a + [LineString([(0, 0), (100, 0)])], ["a"] * len(a) + ["c"]
    progress = []
    result = apls.score_by_group(truth, truth_groups, proposals, proposal_groups,
                                 report=lambda fraction, message: progress.append(fraction))
    assert list(result.groups) == ["a", "b", "c"]
    assert [r.apls for r in result.groups.values()] == [1.0, 0.0, 0.0]  # b: nothing found; c: nothing to find
    assert result.mean_apls == pytest.approx(1 / 3)
    assert progress[-1] == 1.0 and len(progress) == 3
    assert apls.score_by_group([], [], [], []).mean_apls == 0.0


def test_groups_default_to_one_and_must_match_the_lines():
    lines = grid(3)
    assert list(apls.score_by_group(lines, None, lines, None).groups) == [""]
    with pytest.raises(apls.AplsInputError, match="one key per line"):
        apls.score_by_group(lines, ["a"], lines, None)


def test_group_scoring_can_be_canceled():
    lines = grid(3)
    with pytest.raises(apls.Canceled):
        apls.score_by_group(lines, ["a"] * len(lines), lines, ["a"] * len(lines), is_canceled=lambda: True)


def test_lines_whose_coordinates_are_not_in_their_crs_are_an_input_error():
    """UTM metres declared as degrees: GDAL's 'Invalid coordinate' came out as a traceback."""
    metres = [LineString([(500_000, 4_000_000), (500_010, 4_000_000)])]
    with pytest.raises(apls.AplsInputError, match="cannot be transformed to metres .*check that the layers' CRS"):
        apls.score(metres, metres, crs="EPSG:4326")
