"""A scoring campaign's figures: progress, time per epoch, agreement between raters, against the
reference and the consensus, per stage, intra-rater from re-scored epochs; read against the
published human figures (docs/agreement-references.md). Statistics come from core.services.agreement.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from itertools import combinations

from django.contrib.auth import get_user_model

from annotation.models import CampaignItem
from annotation.services.consensus import campaign_consensus
from annotation.services.queue import current_labels
from core.services import agreement
from datasets.constants import STAGES

REFERENCE, CONSENSUS = "reference", "consensus"

# Published human agreement (docs/agreement-references.md), to read each figure against.
AASM_ISR = ("Rosenberg RS, Van Hout S. The American Academy of Sleep Medicine inter-scorer reliability program: "
            "sleep stage scoring. J Clin Sleep Med 2013;9(1):81-87.")
LEE_2022 = ("Lee YJ, Lee JY, Cho JH, Choi JH. Interrater reliability of sleep stage scoring: a meta-analysis. "
            "J Clin Sleep Med 2022;18(1):193-202.")
SIESTA = ("Danker-Hopfe H, Anderer P, Zeitlhofer J, et al. Interrater reliability for sleep scoring according to the "
          "Rechtschaffen & Kales and the new AASM standard. J Sleep Res 2009;18(1):74-84.")
PUBLISHED = {
    "agreement_with_majority": {"value": 0.826, "source": "AASM inter-scorer reliability program (Rosenberg & Van Hout 2013)",
                                "citation": AASM_ISR},
    "stage_agreement_with_majority": {"R": 0.905, "N3": 0.674, "N1": 0.630,
                                      "source": "AASM ISR (Rosenberg & Van Hout 2013)", "citation": AASM_ISR},
    "cohen_kappa": {"value": 0.76, "low": 0.71, "high": 0.81, "source": "meta-analysis of 11 studies (Lee et al. 2022)",
                    "citation": LEE_2022},
    "stage_kappa": {"W": 0.70, "N1": 0.24, "N2": 0.57, "N3": 0.57, "R": 0.69, "source": "Lee et al. 2022",
                    "citation": LEE_2022},
    "siesta": {"agreement": 0.820, "kappa": 0.76, "source": "SIESTA, AASM rules (Danker-Hopfe et al. 2009)",
               "citation": SIESTA},
}


def _finite(value):
    """The value at full precision, None where undefined (pages round, the JSON does not)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _raters_of(triples, items) -> int:
    """How many raters rated any of `items`."""
    return len({r for r, item, _ in triples if item in items})


def _pair_summary(triples, a, b) -> dict:
    """Cohen's kappa, percent agreement and the confusion matrix (rows a, columns b) of two raters."""
    kappa, n, confusion = agreement.pair_agreement(triples, a, b, STAGES)
    return {"kappa": _finite(kappa), "n": n,
            "agreement": float(confusion.trace() / n) if n else None, "confusion": confusion.tolist()}


def campaign_statistics(campaign) -> dict:
    """Every figure of the dashboard, with the number of items or labels behind each."""
    labels = list(current_labels(campaign).values_list("rater_id", "item__epoch_id", "stage", "rescore",
                                                        "seconds_spent"))
    first = [(r, e, s) for r, e, s, rescore, _ in labels if not rescore]
    scorers = sorted({r for r, _, _ in first})
    raters = sorted(set(campaign.raters.values_list("pk", flat=True)) | set(scorers))
    names = dict(get_user_model().objects.filter(pk__in=raters).values_list("pk", "username"))
    items = CampaignItem.objects.filter(campaign=campaign)
    reference = {e: s for e, s in items.values_list("epoch_id", "epoch__stage") if s in STAGES}
    consensus = {s.epoch_id: s.stage for s in campaign_consensus(campaign).values() if s.stage}

    seconds, done = defaultdict(list), defaultdict(int)
    for rater, _, _, rescore, spent in labels:
        done[rater] += not rescore
        if spent is not None:
            seconds[rater].append(spent)
    n_items = items.count()
    result = {
        "campaign": campaign.name, "items": n_items, "overlap": campaign.overlap,
        "labels": len(first), "target_labels": n_items * campaign.overlap,
        "progress": [{"rater": names.get(r, str(r)), "done": done[r],
                      "median_seconds": statistics.median(seconds[r]) if seconds[r] else None}
                     for r in raters],
        "published": PUBLISHED,
    }
    # parsed once each: the raters' first labels, and those with the reference and consensus as pseudo-raters
    ratings = agreement.table(first)
    truths = {name: truth for name, truth in ((REFERENCE, reference), (CONSENSUS, consensus)) if truth}
    pairs = agreement.table(first + [(name, e, s) for name, truth in truths.items() for e, s in truth.items()])
    ratings_per_item = Counter(item for _, item, _ in first)
    tally = Counter(ratings_per_item.values()) | {0: n_items - len(ratings_per_item)}
    result["coverage"] = [{"ratings": m, "items": tally[m]} for m in sorted(tally, reverse=True) if tally[m]]
    if len(scorers) >= 2:
        result["pairwise"] = [{"a": names.get(a), "b": names.get(b), **_pair_summary(pairs, a, b)}
                              for a, b in combinations(scorers, 2)]
        fleiss = agreement.fleiss_kappa(ratings, STAGES)
        fleiss_items = {i for i, k in ratings_per_item.items() if k == fleiss.ratings_per_item}
        pairable = {i for i, k in ratings_per_item.items() if k >= 2}
        result["fleiss_kappa"] = {"value": _finite(fleiss.value), "n_items": fleiss.n_items,
                                  "ratings_per_item": fleiss.ratings_per_item,
                                  "raters": _raters_of(first, fleiss_items),
                                  "method": "items with exactly ratings_per_item ratings (the commonest count of two "
                                            "or more); Fleiss' kappa needs the same number of ratings on every item"}
        method = ("nominal, on every item with two ratings or more (missing ratings allowed); 95% percentile "
                  "interval of 1,000 seeded resamples of items")
        try:
            alpha = agreement.bootstrap_alpha(ratings, "nominal", n_boot=1000, seed=campaign.sample_seed)
        except ValueError as exc:  # one stage only, or no item labelled twice yet: alpha is undefined
            result["krippendorff_alpha"] = {"value": None, "low": None, "high": None, "n_items": 0, "raters": 0,
                                            "method": f"{method}; undefined: {exc}"}
        else:
            result["krippendorff_alpha"] = {"value": _finite(alpha.alpha), "low": _finite(alpha.low),
                                            "high": _finite(alpha.high), "n_items": alpha.n_items,
                                            "raters": _raters_of(first, pairable),
                                            "method": method}
        result["percent_agreement"] = agreement.percent_agreement(ratings)._asdict()
        result["agreement_with_majority"] = agreement.agreement_with_majority(ratings)._asdict()
        result["stage_kappa"] = {s: _finite(v) for s, v in agreement.per_label_kappa(ratings, STAGES).items()}
        result["stage_agreement_with_majority"] = _stage_agreement(first, agreement.majority(ratings))
    result["against"] = {name: [{"rater": names.get(r), **_pair_summary(pairs, r, name)} for r in scorers]
                         for name in truths}
    result["intra_rater"] = _intra_rater(labels, names)
    return result


def _stage_agreement(triples, majorities) -> dict:
    """Per stage: share of ratings equal to the item's majority, over items whose majority is that stage."""
    hits, totals = defaultdict(int), defaultdict(int)
    for _, item, stage in triples:
        summary = majorities[item]
        if summary.tie or summary.n < 2:
            continue
        totals[summary.label] += 1
        hits[summary.label] += stage == summary.label
    return {s: {"value": hits[s] / totals[s], "n": totals[s]} for s in STAGES if totals[s]}


def _intra_rater(labels, names) -> list[dict]:
    """Each rater's re-scored epochs against their first label of the same epoch."""
    first = {(r, e): s for r, e, s, rescore, _ in labels if not rescore}
    pairs = defaultdict(list)
    for r, e, s, rescore, _ in labels:
        if rescore and (r, e) in first:
            pairs[r].append((e, first[(r, e)], s))
    out = []
    for rater, rows in sorted(pairs.items()):
        triples = [("first", e, a) for e, a, _ in rows] + [("again", e, b) for e, _, b in rows]
        out.append({"rater": names.get(rater), **_pair_summary(triples, "first", "again")})
    return out
