"""Server-side SVG of the rating dashboard: score distributions per dimension and the kappa heat maps."""
from __future__ import annotations

from html import escape

from core.services.plots import kappa_heatmap_svg
from ratings.services.rubric import SCALE


def distribution_svg(groups: dict[str, dict], *, title: str, width: int = 420, height: int = 170) -> str:
    """Share of each score 1-5 per group (a bar group per score, one bar per group), published means aside."""
    left, bottom, top = 36, 34, 18
    plot_h, names = height - top - bottom, list(groups)
    step = (width - left - 8) / len(SCALE)
    bar = step * 0.8 / max(len(names), 1)
    colours = ["#4c9be8", "#f2c94c", "#e5566d", "#6fcf97", "#bb6bd9", "#9ad0f5"]
    parts = [f'<svg class="bars" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<text x="{left}" y="12" class="axis">{escape(title)}</text>']
    for tick in (0, 0.5, 1):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="gridline"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{tick:g}</text>')
    for k, point in enumerate(SCALE):
        for g, name in enumerate(names):
            counts = groups[name]["distribution"]
            total = sum(counts.values()) or 1
            share = counts[str(point)] / total
            x = left + k * step + step * 0.1 + g * bar
            h = plot_h * share
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colours[g % len(colours)]}"><title>{escape(name)}: score {point}, '
                         f'{counts[str(point)]} of {total}</title></rect>')
        parts.append(f'<text x="{left + (k + 0.5) * step:.1f}" y="{height - 20}" text-anchor="middle" class="axis">{point}</text>')
    for g, name in enumerate(names):
        parts.append(f'<text x="{left + g * 130}" y="{height - 4}" class="axis" fill="{colours[g % len(colours)]}">'
                     f'■ {escape(name)} (n={groups[name]["n"]})</text>')
    parts.append("</svg>")
    return "".join(parts)


def dashboard_figures(stats: dict) -> dict:
    """Per dimension: the distribution by source and the weighted-kappa heat map of the rater pairs."""
    titles = {d["key"]: d["title"] for d in stats["rubric"]["dimensions"]}
    figures = {}
    for dim, d in stats["dimensions"].items():
        pairs = d["pairwise_weighted_kappa"]
        names = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
        figures[dim] = {
            "title": titles[dim],
            "distribution": distribution_svg(d["by_source"], title=f"{titles[dim]}: share of each score")
            if d["by_source"] else "",
            "heatmap": kappa_heatmap_svg(names, pairs, label="Quadratic-weighted kappa") if pairs else "",
        }
    return figures
