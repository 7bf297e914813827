"""Keep the SpaceNet F1 counts of a proposal layer up to date while a mapper edits it, one edit at a time.

One job: hold the truth polygons (with an STRtree) and the current proposals by feature id, and after each edit
re-match only the part of the matching that the edit can change, so that :meth:`LiveScore.counts` always equals
what :func:`core.score.f1.score` would say about the current proposals, at a small fraction of its cost.

Why matching is local: the counts of every rule in ``core.score.f1`` depend only on the *passing* pairs (IoU at or above
the threshold, with a positive overlap). Greedy takes each proposal's best remaining truth, which passes exactly
when some remaining truth passes, and only a passing pick consumes a truth; optimal matching uses passing pairs
only. So the matching splits into the connected components of the graph of passing pairs, and an edit of one
proposal can change matches only in the component(s) holding it and the truths it passes with, before and after.
Those are re-matched; nothing else is looked at. At IoU >= 0.5 with non-overlapping truth a proposal passes with at
most one truth, so a component is one truth and the proposals that pass with it: a handful of polygons.

The rule used (it keeps incremental == full rescoring, and the tests hold it to that after every edit):

- ``"greedy>="`` / ``"greedy>"``: proposals are taken in **ascending feature id**, each matched to its remaining
  passing truth of highest IoU (ties: the lower truth index), exactly as ``core.score.f1.score`` does with the proposals
  listed in feature-id order (its input order). When no proposal passes with two truths (non-overlapping truth at
  IoU >= 0.5, the SpaceNet case) the counts do not depend on the order at all, even where proposals overlap each
  other (duplicates): each truth with any passing proposal is matched once, whichever of them comes first. The order
  only decides the counts where truth polygons overlap each other, and then feature-id order is the rule.
- ``"optimal"``: a maximum-weight matching of each touched component (more matches first, then more total IoU),
  as ``core.score.f1`` solves it; its number of matches does not depend on any order.

Geometries are cleaned by ``core.score.polygon_cleaning``, the cleaning ``core.score.f1`` uses: invalid ones repaired
with ``make_valid`` (the polygonal part kept), null, empty and zero-area ones skipped (they count as nothing), the
minimum areas applied in coordinate units. Intersections go through ``core.score.f1_pairs.intersection_areas`` (GEOS,
with its pair-by-pair retry) and the threshold through ``core.score.f1_matching.passes``.
All polygons of one instance are one group (no per-image split). IoU needs no metres: a ratio of areas in any CRS.

No QGIS here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping

import numpy as np
import shapely

from ..geometry_arrays import object_array
from .f1 import FN, FP, SKIPPED, TP, Counts, F1Options
from .f1_matching import passes
from .f1_pairs import intersection_areas
from .polygon_cleaning import clean


@dataclass(frozen=True)
class EditStats:
    """What one update looked at: the polygons re-matched (the touched components) and the IoUs computed."""

    proposals: int = 0  # proposals whose match was decided again
    truths: int = 0  # truth polygons whose match was decided again
    pairs: int = 0  # proposal-truth pairs whose intersection was computed (the edited proposals' candidates)


class LiveScore:
    """The F1 counts of a changing set of proposals against fixed truth polygons.

    ``truth``: shapely geometries (None, empty and invalid allowed, as in ``core.score.f1``), in the same CRS as the
    proposals. Proposals are keyed by a feature id (any orderable value; greedy takes them in ascending id).
    """

    def __init__(self, truth: Iterable, options: F1Options = F1Options()):  # noqa: B008 - frozen
        self.options = options
        truth = object_array(truth)
        self._truth, self._truth_area, kept = _cleaned(truth, options.min_area_truth, inclusive=True)
        self._truth_total = len(truth)
        self._truth_kept = int(np.count_nonzero(kept))
        self._tree_index = np.flatnonzero(kept)  # STRtree position -> truth index
        self._tree = shapely.STRtree(self._truth[self._tree_index])
        self._proposals: dict[Hashable, object] = {}  # kept proposals: fid -> cleaned geometry
        self._skipped: set = set()  # proposals present but not scored (empty, zero area, too small)
        self._passing: dict[Hashable, dict[int, float]] = {}  # fid -> {truth index: IoU} of its passing pairs
        self._passing_truth: dict[int, set] = {}  # truth index -> fids of the proposals passing with it
        self._best_iou: dict[Hashable, float] = {}  # fid -> best IoU with any truth (0 without overlap)
        self._match: dict[Hashable, int] = {}  # fid -> matched truth index
        self._match_truth: dict[int, Hashable] = {}  # truth index -> matched fid
        self.last_edit = EditStats()
        self.total_rematched = 0  # proposals + truths re-matched since creation: what incremental work costs

    # --- edits ------------------------------------------------------------------------------------------------
    def add(self, fid: Hashable, geometry) -> EditStats:
        """A new proposal. Raises ``KeyError`` if ``fid`` is already present."""
        if fid in self:
            raise KeyError(f"proposal {fid!r} is already present")
        return self.update({fid: geometry})

    def change(self, fid: Hashable, geometry) -> EditStats:
        """A proposal's new geometry. Raises ``KeyError`` if ``fid`` is not present."""
        if fid not in self:
            raise KeyError(f"no proposal {fid!r}")
        return self.update({fid: geometry})

    def remove(self, fid: Hashable) -> EditStats:
        """A deleted proposal. Raises ``KeyError`` if ``fid`` is not present."""
        if fid not in self:
            raise KeyError(f"no proposal {fid!r}")
        return self.update({fid: _REMOVED})

    def discard(self, fid: Hashable) -> EditStats:
        """Like :meth:`remove`, but nothing happens when ``fid`` is not present."""
        return self.update({fid: _REMOVED}) if fid in self else EditStats()

    def load(self, fids: Iterable[Hashable], geometries: Iterable) -> EditStats:
        """Many proposals at once (adds or replaces), with the IoUs computed in bulk: for a whole layer."""
        fids = list(fids)
        geometries = object_array(geometries)
        if len(fids) != len(geometries):
            raise ValueError(f"{len(fids)} feature ids for {len(geometries)} geometries")
        return self.update(dict(zip(fids, geometries)))

    def update(self, changes: Mapping[Hashable, object]) -> EditStats:
        """Apply several edits at once: ``fid -> geometry`` adds or replaces, ``fid -> LiveScore.REMOVED`` deletes
        (an absent fid is ignored). The touched components are re-matched once, together."""
        seeds_truth: set = set()
        seeds_proposals: list = []
        for fid in changes:
            seeds_truth |= self._drop(fid)
        new = [(fid, geometry) for fid, geometry in changes.items() if geometry is not _REMOVED]
        pairs = 0
        if new:
            fids = [fid for fid, _ in new]
            geometries, areas, kept = _cleaned(object_array([g for _, g in new]), self.options.min_area_proposals,
                                                inclusive=False)
            kept_at = np.flatnonzero(kept)
            for index in np.flatnonzero(~kept).tolist():
                self._skipped.add(fids[index])
            for index in kept_at.tolist():
                self._proposals[fids[index]] = geometries[index]
                self._best_iou[fids[index]] = 0.0
            pairs = self._link(fids, geometries, areas, kept_at, seeds_truth, seeds_proposals)
        touched_proposals, touched_truths = self._component(seeds_truth, seeds_proposals)
        self._rematch(touched_proposals, touched_truths)
        self.last_edit = EditStats(len(touched_proposals), len(touched_truths), pairs)
        self.total_rematched += len(touched_proposals) + len(touched_truths)
        return self.last_edit

    REMOVED = object()  # the value that deletes a proposal in :meth:`update`

    # --- what is known ----------------------------------------------------------------------------------------
    def counts(self) -> Counts:
        tp = len(self._match)
        return Counts(tp=tp, fp=len(self._proposals) - tp, fn=self._truth_kept - tp)

    def __contains__(self, fid) -> bool:
        return fid in self._proposals or fid in self._skipped

    def __len__(self) -> int:
        return len(self._proposals) + len(self._skipped)

    def fids(self) -> list:
        """The ids of the proposals present (scored or skipped), ascending."""
        return sorted([*self._proposals, *self._skipped])

    def status(self, fid) -> str:
        """"TP", "FP", or "" for a proposal skipped as empty or too small. Raises ``KeyError`` if absent."""
        if fid in self._match:
            return TP
        if fid in self._proposals:
            return FP
        if fid in self._skipped:
            return SKIPPED
        raise KeyError(f"no proposal {fid!r}")

    def iou(self, fid) -> float:
        """The matched truth's IoU for a TP, else the best IoU with any truth (0 if none); NaN when skipped."""
        if fid in self._match:
            return self._passing[fid][self._match[fid]]
        if fid in self._skipped:
            return float("nan")
        return self._best_iou[fid]

    def match(self, fid) -> int:
        """The index of the truth polygon matched to proposal ``fid``, -1 for none."""
        return self._match.get(fid, -1)

    def truth_status(self) -> np.ndarray:
        """Per truth polygon: "TP" (matched), "FN" (missed) or "" (skipped as empty or too small)."""
        status = np.where(self._truth_area > 0, FN, SKIPPED).astype("<U2")
        if self._match_truth:
            status[np.fromiter(self._match_truth, dtype=np.intp)] = TP
        return status

    @property
    def truth_count(self) -> int:
        """The truth polygons given, skipped ones included."""
        return self._truth_total

    # --- inside ----------------------------------------------------------------------------------------------
    def _drop(self, fid) -> set:
        """Forgets proposal ``fid`` (if present) and its match; returns the truths it passed with."""
        self._skipped.discard(fid)
        if self._proposals.pop(fid, None) is None:
            return set()
        self._best_iou.pop(fid, None)
        matched = self._match.pop(fid, None)
        if matched is not None:
            del self._match_truth[matched]
        passing = self._passing.pop(fid, {})
        for truth in passing:
            holders = self._passing_truth[truth]
            holders.discard(fid)
            if not holders:
                del self._passing_truth[truth]
        return set(passing)

    def _link(self, fids, geometries, areas, kept_at, seeds_truth: set, seeds_proposals: list) -> int:
        """Finds the passing pairs of the new proposals ``kept_at`` (one bulk tree query, bulk intersections)."""
        if len(kept_at) == 0 or len(self._tree_index) == 0:
            return 0
        from_new, from_tree = self._tree.query(geometries[kept_at])
        proposal_at, truth_at = kept_at[from_new], self._tree_index[from_tree]
        intersection = intersection_areas(geometries[proposal_at], self._truth[truth_at])
        overlapping = intersection > 0  # touching is no match, whatever the threshold
        proposal_at, truth_at, intersection = proposal_at[overlapping], truth_at[overlapping], intersection[overlapping]
        iou = intersection / (areas[proposal_at] + self._truth_area[truth_at] - intersection)
        best = np.zeros(len(fids))
        np.maximum.at(best, proposal_at, iou)
        for index in np.unique(proposal_at).tolist():
            self._best_iou[fids[index]] = float(best[index])
        passing = passes(iou, self.options.matching, self.options.iou_threshold)
        for index, truth, value in zip(proposal_at[passing].tolist(), truth_at[passing].tolist(),
                                       iou[passing].tolist()):
            fid = fids[index]
            self._passing.setdefault(fid, {})[truth] = value
            self._passing_truth.setdefault(truth, set()).add(fid)
            seeds_truth.add(truth)
            seeds_proposals.append(fid)
        return len(overlapping)

    def _component(self, seeds_truth: set, seeds_proposals: list):
        """The proposals and truths connected to the seeds by passing pairs (breadth first)."""
        proposals, truths = set(), set()
        pending_truth = [t for t in seeds_truth if t in self._passing_truth]
        pending_proposals = [p for p in seeds_proposals if p in self._passing]
        while pending_truth or pending_proposals:
            for truth in pending_truth:
                if truth not in truths:
                    truths.add(truth)
                    pending_proposals.extend(self._passing_truth[truth])
            pending_truth = []
            for fid in pending_proposals:
                if fid not in proposals:
                    proposals.add(fid)
                    pending_truth.extend(t for t in self._passing[fid] if t not in truths)
            pending_proposals = []
        # A truth that no proposal passes with any more was touched too: its old match is gone (see _drop).
        truths |= {t for t in seeds_truth if t not in self._passing_truth}
        return proposals, truths

    def _rematch(self, proposals: set, truths: set) -> None:
        for fid in proposals:
            matched = self._match.pop(fid, None)
            if matched is not None:
                del self._match_truth[matched]
        if not proposals:
            return
        if self.options.matching == "optimal":
            pairs = _optimal_pairs(sorted(proposals, key=_order_key), self._passing)
        else:
            pairs = self._greedy_pairs(sorted(proposals, key=_order_key))
        for fid, truth in pairs:
            self._match[fid] = truth
            self._match_truth[truth] = fid

    def _greedy_pairs(self, ordered) -> list:
        taken, pairs = set(), []
        for fid in ordered:
            best_truth, best_iou = -1, -1.0
            for truth, iou in self._passing[fid].items():
                if truth not in taken and (iou > best_iou or (iou == best_iou and truth < best_truth)):
                    best_truth, best_iou = truth, iou
            if best_truth >= 0:
                taken.add(best_truth)
                pairs.append((fid, best_truth))
        return pairs


_REMOVED = LiveScore.REMOVED


def _order_key(fid):
    return fid


def _optimal_pairs(ordered, passing) -> list:
    """A maximum-weight matching (more matches first, then more IoU), as ``core.score.f1``'s optimal rule weighs it."""
    from scipy.optimize import linear_sum_assignment

    columns = sorted({truth for fid in ordered for truth in passing[fid]})
    column_of = {truth: j for j, truth in enumerate(columns)}
    weights = np.zeros((len(ordered), len(columns)))
    bonus = min(len(ordered), len(columns)) + 1.0
    for i, fid in enumerate(ordered):
        for truth, iou in passing[fid].items():
            weights[i, column_of[truth]] = bonus + iou
    rows, chosen = linear_sum_assignment(weights, maximize=True)
    return [(ordered[i], columns[j]) for i, j in zip(rows.tolist(), chosen.tolist()) if weights[i, j] > 0]


def _cleaned(geometries: np.ndarray, min_area: float, inclusive: bool):
    """(repaired polygonal geometries, their areas with 0 where not kept, kept), cleaned as ``core.score.f1`` cleans."""
    cleaned = clean(geometries, min_area, inclusive)
    return cleaned.geometries, np.where(cleaned.kept, cleaned.shape_areas, 0.0), cleaned.kept
