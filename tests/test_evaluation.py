"""Evaluation numbers: hand-computed worked examples, scikit-learn and statsmodels as references."""
import csv
import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa

from datasets.constants import STAGES
from inference.models import AasmRule, InferenceJob, ModelVersion, Prediction
from inference.services.evaluation import EvaluationError, compare, evaluate, rule_iou, stage_metrics, table_rows, to_csv
from core.roles import CURATOR
from tests.factories import make_recording

TRUE = ["W", "W", "N2", "N2", "N2", "R"]
PRED = ["W", "N1", "N2", "N2", "R", "R"]


def test_stage_metrics_match_a_hand_computed_example():
    m = stage_metrics(TRUE, PRED)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # W: P 1, R 1/2; N1: 0; N2: P 1, R 2/3; R: P 1/2, R 1 -> F1 2/3, 0, 4/5, 2/3
    assert m["per_stage_f1"] == pytest.approx({"W": 2 / 3, "N1": 0.0, "N2": 0.8, "R": 2 / 3})
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0 + 0.8 + 2 / 3) / 4)
    # po = 24/36, pe = (2*1 + 3*2 + 1*2)/36 = 10/36 -> kappa = 14/26
    assert m["kappa"] == pytest.approx(7 / 13)
    assert m["confusion"][STAGES.index("W")] == [1, 1, 0, 0, 0]
    assert m["confusion"][STAGES.index("N2")] == [0, 0, 2, 0, 1]


def test_kappa_agrees_with_statsmodels_on_a_random_night():
    rng = np.random.default_rng(3)
    truth = list(rng.choice(STAGES, 500, p=[0.15, 0.1, 0.45, 0.15, 0.15]))
    pred = [t if rng.random() < 0.8 else str(rng.choice(STAGES)) for t in truth]
    m = stage_metrics(truth, pred)
    table = np.array(m["confusion"])
    assert m["kappa"] == pytest.approx(cohens_kappa(table).kappa)
    assert m["kappa"] == pytest.approx(cohen_kappa_score(truth, pred))
    assert m["accuracy"] == pytest.approx(np.trace(table) / table.sum())


def test_rule_iou_in_both_conventions():
    """Authors': every pair, a missing set empty, both empty 1, one empty 0; the other: annotated pairs only."""
    pairs = [(["N2.1"], ["N2.1", "N2.2"]), ([], ["W.1"]), (["R.1"], []), (["N3.1"], ["N3.1"]), (None, []), ([], None)]
    assert rule_iou(pairs) == {"all_epochs": {"n": 6, "mean": pytest.approx((0.5 + 0 + 0 + 1 + 1 + 1) / 6)},
                               "annotated_epochs": {"n": 3, "mean": pytest.approx((0.5 + 0 + 1) / 3)}}
    assert rule_iou([(["R.1"], [])]) == {"all_epochs": {"n": 1, "mean": 0.0}, "annotated_epochs": {"n": 0, "mean": None}}
    assert rule_iou([]) == {"all_epochs": {"n": 0, "mean": None}, "annotated_epochs": {"n": 0, "mean": None}}


@pytest.mark.django_db
def test_report_from_predictions_pooled_per_subject_and_failures():
    a = make_recording("Eval", "s1", ["W", "W", "N2", "unscored"], rules=[["W.1"], ["W.1", "W.2"], ["N2.1"], []])
    b = make_recording("Eval", "s2", ["N2", "N2", "R"])
    version = ModelVersion.objects.create(name="m1", backend="baseline")
    outputs = {  # (recording, index): (status, stage, rules)
        (a, 0): ("ok", "W", ["W.1"]), (a, 1): ("ok", "N1", ["N1.1"]), (a, 2): ("ok", "N2", ["N2.1", "N2.2"]),
        (a, 3): ("ok", "N2", []), (b, 0): ("skipped", "", []), (b, 1): ("failed", "", []), (b, 2): ("repaired", "R", []),
    }
    for (recording, index), (status, stage, rules) in outputs.items():
        Prediction.objects.create(epoch=recording.epochs.get(index=index), model_version=version, status=status,
                                  stage=stage, rule_ids=rules, version_hash="h")
    report = evaluate(version, a.cohort)
    assert report["predicted"] == 7 and report["skipped"] == 1 and report["parse_failures"] == 1
    assert report["parse_failure_rate"] == pytest.approx(1 / 6)
    # scored: a0 W/W, a1 W/N1, a2 N2/N2, b2 R/R (a3 has an unscored reference, b1 failed, b0 skipped)
    assert report["pooled"]["n"] == 4 and report["pooled"]["accuracy"] == pytest.approx(0.75)
    assert [(s["subject"], s["n"], s["accuracy"]) for s in report["per_subject"]] == [("s1", 3, pytest.approx(2 / 3)), ("s2", 1, 1.0)]
    # IoU: a0 (1), a1 (0), a2 (1/2) have reference rules; b2 has none on either side (1, authors' convention only)
    assert report["rule_iou"] == {"all_epochs": {"n": 4, "mean": pytest.approx(2.5 / 4)},
                                  "annotated_epochs": {"n": 3, "mean": pytest.approx(0.5)}}
    with pytest.raises(EvaluationError, match="annotation app"):
        evaluate(version, a.cohort, reference="consensus")


@pytest.mark.django_db
def test_compare_uses_the_epochs_every_version_parsed_and_exports(tmp_path):
    rec = make_recording("Cmp", "s1", ["W", "N2", "N2", "R"])
    v1 = ModelVersion.objects.create(name="v1", backend="baseline")
    v2 = ModelVersion.objects.create(name="v2", backend="openai", settings={"base_url": "http://x", "model": "m"})
    for i, (s1, s2) in enumerate([("W", "W"), ("N2", "N1"), ("N2", None), ("R", "R")]):
        epoch = rec.epochs.get(index=i)
        Prediction.objects.create(epoch=epoch, model_version=v1, status="ok", stage=s1, version_hash="a")
        Prediction.objects.create(epoch=epoch, model_version=v2, status="ok" if s2 else "failed", stage=s2 or "", version_hash="b")
    result = compare([v1, v2], rec.cohort)
    assert result["common_epochs"] == 3
    rows = {row["model"]: row for row in table_rows(result["models"])}
    assert rows["v1"]["n"] == rows["v2"]["n"] == 3
    assert rows["v1"]["accuracy"] == 1.0 and rows["v2"]["accuracy"] == pytest.approx(2 / 3)
    parsed = list(csv.DictReader(io.StringIO(to_csv(result["models"]))))
    assert [r["scope"] for r in parsed] == ["pooled", "subject", "pooled", "subject"]
    assert float(parsed[2]["accuracy"]) == pytest.approx(2 / 3)

    out = tmp_path / "report.json"
    call_command("evaluate", "--model", "v1", "--model", "v2", "--cohort", "Cmp", "--format", "json", "--output", str(out))
    data = json.loads(out.read_text())
    assert data["common_epochs"] == 3 and [m["model"] for m in data["models"]] == ["v1", "v2"]


@pytest.mark.django_db
def test_rule_iou_conventions_in_report_csv_page_and_command(role_client, capsys):
    """4 evaluated epochs: {N2.1}/{N2.1} 1, {}/{} 1, {N2.1,N2.2}/{N2.1} 1/2, {W.1}/{} 0 -> authors' 0.625 over 4,
    annotated-only 0.75 over 2. A parse failure and an epoch without a scored reference are not evaluated."""
    rec = make_recording("IoU", "s1", ["N2", "N2", "N2", "W", "N2", "unscored"],
                         rules=[["N2.1"], [], ["N2.1"], [], ["N2.1"], ["N2.1"]])
    version = ModelVersion.objects.create(name="iou", backend="baseline")
    outputs = [("ok", "N2", ["N2.1"]), ("ok", "N2", []), ("ok", "N2", ["N2.1", "N2.2"]), ("repaired", "W", ["W.1"]),
               ("failed", "", []), ("ok", "N2", ["W.1"])]
    for index, (status, stage, rules) in enumerate(outputs):
        Prediction.objects.create(epoch=rec.epochs.get(index=index), model_version=version, status=status,
                                  stage=stage, rule_ids=rules, version_hash="h")

    report = evaluate(version, rec.cohort)
    assert report["rule_iou"] == {"all_epochs": {"n": 4, "mean": 0.625}, "annotated_epochs": {"n": 2, "mean": 0.75}}
    (row,) = table_rows([report])
    assert (row["rule_iou_all_epochs"], row["rule_iou_annotated_epochs"]) == (0.625, 0.75)
    (pooled,) = [r for r in csv.DictReader(io.StringIO(to_csv([report]))) if r["scope"] == "pooled"]
    assert (pooled["rule_iou_all_epochs"], pooled["rule_iou_annotated_epochs"]) == ("0.625", "0.75")

    page = role_client(CURATOR).get("/inference/evaluation/", {"cohort": rec.cohort.pk, "model": "iou",
                                                               "reference": "hypnogram"}).content.decode()
    assert "Rule IoU (paper: all epochs)</th>" in page and "Rule IoU (annotated epochs only)</th>" in page
    assert '<td class="num rule-iou-all">0.625</td><td class="num rule-iou-annotated">0.750</td>' in page
    # the published figures cite the project's own documents (docs/), not a file it does not hold
    assert 'href="/docs/model-contract/"' in page and 'href="/docs/rules/"' in page and "spec/" not in page

    call_command("evaluate", "--model", "iou", "--cohort", "IoU")
    header, columns, values, legend = capsys.readouterr().out.strip().splitlines()
    cells = dict(zip(columns.split(), values.split()))
    assert (cells["rule_iou_all_epochs"], cells["rule_iou_annotated_epochs"]) == ("0.625", "0.750")
    assert "the authors' rule-set IoU (paper table)" in legend


@pytest.mark.django_db
def test_cited_rule_ids_outside_the_catalog_count_in_rule_iou():
    """The authors' Jaccard takes every id an output cites: {N2.1, N2.9}/{N2.1} is 1/2, not 1; the catalog's ids
    alone are shown and exported, the unknown one is kept apart and noted."""
    from inference.services.backends import RawOutput
    from inference.services.jobs import _prediction

    rec = make_recording("Unknown", "s1", ["N2", "N2"], rules=[["N2.1"], []])
    version = ModelVersion.objects.create(name="cites", backend="baseline")
    job = InferenceJob.objects.create(model_version=version, recording=rec)
    texts = ['{"reasoning_text": "x", "applicable_rules": ["N2.1", "N2.9"], "sleep_stage": "N2"}',
             '{"reasoning_text": "x", "applicable_rules": "N9.9", "sleep_stage": "N2"}']
    for epoch, text in zip(rec.epochs.order_by("index"), texts):
        output = RawOutput(epoch_id=epoch.pk, text=text)
        _prediction(job, epoch, output, "h", frozenset(AasmRule.objects.values_list("rule_id", flat=True))).save()
    first, second = Prediction.objects.order_by("epoch__index")
    assert (first.rule_ids, first.unknown_rule_ids, first.status) == (["N2.1"], ["N2.9"], "repaired")
    assert (second.rule_ids, second.unknown_rule_ids) == ([], ["N9.9"]) and "N9.9" in second.detail
    # epoch 0: 1/2; epoch 1: {N9.9} against an empty reference is 0, not the 1.0 of two empty sets
    assert evaluate(version, rec.cohort)["rule_iou"] == {"all_epochs": {"n": 2, "mean": 0.25},
                                                         "annotated_epochs": {"n": 1, "mean": 0.5}}
