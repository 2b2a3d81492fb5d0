"""Blinding of rationale origin: the baseline's origin stays out of its text, rating items of every origin are
served in one shape, and the rating queue waits for scoring that must stay blind."""
import importlib
import json
import re
import uuid

import numpy as np
import pytest
from django.apps import apps
from django.template import Context, Template
from django.test import RequestFactory
from rest_framework.test import APIClient
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from annotation.models import CampaignItem, ScoringCampaign
from annotation.services import queue as scoring
from annotation.services.campaigns import create_campaign
from core.roles import CURATOR, RATER, RESEARCHER
from core.services.blinding import RATING as RATING_KIND
from core.services.blinding import SCORING as SCORING_KIND
from core.services.blinding import blinding_overlaps
from datasets.constants import RULE_IDS
from datasets.services.synthetic import prepared_signals, synthesize_night
from inference.models import AasmRule, InferenceJob, ModelVersion, Prediction
from inference.services.backends.base import RawOutput
from inference.services.backends.baseline import output_text
from inference.services.baseline import analyse_night, explain_epoch, origin_note
from inference.services.jobs import _prediction
from ratings.models import RatingItem
from ratings.services.campaigns import create_rating_campaign
from ratings.services.queue import RATING
from tests.factories import make_recording

MODEL_NAME = "sleepvlm-baseline-v2"
VERSION_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
PROVENANCE = re.compile(rf"yasa|classifier|probability|baseline|{MODEL_NAME}|{VERSION_HASH[:12]}|\b[0-9a-f]{{40,64}}\b"
                        r"|cited rules point|massex|\"origin\"|\"source\"", re.IGNORECASE)


@pytest.fixture(scope="module")
def baseline_outputs():
    """The baseline run on a synthetic hour: its stages, outputs and analysis."""
    night = synthesize_night(hours=1.0, seed=7)
    analysis = analyse_night(*prepared_signals(night))
    return night.stages, [explain_epoch(analysis, i) for i in range(analysis.n_epochs)], analysis


def baseline_world(baseline_outputs):
    """A recording of the synthetic hour with the baseline's predictions written as a job writes them."""
    stages, outputs, analysis = baseline_outputs
    recording = make_recording("Blind", "night", stages)
    version = ModelVersion.objects.create(name=MODEL_NAME, backend=ModelVersion.BASELINE)
    job = InferenceJob.objects.create(model_version=version, recording=recording)
    rules = frozenset(AasmRule.objects.values_list("rule_id", flat=True))
    Prediction.objects.bulk_create([
        _prediction(job, epoch, RawOutput(epoch.pk, output_text(outputs[epoch.index]),
                                          probability=float(analysis.probability[epoch.index]),
                                          origin_note=origin_note(analysis)), VERSION_HASH, rules)
        for epoch in recording.epochs.order_by("index")])
    return recording, version


def test_baseline_predictions_keep_origin_and_conflict_in_their_fields(baseline_outputs, make_user, db):
    recording, version = baseline_world(baseline_outputs)
    predictions = list(Prediction.objects.filter(model_version=version))
    assert predictions and all(p.status == Prediction.OK for p in predictions)
    for p in predictions:
        assert not PROVENANCE.search(p.rationale), p.rationale
        assert p.origin_note == "YASA classifier (C4-M1, LOC, Chin EMG)" and 0 < p.probability <= 1
    conflicted = [p for p in predictions if p.rule_conflict]
    assert conflicted and all(p.stage not in p.rule_conflict.split("/") for p in conflicted)
    researcher = make_user(RESEARCHER, "researcher")
    api = APIClient()
    api.force_authenticate(researcher)
    row = api.get(f"/api/predictions/{conflicted[0].pk}/").json()
    assert (row["origin_note"], row["rule_conflict"]) == (conflicted[0].origin_note, conflicted[0].rule_conflict)
    request = RequestFactory().get("/")
    request.user = researcher
    page = Template("{% load predictions %}{% epoch_predictions epoch %}").render(
        Context({"request": request, "epoch": conflicted[0].epoch}))  # the epoch page's partial
    assert "from the YASA classifier (C4-M1, LOC, Chin EMG)" in page
    assert f"cited rules point to {conflicted[0].rule_conflict}" in page


def test_migration_moves_version_1_origin_sentences_into_the_fields(make_user, db):
    recording = make_recording("Old", "old", ["N3", "N2"])
    version = ModelVersion.objects.create(name="old-baseline", backend=ModelVersion.BASELINE)
    body = "Slow waves (0.5–2 Hz, ≥ 75 µV p-p) on F4-M1 fill 31% of the epoch. Rules met: N2.1 (spindle at 3.1 s)."
    legacy = body + " Stage N3 from the YASA classifier (C4-M1, LOC, Chin EMG), probability 0.56. " \
                    "The cited rules point to N2 instead."
    old = Prediction.objects.create(epoch=recording.epochs.get(index=0), model_version=version, status=Prediction.OK,
                                    stage="N3", rule_ids=["N2.1"], rationale=legacy, raw_output=legacy,
                                    version_hash="a")
    item_campaign = create_rating_campaign("old items", cohorts=["Old"], model_versions=["old-baseline"],
                                           raters=[make_user(RATER, "r")], overlap=1)
    assert item_campaign.items.get().rationale == legacy
    predictions = importlib.import_module("inference.migrations.0006_prediction_origin_fields")
    items = importlib.import_module("ratings.migrations.0004_rationales_without_origin")
    predictions.move_origin_out_of_rationales(apps, None)
    items.strip_origin_from_items(apps, None)
    old.refresh_from_db()
    assert (old.rationale, old.origin_note, old.rule_conflict) == (body, "YASA classifier (C4-M1, LOC, Chin EMG)", "N2")
    assert old.raw_output == legacy  # what the model wrote (and earlier raters saw) is kept
    assert item_campaign.items.get().rationale == body


def serve_everything(campaign, rater) -> list[dict]:
    """Every item the queue serves the rater, as the API sends it, rating each one."""
    api = APIClient()
    api.force_authenticate(rater)
    base = f"/api/ratings/campaigns/{campaign.pk}"
    served = []
    while (response := api.post(f"{base}/next/")).status_code == 200:
        row = response.json()
        served.append(row)
        api.post(f"{base}/ratings/", {"item": row["item"], "scores": dict.fromkeys(campaign.rubric.keys, 3),
                                      "client_id": str(uuid.uuid4()), "seconds_spent": 9}, format="json")
    assert response.status_code == 204
    return served


def shape(value):
    """The format of a served value: key sets and types, not contents."""
    if isinstance(value, dict):
        return tuple(sorted((key, shape(v)) for key, v in value.items()))
    if isinstance(value, list):
        return "list", tuple(sorted({shape(v) for v in value}))
    return type(value).__name__


def format_features(row: dict) -> list[float]:
    """What could give an origin away besides the text and the rated content: key sets, types, rule order,
    catalog texts present, padding of the rationale, the number format of the onset."""
    positions = dict(AasmRule.objects.values_list("rule_id", "position"))
    ids = [r["id"] for r in row["rules"]]
    return [hash(tuple(sorted(row))) % 997, hash(shape({k: v for k, v in row.items() if k != "rules"})) % 997,
            float(all(set(r) == {"id", "title", "text"} and r["title"] and r["text"] for r in row["rules"])),
            float(ids == sorted(ids, key=positions.get)), float(row["rationale"] != row["rationale"].strip()),
            float(len(repr(row["onset_s"])))]


def test_served_items_of_every_origin_look_alike(baseline_outputs, make_user, db):
    recording, version = baseline_world(baseline_outputs)
    epochs = list(recording.epochs.order_by("index"))
    for epoch in epochs[1::4]:  # MASS-EX style, rule ids out of catalog order, padded text
        epoch.reference_rules = ["N2.2", "N2.1"] if epoch.stage == "N2" else [RULE_IDS[0]]
        epoch.reference_rationale = f"  Spindle on C4-M1 at {epoch.index % 20}.5 s, 13 Hz, 30 µV; N2 criteria met.\n"
        epoch.save()
    expert = make_user(RATER, "expert")
    written = create_campaign("written", recordings=[recording], raters=[expert], overlap=1, rationale_mode=True,
                              show_reference=True, show_model_outputs=True)
    for _ in range(8):
        item, _ = scoring.next_item(written, expert)
        scoring.submit_label(written, expert, item, stage=item.epoch.stage, rule_ids=["R.1", "N2.1"],
                             rationale="Low chin EMG, sawtooth waves at 4 s on C4-M1.", client_id=uuid.uuid4())
    rater = make_user(RATER, "rater")
    campaign = create_rating_campaign("mixed", cohorts=["Blind"], model_versions=[MODEL_NAME],
                                      expert_sources=["massex", "scoring"], raters=[rater], overlap=1,
                                      sample_size=60, seed=2)
    origins = dict(campaign.items.values_list("pk", "origin"))
    assert set(origins.values()) == {RatingItem.MODEL, RatingItem.EXPERT}

    served = serve_everything(campaign, rater)
    assert sorted(row["item"] for row in served) == sorted(origins)
    for row in served:
        assert not PROVENANCE.search(json.dumps(row)), row
    assert len({shape({**row, "rating": None}) for row in served if row["rules"]}) == 1  # one format for all

    features = np.array([format_features(row) for row in served])
    labels = np.array([origins[row["item"]] == RatingItem.MODEL for row in served])
    majority = max(labels.mean(), 1 - labels.mean())
    accuracy = cross_val_score(LogisticRegression(), features, labels, cv=5).mean()
    assert accuracy <= majority + 1e-9  # no better than always guessing the commoner origin


def test_queue_waits_for_epochs_the_rater_still_scores_blind(make_user, client, db):
    recording = make_recording("Wait", "wait", ["N2"] * 10)
    version = ModelVersion.objects.create(name="m", backend=ModelVersion.BASELINE)
    Prediction.objects.bulk_create([Prediction(epoch=e, model_version=version, status=Prediction.OK, stage="N2",
                                               rule_ids=["N2.2"], rationale="LAMF on C4-M1.", version_hash="h")
                                    for e in recording.epochs.all()])
    rater, other = make_user(RATER, "both"), make_user(RATER, "ratesonly")
    rating = create_rating_campaign("rate", cohorts=["Wait"], model_versions=["m"], raters=[rater, other], overlap=2)
    blind = ScoringCampaign.objects.create(name="blind", overlap=1)  # hides the model and the reference
    blind.raters.set([rater])
    blind.recordings.set([recording])
    CampaignItem.objects.create(campaign=blind, epoch=recording.epochs.get(index=4), recording=recording, position=0)
    shown = create_campaign("open", recordings=[recording], raters=[rater], overlap=1,
                            show_reference=True, show_model_outputs=True)  # no blinding to keep

    def served_indices(user):
        return [row["index"] for row in serve_everything(rating, user)]

    first = served_indices(rater)
    assert sorted(first) == [0, 1, 2, 6, 7, 8, 9]  # 3 and 5 show epoch 4 as context
    assert RATING.progress(rating, rater)["total"] == 10  # held back, still to do
    assert RATING.waiting_for_scoring(rating, rater) == 3
    client.force_login(rater)
    page = client.get(f"/rating/{rating.pk}/rate/").content.decode()
    assert "3 items wait until you have scored their epochs" in page
    assert sorted(served_indices(other)) == list(range(10))  # other raters are not held back
    assert shown.items.count() == 10  # a campaign that shows model and reference holds nothing back

    item, _ = scoring.next_item(blind, rater)
    assert item.epoch.index == 4
    scoring.submit_label(blind, rater, item, stage="N2", client_id=uuid.uuid4())
    assert sorted(served_indices(rater)) == [3, 4, 5]
    assert RATING.waiting_for_scoring(rating, rater) == 0


def test_blinding_overlaps_name_shared_raters_and_recordings(make_user, db):
    one, two = make_recording("Overlap", "one", ["W", "N2"]), make_recording("Overlap", "two", ["N2", "R"])
    version = ModelVersion.objects.create(name="m", backend=ModelVersion.BASELINE)
    Prediction.objects.create(epoch=one.epochs.get(index=1), model_version=version, status=Prediction.OK, stage="N2",
                              rule_ids=[], rationale="Spindle.", version_hash="h")
    ann, bob, cy = make_user(RATER, "ann"), make_user(RATER, "bob"), make_user(RATER, "cy")
    create_campaign("blind", recordings=[one, two], raters=[ann, bob], overlap=1)
    create_campaign("open", recordings=[one], raters=[cy], overlap=1, show_reference=True, show_model_outputs=True)
    create_rating_campaign("rated", cohorts=["Overlap"], model_versions=["m"], raters=[bob, cy], overlap=1)

    scoring_overlaps = blinding_overlaps([ann, cy], [one, two], kind=SCORING_KIND)
    assert [(o.campaign, o.rater, o.recordings) for o in scoring_overlaps] == [("blind", "ann", 2)]
    assert "ann still scores 2 of these recordings in scoring campaign 'blind'" in str(scoring_overlaps[0])
    rating_overlaps = blinding_overlaps([bob.pk, ann.pk], [one.pk, two.pk], kind=RATING_KIND)
    assert [(o.campaign, o.rater, o.recordings) for o in rating_overlaps] == [("rated", "bob", 1)]
    assert blinding_overlaps([ann], [two], kind=RATING_KIND) == blinding_overlaps([], [one], kind=SCORING_KIND) == []
    blind = ScoringCampaign.objects.get(name="blind")
    while (served := scoring.next_item(blind, ann)) is not None:
        scoring.submit_label(blind, ann, served[0], stage="N2", client_id=uuid.uuid4())
    assert blinding_overlaps([ann, bob], [one, two], kind=SCORING_KIND) == []  # scored: nothing left to keep blind


def test_scoring_campaign_page_shows_overlaps_before_creating(make_user, client, db):
    recording = make_recording("Page", "page", ["W", "N2", "N2"])
    version = ModelVersion.objects.create(name="m", backend=ModelVersion.BASELINE)
    Prediction.objects.create(epoch=recording.epochs.get(index=1), model_version=version, status=Prediction.OK,
                              stage="N2", rule_ids=[], rationale="Spindle.", version_hash="h")
    bob = make_user(RATER, "bob")
    create_rating_campaign("rated", cohorts=["Page"], model_versions=["m"], raters=[bob], overlap=1)
    client.force_login(make_user(CURATOR, "cur"))
    form = {"name": "blind", "recordings": [recording.pk], "sample": "all", "seed": 0, "overlap": 1, "raters": ["bob"],
            "unit": "epoch", "reservation_timeout_s": 900, "rescore_share": 0, "key_dwell_ms": 300}
    page = client.post("/scoring/new/", form)
    assert page.status_code == 200 and not ScoringCampaign.objects.exists()
    assert "bob rates rationales on 1 of these recordings in rating campaign &#x27;rated&#x27;" in page.content.decode()
    assert client.post("/scoring/new/", {**form, "overlaps_seen": "1"}).status_code == 302
    shown = {**form, "name": "shown", "show_reference": "on", "show_model_outputs": "on"}
    assert client.post("/scoring/new/", shown).status_code == 302  # nothing to keep blind
    assert ScoringCampaign.objects.count() == 2
