"""Self-contained HTML reports: what was scored, tables, inline SVG bar charts, one page, written atomically.

Charts are inline SVG written here, so a report is one file that opens in any browser and in QGIS's results
viewer, with no plotting library to install. Every text that reaches the page is escaped here.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

BAR_COLOUR = "#3b7dd8"
STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
th { background: #eef2f7; }
td:first-child { text-align: left; }
table.facts td, table.facts th { text-align: left; }
svg text { font-size: 12px; font-family: sans-serif; }
"""


def table(rows, header, css_class: str = "") -> str:
    """Rows of cells under ``header`` (None: no header row)."""
    head = ""
    if header is not None:
        head = "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    opening = f'<table class="{html.escape(css_class)}">' if css_class else "<table>"
    return f"{opening}{head}<tbody>{body}</tbody></table>"


def run_section(facts) -> str:
    """What was scored, when and with what (a ``core.run_facts.RunFacts``); "" for None."""
    if facts is None:
        return ""
    rows = [
        ["Algorithm", facts.algorithm],
        ["Run at (local time)", facts.started],
        ["Plugin", f"SpaceNet Toolkit {facts.plugin_version}".strip()],
        ["Compared in", facts.compared_in or "not stated"],
        ["Group field", facts.group_field or "none: everything is one group"],
    ]
    if facts.models:
        rows.append(["Model of the proposals", ", ".join(model.label() for model in facts.models)])
    inputs = [[item.role, item.name, item.source, "unknown" if item.feature_count is None else item.feature_count,
               item.crs or "none"] for item in facts.inputs]
    return ("<h2>What was scored</h2>" + table(rows, None, "facts")
            + table(inputs, ["input", "name", "source", "features", "CRS"], "facts"))


def bar_chart(labels, values, title, value_format="{:.3f}", width=720, bar_height=16) -> str:
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


def ungrouped(group_names) -> bool:
    """True for a run without groups: its one group, named "", is the summary itself and gets no per-group table."""
    return list(group_names) == [""]


def group_label(name: str) -> str:
    """A group's name in a table; the features with an empty group value form a group too."""
    return name if name else "(empty value)"


def notes_section(notes) -> str:
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"<h2>Notes</h2><ul>{items}</ul>" if items else ""


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body``."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>
"""


def write(path, text: str) -> None:
    """Write to a temporary name, then rename: a reader never sees half a report, and a failure (a folder of that
    name, a full disk) leaves nothing behind."""
    target = Path(path)
    partial = target.with_name(target.name + ".part")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
