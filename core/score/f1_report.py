"""The HTML report of an F1 scoring run: what was scored, the summary, per-group table, IoU histogram and per-group
F1 chart."""

from __future__ import annotations

import numpy as np

from ..html_report import (  # noqa: F401 - write is this module's API
    bar_chart,
    group_label,
    notes_section,
    page,
    run_section,
    table,
    ungrouped,
    write,
)

HISTOGRAM_BINS = 20


def _number(value: float) -> str:
    return f"{value:.4f}"


def _counts_row(label, counts) -> list:
    return [label, counts.tp, counts.fp, counts.fn, _number(counts.precision), _number(counts.recall),
            _number(counts.f1)]


def iou_histogram(ious: np.ndarray, bins: int = HISTOGRAM_BINS) -> tuple[list[str], list[int]]:
    """Counts of the IoU values (nan ignored) in equal bins over [0, 1]."""
    values = ious[~np.isnan(ious)]
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    labels = [f"{edges[i]:.2f}–{edges[i + 1]:.2f}" for i in range(bins)]
    return labels, counts.tolist()


def render(result, options, title: str = "SpaceNet F1", notes=(), facts=None) -> str:
    """The report as an HTML string. ``result`` is a ``core.score.f1.F1Result``, ``options`` its ``F1Options``,
    ``facts`` the ``core.run_facts.RunFacts`` of the run (None: no header of what was scored).

    A run without groups (its one group is the summary) shows no per-group table or chart."""
    total = result.total
    header = ["group", "TP", "FP", "FN", "precision", "recall", "F1"]
    summary = table([_counts_row("all", total)], [""] + header[1:])
    settings = table(
        [[options.iou_threshold, options.matching, options.min_area_truth, options.min_area_proposals]],
        ["IoU threshold", "matching", "min. area truth", "min. area proposals"],
    )
    matched = result.proposal_status == "TP"
    histogram = bar_chart(
        *iou_histogram(result.proposal_iou[matched | (result.proposal_status == "FP")]),
        title="IoU of each scored proposal with its best truth", value_format="{:d}",
    )
    if ungrouped(result.groups):
        summary_title = "Summary (one group: no group field)"
        groups_section = charts = ""
    else:
        summary_title = "Summary (TP, FP, FN summed over all groups)"
        group_rows = [_counts_row(group_label(group), counts) for group, counts in result.groups.items()]
        groups_section = f"<h2>Per group</h2>{table(group_rows, header)}"
        aoi_sums = result.aoi_sums()
        if aoi_sums:
            aoi_rows = [_counts_row(aoi, counts) for aoi, counts in aoi_sums.items()]
            groups_section = ("<h2>Per AOI (counts summed over its images)</h2>" + table(aoi_rows, ["AOI"] + header[1:])
                              + groups_section)
        charts = "<br>" + bar_chart([group_label(g) for g in result.groups], [c.f1 for c in result.groups.values()],
                                    title="F1 per group")
    body = f"""{run_section(facts)}
<h2>{summary_title}</h2>{summary}
<h2>Settings</h2>{settings}
{notes_section(notes)}
{groups_section}
<h2>Charts</h2>{histogram}{charts}"""
    return page(title, body)
