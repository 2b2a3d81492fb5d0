"""Server-side SVG for the evaluation report and the scoring dashboard (core's chart style)."""
from __future__ import annotations

from core.services.plots import SHARE_SCALE, heatmap_svg


def confusion_svg(matrix: list[list[int]], labels, *, rows: str = "reference", columns: str = "predicted",
                  title: str = "Confusion matrix") -> str:
    """A confusion-matrix heat map (rows: reference, columns: prediction by default): counts in the cells,
    shaded by the share of their row."""
    shares = [[count / (sum(row) or 1) for count in row] for row in matrix]
    tips = [[f"{rows} {labels[i]}, {columns} {labels[j]}: {count} of {sum(row)} ({shares[i][j]:.0%})"
             for j, count in enumerate(row)] for i, row in enumerate(matrix)]
    return heatmap_svg(list(labels), list(labels), shares, [[str(count) for count in row] for row in matrix],
                       title=title, row_title=rows, column_title=columns, scale=SHARE_SCALE,
                       scale_title="share of the row", ticks=(0, 0.5, 1), tooltips=tips)
