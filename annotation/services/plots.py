"""Server-side SVG of the scoring dashboard: per-stage bars, stacked hypnograms, heat maps (core's chart style)."""
from __future__ import annotations

from annotation.services.dashboard import PUBLISHED
from core.services.plots import MUTED, bar_chart_svg, kappa_heatmap_svg, svg_open, text
from datasets.constants import EPOCH_SECONDS, STAGES
from datasets.services.plots import STAGE_COLOURS
from inference.services.plots import confusion_svg


def stage_bars_svg(values: dict, published: dict, *, title: str, y_title: str, notes: dict | None = None) -> str:
    """One bar per stage (this campaign) beside a dashed mark for the published figure of that stage."""
    series = [{"name": "this campaign", "values": {s: values.get(s) for s in STAGES}, "colour": STAGE_COLOURS,
               "notes": notes or {}}]
    return bar_chart_svg(list(STAGES), series, title=title, y_title=y_title, x_title="stage",
                         reference={s: published.get(s) for s in STAGES},
                         reference_label=f"published reference: {published['source']}")


def stacked_hypnograms_svg(rows: list[tuple[str, dict[int, str]]], n_epochs: int, *, width: int = 960,
                           row_height: int = 22) -> str:
    """Each rater's labels of one recording (index -> stage) as a strip, the consensus last, stages coloured,
    over a time axis in hours with a stage legend."""
    left, right = 110, 10
    step = (width - left - right) / max(n_epochs, 1)
    plot_bottom = len(rows) * row_height + 6
    height = plot_bottom + 62
    parts = [svg_open(width, height, "stacked-hypnograms", "Hypnograms of the raters and the consensus")]
    for r, (name, stages) in enumerate(rows):
        y = r * row_height + 3
        parts.append(text(left - 8, y + row_height / 2 + 4, name, anchor="end"))
        for index, stage in stages.items():
            parts.append(f'<rect x="{left + index * step:.2f}" y="{y}" width="{max(step, 0.6):.2f}" '
                         f'height="{row_height - 4}" fill="{STAGE_COLOURS[stage]}"/>')
    hours = n_epochs * EPOCH_SECONDS / 3600
    every = 1 if hours <= 12 else 2
    for hour in range(0, int(hours) + 1, every):
        x = left + hour * 3600 / EPOCH_SECONDS * step
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{plot_bottom - 2}" y2="{plot_bottom + 3}" '
                     f'stroke="{MUTED}"/>')
        parts.append(text(x, plot_bottom + 16, f"{hour} h", anchor="middle", size=11))
    parts.append(text(left + (width - left - right) / 2, plot_bottom + 32, "time from the start of the recording",
                      anchor="middle", colour=MUTED))
    for k, stage in enumerate(STAGES):
        x = left + k * 60
        parts.append(f'<rect x="{x}" y="{plot_bottom + 44}" width="10" height="10" fill="{STAGE_COLOURS[stage]}"/>'
                     + text(x + 14, plot_bottom + 53, stage, size=11))
    parts.append("</svg>")
    return "".join(parts)


def dashboard_figures(stats: dict) -> dict:
    """The dashboard's charts from campaign_statistics: the pair heat map, the per-stage bars and the
    confusion matrices of each rater against the reference and the consensus."""
    names = [p["rater"] for p in stats["progress"] if p["done"]]
    stage_agreement = stats.get("stage_agreement_with_majority", {})
    return {
        "heatmap": kappa_heatmap_svg(names, stats["pairwise"]) if stats.get("pairwise") else "",
        "stage_kappa": stage_bars_svg(stats.get("stage_kappa", {}), PUBLISHED["stage_kappa"], y_title="κ",
                                      title="One-vs-rest Fleiss' κ per stage"),
        "stage_agreement": stage_bars_svg(
            {s: v["value"] for s, v in stage_agreement.items()}, PUBLISHED["stage_agreement_with_majority"],
            title="Agreement with the majority per stage", y_title="share of labels",
            notes={s: f"{v['n']} labels" for s, v in stage_agreement.items()}),
        "confusions": [(kind, row["rater"], row["n"],
                        confusion_svg(row["confusion"], STAGES, rows=row["rater"], columns=kind,
                                      title=f"{row['rater']} vs {kind}"))
                       for kind, rows in stats["against"].items() for row in rows],
    }

