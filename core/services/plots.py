"""Server-side SVG shared by the dashboards of scoring and rating campaigns."""
from __future__ import annotations

from html import escape


def kappa_heatmap_svg(names: list[str], pairs: list[dict], *, cell: int = 56, label: str = "Cohen's kappa") -> str:
    """Kappa (or another agreement figure) of every rater pair as a symmetric heat map (darker is higher)."""
    value = {(p["a"], p["b"]): p["kappa"] for p in pairs} | {(p["b"], p["a"]): p["kappa"] for p in pairs}
    n, left, top = len(names), 110, 90
    parts = [f'<svg class="heatmap" viewBox="0 0 {left + n * cell + 8} {top + n * cell + 8}" role="img" '
             f'aria-label="{escape(label)} per rater pair">']
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
