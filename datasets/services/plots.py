"""Small server-side SVG plots for the pages (no JavaScript charting needed)."""
from __future__ import annotations

from datasets.constants import UNSCORED

# Conventional hypnogram order, top to bottom.
HYPNOGRAM_ROWS = ("W", "R", "N1", "N2", "N3")
STAGE_COLOURS = {"W": "#f2c14e", "R": "#e5566d", "N1": "#7fd1c7", "N2": "#4c9be8", "N3": "#3756b8"}


def hypnogram_svg(stages: list[str], *, width: int = 960, height: int = 150, marker: int | None = None,
                  link: str | None = None) -> str:
    """A step hypnogram with a row per stage; unscored epochs leave gaps. `link` % index makes it clickable."""
    left, right, top, bottom = 34, 6, 8, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(stages), 1)
    row_h = plot_h / len(HYPNOGRAM_ROWS)
    step = plot_w / n
    parts = [f'<svg class="hypnogram" viewBox="0 0 {width} {height}" role="img" aria-label="Hypnogram">']
    for r, stage in enumerate(HYPNOGRAM_ROWS):
        y = top + (r + 0.5) * row_h
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{stage}</text>')
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="gridline"/>')
    for i, stage in enumerate(stages):
        if stage == UNSCORED:
            continue
        r = HYPNOGRAM_ROWS.index(stage)
        y = top + r * row_h + row_h * 0.2
        parts.append(
            f'<rect x="{left + i * step:.2f}" y="{y:.1f}" width="{max(step, 0.6):.2f}" height="{row_h * 0.6:.1f}" '
            f'fill="{STAGE_COLOURS[stage]}"/>'
        )
    hours = len(stages) * 30 / 3600
    for h in range(int(hours) + 1):
        x = left + h * 3600 / 30 * step
        parts.append(f'<text x="{x:.1f}" y="{height - 5}" text-anchor="middle" class="axis">{h}h</text>')
    if marker is not None:
        x = left + (marker + 0.5) * step
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" class="marker"/>')
    if link:
        parts.append(
            f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="transparent" class="hit" '
            f'data-epochs="{n}" data-link="{link}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
