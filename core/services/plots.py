"""Server-side SVG charts with one style for every page's dark theme (the card they sit on).

Every chart is drawn at its natural size (width and height in px, shrunk by CSS only when the card is
narrower) with explicit text colours, so it stays legible inline and as a file. Heat maps carry a
colour scale; a cell's label is black or white, whichever contrasts more with its fill. Agreement
coefficients are shown with AGREEMENT_DIGITS decimals, as on the pages and in the reports.
"""
from __future__ import annotations

import math
from html import escape

BACKGROUND = "#161d25"  # the card (--panel in static/css/app.css)
TEXT = "#dbe3ec"  # --text
MUTED = "#9aa8b9"  # axis titles and notes: contrast 6.9 on BACKGROUND
GRID = "#2a3542"
EMPTY = "#1c2530"  # a cell without a value
REFERENCE = "#ffffff"  # published reference marks
BAND = "#1f3d33"  # published human range: MUTED text on it keeps 4.9:1
BAND_EDGE = "#4f9a7c"
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif'
SERIES = ("#4c9be8", "#f2c94c", "#e5566d", "#6fcf97", "#bb6bd9", "#9ad0f5")
AGREEMENT_DIGITS = 3
# colour scales: (value, colour) stops, interpolated linearly; brighter is higher
AGREEMENT_SCALE = ((-1.0, "#d64f66"), (0.0, "#3b4452"), (0.5, "#2f7bc4"), (1.0, "#9fd0ff"))
SHARE_SCALE = ((0.0, "#1f2a36"), (0.5, "#2f7bc4"), (1.0, "#9fd0ff"))


def agreement_text(value) -> str:
    """An agreement coefficient as shown everywhere ('—' when undefined)."""
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{AGREEMENT_DIGITS}f}"


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[k:k + 2], 16) for k in (1, 3, 5))


def relative_luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a #rrggbb colour."""
    channels = [c / 255 for c in _rgb(colour)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours (1 to 21; 4.5 is the floor for normal text)."""
    high, low = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def label_colour(fill: str) -> str:
    """Black or white, whichever reads better on `fill` (at least 4.58:1 for any fill)."""
    return max(("#000000", "#ffffff"), key=lambda text: contrast_ratio(text, fill))


def colour_at(value: float, scale=AGREEMENT_SCALE) -> str:
    """The scale's colour at `value` (clamped to the scale's ends)."""
    value = min(max(value, scale[0][0]), scale[-1][0])
    for (v0, c0), (v1, c1) in zip(scale, scale[1:]):
        if value <= v1:
            t = (value - v0) / (v1 - v0)
            return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(_rgb(c0), _rgb(c1)))
    return scale[-1][1]


def svg_open(width: float, height: float, kind: str, label: str) -> str:
    """The opening tag of a chart: natural size, the theme's font."""
    return (f'<svg class="chart {kind}" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}" font-family=\'{FONT}\' font-size="12">')


def text(x: float, y: float, content: str, *, anchor: str = "start", colour: str = TEXT, size: int = 12,
         bold: bool = False, rotate: float | None = None, kind: str = "axis", halo: bool = False) -> str:
    """A text element in the chart style; `halo` outlines it in the background colour, to stay legible
    where it crosses a line."""
    extra = f' font-size="{size}"' if size != 12 else ""
    extra += f' stroke="{BACKGROUND}" stroke-width="3" paint-order="stroke"' if halo else ""
    extra += ' font-weight="600"' if bold else ""
    extra += f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate is not None else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{colour}" class="{kind}"{extra}>'
            f'{escape(content)}</text>')


def _text_width(content: str, size: int = 12) -> float:
    return len(content) * size * 0.6


def colour_bar(x: float, y: float, height: float, scale, ticks, title: str) -> str:
    """A vertical colour scale with its ticks and title, `height` tall at (x, y)."""
    low, high = scale[0][0], scale[-1][0]
    steps, parts = 40, []
    for k in range(steps):
        value = high - (high - low) * (k + 0.5) / steps
        parts.append(f'<rect x="{x}" y="{y + height * k / steps:.2f}" width="12" height="{height / steps + 0.3:.2f}" '
                     f'fill="{colour_at(value, scale)}"/>')
    for tick in ticks:
        ty = y + height * (high - tick) / (high - low)
        parts.append(f'<line x1="{x + 12}" x2="{x + 16}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{MUTED}"/>')
        parts.append(text(x + 19, ty + 4, f"{tick:g}", colour=TEXT, size=11))
    parts.append(text(x + 58, y + height / 2, title, anchor="middle", colour=MUTED, rotate=90))
    return "".join(parts)


def heatmap_svg(rows: list[str], columns: list[str], values: list[list], labels: list[list[str]], *, title: str,
                row_title: str, column_title: str, scale=AGREEMENT_SCALE, scale_title: str, ticks=(-1, 0, 0.5, 1),
                tooltips: list[list[str]] | None = None, cell: int = 52, band: dict | None = None) -> str:
    """A matrix of cells coloured by `values` (None: empty cell) and labelled by `labels`, with a colour scale;
    `band` ({"low", "high", "label"}) is marked beside the scale and named under the title."""
    column_block = max(map(_text_width, columns)) * 0.7 + 14
    left = max(map(_text_width, rows)) + 34
    top = 46 if band else 30
    grid_w, grid_h = len(columns) * cell, len(rows) * cell
    bar_h = max(grid_h, 110)
    width = max(left + grid_w + 92, _text_width(title) + 16)
    height = top + max(grid_h, bar_h) + column_block + 26
    width = max(width, _text_width(band["label"], 11) + 150) if band else width
    parts = [svg_open(width, height, "heatmap", title), text(8, 18, title, bold=True)]
    if band:
        parts.append(text(8, 34, f"white bar by the scale: {band['label']}", colour=MUTED, size=11))
    parts.append(text(12, top + grid_h / 2, row_title, anchor="middle", colour=MUTED, rotate=-90))
    for i, row in enumerate(rows):
        y = top + i * cell
        parts.append(text(left - 8, y + cell / 2 + 4, row, anchor="end"))
        for j, value in enumerate(values[i]):
            x = left + j * cell
            fill = EMPTY if value is None else colour_at(value, scale)
            tip = f"<title>{escape(tooltips[i][j])}</title>" if tooltips else ""
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" rx="3" fill="{fill}" '
                         f'stroke="{GRID}">{tip}</rect>')
            parts.append(text(x + cell / 2 - 1, y + cell / 2 + 4, labels[i][j], anchor="middle",
                              colour=label_colour(fill), kind="cell"))
    for j, column in enumerate(columns):
        x = left + (j + 0.5) * cell
        parts.append(text(x + 4, top + grid_h + 14, column, anchor="end", rotate=-35))
    parts.append(text(left + grid_w / 2, height - 8, column_title, anchor="middle", colour=MUTED))
    parts.append(colour_bar(left + grid_w + 16, top, bar_h, scale, ticks, scale_title))
    if band:
        low, high = scale[0][0], scale[-1][0]
        y_low, y_high = (top + bar_h * (high - v) / (high - low) for v in (band["low"], band["high"]))
        parts.append(f'<line x1="{left + grid_w + 11}" x2="{left + grid_w + 11}" y1="{y_high:.1f}" '
                     f'y2="{y_low + 1.5:.1f}" stroke="{REFERENCE}" stroke-width="4" class="human-band">'
                     f'<title>{escape(band["label"])}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def kappa_heatmap_svg(names: list[str], pairs: list[dict], *, label: str = "Cohen's κ",
                      items_key: str = "n", band: dict | None = None) -> str:
    """Kappa (or another agreement figure) of every rater pair as a symmetric heat map; the diagonal is empty;
    `band` marks a range on the colour scale (heatmap_svg)."""
    found = {(p["a"], p["b"]): p for p in pairs} | {(p["b"], p["a"]): p for p in pairs}
    values, labels, tips = [], [], []
    for row in names:
        pair_rows = [None if row == column else found.get((row, column)) for column in names]
        values.append([p and p["kappa"] for p in pair_rows])
        labels.append(["—" if p is None else agreement_text(p["kappa"]) for p in pair_rows])
        tips.append([f"{row} · {column}" + ("" if p is None else
                                            f": {agreement_text(p['kappa'])} on {p[items_key]} items")
                     for column, p in zip(names, pair_rows)])
    return heatmap_svg(names, names, values, labels, title=f"{label} per rater pair", row_title="rater",
                       column_title="rater", scale_title=label, tooltips=tips, band=band)


def bar_chart_svg(categories: list[str], series: list[dict], *, title: str, y_title: str, x_title: str,
                  value_text=agreement_text, reference: dict | None = None, reference_label: str = "",
                  band: dict | None = None, width: int = 460, height: int = 280) -> str:
    """Bars per category, one per series ({"name", "values": {category: value}, "colour": str or {category: str}}),
    each labelled with its value (negative bars go below zero; a missing value says 'n/a'). `reference`
    ({category: value}) draws a dashed white mark per category, named `reference_label` in the legend;
    `band` ({"low", "high", "label"}) a shaded range behind the bars (human_band)."""
    values = [v for s in series for v in s["values"].values() if v is not None and not math.isnan(v)]
    low = min(0.0, math.floor(min(values, default=0) * 4) / 4)
    high = 1.0
    legend = [(s["name"], s["colour"] if isinstance(s["colour"], str) else None) for s in series if len(series) > 1]
    if reference:
        legend.append((reference_label, REFERENCE))
    if band:
        legend.append((band["label"], BAND))
    left, right, top = 52, 10, 44
    bottom = 40 + 18 * len(legend)
    height += 18 * bool(band)
    plot_h, plot_w = height - top - bottom, width - left - right

    def y_of(value):
        return top + plot_h * (high - value) / (high - low)

    parts = [svg_open(width, height, "bars", title), text(8, 18, title, bold=True)]
    if band:
        parts.append(human_band(left, width - right, y_of, band))
    step_tick = 0.25 if high - low <= 1.5 else 0.5
    for k in range(math.ceil(low / step_tick - 1e-9), math.floor(high / step_tick + 1e-9) + 1):
        tick, y = k * step_tick, y_of(k * step_tick)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{MUTED if k == 0 else GRID}"/>')
        parts.append(text(left - 6, y + 4, f"{tick:g}", anchor="end", size=11))
    parts.append(text(14, top + plot_h / 2, y_title, anchor="middle", colour=MUTED, rotate=-90))
    step = plot_w / len(categories)
    bar = step * 0.7 / len(series)
    labels = []  # value labels go last, over the reference marks
    for k, category in enumerate(categories):
        x0 = left + k * step + step * 0.15
        for g, s in enumerate(series):
            x = x0 + g * bar
            value = s["values"].get(category)
            colour = s["colour"] if isinstance(s["colour"], str) else s["colour"][category]
            if value is None or math.isnan(value):
                parts.append(text(x + bar / 2, y_of(0) - 4, "n/a", anchor="middle", colour=MUTED, size=10))
                continue
            y, zero = y_of(max(value, 0)), y_of(min(value, 0))
            tip = escape(f"{s['name']} · {category}: {value_text(value)}" + (f" ({s['notes'][category]})"
                                                                           if category in s.get("notes", {}) else ""))
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar - 1:.1f}" height="{max(zero - y, 1.5):.1f}" '
                         f'fill="{colour}"><title>{tip}</title></rect>')
            label_y = y - 4 if value >= 0 else zero + 12
            labels.append(text(x + bar / 2, label_y, value_text(value), anchor="middle", size=10, kind="value",
                               halo=True))
        if reference and reference.get(category) is not None:
            y = y_of(reference[category])
            parts.append(f'<line x1="{x0 - 3:.1f}" x2="{x0 + step * 0.7 + 3:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="{REFERENCE}" stroke-width="2" stroke-dasharray="4 3" class="published">'
                         f'<title>{escape(reference_label)} · {category}: {value_text(reference[category])}'
                         '</title></line>')
        parts.append(text(x0 + step * 0.35, top + plot_h + 16, category, anchor="middle"))
    parts += labels
    parts.append(text(left + plot_w / 2, top + plot_h + 32, x_title, anchor="middle", colour=MUTED))
    for n, (name, colour) in enumerate(legend):
        y = top + plot_h + 50 + 18 * n
        mark = (f'<line x1="{left}" x2="{left + 16}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" stroke-width="2" '
                'stroke-dasharray="4 3"/>' if colour == REFERENCE else
                f'<rect x="{left + 2}" y="{y - 10}" width="12" height="10" fill="{colour}"'
                + (f' stroke="{BAND_EDGE}"/>' if colour == BAND else '/>'))
        parts.append(mark + text(left + 22, y, name, size=11))
    parts.append("</svg>")
    return "".join(parts)


def human_band(x0: float, x1: float, y_of, band: dict) -> str:
    """The published human range ({"low", "high", "label"}) as a shaded strip from x0 to x1 (at least 3 px
    tall, for a single published figure), to draw behind a chart's marks."""
    top, bottom = y_of(band["high"]), y_of(band["low"])
    if bottom - top < 3:
        top, bottom = (top + bottom) / 2 - 1.5, (top + bottom) / 2 + 1.5
    return (f'<rect x="{x0:.1f}" y="{top:.1f}" width="{x1 - x0:.1f}" height="{bottom - top:.1f}" fill="{BAND}" '
            f'stroke="{BAND_EDGE}" stroke-width="0.8" class="human-band"><title>{escape(band["label"])}</title></rect>')


def line_chart_svg(series: list[dict], *, title: str, x_title: str, y_title: str, band: dict | None = None,
                   value_text=agreement_text, width: int = 560, height: int = 300) -> str:
    """Values from 0 to 1 against whole-number x, one line with dots per series ({"name", "colour",
    "points": [(x, y, tooltip)]}), a legend per series and the `band` behind them (human_band)."""
    legend = [(s["name"], s["colour"]) for s in series] + ([(band["label"], BAND)] if band else [])
    left, right, top = 52, 14, 34
    bottom = 42 + 18 * len(legend)
    height += 18 * len(legend)
    plot_h, plot_w = height - top - bottom, width - left - right
    x_max = max((x for s in series for x, _, _ in s["points"]), default=1)

    def x_of(x):
        return left + plot_w * ((x - 1) / (x_max - 1) if x_max > 1 else 0.5)

    def y_of(value):
        return top + plot_h * (1 - value)

    parts = [svg_open(width, height, "lines", title), text(8, 18, title, bold=True)]
    if band:
        parts.append(human_band(left, width - right, y_of, band))
    for k in range(5):
        y = y_of(k / 4)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{MUTED if k == 0 else GRID}"/>')
        parts.append(text(left - 6, y + 4, f"{k / 4:g}", anchor="end", size=11))
    for x in range(1, x_max + 1, max(1, x_max // 10)):
        parts.append(text(x_of(x), top + plot_h + 16, str(x), anchor="middle", size=11))
    parts.append(text(14, top + plot_h / 2, y_title, anchor="middle", colour=MUTED, rotate=-90))
    parts.append(text(left + plot_w / 2, top + plot_h + 32, x_title, anchor="middle", colour=MUTED))
    for s in series:
        points = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y, _ in s["points"])
        parts.append(f'<polyline points="{points}" fill="none" stroke="{s["colour"]}" stroke-width="2"/>')
        for x, y, tip in s["points"]:
            label = escape(f"{s['name']} · {tip}: {value_text(y)}")
            parts.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3.5" fill="{s["colour"]}">'
                         f'<title>{label}</title></circle>')
    for n, (name, colour) in enumerate(legend):
        y = top + plot_h + 50 + 18 * n
        edge = f' stroke="{BAND_EDGE}"' if colour == BAND else ""
        parts.append(f'<rect x="{left + 2}" y="{y - 10}" width="12" height="10" fill="{colour}"{edge}/>'
                     + text(left + 22, y, name, size=11))
    parts.append("</svg>")
    return "".join(parts)
