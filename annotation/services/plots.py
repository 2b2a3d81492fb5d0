"""Server-side SVG of the scoring dashboard: per-stage bars, stacked hypnograms (the heat map is core's)."""
from __future__ import annotations

from html import escape

from datasets.services.plots import HYPNOGRAM_ROWS, STAGE_COLOURS


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
