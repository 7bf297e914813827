"""Calibration's HTML report: the best pair, the F1 curves as line charts (inline SVG), every trial as a table.
Beside f1_report and apls_report; no QGIS here."""

from __future__ import annotations

import html
import math

import numpy as np

from ..html_report import page, table, write  # noqa: F401 - write is this module's API
from .calibrate import CalibrationResult

PALETTE = ("#3b7dd8", "#d7301f", "#2e9e44", "#8e44ad", "#e67e22", "#16a085", "#7f6a4f", "#c2185b", "#34495e",
           "#b8a000")


def line_chart(series, title: str, x_label: str, y_label: str, y_range=None, marker=None, width=760,
               height=380) -> str:
    """Inline SVG: lines through the points of each series, ``series`` = [(label, xs, ys)]. ``marker`` (x, y,
    text) rings one point. Axes span the series' x values and ``y_range`` (None: the values' tenths within 0..1,
    so curves that differ in the second decimal do not lie on one line)."""
    series = [(str(label), list(map(float, xs)), list(map(float, ys))) for label, xs, ys in series if len(xs)]
    if not series:
        return f"<p>{html.escape(title)}: nothing to show.</p>"
    left, right, top, bottom = 56, 170, 40, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    all_x = sorted({x for _, xs, _ in series for x in xs})
    x0, x1 = all_x[0], all_x[-1]
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y0, y1 = y_range or _tenths([y for _, _, ys in series for y in ys])

    def px(x):
        return left + plot_w * (x - x0) / (x1 - x0)

    def py(y):
        return top + plot_h * (1 - (min(max(y, y0), y1) - y0) / (y1 - y0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<text x="0" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for tick in np.linspace(y0, y1, 6):
        y = py(tick)
        parts += [f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e3e3e3"/>',
                  f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{round(tick, 3):g}</text>']
    x_ticks = all_x if len(all_x) <= 16 else list(np.linspace(x0, x1, 7))
    for tick in x_ticks:
        x = px(tick)
        parts += [f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" stroke="#555"/>',
                  f'<text x="{x:.1f}" y="{top + plot_h + 17}" text-anchor="middle">{tick:g}</text>']
    parts += [
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#555"/>',
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">{html.escape(x_label)}</text>',
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{html.escape(y_label)}</text>',
    ]
    for number, (label, xs, ys) in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
                     f"<title>{html.escape(label)}</title></polyline>")
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in zip(xs, ys)]
        legend_y = top + 8 + number * 18
        parts += [f'<line x1="{left + plot_w + 14}" y1="{legend_y}" x2="{left + plot_w + 36}" y2="{legend_y}" '
                  f'stroke="{colour}" stroke-width="2"/>',
                  f'<text x="{left + plot_w + 42}" y="{legend_y + 4}">{html.escape(label)}</text>']
    if marker is not None:
        x, y, text = marker
        # the label goes below a point at the top, and to the left of a point at the right
        label_y = py(y) + 22 if py(y) - top < 24 else py(y) - 10
        anchor, label_x = ("end", px(x) - 10) if px(x) > left + 0.7 * plot_w else ("start", px(x) + 10)
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="7" fill="none" stroke="#111" stroke-width="1.5"/>',
                  f'<text x="{label_x:.1f}" y="{label_y:.1f}" text-anchor="{anchor}">{html.escape(text)}</text>']
    parts.append("</svg>")
    return "".join(parts)


def _tenths(values) -> tuple:
    """The tenths around ``values`` (scores in 0..1)."""
    low = max(0.0, math.floor(min(values) * 10 + 1e-9) / 10)
    high = min(1.0, math.ceil(max(values) * 10 - 1e-9) / 10)
    if high > low:
        return low, high
    return (round(low - 0.1, 1), 1.0) if low >= 1 else (max(0.0, round(low - 0.1, 1)), round(low + 0.1, 1))


RATIOS = (("precision", "precision"), ("recall", "recall"), ("F1", "f1"))


def _f(value: float) -> str:
    return f"{value:.4f}"


def _area(value: float) -> str:
    return f"{value:g} m²"


def _split(interior_threshold) -> str:
    if interior_threshold is None:
        return "distance seeds (no interior band)"
    return f"interior band ≥ {interior_threshold:g}"


def render(result: CalibrationResult, title: str = "Threshold and minimum area calibration", notes=()) -> str:
    """The report as an HTML string: the best pair, the F1 curves as line charts, every trial as a table."""
    best = result.best
    summary = table(
        [[f"{best.threshold:g}", _area(best.min_area_m2), _f(best.f1), _f(best.precision), _f(best.recall), best.tp,
          best.fp, best.fn, best.proposals, result.truth_count]],
        ["threshold", "minimum area", "F1", "precision", "recall", "TP", "FP", "FN", "footprints", "truth"],
    )
    settings = result.settings
    settings_table = table(
        [[f"≥ {settings['iou_threshold']:g}, {settings['matching']}", f"{settings['simplify_m']:g} m",
          "yes" if settings["regularize"] else "no", _split(settings.get("interior_threshold")),
          f"{settings.get('min_score', 0.0):g}", f"{result.pixel_m:.3f} m",
          f"{result.grid_shape[1]} x {result.grid_shape[0]} px"]],
        ["IoU, matching", "simplify", "regularize", "touching buildings split", "minimum score", "pixel",
         "labelled area"],
    )
    marker = (best.threshold, best.f1, f"best: {best.threshold:g}, {best.min_area_m2:g} m²")
    curves = line_chart(
        [(f"min. area {a:g} m²", result.thresholds, [t.f1 for t in result.by_threshold(a)])
         for a in result.min_areas_m2],
        "F1 by threshold, one line per minimum area", "threshold", "F1", marker=marker,
    )
    at_best_area = result.by_threshold(best.min_area_m2)
    ratios = line_chart(
        [(name, result.thresholds, [getattr(t, key) for t in at_best_area]) for name, key in RATIOS],
        f"Precision, recall and F1 by threshold at the best minimum area ({best.min_area_m2:g} m²)",
        "threshold", "score", marker=marker,
    )
    at_best_threshold = result.by_min_area(best.threshold)
    by_area = line_chart(
        [(name, result.min_areas_m2, [getattr(t, key) for t in at_best_threshold]) for name, key in RATIOS],
        f"Precision, recall and F1 by minimum area at the best threshold ({best.threshold:g})",
        "minimum area (m²)", "score", marker=(best.min_area_m2, best.f1, "best"),
    )
    rows = [[f"{t.threshold:g}", f"{t.min_area_m2:g}", t.proposals, t.tp, t.fp, t.fn, _f(t.precision),
             _f(t.recall), _f(t.f1), "best" if t == best else ""] for t in result.trials]
    trials = table(rows, ["threshold", "min. area (m²)", "footprints", "TP", "FP", "FN", "precision", "recall",
                          "F1", ""])
    items = "".join(f"<li>{html.escape(n)}</li>" for n in [
        "Ties go to the higher threshold, then to the smaller minimum area.",
        f"{result.truth_count} truth polygons scored; {result.truth_outside} outside the labelled area, empty or "
        "without area left out. Truth is clipped to the labelled area, as the footprints are.",
        *notes,
    ])
    body = f"""<h2>Best pair</h2>{summary}
<h2>Settings</h2>{settings_table}
<h2>Notes</h2><ul>{items}</ul>
<h2>Charts</h2>{curves}<br>{ratios}<br>{by_area}
<h2>Every pair</h2>{trials}"""
    return page(title, body)
