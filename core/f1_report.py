"""The HTML report of an F1 scoring run: summary, per-group table, IoU histogram and per-group F1 chart.

Charts are inline SVG written here, so the report is one self-contained file that opens in any browser
and in QGIS's results viewer, with no plotting library to install.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

BAR_COLOUR = "#3b7dd8"
HISTOGRAM_BINS = 20


def _number(value: float) -> str:
    return f"{value:.4f}"


def _counts_row(label, counts) -> list:
    return [label, counts.tp, counts.fp, counts.fn, _number(counts.precision), _number(counts.recall),
            _number(counts.f1)]


def _table(rows, header) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar_chart(labels, values, title, value_format="{:.3f}", width=720, bar_height=16) -> str:
    """Horizontal bars, one per label, values in 0..max."""
    if not labels:
        return f"<p>{html.escape(title)}: nothing to show.</p>"
    label_width, top = 220, 24
    plot_width = width - label_width - 70
    peak = max(max(values), 1e-12)
    height = top + len(labels) * (bar_height + 4) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<text x="0" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for row, (label, value) in enumerate(zip(labels, values)):
        y = top + row * (bar_height + 4)
        length = plot_width * value / peak
        baseline = y + bar_height - 4
        parts += [
            f'<text x="{label_width - 6}" y="{baseline}" text-anchor="end">{html.escape(label)}</text>',
            f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar_height}" fill="{BAR_COLOUR}"/>',
            f'<text x="{label_width + length + 4:.1f}" y="{baseline}">{value_format.format(value)}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def iou_histogram(ious: np.ndarray, bins: int = HISTOGRAM_BINS) -> tuple[list[str], list[int]]:
    """Counts of the IoU values (nan ignored) in equal bins over [0, 1]."""
    values = ious[~np.isnan(ious)]
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    labels = [f"{edges[i]:.2f}–{edges[i + 1]:.2f}" for i in range(bins)]
    return labels, counts.tolist()


def render(result, options, title: str = "SpaceNet F1", notes=()) -> str:
    """The report as an HTML string. ``result`` is a ``core.f1.F1Result``, ``options`` its ``F1Options``."""
    total = result.total
    summary = _table([_counts_row("all", total)], ["", "TP", "FP", "FN", "precision", "recall", "F1"])
    settings = _table(
        [[options.iou_threshold, options.matching, options.min_area_truth, options.min_area_proposals]],
        ["IoU threshold", "matching", "min. area truth", "min. area proposals"],
    )
    header = ["group", "TP", "FP", "FN", "precision", "recall", "F1"]
    group_rows = [_counts_row(group, counts) for group, counts in result.groups.items()]
    aoi_section = ""
    aoi_sums = result.aoi_sums()
    if aoi_sums:
        aoi_rows = [_counts_row(aoi, counts) for aoi, counts in aoi_sums.items()]
        aoi_section = "<h2>Per AOI (counts summed over its images)</h2>" + _table(aoi_rows, ["AOI"] + header[1:])
    matched = result.proposal_status == "TP"
    histogram = _bar_chart(
        *iou_histogram(result.proposal_iou[matched | (result.proposal_status == "FP")]),
        title="IoU of each scored proposal with its best truth", value_format="{:d}",
    )
    f1_chart = _bar_chart(
        [str(g) for g in result.groups], [c.f1 for c in result.groups.values()], title="F1 per group"
    )
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #bbb; padding: 3px 8px; text-align: right; }}
th {{ background: #eef2f7; }}
td:first-child {{ text-align: left; }}
svg text {{ font-size: 12px; font-family: sans-serif; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Summary (TP, FP, FN summed over all groups)</h2>{summary}
<h2>Settings</h2>{settings}
{"<h2>Notes</h2><ul>" + note_items + "</ul>" if note_items else ""}
{aoi_section}
<h2>Per group</h2>{_table(group_rows, header)}
<h2>Charts</h2>{histogram}<br>{f1_chart}
</body></html>
"""


def write(path, text: str) -> None:
    """Write to a temporary name, then rename: a reader never sees half a report."""
    target = Path(path)
    partial = target.with_name(target.name + ".part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
