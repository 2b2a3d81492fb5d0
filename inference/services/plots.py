"""Server-side SVG for the evaluation report."""
from __future__ import annotations

from html import escape


def confusion_svg(matrix: list[list[int]], labels, *, cell: int = 52, rows: str = "reference",
                  columns: str = "predicted") -> str:
    """A confusion-matrix heatmap (rows: reference, columns: prediction by default), row-normalised shading."""
    n = len(labels)
    left, top = 64, 44
    size = left + n * cell + 8
    parts = [f'<svg class="confusion" viewBox="0 0 {size} {top + n * cell + 30}" role="img" aria-label="Confusion matrix">',
             f'<text x="{left + n * cell / 2}" y="14" text-anchor="middle" class="axis">{escape(columns)}</text>',
             f'<text x="12" y="{top + n * cell / 2}" class="axis" transform="rotate(-90 12 {top + n * cell / 2})" '
             'text-anchor="middle">' + escape(rows) + '</text>']
    for j, label in enumerate(labels):
        parts.append(f'<text x="{left + (j + 0.5) * cell}" y="{top - 8}" text-anchor="middle" class="axis">{escape(label)}</text>')
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        y = top + i * cell
        parts.append(f'<text x="{left - 8}" y="{y + cell / 2 + 4}" text-anchor="end" class="axis">{escape(labels[i])}</text>')
        for j, count in enumerate(row):
            share = count / total
            fill = f"rgba(76,155,232,{0.08 + 0.92 * share:.3f})" if count else "#141b23"
            x = left + j * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" rx="3" fill="{fill}"/>')
            parts.append(f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 4}" text-anchor="middle" class="cell">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)
