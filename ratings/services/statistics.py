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
from dataclasses import dataclass
from operator import itemgetter
from decimal import Decimal, localcontext
from fractions import Fraction
from statistics import median

import numpy as np
import orjson
from django.contrib.auth import get_user_model
from django.db.models.fields.json import KeyTransform

from core.services import agreement, statistics_cache
from core.services.rows import fetch, json_value, without_cyclic_gc
from datasets.constants import STAGES
from datasets.models import Recording
from inference.models import ModelVersion
from inference.services.evaluation import spreadsheet_safe
from inference.services.evidence import share_of
from ratings.services.queue import RATING
from ratings.services.rubric import SCALE

N_BOOT = 1000
PUBLISHED = {"means": (3.75, 3.96), "source": "SleepVLM expert evaluation: two sleep technologists, "
                                              "MASS-SS1 and a clinical cohort; mean scores 3.75-3.96",
             "citation": "SleepVLM: Explainable and Rule-Grounded Sleep Staging via a Vision-Language Model. "
                         "arXiv:2603.26738, 2026."}
BOOTSTRAP_METHOD = (f"percentile bootstrap over items: {N_BOOT} resamples with replacement of the items rated "
                    "twice or more, numpy default_rng(campaign seed); 2.5% and 97.5% quantiles")


RATING_COLUMNS = ("rater_id", "item_id", "scores", "fast", "server_seconds", "corrected_stage",
                  "corrected_rule_ids", "note")
ITEM_COLUMNS = ("id", "stage", "correct", "origin", "model_version_id", "source", "recording_id", "contradicted")


@dataclass
class Ratings:
    """A campaign's current first-pass ratings as columns (one query each for ratings and items).

    `table` is the ratings' agreement Table on the first dimension (raters and items sorted); every
    dimension shares its raters and items and differs only in its codes (score - 1)."""

    table: agreement.Table
    scores: dict[str, np.ndarray]  # dimension -> each rating's score
    fast: np.ndarray
    seconds: np.ndarray  # server-measured seconds of each rating (NaN where not measured)
    corrected_stage: list
    corrected_rules: np.ndarray  # corrected rule ids given
    note: np.ndarray  # a note given
    items: dict[str, list]  # every item of the campaign, in its order, as columns: stage, origin, source, cohort,
    # correctness
    item_of: np.ndarray  # each rating's index into `items`
    contradicted: np.ndarray  # each item's count of contradicted cited rules; -1 where the evidence is unchecked

    def codes(self, dim: str) -> agreement.Table:
        return self.table._replace(code=self.scores[dim] - SCALE[0])

    @property
    def n_items(self) -> int:
        return len(self.contradicted)

    def item_attribute(self, key) -> np.ndarray:
        """Each rating's item's attribute."""
        return np.array(self.items[key], object)[self.item_of]

    def item_groups(self, keys: list) -> tuple[list, np.ndarray, np.ndarray]:
        """The rated items' distinct keys (`keys`: each item's), sorted; each rating's index into them; and how
        many rated items each covers."""
        names = sorted(set(keys))
        index = {name: g for g, name in enumerate(names)}
        of_item = np.fromiter(map(index.__getitem__, keys), np.intp, len(keys))
        used, group = agreement.unique_inverse(of_item[self.item_of])
        return [names[k] for k in used], group, _distinct_items(self, group, len(used))


def _json_column(values) -> list:
    """A JSON column's values from `fetch`, decoded in one call where they come as text."""
    if values and isinstance(values[0], str):  # a driver gives a column's values all as text, or none
        return orjson.loads("[" + ",".join(values) + "]")
    return [json_value(v) for v in values]


def _load(campaign, dims) -> Ratings:
    # the evidence check's count alone, extracted by the database (an annotation: "evidence__summary__…" in
    # values_list would first fail as a join, and that caught error's traceback holds this frame in a cycle)
    contradicted = KeyTransform("contradicted", KeyTransform("summary", "evidence"))
    item_rows = fetch(campaign.items.order_by("position").annotate(contradicted=contradicted)
                      .values_list(*ITEM_COLUMNS))
    ids, stages, correct, origins, models, sources, cohorts, contradicted = (
        (list(c) for c in zip(*item_rows)) if item_rows else [[]] * 8)
    model_names = dict(ModelVersion.objects.filter(pk__in=set(models) - {None}).values_list("pk", "name"))
    cohort_names = dict(Recording.objects.filter(pk__in=set(cohorts)).values_list("pk", "cohort__name"))
    items = {"stage": stages, "origin": origins, "cohort": [cohort_names[r] for r in cohorts],
             "source": [model_names[m] if m else f"expert: {source}" for m, source in zip(models, sources)],
             "correctness": ["correct" if right else "incorrect" for right in correct]}
    position = {pk: k for k, pk in enumerate(ids)}
    rows = fetch(RATING.current(campaign, rescore=False).order_by().values_list(*RATING_COLUMNS))  # any order
    rater_ids, item_ids, scores, fast, seconds, corrected_stage, corrected_rules, notes = (
        (list(c) for c in zip(*rows)) if rows else [[]] * 8)
    usernames = dict(get_user_model().objects.filter(pk__in=set(rater_ids)).values_list("pk", "username"))
    raters = list(map(usernames.__getitem__, rater_ids))
    n = len(rows)
    matrix = np.array([list(map(itemgetter(*dims), _json_column(scores)))], np.intp).reshape(n, len(dims))
    by_dim = {dim: matrix[:, k] for k, dim in enumerate(dims)}
    for dim, values in by_dim.items():
        outside = ~np.isin(values, SCALE)
        if outside.any():
            raise ValueError(f"a rating's {dim} score {int(values[outside][0])} is outside {SCALE}")
    item_of = np.fromiter(map(position.__getitem__, item_ids), np.intp, n)
    table = agreement.columns_table(raters, item_of, matrix[:, 0] if dims else np.full(n, SCALE[0]), SCALE)
    return Ratings(table=table, scores=by_dim, fast=np.array(fast, bool),
                   seconds=np.array([np.nan if s is None else s for s in seconds], float),
                   corrected_stage=[stage or "" for stage in corrected_stage],
                   corrected_rules=np.array([bool(r) for r in _json_column(corrected_rules)], bool),
                   note=np.array([bool(note) for note in notes], bool), items=items, item_of=item_of,
                   contradicted=np.array([-1 if c is None else json_value(c) for c in contradicted], np.int64))


def _statistics_mean(total: int | Fraction, n: int, integral: bool = True):
    """What statistics.mean returns for values summing exactly to `total`: an int when every value is an
    int and the mean is whole, else the float nearest the exact mean."""
    if isinstance(total, int):  # int / int is the nearest float already
        return total // n if integral and total % n == 0 else total / n
    value = total / n
    return value.numerator if integral and value.denominator == 1 else float(value)


def _exact_sum(values: np.ndarray) -> Fraction:
    """The exact sum of floats (as statistics.mean adds them), from their integer mantissas."""
    mantissa, exponent = np.frexp(values)
    whole = (mantissa * 2.0**53).astype(np.int64)
    return sum((Fraction(int(whole[exponent == e].astype(object).sum())) * Fraction(2) ** (int(e) - 53)
                for e in np.unique(exponent)), Fraction(0))


def _sqrt(value: Fraction) -> float:
    """The square root of a fraction, correctly rounded (as statistics.stdev gives it)."""
    with localcontext(prec=80):
        return float((Decimal(value.numerator) / Decimal(value.denominator)).sqrt())


def _describe_counts(counts) -> dict:
    """describe() from the number of ratings at each scale point: the same figures and types as statistics'
    mean, stdev and median give on the scores themselves."""
    counts = [int(c) for c in counts]
    n = sum(counts)
    s1 = sum(point * c for point, c in zip(SCALE, counts))
    s2 = sum(point * point * c for point, c in zip(SCALE, counts))
    median_value = None
    if n:
        ranked = np.cumsum(counts)
        at = [SCALE[int(np.searchsorted(ranked, k, side="right"))] for k in ((n - 1) // 2, n // 2)]
        median_value = at[0] if n % 2 else (at[0] + at[1]) / 2
    return {"n": n, "mean": _statistics_mean(s1, n) if n else None,
            "sd": _sqrt(Fraction(n * s2 - s1 * s1, n * (n - 1))) if n > 1 else None, "median": median_value,
            "distribution": {str(point): c for point, c in zip(SCALE, counts)}}


def describe(values) -> dict:
    """mean, SD, median, the 1-5 distribution and n of scores on the scale (None where undefined)."""
    return _describe_counts(np.bincount(np.asarray(values, np.intp) - SCALE[0], minlength=len(SCALE)))


def _by(data: Ratings, groups: tuple[list[str], np.ndarray, np.ndarray], dim: str) -> dict:
    names, group, items = groups
    scale = len(SCALE)
    counts = np.bincount(group * scale + data.scores[dim] - SCALE[0], minlength=len(names) * scale).reshape(-1, scale)
    return {name: {**_describe_counts(counts[g]), "items": int(items[g])} for g, name in enumerate(names)}


def _distinct_items(data: Ratings, group: np.ndarray, n_groups: int) -> np.ndarray:
    """How many distinct items each group's ratings cover."""
    covered = np.zeros((n_groups, data.n_items), bool)
    covered[group, data.item_of] = True
    return covered.sum(1)


def _alpha(t: agreement.Table, level, seed, n_boot=N_BOOT) -> dict:
    """Alpha with its interval on the pairable items (rated twice or more), their ratings and raters."""
    per_item = np.bincount(t.item, minlength=len(t.items))
    on_pairable = per_item[t.item] >= 2
    basis = {"items": int((per_item >= 2).sum()), "ratings": int(on_pairable.sum()),
             "raters": int(np.count_nonzero(np.bincount(t.rater[on_pairable], minlength=len(t.raters))))}
    undefined = {"value": None, "low": None, "high": None, **basis}
    if basis["items"] < 2:
        return undefined
    try:
        result = agreement.bootstrap_alpha(t, level, n_boot=n_boot, seed=seed, value_domain=SCALE)
    except ValueError:
        return undefined
    return {"value": _num(result.alpha), "low": _num(result.low), "high": _num(result.high), **basis}


def _num(value):
    return None if value is None or value != value else float(value)


def _pairs(t: agreement.Table) -> list[dict]:
    kappas = agreement.pairwise_cohen_kappa(t, weights="quadratic", labels=SCALE)
    return [{"a": a, "b": b, "kappa": _num(k.value), "items": k.n} for (a, b), k in kappas.items() if k.n]


def _crossed_block(data: Ratings) -> tuple[list, np.ndarray]:
    """The largest fully crossed block: the items rated by one same set of 2+ raters (most items, then most
    raters, then the set met first in the campaign's item order), as (rater indices, item indices)."""
    t = data.table
    present = np.zeros((len(t.items), len(t.raters)), bool)
    present[t.item, t.rater] = True
    candidates = np.flatnonzero(present.sum(1) >= 2)
    if not len(candidates):
        return [], candidates
    first_seen = np.full(len(t.items), data.n_items, np.intp)  # each item's place in the campaign's order
    np.minimum.at(first_seen, t.item, data.item_of)
    sets, which, size = agreement.unique_rows(present[candidates])
    met = np.full(len(sets), data.n_items, np.intp)
    np.minimum.at(met, which, first_seen[candidates])
    best = max(range(len(sets)), key=lambda k: (size[k], int(sets[k].sum()), -met[k]))
    return np.flatnonzero(sets[best]).tolist(), candidates[which == best]


def _icc(t: agreement.Table, raters: list, items: np.ndarray) -> dict:
    if not raters or len(items) < 2:
        return {"value": None, "raters": 0, "items": len(items)}
    block = agreement.subset(t, np.isin(t.rater, raters) & np.isin(t.item, items))
    return {"value": _num(agreement.icc(block, "ICC2k")), "raters": len(raters), "items": len(items),
            "rater_names": sorted(t.raters[r] for r in raters)}


def _rater_reliability(data: Ratings, dims) -> list[dict]:
    """Each rater's ratings, fast ratings, median time, and per dimension their mean score and bias (their
    score minus the mean of the other raters on the same item, averaged as statistics.mean would)."""
    t = data.table
    per_item = np.bincount(t.item, minlength=len(t.items))
    shared = per_item[t.item] >= 2
    totals = {dim: np.bincount(t.item, weights=data.scores[dim], minlength=len(t.items)).astype(np.int64)
              for dim in dims}
    out = []
    for r, rater in enumerate(t.raters):
        mine = t.rater == r
        seconds = data.seconds[mine]
        entry = {"rater": rater, "ratings": int(mine.sum()), "fast": int(data.fast[mine].sum()),
                 "median_seconds": median(seconds[~np.isnan(seconds)].tolist() or [0]), "dimensions": {}}
        chosen = mine & shared
        others = per_item[t.item[chosen]] - 1
        for dim in dims:
            x = data.scores[dim]
            others_total = totals[dim][t.item[chosen]] - x[chosen]
            diffs = x[chosen] - others_total / others
            integral = bool((others_total % others == 0).all())
            entry["dimensions"][dim] = {
                "mean": _statistics_mean(int(x[mine].sum()), int(mine.sum())),
                "bias": _statistics_mean(_exact_sum(diffs), len(diffs), integral) if len(diffs) else None,
                "items_shared": len(diffs)}
        out.append(entry)
    return out


def _corrections(data: Ratings) -> dict:
    rated_stage = data.item_attribute("stage")
    corrected = [(a, b) for a, b in zip(rated_stage, data.corrected_stage) if b]
    pairs = Counter(corrected)
    return {"ratings": len(data.seconds), "notes": int(data.note.sum()),
            "corrected_stages": len(corrected), "corrected_rules": int(data.corrected_rules.sum()),
            "stage_changed": sum(1 for a, b in corrected if a != b),
            "labels": list(STAGES), "confusion": [[pairs[a, b] for b in STAGES] for a in STAGES],
            "rows": "rated stage", "columns": "expert-corrected stage"}


def _paper_table(data: Ratings, dims, seed) -> dict:
    columns, column_of, items = data.item_groups(list(zip(data.items["cohort"], data.items["source"])))
    table = {"columns": [{"cohort": c, "source": s} for c, s in columns], "rows": []}
    for dim in dims:
        t = data.codes(dim)
        row = []
        for k in range(len(columns)):
            chosen = column_of == k
            stats = describe(data.scores[dim][chosen])
            row.append({"mean": stats["mean"], "sd": stats["sd"], "n": stats["n"], "items": int(items[k]),
                        "alpha": _alpha(agreement.subset(t, chosen), "ordinal", seed)})
        table["rows"].append({"dimension": dim, "cells": row})
    return table


@without_cyclic_gc()
def campaign_statistics(campaign) -> dict:
    """Every figure of the campaign (JSON-ready)."""
    rubric = campaign.rubric
    dims = rubric.keys
    data = _load(campaign, dims)
    seed = campaign.sample_seed
    n_ratings = len(data.seconds)
    out = {
        "campaign": {"id": campaign.pk, "name": campaign.name, "overlap": campaign.overlap,
                     "items": data.n_items, "ratings": n_ratings,
                     "items_rated": len(data.table.items), "raters": len(data.table.raters),
                     "fast_floor_s": campaign.fast_floor_s},
        "rubric": {"version": rubric.version, "dimensions": [{"key": d["key"], "title": d["title"]}
                                                              for d in rubric.dimensions]},
        "method": {"bootstrap": BOOTSTRAP_METHOD, "sd": "sample SD (n - 1)",
                   "icc": "ICC(2,k), two-way random, absolute agreement, on the largest fully crossed block",
                   "kappa": "quadratic-weighted Cohen's kappa on the items both raters rated"},
        "published": {**PUBLISHED, "means": list(PUBLISHED["means"])},
        "dimensions": {},
    }
    breakdowns = {f"by_{key}": data.item_groups(list(map(str, data.items[key])))
                  for key in ("source", "origin", "stage", "correctness")}
    block_raters, block_items = _crossed_block(data)
    for dim in dims:
        t = data.codes(dim)
        out["dimensions"][dim] = {
            "overall": {**describe(data.scores[dim]), "items": len(t.items)},
            **{name: _by(data, keys, dim) for name, keys in breakdowns.items()},
            "alpha_ordinal": _alpha(t, "ordinal", seed),
            "alpha_interval": _alpha(t, "interval", seed),
            "pairwise_weighted_kappa": _pairs(t),
            "icc2k": _icc(t, block_raters, block_items),
        }
    out["paper_table"] = _paper_table(data, dims, seed)
    out["raters"] = _rater_reliability(data, dims)
    out["corrections"] = _corrections(data)
    out["contradicted"] = _contradicted(data, rubric)
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


def _contradicted(data: Ratings, rubric) -> dict:
    """The share of rationales citing a rule their signal contradicts, overall, by source and by source and
    stage, and its Spearman correlation (with n) with the accuracy scores."""
    checked, hit = data.contradicted >= 0, data.contradicted > 0
    counts = Counter(zip(data.items["source"], data.items["stage"],
                         checked.tolist(), hit.tolist()))
    by_source, by_source_stage = defaultdict(Counter), defaultdict(lambda: defaultdict(Counter))
    for (source, stage, is_checked, is_hit), n in counts.items():
        for tally in (by_source[source], by_source_stage[source][stage]):
            tally["rationales"] += n * is_checked
            tally["contradicted"] += n * is_hit
    dim = accuracy_dimension(rubric)
    x = y = np.zeros(0)
    if dim:
        n_items = data.n_items
        count = np.bincount(data.item_of, minlength=n_items)
        total = np.bincount(data.item_of, weights=data.scores[dim], minlength=n_items).astype(np.int64)
        paired = checked & (count > 0)
        x, y = hit[paired].astype(float), total[paired] / count[paired]  # the item's exact mean, correctly rounded
    rho = p = None
    if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        from scipy.stats import spearmanr  # here, not at import: scipy.stats is ~70 MB in every process

        result = spearmanr(x, y)
        rho, p = _num(result.statistic), _num(result.pvalue)

    def share(tally: Counter) -> dict:
        return share_of(tally["rationales"], tally["contradicted"])

    return {
        "method": CONTRADICTED_METHOD,
        "overall": share_of(int(checked.sum()), int(hit.sum())),
        "unchecked_items": int((~checked).sum()),
        "by_source": {source: share(tally) for source, tally in sorted(by_source.items())},
        "by_source_stage": {source: {stage: share(stages[stage]) for stage in STAGES if stage in stages}
                            for source, stages in sorted(by_source_stage.items())},
        "accuracy_spearman": {"dimension": dim, "rho": rho, "p": p, "n": len(x)},
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
