"""One self-contained HTML page with inline SVG charts, for the reports the KFP UI shows.

Clusters are often air-gapped, so the page needs nothing from the network: no ``<script>``, no
external stylesheets, fonts or images; every chart is an inline ``<svg>`` drawn from numbers.
All text is escaped (feature names, class labels and values come from user data).

    page = Page("Data validation")
    page.heading("Drift")
    page.bars([("income", {"distance": 0.74})], ["distance"], marks={"income": 0.2}, over={"income"})
    path.write_text(page.render())

Charts: :meth:`Page.bars` (horizontal bars, grouped by series), :meth:`Page.histograms`
(vertical bars, one panel per series on a shared x axis), :meth:`Page.lines` (curves such as
ROC and PR); plus :meth:`Page.table` and :meth:`Page.heatmap` (a table coloured by value).
Bars are ``<rect class="bar ...">`` so tests (and people) can count them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

# One colour per series, in order (matplotlib's first three); OVER marks a value beyond its limit.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b")
OVER = "#d62728"
_STYLE = """
body { font-family: sans-serif; margin: 16px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; } h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; }
tr.flagged td { background: #fde2e2; }
.verdict-ok { color: #1a7f37; font-weight: bold; } .verdict-bad { color: #d62728; font-weight: bold; }
section.feature { border: 1px solid #ddd; padding: 6px 12px; margin: 10px 0; }
section.feature.anomaly { border: 2px solid #d62728; background: #fff6f6; }
ul.anomalies { color: #b01c1c; }
svg text { font-family: sans-serif; font-size: 11px; fill: #333; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }
"""


def fmt(value: float | None) -> str:
    """A number as a chart label: 4 significant digits; '' for None."""
    if value is None:
        return ""
    return f"{value:.4g}"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


class Page:
    """An HTML page built part by part; :meth:`render` returns it as one string."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = [f"<h1>{escape(title)}</h1>"]

    # -- text ---------------------------------------------------------------------------
    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{escape(text)}</h{level}>")

    def paragraph(self, text: str, css: str = "") -> None:
        attribute = f' class="{escape(css)}"' if css else ""
        self.parts.append(f"<p{attribute}>{escape(text)}</p>")

    def items(self, texts: Sequence[str], css: str = "") -> None:
        if texts:
            attribute = f' class="{escape(css)}"' if css else ""
            self.parts.append(f"<ul{attribute}>" + "".join(f"<li>{escape(t)}</li>" for t in texts) + "</ul>")

    def open_section(self, css: str = "", ident: str = "") -> None:
        attributes = (f' class="{escape(css)}"' if css else "") + (f' id="{escape(ident)}"' if ident else "")
        self.parts.append(f"<section{attributes}>")

    def close_section(self) -> None:
        self.parts.append("</section>")

    def legend(self, names: Sequence[str]) -> None:
        spans = "".join(
            f'<span style="background:{colour(i)}"></span>{escape(name)}' for i, name in enumerate(names)
        )
        self.parts.append(f'<div class="legend">{spans}</div>')

    # -- tables -------------------------------------------------------------------------
    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[object]], flagged: Sequence[bool] = ()
    ) -> None:
        out = ["<table><tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in header) + "</tr>"]
        for i, row in enumerate(rows):
            css = ' class="flagged"' if i < len(flagged) and flagged[i] else ""
            out.append(f"<tr{css}>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>")
        self.parts.append("".join(out) + "</table>")

    def heatmap(self, labels: Sequence[str], matrix: Sequence[Sequence[float]], corner: str = "") -> None:
        """A square table whose cells are shaded by value (a confusion matrix)."""
        top = max((v for row in matrix for v in row), default=0) or 1
        out = [f'<table class="heatmap"><tr><th>{escape(corner)}</th>']
        out += [f"<th>{escape(str(label))}</th>" for label in labels]
        out.append("</tr>")
        for label, row in zip(labels, matrix, strict=True):
            out.append(f"<tr><th>{escape(str(label))}</th>")
            for value in row:
                share = value / top
                shade = round(255 - 200 * share)  # white to #1f77b4-ish blue
                text = "#fff" if share > 0.55 else "#222"
                out.append(
                    f'<td class="cell" style="background:rgb({shade},{round(255 - 136 * share)},'
                    f'{round(255 - 75 * share)});color:{text};text-align:right">{escape(_cell(value))}</td>'
                )
            out.append("</tr>")
        self.parts.append("".join(out) + "</table>")

    # -- charts -------------------------------------------------------------------------
    def bars(
        self,
        groups: Sequence[tuple[str, Mapping[str, float | None]]],
        series: Sequence[str],
        marks: Mapping[str, float | None] | None = None,
        over: Sequence[str] = (),
        scale_each_group: bool = False,
        css: str = "",
    ) -> None:
        """Horizontal bars: one group per (label, {series: value}), one bar per series.

        ``marks``: group label -> a limit drawn as a dashed tick across the group;
        ``over``: group labels whose bars are drawn in :data:`OVER` (beyond their limit);
        ``scale_each_group``: each group scaled to its own largest value (metrics of
        different units side by side); the value is written beside every bar."""
        marks = marks or {}
        label_width, chart_width, bar, gap = 170, 560, 14, 10
        values = [v for _, row in groups for v in row.values() if v is not None and math.isfinite(v)]
        values += [m for m in marks.values() if m is not None]
        shared = max(values, default=1.0) or 1.0
        height = sum(len(series) * bar + gap for _ in groups) + 24
        out = [_svg_open(label_width + chart_width + 70, height, f"chart bars {css}".strip())]
        y = 6
        for label, row in groups:
            finite = [v for v in row.values() if v is not None and math.isfinite(v)]
            top = (max(finite, default=0.0) or 1.0) if scale_each_group else shared
            group_height = len(series) * bar
            out.append(_text(label_width - 6, y + group_height / 2 + 4, _short(label), "end"))
            for i, name in enumerate(series):
                value = row.get(name)
                if value is None or not math.isfinite(value):
                    continue
                width = max(0.0, value) / top * chart_width
                fill = OVER if label in over else colour(i)
                state = " over" if label in over else ""
                out.append(
                    f'<rect class="bar s{i}{state}" x="{label_width}" y="{y + i * bar}" width="{width:.1f}" '
                    f'height="{bar - 2}" fill="{fill}">{_title(f"{label} {name}: {fmt(value)}")}</rect>'
                )
                out.append(_text(label_width + width + 4, y + i * bar + bar - 4, fmt(value)))
            limit = marks.get(label)
            if limit is not None:
                x = label_width + limit / top * chart_width
                out.append(
                    f'<line class="mark" x1="{x:.1f}" x2="{x:.1f}" y1="{y - 3}" y2="{y + group_height + 1}" '
                    f'stroke="#000" stroke-width="2" stroke-dasharray="3,2"/>'
                )
            y += group_height + gap
        out.append(f'<line x1="{label_width}" x2="{label_width}" y1="0" y2="{y}" stroke="#888"/>')
        out.append("</svg>")
        self.parts.append("".join(out))

    def histograms(
        self, panels: Sequence[tuple[str, Sequence[tuple[float, float, float]]]], css: str = ""
    ) -> None:
        """Vertical bars, one panel per (name, buckets) on a shared x axis; a bucket is
        (low, high, count). Heights are each panel's share of its rows, so splits of
        different sizes compare."""
        panels = [(name, list(buckets)) for name, buckets in panels if buckets]
        if not panels:
            return
        lows = [b[0] for _, buckets in panels for b in buckets if math.isfinite(b[0])]
        highs = [b[1] for _, buckets in panels for b in buckets if math.isfinite(b[1])]
        low, high = min(lows, default=0.0), max(highs, default=1.0)
        span = (high - low) or 1.0
        left, width, panel_height, gap = 120, 600, 70, 16
        height = len(panels) * (panel_height + gap) + 18
        out = [_svg_open(left + width + 20, height, f"chart histogram {css}".strip())]
        for p, (name, buckets) in enumerate(panels):
            top_y = p * (panel_height + gap) + 4
            base_y = top_y + panel_height
            total = sum(b[2] for b in buckets) or 1.0
            tallest = max(b[2] / total for b in buckets) or 1.0
            out.append(_text(left - 6, top_y + panel_height / 2 + 4, name, "end"))
            for lo, hi, count in buckets:
                lo = lo if math.isfinite(lo) else low
                hi = hi if math.isfinite(hi) else high
                x = left + (lo - low) / span * width
                w = max(1.0, (hi - lo) / span * width)
                h = count / total / tallest * panel_height
                out.append(
                    f'<rect class="bar s{p}" x="{x:.1f}" y="{base_y - h:.1f}" width="{w:.1f}" '
                    f'height="{h:.1f}" '
                    f'fill="{colour(p)}" stroke="#fff" stroke-width="0.5">'
                    f"{_title(f'{name} [{fmt(lo)}, {fmt(hi)}]: {fmt(count)}')}</rect>"
                )
            out.append(f'<line x1="{left}" x2="{left + width}" y1="{base_y}" y2="{base_y}" stroke="#888"/>')
        axis_y = height - 4
        out.append(_text(left, axis_y, fmt(low), "start"))
        out.append(_text(left + width, axis_y, fmt(high), "end"))
        out.append("</svg>")
        self.parts.append("".join(out))

    def lines(
        self,
        curves: Sequence[tuple[str, Sequence[float], Sequence[float]]],
        x_label: str,
        y_label: str,
        diagonal: bool = False,
        css: str = "",
    ) -> None:
        """Curves (name, xs, ys) on [0, 1] x [0, 1] axes, e.g. ROC (``diagonal``: chance) and PR."""
        left, top, size = 50, 10, 300
        out = [_svg_open(left + size + 20, top + size + 40, f"chart lines {css}".strip())]
        out.append(
            f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="#fafafa" stroke="#888"/>'
        )
        for tick in (0.0, 0.5, 1.0):
            out.append(_text(left + tick * size, top + size + 14, fmt(tick), "middle"))
            out.append(_text(left - 4, top + size - tick * size + 4, fmt(tick), "end"))
        if diagonal:
            out.append(
                f'<line x1="{left}" y1="{top + size}" x2="{left + size}" y2="{top}" stroke="#aaa" '
                f'stroke-dasharray="4,3"/>'
            )
        for i, (name, xs, ys) in enumerate(curves):
            points = " ".join(
                f"{left + x * size:.1f},{top + size - y * size:.1f}" for x, y in zip(xs, ys, strict=True)
            )
            out.append(
                f'<polyline class="curve s{i}" points="{points}" fill="none" stroke="{colour(i)}" '
                f'stroke-width="3"><title>{escape(name)}</title></polyline>'
            )
        out.append(_text(left + size / 2, top + size + 30, x_label, "middle"))
        out.append(
            f'<text x="12" y="{top + size / 2}" text-anchor="middle" '
            f'transform="rotate(-90 12 {top + size / 2})">{escape(y_label)}</text>'
        )
        out.append("</svg>")
        self.parts.append("".join(out))

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>{escape(self.title)}</title><style>{_STYLE}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n"
        )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return fmt(value)
    return str(value)


def _short(label: str, limit: int = 26) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _title(text: str) -> str:
    """A tooltip: what a mark is, shown when pointing at it."""
    return f"<title>{escape(text)}</title>"


def _text(x: float, y: float, text: str, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>'


def _svg_open(width: float, height: float, css: str) -> str:
    return (
        f'<svg class="{escape(css)}" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">'
    )
