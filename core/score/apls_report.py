"""The HTML report of an APLS scoring run: the score and its halves, the settings, per-group rows and a chart."""

from __future__ import annotations

from dataclasses import fields

from ..html_report import bar_chart, notes_section, page, table, write  # noqa: F401 - write is this module's API


def _row(name, result) -> list:
    return [name, f"{result.apls:.4f}", f"{result.gt_to_prop:.4f}", f"{result.prop_to_gt:.4f}",
            result.control_points_truth, result.control_points_proposal, f"{result.length_truth_m / 1000:.3f}",
            f"{result.length_proposal_m / 1000:.3f}"]


def render(groups, options, title: str = "APLS (SpaceNet roads)", notes=()) -> str:
    """``groups`` is a ``core.score.apls.AplsGroups``, ``options`` its ``AplsOptions``."""
    summary = table([[f"{groups.mean_apls:.4f}", f"{groups.mean_gt_to_prop:.4f}", f"{groups.mean_prop_to_gt:.4f}",
                      len(groups.groups)]],
                    ["APLS (mean of groups)", "truth → proposal", "proposal → truth", "groups"])
    settings = table([[f.name, getattr(options, f.name), f.metadata.get("help", "")] for f in fields(options)],
                     ["option", "value", "meaning"])
    header = ["group", "APLS", "truth → proposal", "proposal → truth", "control points (truth)",
              "control points (proposal)", "truth km", "proposal km"]
    rows = [_row(name or "(all)", result) for name, result in groups.groups.items()]
    chart = bar_chart([name or "(all)" for name in groups.groups], [r.apls for r in groups.groups.values()],
                      title="APLS per group")
    body = f"""<h2>Summary</h2>{summary}
<p>Each half compares the lengths of shortest paths between control points of one network with the paths between
the same places on the other: 1 - mean(min(1, |L - L'| / L)), a missing place or path costing 1. APLS is the
harmonic mean of the two halves; over several groups (tiles) the mean of the groups.</p>
<h2>Settings</h2>{settings}
{notes_section(notes)}
<h2>Per group</h2>{table(rows, header)}
<h2>Chart</h2>{chart}"""
    return page(title, body)
