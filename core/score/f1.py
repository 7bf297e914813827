"""Score building-footprint proposals against truth with the SpaceNet F1 metric.

One job: given truth and proposal polygons (optionally split into groups such as images or tiles), match them
one-to-one by IoU inside each group and count true positives, false positives and false negatives, summed over
groups before precision, recall and F1 are taken. The rules follow ``shared/REFERENCE.md``:

- ``"greedy>="``: proposals one at a time (input order, or confidence descending), each matched to the remaining
  truth of highest IoU; a true positive when IoU >= threshold (the SpaceNet evaluator).
- ``"greedy>"``: the same with IoU > threshold (solaris).
- ``"optimal"``: a maximum-weight bipartite matching over the pairs with IoU >= threshold. The weight ranks a
  matching by its number of matches first and its total IoU second, so it never counts fewer true positives than
  greedy. It differs from greedy only below 0.5.

A match always needs a positive overlap: polygons that merely touch never match, whatever the threshold.

Bad geometry never crashes the scorer and never changes the score silently: invalid polygons are repaired with
``make_valid`` (the polygonal part is kept), null, empty and zero-area ones are skipped, and every repair or skip is
counted in a :class:`CleaningReport`.

This module holds the API (options, inputs, results) and runs the stages; each stage has its own module:

- cleaning (``core.score.polygon_cleaning``, shared with ``core.score.live_score``): repair, keep the polygonal part,
skip;
- candidate pairs and their IoU (``core.score.f1_pairs``), with pairs of convex polygons (most footprints) clipped in
  numpy, many pairs per array operation (``core.score.convex_clip``), the others through GEOS in chunks;
- matching (``core.score.f1_matching``), in numpy, with a Python pass only over the proposals that compete for a truth.

Speed comes from working on whole arrays, never on one proposal at a time.

No QGIS here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..choices import MATCHING
from ..progress import Canceled, IsCanceled, Report, check, counted, silent  # noqa: F401 - Canceled: part of this API
from .f1_matching import Matching, greedy_match, optimal_match, passes
from .f1_pairs import Pairs, candidate_pairs, overlapping_pairs
from .polygon_cleaning import Cleaned, CleaningReport, clean

TP, FP, FN, SKIPPED = "TP", "FP", "FN", ""


@dataclass(frozen=True)
class F1Options:
    """How to match: the IoU threshold, the rule (see ``MATCHING``) and the minimum areas (in the units of
    ``PolygonSet.areas`` when given, else of the coordinates)."""

    iou_threshold: float = 0.5
    matching: str = "greedy>="
    min_area_truth: float = 0.0  # truth kept when area >= this (solaris SN2 convention)
    min_area_proposals: float = 0.0  # proposals kept when area > this (solaris SN2 convention); 0 = keep all non-empty

    def __post_init__(self):
        if self.matching not in MATCHING:
            raise ValueError(f"matching must be one of {', '.join(MATCHING)}, not {self.matching!r}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must lie between 0 and 1, not {self.iou_threshold!r}")


@dataclass
class PolygonSet:
    """One side of the comparison (truth or proposals), one entry per input feature."""

    geometries: np.ndarray  # object array of shapely geometries; None, empty, invalid, non-polygonal allowed
    groups: np.ndarray | None = None  # group key (str) per geometry (image/tile id); None = one group ""
    order: np.ndarray | None = None  # confidence per proposal: taken in descending order (stable), else input order
    areas: np.ndarray | None = None  # area per geometry for the min-area filters; None = area of the repaired shape
    ids: np.ndarray | None = None  # an identifier per geometry (e.g. the challenge CSV's BuildingId); not scored


@dataclass
class Counts:
    """True positives, false positives and false negatives, and the ratios made from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        # 2PR / (P + R) as the reference computes it (same rounding); 0, not 1, when there was nothing to find.
        precision, recall = self.precision, self.recall
        return _ratio(2 * precision * recall, precision + recall)

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


@dataclass
class F1Result:
    """Counts per group and in total, and per input feature its status, IoU and match (indices into the other
    input, -1 for none). Skipped features have status "", IoU NaN and no match.

    ``proposal_iou``: the matched truth's IoU for a TP, else the best IoU with any truth of its group (0 if none);
    ``truth_iou``: the same from the truth's side.
    """

    groups: dict[str, Counts]
    total: Counts
    proposal_status: np.ndarray
    proposal_iou: np.ndarray
    proposal_match: np.ndarray
    truth_status: np.ndarray
    truth_iou: np.ndarray
    truth_match: np.ndarray
    truth_cleaning: CleaningReport = field(default_factory=CleaningReport)
    proposal_cleaning: CleaningReport = field(default_factory=CleaningReport)
    # Greedy only (None for "optimal"): per truth, the highest IoU of the proposals whose turn picked it as the best
    # remaining truth, passing or not; 0 if none picked it, nan when skipped. This is solaris' per-building
    # iou_score: it differs from truth_iou for a missed truth whose best-overlapping proposal went elsewhere.
    truth_iou_offered: np.ndarray | None = None

    def by_aoi(self) -> dict[str, Counts]:
        """Group counts summed per AOI (the first three ``_`` tokens of the group key)."""
        summed: dict[str, Counts] = {}
        for key, counts in self.groups.items():
            aoi = aoi_of(key)
            summed[aoi] = summed.get(aoi, Counts()) + counts
        return dict(sorted(summed.items()))

    def aoi_sums(self) -> dict[str, Counts]:
        """``by_aoi`` when group ids carry SpaceNet AOI names (some AOI holds several groups), else empty."""
        summed = self.by_aoi()
        return summed if len(summed) < len(self.groups) else {}


def aoi_of(image_id: str) -> str:
    """``"AOI_2_Vegas_img3457"`` -> ``"AOI_2_Vegas"``; an id with fewer than four tokens maps to itself."""
    tokens = str(image_id).split("_")
    return "_".join(tokens[:3]) if len(tokens) > 3 else str(image_id)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


# --- grouping ---------------------------------------------------------------------------------------------------


def _group_codes(truth_groups, proposal_groups, truth_count: int, proposal_count: int):
    """Sorted group names, and the position of each truth's and each proposal's group among them."""
    truth_keys, proposal_keys = _raw_keys(truth_groups, truth_count), _raw_keys(proposal_groups, proposal_count)
    # Names are made from the distinct keys only: a few hundred str() calls instead of one per feature.
    name_of = {key: _group_name(key) for key in set(truth_keys) | set(proposal_keys)}
    names = sorted(set(name_of.values()))
    code_of_name = {name: code for code, name in enumerate(names)}
    code_of = {key: code_of_name[name] for key, name in name_of.items()}
    return names, _codes(truth_keys, code_of), _codes(proposal_keys, code_of)


def _raw_keys(groups, count: int) -> list:
    if groups is None:
        return [""] * count
    return groups.tolist() if isinstance(groups, np.ndarray) else list(groups)


def _group_name(key) -> str:
    return "" if key is None else str(key)


def _codes(keys: list, code_of: dict) -> np.ndarray:
    return np.fromiter(map(code_of.__getitem__, keys), dtype=np.intp, count=len(keys))


def _indices_per_group(codes: np.ndarray, selected: np.ndarray, group_total: int):
    """For each group, the selected input indices that belong to it, in input order."""
    indices = np.flatnonzero(selected)
    order = np.argsort(codes[indices], kind="stable")
    indices = indices[order]
    bounds = np.searchsorted(codes[indices], np.arange(group_total + 1))
    return [indices[bounds[i] : bounds[i + 1]] for i in range(group_total)]


# --- scoring ----------------------------------------------------------------------------------------------------

# Share of the progress bar per stage: candidate pairs (per group), intersections (per chunk), matching.
_PAIRS_DONE, _AREAS_DONE = 0.3, 0.9


def score(
    truth: PolygonSet,
    proposals: PolygonSet,
    options: F1Options = F1Options(),  # noqa: B008 - frozen, so a shared default is safe
    report: Report | None = None,
    is_canceled: IsCanceled | None = None,
) -> F1Result:
    """Match ``proposals`` to ``truth`` group by group and count TP, FP and FN.

    ``report(fraction, None)`` after each group (candidate search) and after each block of intersections, and 1 at
    the end; ``is_canceled`` is checked at the same points and :class:`Canceled` raised when it says True.
    """
    _check_lengths(truth, "truth")
    _check_lengths(proposals, "proposals")
    clean_truth = clean(truth.geometries, options.min_area_truth, inclusive=True, given_areas=truth.areas)
    clean_proposals = clean(
        proposals.geometries, options.min_area_proposals, inclusive=False, given_areas=proposals.areas
    )
    truth_total, proposal_total = len(clean_truth.kept), len(clean_proposals.kept)
    names, truth_code, proposal_code = _group_codes(truth.groups, proposals.groups, truth_total, proposal_total)
    steps = _Steps(report, is_canceled)

    p, t = candidate_pairs(
        clean_truth, clean_proposals,
        _indices_per_group(truth_code, clean_truth.kept, len(names)),
        _indices_per_group(proposal_code, clean_proposals.kept, len(names)),
        tick=lambda done: steps.step(done, len(names), 0.0, _PAIRS_DONE, f"group {done + 1} of {len(names)}"),
    )
    pairs = overlapping_pairs(
        clean_truth, clean_proposals, p, t,
        tick=lambda done, total: steps.step(done, total, _PAIRS_DONE, _AREAS_DONE, "intersections"),
    )
    steps.step(0, 1, _AREAS_DONE, 1.0, "matching")
    passing = passes(pairs.iou, options.matching, options.iou_threshold)
    if options.matching == "optimal":
        matching = optimal_match(pairs, passing, proposal_total, truth_total)
    else:
        matching = greedy_match(pairs, passing, _processing_rank(proposals.order, proposal_total), truth_total)

    result = _assemble(pairs, matching, clean_truth, clean_proposals, names, truth_code, proposal_code)
    (report or silent)(1.0, None)
    return result


class _Steps:
    """Progress and cancellation for :func:`score`'s stages."""

    def __init__(self, report, is_canceled):
        self.report, self.is_canceled = report, is_canceled

    def step(self, done: int, total: int, low: float, high: float, where: str) -> None:
        """Called before step ``done`` of ``total``: reports the previous steps and checks for cancellation."""
        counted(self.report, low, high)(done, total)
        check(self.is_canceled, f"scoring canceled at {where}")


def _check_lengths(polygons: PolygonSet, name: str) -> None:
    count = len(polygons.geometries)
    for attribute in ("groups", "order", "areas", "ids"):
        values = getattr(polygons, attribute)
        if values is not None and len(values) != count:
            raise ValueError(f"{name}.{attribute} has {len(values)} values for {count} geometries")


def _processing_rank(order, count: int) -> np.ndarray:
    """The position of each proposal in the greedy pass: input order, or confidence descending (stable)."""
    if order is None:
        return np.arange(count)
    confidence = np.asarray(order, dtype=float)
    sequence = np.argsort(-confidence, kind="stable")  # NaN confidence sorts last
    rank = np.empty(count, dtype=np.intp)
    rank[sequence] = np.arange(count)
    return rank


def _assemble(pairs: Pairs, matching: Matching, truth: Cleaned, proposals: Cleaned, names, truth_code,
              proposal_code) -> F1Result:
    matched_p, matched_t = pairs.proposal[matching.pairs], pairs.truth[matching.pairs]
    matched_iou = pairs.iou[matching.pairs]

    proposal_status = _statuses(proposals.kept, FP, matched_p)
    proposal_iou = _best_iou(pairs.proposal, pairs.iou, proposals.kept, matched_p, matched_iou)
    proposal_match = np.full(len(proposals.kept), -1, dtype=np.int64)
    proposal_match[matched_p] = matched_t

    truth_status = _statuses(truth.kept, FN, matched_t)
    truth_iou = _best_iou(pairs.truth, pairs.iou, truth.kept, matched_t, matched_iou)
    truth_match = np.full(len(truth.kept), -1, dtype=np.int64)
    truth_match[matched_t] = matched_p

    offered = None
    if matching.offered is not None:
        offered = np.where(truth.kept, matching.offered, np.nan)

    groups = _group_counts(names, truth_code[truth.kept], proposal_code[proposals.kept], proposal_code[matched_p])
    return F1Result(
        groups=groups,
        total=sum(groups.values(), Counts()),
        proposal_status=proposal_status,
        proposal_iou=proposal_iou,
        proposal_match=proposal_match,
        truth_status=truth_status,
        truth_iou=truth_iou,
        truth_match=truth_match,
        truth_cleaning=truth.report,
        proposal_cleaning=proposals.report,
        truth_iou_offered=offered,
    )


def _statuses(kept: np.ndarray, unmatched: str, matched: np.ndarray) -> np.ndarray:
    status = np.where(kept, unmatched, SKIPPED).astype("<U2")
    status[matched] = TP
    return status


def _best_iou(side: np.ndarray, iou: np.ndarray, kept: np.ndarray, matched: np.ndarray, matched_iou) -> np.ndarray:
    """The matched pair's IoU, else the best IoU of any pair (0 without one); NaN where skipped."""
    best = np.zeros(len(kept))
    np.maximum.at(best, side, iou)
    best[matched] = matched_iou
    return np.where(kept, best, np.nan)


def _group_counts(names, truth_codes, proposal_codes, matched_codes) -> dict[str, Counts]:
    truth_per_group = np.bincount(truth_codes, minlength=len(names))
    proposals_per_group = np.bincount(proposal_codes, minlength=len(names))
    matches_per_group = np.bincount(matched_codes, minlength=len(names))
    return {
        name: Counts(tp=int(tp), fp=int(kept_p - tp), fn=int(kept_t - tp))
        for name, tp, kept_p, kept_t in zip(names, matches_per_group, proposals_per_group, truth_per_group)
    }
