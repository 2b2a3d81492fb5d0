"""Server-side SVG of the scoring dashboard: agreement heat map, per-stage bars, stacked hypnograms."""
from __future__ import annotations

from html import escape

from datasets.services.plots import HYPNOGRAM_ROWS, STAGE_COLOURS


def kappa_heatmap_svg(names: list[str], pairs: list[dict], *, cell: int = 56) -> str:
    """Cohen's kappa of every rater pair as a symmetric heat map (darker is higher agreement)."""
    value = {(p["a"], p["b"]): p["kappa"] for p in pairs} | {(p["b"], p["a"]): p["kappa"] for p in pairs}
    n, left, top = len(names), 110, 90
    parts = [f'<svg class="heatmap" viewBox="0 0 {left + n * cell + 8} {top + n * cell + 8}" role="img" '
             'aria-label="Cohen\'s kappa per rater pair">']
    for j, name in enumerate(names):
        x = left + (j + 0.5) * cell
        parts.append(f'<text x="{x}" y="{top - 8}" class="axis" transform="rotate(-40 {x} {top - 8})">{escape(name)}</text>')
    for i, row in enumerate(names):
        y = top + i * cell
        parts.append(f'<text x="{left - 8}" y="{y + cell / 2 + 4}" text-anchor="end" class="axis">{escape(row)}</text>')
        for j, column in enumerate(names):
            kappa = 1.0 if i == j else value.get((row, column))
            fill = "#141b23" if kappa is None else f"rgba(76,155,232,{max(0.05, min(kappa, 1.0)):.3f})"
            label = "—" if kappa is None else f"{kappa:.2f}"
            x = left + j * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" rx="3" fill="{fill}"/>')
            parts.append(f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 4}" text-anchor="middle" class="cell">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stage_bars_svg(values: dict, published: dict, *, title: str, width: int = 420, height: int = 180) -> str:
    """One bar per stage (this campaign) beside a tick for the published figure of that stage."""
    left, bottom, top = 36, 24, 18
    plot_h = height - top - bottom
    step = (width - left - 8) / len(HYPNOGRAM_ROWS)
    parts = [f'<svg class="bars" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<text x="{left}" y="12" class="axis">{escape(title)}</text>']
    for tick in (0, 0.5, 1):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="gridline"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{tick:g}</text>')
    for k, stage in enumerate(HYPNOGRAM_ROWS):
        x = left + k * step + step * 0.2
        value = values.get(stage)
        if value is not None:
            h = plot_h * max(0.0, min(value, 1.0))
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{step * 0.6:.1f}" height="{h:.1f}" '
                         f'fill="{STAGE_COLOURS[stage]}"><title>{stage}: {value:.2f}</title></rect>')
        if published.get(stage) is not None:
            y = top + plot_h * (1 - published[stage])
            parts.append(f'<line x1="{x - 3:.1f}" x2="{x + step * 0.6 + 3:.1f}" y1="{y:.1f}" y2="{y:.1f}" class="published">'
                         f'<title>published {stage}: {published[stage]:.2f}</title></line>')
        parts.append(f'<text x="{x + step * 0.3:.1f}" y="{height - 6}" text-anchor="middle" class="axis">{stage}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_hypnograms_svg(rows: list[tuple[str, dict[int, str]]], n_epochs: int, *, width: int = 960,
                           row_height: int = 22) -> str:
    """Each rater's labels of one recording (index -> stage) as a strip, the consensus last, stages coloured."""
    left = 110
    step = (width - left - 6) / max(n_epochs, 1)
    parts = [f'<svg class="stacked-hypnograms" viewBox="0 0 {width} {len(rows) * row_height + 6}" role="img" '
             'aria-label="Hypnograms of the raters and the consensus">']
    for r, (name, stages) in enumerate(rows):
        y = r * row_height + 3
        parts.append(f'<text x="{left - 8}" y="{y + row_height / 2 + 4}" text-anchor="end" class="axis">{escape(name)}</text>')
        for index, stage in stages.items():
            parts.append(f'<rect x="{left + index * step:.2f}" y="{y}" width="{max(step, 0.6):.2f}" '
                         f'height="{row_height - 4}" fill="{STAGE_COLOURS[stage]}"/>')
    parts.append("</svg>")
    return "".join(parts)
