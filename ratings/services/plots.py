"""Server-side SVG of the rating dashboard: score distributions per dimension and the kappa heat maps
(core's chart style)."""
from __future__ import annotations

from core.services.plots import SERIES, bar_chart_svg, kappa_heatmap_svg
from ratings.services.rubric import SCALE


def distribution_svg(groups: dict[str, dict], *, title: str) -> str:
    """Share of each score 1-5 per group (a bar group per score, one bar per group)."""
    categories = [str(point) for point in SCALE]
    series = []
    for g, (name, group) in enumerate(groups.items()):
        total = sum(group["distribution"].values()) or 1
        series.append({"name": f"{name} ({group['n']} ratings of {group['items']} items)",
                       "values": {p: group["distribution"][p] / total for p in categories},
                       "notes": {p: f"{group['distribution'][p]} of {total}" for p in categories},
                       "colour": SERIES[g % len(SERIES)]})
    return bar_chart_svg(categories, series, title=title, y_title="share of ratings", x_title="score",
                         value_text=lambda share: f"{share:.0%}", width=520)


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
            "heatmap": kappa_heatmap_svg(names, pairs, label="Quadratic-weighted κ", items_key="items")
            if pairs else "",
        }
    return figures
