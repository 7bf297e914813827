"""One-to-one matching of proposals to truth over the overlapping pairs, by the SpaceNet F1 rules.

One job: given the pairs and their IoU (:mod:`core.score.f1_pairs`), decide which pass the threshold (:func:`passes`)
and which are matched: greedily (:func:`greedy_match`: proposals in rank order, each taking its remaining truth of
highest IoU, settled in numpy wherever proposals do not compete for a truth) or by a maximum-weight bipartite
matching per connected component (:func:`optimal_match`). The rules themselves are described in :mod:`core.score.f1`.

No QGIS here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .f1_pairs import Pairs

# IoU is intersection / (area + area - intersection): an exact half comes out 0.49999999999999994 for a box and its
# half at two-decimal coordinates, where GEOS's union area gives 0.5. Within this of the threshold is at it.
IOU_ROUNDING = 1e-12


def passes(iou: np.ndarray, matching: str, threshold: float) -> np.ndarray:
    """Which IoUs pass ``threshold`` under the ``matching`` rule: strictly above for "greedy>", else at or above
    (both up to IOU_ROUNDING)."""
    if matching == "greedy>":
        return iou > threshold + IOU_ROUNDING
    return iou >= threshold - IOU_ROUNDING


@dataclass
class Matching:
    """The matched pairs, and for greedy what each truth was offered."""

    pairs: np.ndarray  # indices into Pairs of the matched pairs
    offered: np.ndarray | None  # per truth input: see core.score.f1.F1Result.truth_iou_offered (greedy only)


def greedy_match(pairs: Pairs, passing: np.ndarray, proposal_rank: np.ndarray, truth_total: int) -> Matching:
    """Proposals by ascending rank, each picking the remaining truth of highest IoU (ties: truth input order); the
    pick matches when it passes the threshold. A truth's "offer" is the best IoU of the proposals that picked it.

    A proposal whose candidate truths overlap no other proposal picks its best candidate whatever the order: those
    are settled in numpy, and only the proposals that compete for a truth go through the sequential pass.
    """
    p, t, iou = pairs.proposal, pairs.truth, pairs.iou
    offered = np.zeros(truth_total)
    competing = np.zeros(len(proposal_rank), dtype=bool)
    competing[p[np.bincount(t, minlength=truth_total)[t] > 1]] = True

    picks = _best_pair_per_proposal(np.flatnonzero(~competing[p]), pairs)
    offered[t[picks]] = iou[picks]
    matched = [picks[passing[picks]]]

    contest = np.flatnonzero(competing[p])
    contest = contest[np.lexsort((t[contest], -iou[contest], proposal_rank[p[contest]]))]
    matched.append(_sequential_picks(contest, pairs, passing, offered))
    return Matching(np.concatenate(matched), offered)


def _best_pair_per_proposal(selected: np.ndarray, pairs: Pairs) -> np.ndarray:
    """For each proposal among the ``selected`` pairs, its pair of highest IoU (ties: lowest truth index)."""
    if len(selected) == 0:
        return selected
    # Stable sort on the proposal alone: the pairs come in runs per proposal already, which this sort finds fast.
    selected = selected[np.argsort(pairs.proposal[selected], kind="stable")]
    proposal, truth, iou = pairs.proposal[selected], pairs.truth[selected], pairs.iou[selected]
    starts = np.flatnonzero(np.r_[True, proposal[1:] != proposal[:-1]])
    run = np.cumsum(np.r_[True, proposal[1:] != proposal[:-1]]) - 1
    best = iou == np.maximum.reduceat(iou, starts)[run]
    lowest_truth = np.minimum.reduceat(np.where(best, truth, np.iinfo(truth.dtype).max), starts)[run]
    return selected[best & (truth == lowest_truth)]


def _sequential_picks(ordered: np.ndarray, pairs: Pairs, passing: np.ndarray, offered: np.ndarray) -> np.ndarray:
    """The greedy pass over pairs sorted by proposal rank, then IoU descending; fills ``offered``; returns matches."""
    matched, best_offer = [], {}
    proposal_done, truth_taken = set(), set()
    columns = (ordered, pairs.proposal[ordered], pairs.truth[ordered], pairs.iou[ordered], passing[ordered])
    for pair, proposal, truth, iou, passes in zip(*(column.tolist() for column in columns)):
        if proposal in proposal_done or truth in truth_taken:
            continue
        proposal_done.add(proposal)  # this is its best remaining truth: its other candidates no longer count
        if iou > best_offer.get(truth, 0.0):
            best_offer[truth] = iou
        if passes:
            truth_taken.add(truth)
            matched.append(pair)
    if best_offer:
        offered[np.fromiter(best_offer, dtype=np.intp)] = np.fromiter(best_offer.values(), dtype=float)
    return np.array(matched, dtype=np.intp)


def optimal_match(pairs: Pairs, passing: np.ndarray, proposal_total: int, truth_total: int) -> Matching:
    """A maximum-weight matching over the passing pairs, solved per connected component of the candidate graph."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    candidates = np.flatnonzero(passing)
    if len(candidates) == 0:
        return Matching(candidates, None)
    p, t = pairs.proposal[candidates], pairs.truth[candidates]
    nodes = proposal_total + truth_total
    graph = coo_matrix((np.ones(len(p)), (p, t + proposal_total)), shape=(nodes, nodes))
    _, component = connected_components(graph, directed=False)
    edge_component = component[p]

    lone = np.bincount(edge_component)[edge_component] == 1  # a lone candidate pair matches without solving
    matched = [candidates[lone]]
    shared = np.flatnonzero(~lone)
    shared = shared[np.argsort(edge_component[shared], kind="stable")]
    blocks = np.split(shared, np.flatnonzero(np.diff(edge_component[shared])) + 1) if len(shared) else []
    for block in blocks:
        chosen = _solve_block(p[block], t[block], pairs.iou[candidates[block]], linear_sum_assignment)
        matched.append(candidates[block[chosen]])
    return Matching(np.concatenate(matched), None)


def _solve_block(p, t, iou, linear_sum_assignment) -> np.ndarray:
    """Which of one component's edges the assignment keeps."""
    rows, row_of = np.unique(p, return_inverse=True)
    columns, column_of = np.unique(t, return_inverse=True)
    # Weight = C + IoU with C above the largest possible match count: more matches always win, then more IoU.
    bonus = min(len(rows), len(columns)) + 1.0
    weights = np.zeros((len(rows), len(columns)))
    weights[row_of, column_of] = bonus + iou
    edge_at = np.full((len(rows), len(columns)), -1)
    edge_at[row_of, column_of] = np.arange(len(p))
    chosen_rows, chosen_columns = linear_sum_assignment(weights, maximize=True)
    chosen = edge_at[chosen_rows, chosen_columns]
    return chosen[chosen >= 0]  # the solver also pairs nodes that share no candidate edge
