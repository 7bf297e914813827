"""core.score.live_score: incremental counts equal a full core.score.f1.score after every edit, and an edit touches only
its neighbourhood."""

import numpy as np
import pytest
import shapely

from spacenet_toolkit.core.score import f1
from spacenet_toolkit.core.score.live_score import LiveScore

GRID = 12  # truth on a GRID x GRID lattice of 10-unit cells: buildings that never overlap
CELL = 10.0


def box(cx, cy, width, height, angle=0.0):
    return shapely.affinity.rotate(shapely.box(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2),
                                   angle, origin=(cx, cy))


def grid_truth(rng, count=GRID * GRID):
    cells = rng.choice(GRID * GRID, count, replace=False)
    return [box((c % GRID + 0.5) * CELL, (c // GRID + 0.5) * CELL, *rng.uniform(3, 7, 2), rng.uniform(0, 90))
            for c in cells]


def near(rng, polygon):
    """A proposal drawn around ``polygon``: shifted, scaled and turned a little (IoU on both sides of 0.5)."""
    moved = shapely.affinity.translate(polygon, *rng.normal(0, 1.0, 2))
    scaled = shapely.affinity.scale(moved, *rng.uniform(0.7, 1.3, 2))
    return shapely.affinity.rotate(scaled, rng.normal(0, 10))


def random_proposal(rng, truth, proposals):
    kind = rng.random()
    if kind < 0.55:
        return near(rng, truth[rng.integers(len(truth))])
    if kind < 0.7 and proposals:  # a near-duplicate of another proposal: proposals overlapping each other
        return near(rng, proposals[list(proposals)[rng.integers(len(proposals))]] or truth[0])
    if kind < 0.9:
        return box(*rng.uniform(0, GRID * CELL, 2), *rng.uniform(2, 8, 2), rng.uniform(0, 90))
    if kind < 0.94:  # a bow tie: invalid, repaired by both scorers
        x, y = rng.uniform(0, GRID * CELL, 2)
        return shapely.Polygon([(x, y), (x + 5, y + 5), (x + 5, y), (x, y + 5)])
    if kind < 0.97:
        return shapely.Polygon()
    return None


def full_score(truth, proposals, options, order=None):
    """core.score.f1.score of the current proposals, listed in ascending feature id (or in ``order``)."""
    fids = sorted(proposals) if order is None else order
    geometries = np.empty(len(fids), dtype=object)
    geometries[:] = [proposals[fid] for fid in fids]
    return fids, f1.score(f1.PolygonSet(np.array(truth, dtype=object)), f1.PolygonSet(geometries), options)


def check_against_full(live, truth, proposals, options):
    fids, result = full_score(truth, proposals, options)
    assert live.counts() == result.total
    assert [live.status(fid) for fid in fids] == result.proposal_status.tolist()
    assert [live.match(fid) for fid in fids] == result.proposal_match.tolist()
    assert np.allclose([live.iou(fid) for fid in fids], result.proposal_iou, equal_nan=True)
    assert live.truth_status().tolist() == result.truth_status.tolist()


def random_edits(rng, live, truth, proposals, steps, check):
    next_fid = max(proposals, default=0) + 1
    for _ in range(steps):
        action = rng.random()
        if action < 0.4 or not proposals:
            geometry = random_proposal(rng, truth, proposals)
            fid = int(next_fid) if rng.random() < 0.8 else -int(next_fid)  # QGIS's edit buffer uses negative ids
            next_fid += 1
            live.add(fid, geometry)
            proposals[fid] = geometry
        elif action < 0.7:
            fid = list(proposals)[rng.integers(len(proposals))]
            live.remove(fid)
            del proposals[fid]
        else:
            fid = list(proposals)[rng.integers(len(proposals))]
            geometry = random_proposal(rng, truth, proposals)
            live.change(fid, geometry)
            proposals[fid] = geometry
        check()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_edits_keep_incremental_equal_to_full_rescoring_at_every_step(seed):
    rng = np.random.default_rng(seed)
    truth = grid_truth(rng, 60)
    truth += [None, shapely.Polygon()]  # skipped truth counts as nothing on both sides
    options = f1.F1Options()  # IoU >= 0.5, "greedy>=": the SpaceNet evaluator
    proposals = {}
    for fid in range(1, 41):
        proposals[fid] = random_proposal(rng, truth[:60], proposals)
    live = LiveScore(truth, options)
    live.load(proposals, proposals.values())
    check_against_full(live, truth, proposals, options)
    random_edits(rng, live, truth[:60], proposals, 150,
                 lambda: check_against_full(live, truth, proposals, options))
    assert live.counts().tp > 0 and len(live) == len(proposals)


def test_with_non_overlapping_truth_the_counts_do_not_depend_on_the_order_even_with_duplicate_proposals():
    rng = np.random.default_rng(7)
    truth = grid_truth(rng, 50)
    proposals = {fid: near(rng, truth[fid % 50]) for fid in range(120)}  # about two proposals per truth
    live = LiveScore(truth)
    live.load(proposals, proposals.values())
    fids, in_order = full_score(truth, proposals, f1.F1Options())
    assert in_order.total == live.counts()
    # duplicates: false positives that pass with a truth another proposal took first
    assert (in_order.proposal_iou[in_order.proposal_status == "FP"] >= 0.5).sum() > 10
    true_positives = {fid for fid, status in zip(fids, in_order.proposal_status) if status == "TP"}
    other_winners = False
    for _ in range(5):
        shuffled = [int(fid) for fid in rng.permutation(fids)]
        _, other = full_score(truth, proposals, f1.F1Options(), order=shuffled)
        assert other.total == live.counts()  # the same counts...
        other_winners |= {fid for fid, s in zip(shuffled, other.proposal_status) if s == "TP"} != true_positives
    assert other_winners  # ...though another order makes other duplicates the true positives


def overlapping_truth_scene(rng, count=40):
    """Truth polygons that overlap each other: a proposal can pass with two of them, and greedy order matters."""
    truth = []
    for _ in range(count):
        x, y = rng.uniform(0, 60, 2)
        truth.append(box(x, y, 6, 6))
        truth.append(box(x + rng.uniform(0.5, 1.5), y + rng.uniform(-0.5, 0.5), 6, 6))  # a near twin
    return truth


@pytest.mark.parametrize("options", [
    f1.F1Options(),
    f1.F1Options(matching="greedy>", iou_threshold=0.5),
    f1.F1Options(matching="greedy>=", iou_threshold=0.3),
    f1.F1Options(matching="optimal", iou_threshold=0.3),
], ids=["greedy>=0.5", "greedy>0.5", "greedy>=0.3", "optimal0.3"])
def test_overlapping_truth_and_other_rules_still_match_full_rescoring_in_feature_id_order(options):
    rng = np.random.default_rng(11)
    truth = overlapping_truth_scene(rng)
    proposals = {fid: near(rng, truth[rng.integers(len(truth))]) for fid in range(1, 61)}
    live = LiveScore(truth, options)
    live.load(proposals, proposals.values())

    def check():
        fids, result = full_score(truth, proposals, options)
        assert live.counts() == result.total
        if options.matching != "optimal":  # optimal: the number of matches is unique, not which ones
            assert [live.status(fid) for fid in fids] == result.proposal_status.tolist()

    check()
    random_edits(rng, live, truth, proposals, 80, check)


def test_greedy_order_decides_with_overlapping_truth_and_feature_ids_are_the_order():
    t1, t2 = box(0, 0, 10, 10), box(2, 0, 10, 10)  # two overlapping truths
    both = box(1, 0, 10, 10)  # passes with both (IoU 0.82 each... t1 first on ties)
    only_t1 = box(-1.5, 0, 10, 10)  # passes with t1 only
    live = LiveScore([t1, t2])
    live.add(1, both)
    live.add(2, only_t1)  # fid 1 first: it takes t1 (equal IoU, lower index), fid 2 finds nothing
    assert live.counts() == f1.Counts(tp=1, fp=1, fn=1) and (live.match(1), live.match(2)) == (0, -1)
    live.remove(1)
    live.add(3, both)  # now fid 2 comes first and takes t1, fid 3 takes t2
    assert live.counts() == f1.Counts(tp=2, fp=0, fn=0) and (live.match(2), live.match(3)) == (0, 1)
    optimal = LiveScore([t1, t2], f1.F1Options(matching="optimal"))
    optimal.load([1, 2], [both, only_t1])
    assert optimal.counts() == f1.Counts(tp=2, fp=0, fn=0)


def passing_components(truth, proposals, options):
    """Brute force: the connected components of passing pairs, as sets of ("p", fid) and ("t", index) nodes."""
    fids = list(proposals)
    geometries = np.empty(len(fids), dtype=object)
    geometries[:] = [proposals[fid] for fid in fids]
    rows, columns = shapely.STRtree(truth).query(geometries, predicate="intersects")
    p, t = geometries[rows], np.asarray(truth, dtype=object)[columns]
    inter = shapely.area(shapely.intersection(p, t))
    iou = inter / (shapely.area(p) + shapely.area(t) - inter)
    edges = {}
    for row, index in zip(rows[(inter > 0) & (iou >= options.iou_threshold)].tolist(),
                          columns[(inter > 0) & (iou >= options.iou_threshold)].tolist()):
        edges.setdefault(("p", fids[row]), set()).add(("t", index))
        edges.setdefault(("t", index), set()).add(("p", fids[row]))
    component_of = {}
    for node in edges:
        if node in component_of:
            continue
        seen, pending = {node}, [node]
        while pending:
            for neighbour in edges[pending.pop()]:
                if neighbour not in seen:
                    seen.add(neighbour)
                    pending.append(neighbour)
        for member in seen:
            component_of[member] = frozenset(seen)
    return component_of


def test_an_edit_rematches_only_the_components_around_the_edited_building():
    rng = np.random.default_rng(5)
    truth = grid_truth(rng)  # 144 buildings
    proposals = {fid: near(rng, truth[fid % len(truth)]) for fid in range(300)}
    options = f1.F1Options()
    live = LiveScore(truth, options)
    load = live.load(proposals, proposals.values())
    assert load.proposals > 150  # loading matches every proposal that passes with some truth, once

    for step in range(40):
        fid = int(rng.integers(300))
        before = passing_components(truth, proposals, options)
        proposals[fid] = near(rng, truth[int(rng.integers(len(truth)))])
        stats = live.change(fid, proposals[fid])
        after = passing_components(truth, proposals, options)
        # expected: the component of the building after the edit, and those of the truths it passed with before
        old_truths = {node for node in before.get(("p", fid), ()) if node[0] == "t"}
        expected = set(after.get(("p", fid), ()))
        for node in old_truths:
            expected |= after.get(node, {node})
        assert stats.proposals == sum(1 for kind, _ in expected if kind == "p"), step
        assert stats.truths == sum(1 for kind, _ in expected if kind == "t"), step
        assert stats.proposals <= 8 and stats.truths <= 2  # one or two stars of a truth and its proposals
        assert stats.pairs <= 6  # intersections computed: the edited building's bounding-box neighbours only
    assert live.counts() == full_score(truth, proposals, options)[1].total
    deleted = live.remove(0)
    assert deleted.pairs == 0 and deleted.proposals + deleted.truths <= 8


def test_a_far_away_false_positive_touches_nothing():
    truth = [box(5, 5, 4, 4)]
    live = LiveScore(truth)
    stats = live.add(1, box(100, 100, 4, 4))
    assert stats == type(stats)(0, 0, 0) and live.counts() == f1.Counts(tp=0, fp=1, fn=1)
    assert live.status(1) == "FP" and live.iou(1) == 0.0 and live.match(1) == -1


def test_edits_of_unknown_or_present_ids_are_refused_and_bad_geometry_is_skipped_or_repaired():
    truth = [box(5, 5, 4, 4), shapely.Polygon([(20, 20), (25, 25), (25, 20), (20, 25)])]  # a bow-tie truth
    live = LiveScore(truth)
    assert live.counts() == f1.Counts(tp=0, fp=0, fn=2)
    live.add(1, box(5, 5, 4, 4))
    with pytest.raises(KeyError):
        live.add(1, box(5, 5, 4, 4))
    with pytest.raises(KeyError):
        live.change(2, box(5, 5, 4, 4))
    with pytest.raises(KeyError):
        live.remove(2)
    assert live.discard(2).proposals == 0
    live.add(2, None)
    live.add(3, shapely.LineString([(0, 0), (1, 1)]))
    assert (live.status(2), live.status(3)) == ("", "") and np.isnan(live.iou(2))
    live.add(4, shapely.Polygon([(20, 20), (25, 25), (25, 20), (20, 25)]))  # repaired: matches the repaired truth
    assert live.counts() == f1.Counts(tp=2, fp=0, fn=0) and len(live) == 4 and live.fids() == [1, 2, 3, 4]
    live.change(2, box(5.2, 5, 4, 4))  # a skipped proposal gets a geometry: a duplicate, so a false positive
    assert live.counts() == f1.Counts(tp=2, fp=1, fn=0) and live.status(2) == "FP"
    live.update({1: LiveScore.REMOVED, 9: LiveScore.REMOVED})  # fid 2 inherits the truth; an absent id is ignored
    assert live.counts() == f1.Counts(tp=2, fp=0, fn=0) and live.match(2) == 0
    assert live.truth_status().tolist() == ["TP", "TP"] and live.truth_count == 2


def test_minimum_areas_as_core_f1_applies_them():
    options = f1.F1Options(min_area_truth=20, min_area_proposals=20)
    truth = [box(0, 0, 4, 4), box(10, 0, 5, 5)]  # 16 < 20: left out
    proposals = {1: box(0, 0, 4, 4), 2: box(10, 0, 5, 5), 3: box(20, 0, 2, 10)}  # 20 is not > 20: left out
    live = LiveScore(truth, options)
    live.load(proposals, proposals.values())
    assert live.counts() == full_score(truth, proposals, options)[1].total == f1.Counts(tp=1, fp=0, fn=0)
    assert live.status(3) == "" and live.truth_status().tolist() == ["", "TP"]
