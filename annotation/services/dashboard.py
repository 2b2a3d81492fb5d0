"""A scoring campaign's figures: progress, time per epoch, agreement between raters, against the
reference and the consensus, per stage, intra-rater from re-scored epochs; read against the
published human figures (docs/agreement-references.md). Statistics come from core.services.agreement.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from itertools import combinations

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import Count

from annotation.models import CampaignItem
from annotation.services.consensus import campaign_verdicts
from annotation.services.queue import current_labels
from annotation.services.review import review_curve
from core.services import agreement, statistics_cache
from core.services.rows import each_row, fetch, without_cyclic_gc
from datasets.constants import STAGES
from inference.models import Prediction

REFERENCE, CONSENSUS = "reference", "consensus"

# Published human agreement (docs/agreement-references.md), to read each figure against.
AASM_ISR = ("Rosenberg RS, Van Hout S. The American Academy of Sleep Medicine inter-scorer reliability program: "
            "sleep stage scoring. J Clin Sleep Med 2013;9(1):81-87.")
LEE_2022 = ("Lee YJ, Lee JY, Cho JH, Choi JH. Interrater reliability of sleep stage scoring: a meta-analysis. "
            "J Clin Sleep Med 2022;18(1):193-202.")
SIESTA = ("Danker-Hopfe H, Anderer P, Zeitlhofer J, et al. Interrater reliability for sleep scoring according to the "
          "Rechtschaffen & Kales and the new AASM standard. J Sleep Res 2009;18(1):74-84.")
BAKKER = "Bakker JP, et al. (2022), hypnodensity from multiple expert scorers."
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
    "unanimous": {"6": 0.46, "9": 0.38, "12": 0.32, "source": "share of unanimous epochs with 6 / 9 / 12 scorers "
                                                              "(Bakker et al. 2022)", "citation": BAKKER},
}
# The published human figures as ranges, the band every agreement chart draws (low = high: one study's figure).
HUMAN_RANGES = {
    "cohen_kappa": {"low": PUBLISHED["cohen_kappa"]["low"], "high": PUBLISHED["cohen_kappa"]["high"],
                    "source": "95% CI of the pooled Cohen's κ (Lee et al. 2022); SIESTA 0.76 lies inside"},
    "agreement": {"low": PUBLISHED["siesta"]["agreement"], "high": PUBLISHED["agreement_with_majority"]["value"],
                  "source": "agreement with the majority: SIESTA 82.0% (Danker-Hopfe et al. 2009), "
                            "AASM ISR 82.6% (Rosenberg & Van Hout 2013)"},
    "stage_kappa": {s: {"low": PUBLISHED["stage_kappa"][s], "high": PUBLISHED["stage_kappa"][s]} for s in STAGES},
    "stage_agreement": {s: {"low": v, "high": v} for s, v in PUBLISHED["stage_agreement_with_majority"].items()
                        if s in STAGES},
    "unanimous": {"low": min(v for k, v in PUBLISHED["unanimous"].items() if k.isdigit()),
                  "high": max(v for k, v in PUBLISHED["unanimous"].items() if k.isdigit()),
                  "source": "6 to 12 scorers (Bakker et al. 2022); fewer raters agree unanimously more often"},
}
DRIFT_BLOCK = 20  # a rater's labels per drift block
ONE_STR = {s: s for s in STAGES}  # a stage read from a row as the one str object of its stage, not one per row


def _finite(value):
    """The value at full precision, None where undefined (pages round, the JSON does not)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _raters_of(raters, epochs, items) -> int:
    """How many raters rated any of `items` (of the ratings' rater and item columns)."""
    return len({r for r, item in zip(raters, epochs) if item in items})


def _pair_summary(triples, a, b) -> dict:
    """Cohen's kappa, percent agreement and the confusion matrix (rows a, columns b) of two raters."""
    kappa, n, confusion = agreement.pair_agreement(triples, a, b, STAGES)
    return {"kappa": _finite(kappa), "n": n,
            "agreement": float(confusion.trace() / n) if n else None, "confusion": confusion.tolist()}


@without_cyclic_gc()
def campaign_statistics(campaign) -> dict:
    """Every figure of the dashboard, with the number of items or labels behind each."""
    # One pass over the current labels in the order saved (for the drift), never held as a list of rows: the
    # first pass as columns, the re-scores, and each rater's server seconds (every label) and first-pass count.
    first_raters, first_epochs, first_stages, rescores = [], [], [], []
    seconds, done = defaultdict(list), Counter()
    for r, e, s, rescore, spent in each_row(current_labels(campaign).order_by("created_at", "pk").values_list(
            "rater_id", "item__epoch_id", "stage", "rescore", "server_seconds")):
        if rescore:
            rescores.append((r, e, s))
        else:
            first_raters.append(r)
            first_epochs.append(e)
            first_stages.append(ONE_STR.get(s, s))
            done[r] += 1
        if spent is not None:
            seconds[r].append(spent)
    scorers = sorted(set(first_raters))
    raters = sorted(set(campaign.raters.values_list("pk", flat=True)) | set(scorers))
    names = dict(get_user_model().objects.filter(pk__in=raters).values_list("pk", "username"))
    items = CampaignItem.objects.filter(campaign=campaign)
    reference = {e: ONE_STR[s] for e, s in items.values_list("epoch_id", "epoch__stage") if s in STAGES}
    n_items = items.count()
    result = {
        "campaign": campaign.name, "items": n_items, "overlap": campaign.overlap,
        "labels": len(first_raters), "target_labels": n_items * campaign.overlap,
        "progress": [{"rater": names.get(r, str(r)), "done": done[r],
                      "median_seconds": statistics.median(seconds[r]) if r in seconds else None}
                     for r in raters],
        "published": PUBLISHED,
    }
    # parsed once each: the raters' first labels, and those with the reference and consensus as pseudo-raters
    ratings = agreement.columns_table(np.array(first_raters, np.int64), np.array(first_epochs, np.int64), first_stages)
    consensus, result["to_adjudicate"] = campaign_verdicts(campaign, ratings)  # for_adjudication's count
    truths = {name: truth for name, truth in ((REFERENCE, reference), (CONSENSUS, consensus)) if truth}
    pairs = _with_pseudo_raters(first_raters, first_epochs, first_stages, truths)
    ratings_per_item = Counter(first_epochs)
    tally = Counter(ratings_per_item.values()) | {0: n_items - len(ratings_per_item)}
    result["coverage"] = [{"ratings": m, "items": tally[m]} for m in sorted(tally, reverse=True) if tally[m]]
    if len(scorers) >= 2:
        result["pairwise"] = [{"a": names.get(a), "b": names.get(b), **_pair_summary(pairs, a, b)}
                              for a, b in combinations(scorers, 2)]
    # Agreement among raters needs an item labelled twice (an overlap-1 campaign has none): left out until then.
    if len(scorers) >= 2 and max(ratings_per_item.values(), default=0) >= 2:
        fleiss = agreement.fleiss_kappa(ratings, STAGES)
        fleiss_items = {i for i, k in ratings_per_item.items() if k == fleiss.ratings_per_item}
        pairable = {i for i, k in ratings_per_item.items() if k >= 2}
        result["fleiss_kappa"] = {"value": _finite(fleiss.value), "n_items": fleiss.n_items,
                                  "ratings_per_item": fleiss.ratings_per_item,
                                  "raters": _raters_of(first_raters, first_epochs, fleiss_items),
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
                                            "raters": _raters_of(first_raters, first_epochs, pairable),
                                            "method": method}
        result["percent_agreement"] = agreement.percent_agreement(ratings)._asdict()
        result["agreement_with_majority"] = agreement.agreement_with_majority(ratings)._asdict()
        result["stage_kappa"] = {s: _finite(v) for s, v in agreement.per_label_kappa(ratings, STAGES).items()}
        result["stage_agreement_with_majority"] = {
            s: a._asdict() for s, a in agreement.agreement_with_majority_per_label(ratings, STAGES).items()}
    result["against"] = {name: [{"rater": names.get(r), **_pair_summary(pairs, r, name)} for r in scorers]
                         for name in truths}
    result["intra_rater"] = _intra_rater(first_raters, first_epochs, first_stages, rescores, names)
    result["human_ranges"] = HUMAN_RANGES
    result["unanimous"] = _unanimous(ratings)
    result["hypnodensity"] = _hypnodensity(campaign, ratings)
    result["per_rater"] = _per_rater(first_raters, first_epochs, first_stages, seconds, consensus, names,
                                     result["intra_rater"])
    result["review_curve"] = review_curve(campaign)  # review campaigns only (None otherwise)
    return result


def _with_pseudo_raters(raters: list, epochs: list, stages: list, truths: dict) -> agreement.Table:
    """The first-pass labels' table with each truth (reference, consensus: {epoch: stage}) as one more rater."""
    pseudo_raters, pseudo_epochs, pseudo_stages = [], [], []
    for name, truth in truths.items():
        pseudo_raters += [name] * len(truth)
        pseudo_epochs += truth.keys()
        pseudo_stages += truth.values()
    return agreement.columns_table(raters + pseudo_raters, np.array(epochs + pseudo_epochs, np.int64),
                                   stages + pseudo_stages)


def _intra_rater(raters, epochs, stages, rescores, names) -> list[dict]:
    """Each rater's re-scored epochs (rescores: (rater, epoch, stage) in the order saved) against their first
    label of the same epoch (the first pass as rater, epoch and stage columns)."""
    again = {(r, e) for r, e, _ in rescores}
    first = {(r, e): s for r, e, s in zip(raters, epochs, stages) if (r, e) in again}
    pairs = defaultdict(list)
    for r, e, s in rescores:
        if (r, e) in first:
            pairs[r].append((e, first[(r, e)], s))
    out = []
    for rater, rows in sorted(pairs.items()):
        triples = [("first", e, a) for e, a, _ in rows] + [("again", e, b) for e, _, b in rows]
        out.append({"rater": names.get(rater), **_pair_summary(triples, "first", "again")})
    return out


def _unanimous(ratings: agreement.Table) -> dict:
    """The share of unanimous epochs (items with two ratings or more), overall and per plurality stage."""
    shares = agreement.unanimity(ratings, STAGES)
    return {"overall": {"value": _finite(shares["overall"].value), "n": shares["overall"].n},
            "per_stage": {s: {"value": v.value, "n": v.n} for s, v in shares["per_label"].items()},
            "method": "first-pass labels; epochs rated twice or more; per stage over the epochs whose plurality "
                      "stage (no tie) it is"}


def _hypnodensity(campaign, ratings: agreement.Table) -> list[dict]:
    """Per recording: each rated epoch's share of raters per stage (first-pass labels) beside the stage and
    probability of the model version with the most predictions on the campaign's epochs, and the recording's
    unanimous shares."""
    items = fetch(CampaignItem.objects.filter(campaign=campaign).values_list("epoch_id", "recording_id", "epoch__index"))
    epochs = {e: recording for e, recording, _ in items}
    index_of = {e: index for e, _, index in items}
    del items
    predictions = (Prediction.objects.made_from_current_signals()  # a subquery, not 100,000 bound ids
                   .filter(epoch_id__in=CampaignItem.objects.filter(campaign=campaign).values("epoch_id"),
                           stage__in=STAGES))
    counts = predictions.values("model_version_id", "model_version__name").annotate(n=Count("pk"))
    version = max(counts, key=lambda c: (c["n"], c["model_version_id"]), default=None)
    model = {} if version is None else {
        e: (ONE_STR.get(stage, stage), p)
        for e, stage, p in fetch(predictions.filter(model_version_id=version["model_version_id"])
                                 .values_list("epoch_id", "stage", "probability"))}
    shares = agreement.label_shares(ratings, STAGES)
    raters = dict(zip(ratings.items, np.bincount(ratings.item, minlength=len(ratings.items)).tolist()))
    recording_of = np.array([epochs.get(e, -1) for e in ratings.items], np.int64)[ratings.item]
    shares_of = defaultdict(list)  # per recording, in one pass
    for e in shares:
        shares_of[epochs.get(e)].append(e)
    out = []
    for recording, epoch_count in campaign.recordings.order_by("pk").values_list("pk", "epoch_count"):
        rated = sorted(shares_of[recording], key=index_of.get)
        out.append({
            "recording": recording, "epoch_count": epoch_count,
            "model_version": version and version["model_version__name"],
            "epochs": [{"index": index_of[e], "raters": raters[e], "shares": shares[e],
                        "model_stage": model.get(e, (None, None))[0],
                        "model_probability": model.get(e, (None, None))[1]} for e in rated],
            "unanimous": _unanimous(agreement.subset(ratings, recording_of == recording)),
        })
    return out


def _per_rater(raters, epochs, stages, seconds, consensus, names, intra_rater) -> dict:
    """Per rater, for one table and one plot: seconds per epoch, drift (agreement with the consensus in
    blocks of DRIFT_BLOCK of their first-pass labels, in the order saved) and intra-rater agreement; from the
    first pass as rater, epoch and stage columns in the order saved and each rater's server seconds."""
    hits = defaultdict(list)
    for rater, epoch, stage in zip(raters, epochs, stages):
        if epoch in consensus:
            hits[rater].append(stage == consensus[epoch])
    intra = {row["rater"]: row for row in intra_rater}
    rows = []
    for rater in sorted(set(seconds) | set(hits)):
        blocks = [hits[rater][k:k + DRIFT_BLOCK] for k in range(0, len(hits[rater]), DRIFT_BLOCK)]
        drift = [{"block": b + 1, "first_label": b * DRIFT_BLOCK + 1, "agreement": sum(block) / len(block),
                  "n": len(block)} for b, block in enumerate(blocks)]
        name = names.get(rater, str(rater))
        rows.append({
            "rater": name,
            "seconds_per_epoch": {"median": statistics.median(seconds[rater]) if seconds[rater] else None,
                                  "mean": statistics.fmean(seconds[rater]) if seconds[rater] else None,
                                  "n": len(seconds[rater])},
            "drift": drift,
            "drift_change": drift[-1]["agreement"] - drift[0]["agreement"] if len(drift) >= 2 else None,
            "intra_rater": {k: intra[name][k] for k in ("kappa", "agreement", "n")} if name in intra else None,
        })
    return {"block_labels": DRIFT_BLOCK, "raters": rows,
            "method": "seconds: the server's time from serving to save of every label (re-scores too); drift: the rater's first-pass labels of "
                      "epochs with a consensus, in the order saved, in blocks, against the consensus (which counts "
                      "the rater's own label); drift_change: last block minus first"}


# --- big campaigns: the last stored result and a recompute job (core.services.statistics_cache) -----------

def watermark(campaign) -> dict:
    """What the figures are computed from: every label saved (append-only), adjudication and prediction."""
    from django.db.models import Max

    from annotation.models import Adjudication, Label

    labels = Label.objects.filter(item__campaign=campaign).aggregate(answers=Count("pk"), last=Max("pk"))
    return {"answers": labels["answers"], "last_label": labels["last"],
            "last_adjudication": Adjudication.objects.filter(item__campaign=campaign).aggregate(m=Max("pk"))["m"],
            "last_prediction": Prediction.objects.aggregate(m=Max("pk"))["m"]}


def dashboard_statistics(campaign) -> statistics_cache.Statistics:
    """The dashboard's figures: computed now for a small campaign, else the last stored ones (a job refreshes them)."""
    from annotation.models import StatisticsJob

    return statistics_cache.statistics(StatisticsJob, campaign, campaign_statistics, watermark(campaign))


def run_statistics_job(job_id: int, **placement):
    from annotation.models import StatisticsJob

    return statistics_cache.recompute(StatisticsJob, job_id, campaign_statistics, watermark, **placement)
