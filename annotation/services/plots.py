"""Server-side SVG of the scoring dashboard: per-stage bars, stacked hypnograms, heat maps (core's chart style)."""
from __future__ import annotations

from annotation.services.dashboard import HUMAN_RANGES, PUBLISHED
from core.services.plots import (GRID, MUTED, SERIES, agreement_text, bar_chart_svg, kappa_heatmap_svg, line_chart_svg,
                                 svg_open, text)
from datasets.constants import EPOCH_SECONDS, STAGES
from datasets.services.plots import STAGE_COLOURS
from inference.services.plots import confusion_svg


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


HYPNODENSITY_PAGES = 3  # recordings drawn on the dashboard (the JSON has every one)

# the published human ranges as chart bands (core.services.plots.human_band), named in their legends
KAPPA_BAND = {**HUMAN_RANGES["cohen_kappa"], "label": f"human range of Cohen's κ: "
              f"{HUMAN_RANGES['cohen_kappa']['low']:.2f}–{HUMAN_RANGES['cohen_kappa']['high']:.2f} (Lee et al. 2022)"}
AGREEMENT_BAND = {**HUMAN_RANGES["agreement"], "label": f"human range of agreement: "
                  f"{_percent(HUMAN_RANGES['agreement']['low'])}–{_percent(HUMAN_RANGES['agreement']['high'])} "
                  "(SIESTA, AASM ISR)"}
UNANIMOUS_BAND = {**HUMAN_RANGES["unanimous"], "label": f"published: {_percent(HUMAN_RANGES['unanimous']['low'])}–"
                  f"{_percent(HUMAN_RANGES['unanimous']['high'])} unanimous with 6–12 scorers (Bakker et al. 2022)"}


def stage_bars_svg(values: dict, published: dict, *, title: str, y_title: str, notes: dict | None = None,
                   band: dict | None = None) -> str:
    """One bar per stage (this campaign) beside a dashed mark for the published human figure of that stage,
    over the band of the overall human range."""
    series = [{"name": "this campaign", "values": {s: values.get(s) for s in STAGES}, "colour": STAGE_COLOURS,
               "notes": notes or {}}]
    return bar_chart_svg(list(STAGES), series, title=title, y_title=y_title, x_title="stage",
                         reference={s: published.get(s) for s in STAGES},
                         reference_label=f"published per stage: {published['source']}", band=band)


def unanimous_svg(unanimous: dict) -> str:
    """The share of unanimous epochs, overall and per plurality stage, over the published band."""
    values = {"all": unanimous["overall"]["value"]} | {s: v["value"] for s, v in unanimous["per_stage"].items()}
    notes = {"all": f"{unanimous['overall']['n']} epochs"} | {s: f"{v['n']} epochs"
                                                               for s, v in unanimous["per_stage"].items()}
    series = [{"name": "this campaign", "values": values, "colour": {"all": SERIES[0], **STAGE_COLOURS},
               "notes": notes}]
    return bar_chart_svg(["all", *STAGES], series, title="Unanimous epochs, overall and per stage",
                         y_title="share of epochs", x_title="plurality stage", band=UNANIMOUS_BAND, width=520)


def hypnodensity_svg(recording: dict, *, width: int = 960) -> str:
    """One recording's rated epochs in time order: the share of raters per stage as stacked columns, and
    below them the model's probability of its stage, coloured by that stage; stage legend."""
    epochs = recording["epochs"]
    left, right, top, raters_h, gap, model_h = 110, 10, 30, 120, 22, 70
    plot_w = width - left - right
    step = plot_w / max(len(epochs), 1)
    model_top = top + raters_h + gap
    axis_y = model_top + model_h
    height = axis_y + 64
    label = f"Hypnodensity of recording #{recording['recording']}: share of raters per stage, model probability"
    parts = [svg_open(width, height, "hypnodensity", label), text(8, 18, label, bold=True)]
    for y0, h, name in ((top, raters_h, "raters"), (model_top, model_h, "model")):
        parts.append(text(8, y0 + h / 2 + 4, name, colour=MUTED))
        parts += [text(left - 6, y0 + h * (1 - tick) + 4, f"{tick:g}", anchor="end", size=11) for tick in (0, 0.5, 1)]
    for k, epoch in enumerate(epochs):
        x, w = left + k * step, max(step - 0.3, 0.6)
        tip = f"epoch {epoch['index']} · {epoch['raters']} raters: " + ", ".join(
            f"{s} {v:.2f}" for s, v in epoch["shares"].items() if v)
        y = top + raters_h
        for stage in STAGES:
            h = raters_h * epoch["shares"][stage]
            if h:
                y -= h
                parts.append(f'<rect x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" height="{h:.2f}" '
                             f'fill="{STAGE_COLOURS[stage]}"><title>{tip}</title></rect>')
        if epoch["model_probability"] is not None:
            h = model_h * epoch["model_probability"]
            parts.append(f'<rect x="{x:.2f}" y="{axis_y - h:.2f}" width="{w:.2f}" height="{h:.2f}" '
                         f'fill="{STAGE_COLOURS[epoch["model_stage"]]}" class="model"><title>epoch {epoch["index"]} · '
                         f'{recording["model_version"]}: {epoch["model_stage"]} '
                         f'p={agreement_text(epoch["model_probability"])}</title></rect>')
    if not recording["model_version"]:
        parts.append(text(left + 8, model_top + model_h / 2 + 4, "no model predictions on these epochs",
                          colour=MUTED))
    for k in range(0, len(epochs), max(1, len(epochs) // 8)):
        parts.append(text(left + (k + 0.5) * step, axis_y + 16, str(epochs[k]["index"]), anchor="middle", size=11))
    model = f"; model: {recording['model_version']}, probability of its stage" if recording["model_version"] else ""
    parts.append(text(left + plot_w / 2, axis_y + 32, f"epoch index (rated epochs in time order){model}",
                      anchor="middle", colour=MUTED))
    parts.append(_stage_legend(left, axis_y + 44))
    parts.append("</svg>")
    return "".join(parts)


def _stage_legend(left: float, top: float) -> str:
    """A swatch and the name of each stage, in a row from `left` at `top`."""
    return "".join(f'<rect x="{left + k * 60}" y="{top}" width="10" height="10" fill="{STAGE_COLOURS[stage]}"/>'
                   + text(left + k * 60 + 14, top + 9, stage, size=11) for k, stage in enumerate(STAGES))


def drift_svg(per_rater: dict) -> str:
    """Each rater's agreement with the consensus per block of their labels, over the human agreement band."""
    series = [{"name": row["rater"], "colour": SERIES[k % len(SERIES)],
               "points": [(b["block"], b["agreement"], f"labels {b['first_label']}–{b['first_label'] + b['n'] - 1}")
                          for b in row["drift"]]}
              for k, row in enumerate(r for r in per_rater["raters"] if r["drift"])]
    return line_chart_svg(series, title="Drift: agreement with the consensus over the campaign",
                          x_title=f"block of {per_rater['block_labels']} labels, in the order saved",
                          y_title="agreement", band=AGREEMENT_BAND)


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
    parts.append(_stage_legend(left, plot_bottom + 44))
    parts.append("</svg>")
    return "".join(parts)


def dashboard_figures(stats: dict) -> dict:
    """The dashboard's charts from campaign_statistics: the pair heat map, the per-stage bars and the
    confusion matrices of each rater against the reference and the consensus."""
    names = [p["rater"] for p in stats["progress"] if p["done"]]
    stage_agreement = stats.get("stage_agreement_with_majority", {})
    return {
        "heatmap": kappa_heatmap_svg(names, stats["pairwise"], band=KAPPA_BAND) if stats.get("pairwise") else "",
        "stage_kappa": stage_bars_svg(stats.get("stage_kappa", {}), PUBLISHED["stage_kappa"], y_title="κ",
                                      title="One-vs-rest Fleiss' κ per stage", band=KAPPA_BAND),
        "stage_agreement": stage_bars_svg(
            {s: v["value"] for s, v in stage_agreement.items()}, PUBLISHED["stage_agreement_with_majority"],
            title="Agreement with the majority per stage", y_title="share of labels",
            notes={s: f"{v['n']} labels" for s, v in stage_agreement.items()}, band=AGREEMENT_BAND),
        "unanimous": unanimous_svg(stats["unanimous"]) if stats["unanimous"]["overall"]["n"] else "",
        "hypnodensity": [(r, hypnodensity_svg(r)) for r in stats["hypnodensity"] if r["epochs"]][:HYPNODENSITY_PAGES],
        "drift": drift_svg(stats["per_rater"]) if any(r["drift"] for r in stats["per_rater"]["raters"]) else "",
        "confusions": [(kind, row["rater"], row["n"],
                        confusion_svg(row["confusion"], STAGES, rows=row["rater"], columns=kind,
                                      title=f"{row['rater']} vs {kind}"))
                       for kind, rows in stats["against"].items() for row in rows],
        "review_curve": review_curve_svg(stats["review_curve"]) if stats.get("review_curve") else "",
    }



def review_curve_svg(review: dict, *, width: int = 560, height: int = 300) -> str:
    """The simulated review curve: κ of the reviewed hypnogram against the share of epochs reviewed, least
    confident first beside random order, with the κ ≥ 0.90 target line."""
    simulated = review["simulated"]
    left, right, top, bottom = 52, 24, 34, 78
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(share):
        return left + plot_w * share

    def y_of(kappa):
        return top + plot_h * (1 - max(0.0, kappa))

    title = f"Review curve of {review['model_version']} ({simulated['epochs']} epochs, reference as the expert)"
    parts = [svg_open(width, height, "review-curve", title), text(8, 18, title, bold=True)]
    for k in range(5):
        y = y_of(k / 4)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(text(left - 6, y + 4, f"{k / 4:g}", anchor="end", size=11))
        parts.append(text(x_of(k / 4), top + plot_h + 16, f"{k * 25}%", anchor="middle", size=11))
    target = y_of(simulated["target_kappa"])
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{target:.1f}" y2="{target:.1f}" stroke="{MUTED}" '
                 'stroke-dasharray="4 3"/>')
    parts.append(text(14, top + plot_h / 2, "Cohen's κ vs reference", anchor="middle", colour=MUTED, rotate=-90))
    parts.append(text(left + plot_w / 2, top + plot_h + 32, "share of epochs reviewed", anchor="middle", colour=MUTED))
    for n, (order, name, colour) in enumerate((("confidence", "least confident first", SERIES[0]),
                                               ("random", "random order", SERIES[1]))):
        curve = simulated[order]
        points = " ".join(f"{x_of(s):.1f},{y_of(k):.1f}"
                          for s, k in zip(curve["share"], curve["kappa"]) if k is not None)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        needed = curve["share_for_target"]
        legend = (f"{name}: κ ≥ {simulated['target_kappa']:.2f} after "
                  + (_percent(needed) if needed is not None else "never"))
        y = top + plot_h + 50 + 16 * n
        parts.append(f'<rect x="{left + 2}" y="{y - 10}" width="12" height="10" fill="{colour}"/>'
                     + text(left + 22, y, legend, size=11))
    parts.append("</svg>")
    return "".join(parts)
