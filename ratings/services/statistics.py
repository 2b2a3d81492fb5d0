"""Every figure of a rating campaign, from its current first-pass ratings (re-ratings do not count).

Per rubric dimension: mean, SD (sample, ddof 1), median and the 1-5 distribution, overall and by model
version (or expert source), origin, stage and correct versus incorrect stage; Krippendorff's alpha,
ordinal and interval, each with a seeded percentile bootstrap 95% interval from resampling items
(core.services.agreement.bootstrap_alpha); quadratic-weighted Cohen's kappa per rater pair; ICC(2,k)
on the largest fully crossed block (the most items rated by one same set of two raters or more). The
paper's table: dimensions by (cohort, source) cells of mean ± SD (n) with ordinal alpha. Rater
reliability: each rater's mean and bias (their score minus the mean of the other raters on the same
items), fast ratings, and expert-corrected stages against the rated stage. Every figure carries the
numbers of items and ratings behind it.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from statistics import mean, median, stdev

from scipy.stats import spearmanr

from core.services import agreement, statistics_cache
from datasets.constants import STAGES
from inference.services.evaluation import spreadsheet_safe
from inference.services.evidence import contradicted_share, is_contradicted
from ratings.services.queue import RATING
from ratings.services.rubric import SCALE

N_BOOT = 1000
PUBLISHED = {"means": (3.75, 3.96), "source": "SleepVLM expert evaluation: two sleep technologists, "
                                              "MASS-SS1 and a clinical cohort; mean scores 3.75-3.96",
             "citation": "SleepVLM: Explainable and Rule-Grounded Sleep Staging via a Vision-Language Model. "
                         "arXiv:2603.26738, 2026."}
BOOTSTRAP_METHOD = (f"percentile bootstrap over items: {N_BOOT} resamples with replacement of the items rated "
                    "twice or more, numpy default_rng(campaign seed); 2.5% and 97.5% quantiles")


def _rows(campaign) -> list[dict]:
    ratings = (RATING.current(campaign, rescore=False)
               .values("rater_id", "rater__username", "item_id", "scores", "fast", "server_seconds", "corrected_stage",
                       "corrected_rule_ids", "note", "item__stage", "item__correct", "item__origin",
                       "item__model_version__name", "item__source", "item__recording__cohort__name"))
    return [{**r, "source": r["item__model_version__name"] or f"expert: {r['item__source']}"} for r in ratings]


def describe(values: list[int]) -> dict:
    """mean, SD, median, the 1-5 distribution and n of a list of scores (None where undefined)."""
    counts = Counter(values)
    return {"n": len(values), "mean": mean(values) if values else None,
            "sd": stdev(values) if len(values) > 1 else None, "median": median(values) if values else None,
            "distribution": {str(point): counts.get(point, 0) for point in SCALE}}


def _by(rows, key, dim) -> dict:
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {str(k): {**describe([r["scores"][dim] for r in group]), "items": len({r["item_id"] for r in group})}
            for k, group in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def _triples(rows, dim):
    return [(r["rater__username"], r["item_id"], r["scores"][dim]) for r in rows]


def _alpha(triples, level, seed, n_boot=N_BOOT) -> dict:
    """Alpha with its interval on the pairable items (rated twice or more), their ratings and raters."""
    pairable = {i for i, n in Counter(i for _, i, _ in triples).items() if n >= 2}
    basis = {"items": len(pairable), "ratings": sum(1 for _, i, _ in triples if i in pairable),
             "raters": len({r for r, i, _ in triples if i in pairable})}
    undefined = {"value": None, "low": None, "high": None, **basis}
    if len(pairable) < 2:
        return undefined
    try:
        result = agreement.bootstrap_alpha(triples, level, n_boot=n_boot, seed=seed, value_domain=SCALE)
    except ValueError:
        return undefined
    return {"value": _num(result.alpha), "low": _num(result.low), "high": _num(result.high), **basis}


def _num(value):
    return None if value is None or value != value else float(value)


def _pairs(triples) -> list[dict]:
    kappas = agreement.pairwise_cohen_kappa(triples, weights="quadratic", labels=SCALE)
    return [{"a": a, "b": b, "kappa": _num(k.value), "items": k.n} for (a, b), k in kappas.items() if k.n]


def _crossed_block(triples):
    """The largest fully crossed block: items rated by one same set of 2+ raters (most items, then most raters)."""
    raters_of = defaultdict(set)
    for rater, item, _ in triples:
        raters_of[item].add(rater)
    blocks = defaultdict(list)
    for item, raters in raters_of.items():
        if len(raters) >= 2:
            blocks[frozenset(raters)].append(item)
    if not blocks:
        return None, []
    raters, items = max(blocks.items(), key=lambda kv: (len(kv[1]), len(kv[0])))
    return raters, items


def _icc(triples) -> dict:
    raters, items = _crossed_block(triples)
    if raters is None or len(items) < 2:
        return {"value": None, "raters": 0, "items": len(items)}
    chosen = set(items)
    block = [t for t in triples if t[1] in chosen and t[0] in raters]
    return {"value": _num(agreement.icc(block, "ICC2k")), "raters": len(raters), "items": len(items),
            "rater_names": sorted(raters)}


def _rater_reliability(rows, dims) -> list[dict]:
    by_item = defaultdict(list)
    for r in rows:
        by_item[r["item_id"]].append(r)
    out = []
    for rater in sorted({r["rater__username"] for r in rows}):
        mine = [r for r in rows if r["rater__username"] == rater]
        entry = {"rater": rater, "ratings": len(mine), "fast": sum(r["fast"] for r in mine),
                 "median_seconds": median([r["server_seconds"] for r in mine if r["server_seconds"] is not None] or [0]),
                 "dimensions": {}}
        for dim in dims:
            diffs = []
            for r in mine:
                others = [o["scores"][dim] for o in by_item[r["item_id"]] if o["rater__username"] != rater]
                if others:
                    diffs.append(r["scores"][dim] - mean(others))
            entry["dimensions"][dim] = {"mean": mean(r["scores"][dim] for r in mine),
                                        "bias": mean(diffs) if diffs else None, "items_shared": len(diffs)}
        out.append(entry)
    return out


def _corrections(rows) -> dict:
    corrected = [r for r in rows if r["corrected_stage"]]
    confusion = [[sum(1 for r in corrected if r["item__stage"] == a and r["corrected_stage"] == b) for b in STAGES]
                 for a in STAGES]
    return {"ratings": len(rows), "notes": sum(1 for r in rows if r["note"]),
            "corrected_stages": len(corrected), "corrected_rules": sum(1 for r in rows if r["corrected_rule_ids"]),
            "stage_changed": sum(1 for r in corrected if r["corrected_stage"] != r["item__stage"]),
            "labels": list(STAGES), "confusion": confusion,
            "rows": "rated stage", "columns": "expert-corrected stage"}


def _paper_table(rows, dims, seed) -> dict:
    columns = sorted({(r["item__recording__cohort__name"], r["source"]) for r in rows})
    table = {"columns": [{"cohort": c, "source": s} for c, s in columns], "rows": []}
    for dim in dims:
        cells = []
        for cohort, source in columns:
            group = [r for r in rows if r["item__recording__cohort__name"] == cohort and r["source"] == source]
            stats = describe([r["scores"][dim] for r in group])
            cells.append({"mean": stats["mean"], "sd": stats["sd"], "n": stats["n"],
                          "items": len({r["item_id"] for r in group}),
                          "alpha": _alpha(_triples(group, dim), "ordinal", seed)})
        table["rows"].append({"dimension": dim, "cells": cells})
    return table


def campaign_statistics(campaign) -> dict:
    """Every figure of the campaign (JSON-ready)."""
    rubric = campaign.rubric
    dims = rubric.keys
    rows = _rows(campaign)
    seed = campaign.sample_seed
    out = {
        "campaign": {"id": campaign.pk, "name": campaign.name, "overlap": campaign.overlap,
                     "items": campaign.items.count(), "ratings": len(rows),
                     "items_rated": len({r["item_id"] for r in rows}), "raters": len({r["rater_id"] for r in rows}),
                     "fast_floor_s": campaign.fast_floor_s},
        "rubric": {"version": rubric.version, "dimensions": [{"key": d["key"], "title": d["title"]}
                                                              for d in rubric.dimensions]},
        "method": {"bootstrap": BOOTSTRAP_METHOD, "sd": "sample SD (n - 1)",
                   "icc": "ICC(2,k), two-way random, absolute agreement, on the largest fully crossed block",
                   "kappa": "quadratic-weighted Cohen's kappa on the items both raters rated"},
        "published": {**PUBLISHED, "means": list(PUBLISHED["means"])},
        "dimensions": {},
    }
    for dim in dims:
        triples = _triples(rows, dim)
        out["dimensions"][dim] = {
            "overall": {**describe([r["scores"][dim] for r in rows]), "items": len({r["item_id"] for r in rows})},
            "by_source": _by(rows, lambda r: r["source"], dim),
            "by_origin": _by(rows, lambda r: r["item__origin"], dim),
            "by_stage": _by(rows, lambda r: r["item__stage"], dim),
            "by_correctness": _by(rows, lambda r: "correct" if r["item__correct"] else "incorrect", dim),
            "alpha_ordinal": _alpha(triples, "ordinal", seed),
            "alpha_interval": _alpha(triples, "interval", seed),
            "pairwise_weighted_kappa": _pairs(triples),
            "icc2k": _icc(triples),
        }
    out["paper_table"] = _paper_table(rows, dims, seed)
    out["raters"] = _rater_reliability(rows, dims)
    out["corrections"] = _corrections(rows)
    out["contradicted"] = _contradicted(campaign, rows, rubric)
    return out


ACCURACY_WORDS = ("accura", "correct")
CONTRADICTED_METHOD = ("a rationale is contradicted when its epoch's measured signal contradicts a rule it cites "
                       "(inference.services.evidence); Spearman's rho (scipy.stats.spearmanr) over the rated, checked "
                       "items between contradicted (1) or not (0) and the item's mean first-pass score on the "
                       "accuracy dimension")


def accuracy_dimension(rubric) -> str | None:
    """The key of the rubric dimension about factual accuracy or correctness (None when there is none)."""
    return next((d["key"] for d in rubric.dimensions
                 if any(word in f"{d['key']} {d['title']}".lower() for word in ACCURACY_WORDS)), None)


def _contradicted(campaign, rows, rubric) -> dict:
    """The share of rationales citing a rule their signal contradicts, overall, by source and by source and
    stage, and its Spearman correlation (with n) with the accuracy scores."""
    items = [{**i, "source": i["model_version__name"] or f"expert: {i['source']}"}
             for i in campaign.items.values("id", "stage", "evidence", "source", "model_version__name")]
    by_source, by_source_stage = defaultdict(list), defaultdict(lambda: defaultdict(list))
    for item in items:
        by_source[item["source"]].append(item["evidence"])
        by_source_stage[item["source"]][item["stage"]].append(item["evidence"])
    dim = accuracy_dimension(rubric)
    scores = defaultdict(list)
    for r in rows if dim else ():
        scores[r["item_id"]].append(r["scores"][dim])
    paired = [(float(is_contradicted(i["evidence"])), mean(scores[i["id"]])) for i in items
              if i["evidence"] and scores[i["id"]]]
    rho = p = None
    if len(paired) >= 3 and len({x for x, _ in paired}) > 1 and len({y for _, y in paired}) > 1:
        result = spearmanr([x for x, _ in paired], [y for _, y in paired])
        rho, p = _num(result.statistic), _num(result.pvalue)
    return {
        "method": CONTRADICTED_METHOD,
        "overall": contradicted_share(i["evidence"] for i in items),
        "unchecked_items": sum(1 for i in items if not i["evidence"]),
        "by_source": {source: contradicted_share(found) for source, found in sorted(by_source.items())},
        "by_source_stage": {source: {stage: contradicted_share(stages[stage]) for stage in STAGES if stage in stages}
                            for source, stages in sorted(by_source_stage.items())},
        "accuracy_spearman": {"dimension": dim, "rho": rho, "p": p, "n": len(paired)},
    }


# --- reports: the agreement_report command and the dashboard's downloads --------------------------

def _fmt(value, digits=2) -> str:
    """Means and SD with 2 decimals, agreement coefficients with 3 (as on the dashboard)."""
    return "—" if value is None else f"{value:.{digits}f}"


def figure_rows(stats) -> list[dict]:
    """The figures as a long table: one row per (dimension, breakdown, group, statistic)."""
    out = []
    for dim, d in stats["dimensions"].items():
        for name in ("overall",):
            out += [{"dimension": dim, "breakdown": "overall", "group": "all", "statistic": s, "value": d[name][s],
                     "n": d[name]["n"], "items": d[name]["items"]} for s in ("mean", "sd", "median")]
        for breakdown in ("by_source", "by_origin", "by_stage", "by_correctness"):
            for group, g in d[breakdown].items():
                out += [{"dimension": dim, "breakdown": breakdown[3:], "group": group, "statistic": s, "value": g[s],
                         "n": g["n"], "items": g["items"]} for s in ("mean", "sd", "median")]
        for level in ("ordinal", "interval"):
            a = d[f"alpha_{level}"]
            out += [{"dimension": dim, "breakdown": "agreement", "group": "all", "statistic": f"alpha_{level}{suffix}",
                     "value": a[key], "n": a["ratings"], "items": a["items"]}
                    for suffix, key in (("", "value"), ("_low", "low"), ("_high", "high"))]
        for pair in d["pairwise_weighted_kappa"]:
            out.append({"dimension": dim, "breakdown": "rater_pair", "group": f"{pair['a']} / {pair['b']}",
                        "statistic": "quadratic_kappa", "value": pair["kappa"], "n": 2 * pair["items"],
                        "items": pair["items"]})
        icc = d["icc2k"]
        out.append({"dimension": dim, "breakdown": "agreement", "group": f"{icc['raters']} raters crossed",
                    "statistic": "icc2k", "value": icc["value"], "n": icc["raters"] * icc["items"],
                    "items": icc["items"]})
    return out


def render_report(stats, fmt: str) -> str:
    """The campaign's figures as 'json', 'csv' (figure_rows, text cells formula-safe) or 'md' (the paper's
    table and agreement)."""
    if fmt == "json":
        return json.dumps(stats, indent=2, sort_keys=True) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, ["dimension", "breakdown", "group", "statistic", "value", "n", "items"],
                                lineterminator="\n")
        writer.writeheader()
        # group names come from model, cohort, source and rater names: text a spreadsheet must not run
        writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in figure_rows(stats))
        return buffer.getvalue()
    if fmt != "md":
        raise ValueError(f"unknown format {fmt!r}; expected json, csv or md")
    c, titles = stats["campaign"], {d["key"]: d["title"] for d in stats["rubric"]["dimensions"]}
    lines = [f"# Rating campaign {c['name']}", "",
             f"{c['ratings']} ratings of {c['items_rated']} of {c['items']} items by {c['raters']} raters "
             f"(overlap {c['overlap']}), rubric version {stats['rubric']['version']}.", "",
             "## Mean ± SD (ratings) per dimension, with ordinal alpha", "",
             "Alpha uses the items of a cell rated twice or more; its item count may be below the cell's.", ""]
    table = stats["paper_table"]
    header = [f"{col['cohort']} · {col['source']}" for col in table["columns"]]
    lines += ["| dimension | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    for row in table["rows"]:
        cells = [f"{_fmt(cell['mean'])} ± {_fmt(cell['sd'])} ({cell['n']} ratings of {cell['items']} items), "
                 f"α {_fmt(cell['alpha']['value'], 3)} ({cell['alpha']['items']} items)" for cell in row["cells"]]
        lines.append(f"| {titles[row['dimension']]} | " + " | ".join(cells) + " |")
    lines += ["", "## Agreement", "",
              "| dimension | alpha ordinal [95% CI] | alpha interval [95% CI] | ICC(2,k) | alpha items × raters |",
              "|---|---|---|---|---|"]
    for dim, d in stats["dimensions"].items():
        o, i, icc = d["alpha_ordinal"], d["alpha_interval"], d["icc2k"]
        lines.append(f"| {titles[dim]} | {_fmt(o['value'], 3)} [{_fmt(o['low'], 3)}, {_fmt(o['high'], 3)}] | "
                     f"{_fmt(i['value'], 3)} [{_fmt(i['low'], 3)}, {_fmt(i['high'], 3)}] | "
                     f"{_fmt(icc['value'], 3)} ({icc['raters']} raters × {icc['items']} items) | "
                     f"{o['items']} × {o['raters']} |")
    contradicted, rho = stats["contradicted"], stats["contradicted"]["accuracy_spearman"]
    lines += ["", "## Rationale evidence check", "", "| source | rationales with a contradicted rule |", "|---|---|"]
    lines += [f"| {source} | {_fmt(None if c['share'] is None else 100 * c['share'], 0)}% ({c['contradicted']} of "
              f"{c['rationales']}) |" for source, c in contradicted["by_source"].items()]
    lines += ["", f"Spearman's ρ with the {rho['dimension'] or 'accuracy'} scores: {_fmt(rho['rho'], 3)} "
                  f"(p {_fmt(rho['p'], 3)}, n = {rho['n']} items). {contradicted['method'].capitalize()}."]
    published = stats["published"]
    lines += ["", f"Intervals: {stats['method']['bootstrap']}.", "",
              "## Published reference (not this campaign)", "",
              f"Published: {published['source']}. {published['citation']}", ""]
    return "\n".join(lines)


# --- big campaigns: the last stored result and a recompute job (core.services.statistics_cache) -----------

def watermark(campaign) -> dict:
    """What the figures are computed from: every rating saved (append-only) and the rubric's version."""
    from django.db.models import Count, Max

    from ratings.models import Rating

    ratings = Rating.objects.filter(item__campaign=campaign).aggregate(answers=Count("pk"), last=Max("pk"))
    return {"answers": ratings["answers"], "last_rating": ratings["last"], "rubric": campaign.rubric.version}


def dashboard_statistics(campaign) -> statistics_cache.Statistics:
    """The campaign's figures: computed now for a small campaign, else the last stored ones (a job refreshes them)."""
    from ratings.models import StatisticsJob

    return statistics_cache.statistics(StatisticsJob, campaign, campaign_statistics, watermark(campaign))


def run_statistics_job(job_id: int, **placement):
    from ratings.models import StatisticsJob

    return statistics_cache.recompute(StatisticsJob, job_id, campaign_statistics, watermark, **placement)
