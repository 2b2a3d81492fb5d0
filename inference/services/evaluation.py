"""Model evaluation against expert labels (spec/sleepvlm.md, agreement.md), computed with scikit-learn.

Pooled and per-subject accuracy, macro-F1, per-stage F1 and Cohen's kappa over the epochs with a
parsed prediction and a scored reference; rule-set IoU in two labelled conventions (the authors': every
such epoch; and only those whose reference lists rule ids); parse-failure rate. Several model versions are
compared on the epochs that every one of them predicted.
"""
from __future__ import annotations

import csv
import io

import numpy as np

from datasets.constants import STAGES, UNSCORED
from datasets.models import Epoch
from inference.models import ModelVersion, Prediction
from inference.services.evidence import contradicted_share

REFERENCES = ("hypnogram", "consensus")
# Reference stages that come from later apps, by name: cohort -> {epoch id: (recording id, stage, rule ids)}.
# The annotation app registers "consensus" in its AppConfig.ready(), so inference never imports annotation
# (the layering core <- datasets <- inference <- annotation, enforced by tests/test_core.py).
REFERENCE_PROVIDERS: dict = {}
PARSED = (Prediction.OK, Prediction.REPAIRED)


class EvaluationError(Exception):
    """The evaluation cannot be computed as asked; the message says why."""


def stage_metrics(y_true: list[str], y_pred: list[str]) -> dict:
    """Accuracy, macro-F1 (over the stages present), per-stage F1, Cohen's kappa, confusion matrix."""
    if not y_true:
        return {"n": 0, "accuracy": None, "macro_f1": None, "kappa": None, "per_stage_f1": {}, "confusion": []}
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score  # here: with it come pandas and scipy

    per_stage = f1_score(y_true, y_pred, labels=list(STAGES), average=None, zero_division=0)
    present = [i for i, s in enumerate(STAGES) if s in y_true or s in y_pred]
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),  # stages present
        "kappa": _kappa(y_true, y_pred),
        "per_stage_f1": {STAGES[i]: float(per_stage[i]) for i in present},
        "confusion": confusion_matrix(y_true, y_pred, labels=list(STAGES)).tolist(),
    }


def _kappa(y_true, y_pred) -> float | None:
    if len(set(y_true) | set(y_pred)) < 2:
        return None  # undefined with a single label on both sides
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(y_true, y_pred, labels=list(STAGES)))


def jaccard(predicted, reference) -> float:
    """IoU of two rule-id sets as the authors score it: a missing set is empty, both empty 1.0, one empty 0.0."""
    p, r = set(predicted or ()), set(reference or ())
    return len(p & r) / len(p | r) if p | r else 1.0


def rule_iou(pairs: list[tuple[list[str], list[str]]]) -> dict:
    """Mean IoU of (predicted, reference) rule sets: over all pairs (the authors' figure, paper table) and over
    the pairs whose reference lists rule ids."""
    scores = [(jaccard(p, r), bool(r)) for p, r in pairs]
    return {"all_epochs": _mean([s for s, _ in scores]), "annotated_epochs": _mean([s for s, ref in scores if ref])}


def _mean(values: list[float]) -> dict:
    return {"n": len(values), "mean": float(np.mean(values)) if values else None}


def _reference_stages(cohort, reference: str) -> dict[int, tuple[int, str, list[str]]]:
    """epoch id -> (recording id, reference stage, reference rule ids), scored epochs only.

    "consensus" asks the provider registered in REFERENCE_PROVIDERS (annotation's expert consensus:
    adjudicated stage, else a non-tied majority; no rule ids)."""
    if reference not in REFERENCES:
        raise EvaluationError(f"unknown reference {reference!r}; expected one of {', '.join(REFERENCES)}")
    if reference == "consensus":
        provider = REFERENCE_PROVIDERS.get("consensus")
        stages = provider(cohort) if provider is not None else {}
        if not stages:
            raise EvaluationError(
                "reference 'consensus' needs expert stage labels from the annotation app, and this cohort has none; "
                "use --reference hypnogram"
            )
        return stages
    rows = Epoch.objects.filter(recording__cohort=cohort).exclude(stage=UNSCORED)
    return {pk: (rec, stage, rules) for pk, rec, stage, rules in
            rows.values_list("pk", "recording_id", "stage", "reference_rules")}


def evaluate(model_version: ModelVersion, cohort, *, reference: str = "hypnogram", epoch_ids=None) -> dict:
    """The evaluation report of one model version on one cohort (optionally restricted to epoch_ids)."""
    references = _reference_stages(cohort, reference)
    predictions = Prediction.objects.filter(model_version=model_version, epoch__recording__cohort=cohort)
    if epoch_ids is not None:
        predictions = predictions.filter(epoch_id__in=epoch_ids)
    rows = list(predictions.values_list("epoch_id", "epoch__recording__name", "status", "stage", "rule_ids",
                                        "unknown_rule_ids", "evidence"))
    attempted = [r for r in rows if r[2] != Prediction.SKIPPED]
    failures = sum(1 for r in attempted if r[2] == Prediction.FAILED)
    scored = [r for r in attempted if r[2] in PARSED and r[0] in references]
    y_true = [references[r[0]][1] for r in scored]
    y_pred = [r[3] for r in scored]
    by_subject: dict[str, tuple[list, list]] = {}
    for row, truth in zip(scored, y_true):
        by_subject.setdefault(row[1], ([], []))
        by_subject[row[1]][0].append(truth)
        by_subject[row[1]][1].append(row[3])
    return {
        "model": model_version.name,
        "cohort": cohort.name,
        "reference": reference,
        "predicted": len(rows),
        "skipped": len(rows) - len(attempted),
        "parse_failures": failures,
        "parse_failure_rate": failures / len(attempted) if attempted else None,
        "pooled": stage_metrics(y_true, y_pred),
        "per_subject": [{"subject": subject, **_subject(*pair)} for subject, pair in sorted(by_subject.items())],
        "rule_iou": rule_iou([(r[4] + r[5], references[r[0]][2]) for r in scored]),  # every id the output cited
        # rationales citing a rule the measured signal contradicts (inference.services.evidence)
        "contradicted": contradicted_share(r[6] for r in scored),
        "contradicted_by_stage": {s: contradicted_share(r[6] for r in scored if r[3] == s) for s in STAGES},
    }


def _subject(y_true, y_pred) -> dict:
    metrics = stage_metrics(y_true, y_pred)
    return {k: metrics[k] for k in ("n", "accuracy", "macro_f1", "kappa", "per_stage_f1")}


def compare(model_versions: list[ModelVersion], cohort, *, reference: str = "hypnogram") -> dict:
    """Several versions side by side on the same epochs: those every version parsed (paper's table)."""
    if not model_versions:
        raise EvaluationError("name at least one model version")
    common = None
    for version in model_versions:
        ids = set(Prediction.objects.filter(model_version=version, epoch__recording__cohort=cohort,
                                            status__in=PARSED).values_list("epoch_id", flat=True))
        common = ids if common is None else common & ids
    reports = [evaluate(v, cohort, reference=reference, epoch_ids=common) for v in model_versions]
    return {"cohort": cohort.name, "reference": reference, "common_epochs": len(common), "models": reports}


TABLE_COLUMNS = ["model", "n", "accuracy", "macro_f1", "kappa", *[f"f1_{s}" for s in STAGES],
                 "rule_iou_all_epochs", "rule_iou_annotated_epochs", "parse_failure_rate", "contradicted_share"]


def table_rows(reports: list[dict]) -> list[dict]:
    """One row per model version, the columns of the paper's table (its rule IoU: rule_iou_all_epochs)."""
    rows = []
    for report in reports:
        pooled = report["pooled"]
        rows.append({
            "model": report["model"], "n": pooled["n"], "accuracy": pooled["accuracy"], "macro_f1": pooled["macro_f1"],
            "kappa": pooled["kappa"], **{f"f1_{s}": pooled["per_stage_f1"].get(s) for s in STAGES},
            "rule_iou_all_epochs": report["rule_iou"]["all_epochs"]["mean"],
            "rule_iou_annotated_epochs": report["rule_iou"]["annotated_epochs"]["mean"],
            "parse_failure_rate": report["parse_failure_rate"],
            "contradicted_share": report["contradicted"]["share"],
        })
    return rows


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text cell a spreadsheet would run as a formula, quoted with a leading '; other values as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value


def to_csv(reports: list[dict]) -> str:
    """Pooled rows per model, then per-subject rows (scope column says which); text cells formula-safe."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["scope", "subject", *TABLE_COLUMNS], extrasaction="ignore")
    writer.writeheader()
    for report, row in zip(reports, table_rows(reports)):
        rows = [{"scope": "pooled", "subject": "", **row}]
        rows += [{
            "scope": "subject", "subject": subject["subject"], "model": report["model"], "n": subject["n"],
            "accuracy": subject["accuracy"], "macro_f1": subject["macro_f1"], "kappa": subject["kappa"],
            **{f"f1_{s}": subject["per_stage_f1"].get(s) for s in STAGES},
        } for subject in report["per_subject"]]
        writer.writerows({key: spreadsheet_safe(value) for key, value in r.items()} for r in rows)
    return buffer.getvalue()
