"""The HTML report of an APLS scoring run: what was scored, the score and its halves, the settings, per-group rows
and a chart."""

from __future__ import annotations

from dataclasses import fields

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

HALVES = ["truth → proposal", "proposal → truth"]
DETAILS = ["control points (truth)", "control points (proposal)", "truth km", "proposal km"]


def _details(result) -> list:
    return [result.control_points_truth, result.control_points_proposal, f"{result.length_truth_m / 1000:.3f}",
            f"{result.length_proposal_m / 1000:.3f}"]


def _row(name, result) -> list:
    return [name, f"{result.apls:.4f}", f"{result.gt_to_prop:.4f}", f"{result.prop_to_gt:.4f}", *_details(result)]


def render(groups, options, title: str = "APLS (SpaceNet roads)", notes=(), facts=None) -> str:
    """``groups`` is a ``core.score.apls.AplsGroups``, ``options`` its ``AplsOptions``, ``facts`` the
    ``core.run_facts.RunFacts`` of the run (None: no header of what was scored).

    A run without groups shows its one result as the summary, with no per-group table or chart."""
    if ungrouped(groups.groups):
        summary = table([_row("all lines (no group field)", groups.groups[""])], ["", "APLS", *HALVES, *DETAILS])
        per_group = ""
    else:
        summary = table([[f"{groups.mean_apls:.4f}", f"{groups.mean_gt_to_prop:.4f}",
                          f"{groups.mean_prop_to_gt:.4f}", len(groups.groups)]],
                        ["APLS (mean of groups)", *HALVES, "groups"])
        rows = [_row(group_label(name), result) for name, result in groups.groups.items()]
        chart = bar_chart([group_label(name) for name in groups.groups], [r.apls for r in groups.groups.values()],
                          title="APLS per group")
        per_group = f"<h2>Per group</h2>{table(rows, ['group', 'APLS', *HALVES, *DETAILS])}<h2>Chart</h2>{chart}"
    settings = table([[f.name, getattr(options, f.name), f.metadata.get("help", "")] for f in fields(options)],
                     ["option", "value", "meaning"])
    body = f"""{run_section(facts)}
<h2>Summary</h2>{summary}
<p>Each half compares the lengths of shortest paths between control points of one network with the paths between
the same places on the other: 1 - mean(min(1, |L - L'| / L)), a missing place or path costing 1. APLS is the
harmonic mean of the two halves; over several groups (tiles) the mean of the groups.</p>
<h2>Settings</h2>{settings}
{notes_section(notes)}
{per_group}"""
    return page(title, body)
