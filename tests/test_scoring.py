"""Expert stage scoring: sampling, the fair queue (also under concurrency, SQLite and PostgreSQL),
re-scoring, the append-only label history, consensus and adjudication, and the blinded API."""
import json
import random
import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import CampaignItem, Label, RecordingReservation, Reservation
from annotation.services import consensus, queue
from annotation.services.campaigns import create_campaign
from core.roles import CURATOR, RATER, RESEARCHER
from datasets.exceptions import InputError
from inference.models import ModelVersion, Prediction
from inference.services.evaluation import EvaluationError, evaluate
from tests.factories import make_recording

STAGE_CYCLE = ["W", "N1", "N2", "N2", "N3", "R", "N2", "unscored"]


def night(name="n1", n=40, cohort="Scoring"):
    return make_recording(cohort, name, [STAGE_CYCLE[i % len(STAGE_CYCLE)] for i in range(n)])


def raters(make_user, n, prefix="r"):
    return [make_user(RATER, f"{prefix}{i}") for i in range(n)]


def label(campaign, rater, item, stage="N2", **kw):
    return queue.submit_label(campaign, rater, item, stage=stage, client_id=uuid.uuid4(), **kw)


# --- sampling -----------------------------------------------------------------------------------

def test_sampling_is_seeded_stratified_and_in_time_order(make_user, db):
    a, b = night("a", 80), night("b", 80)
    users = raters(make_user, 2)

    def items(name, **kw):
        c = create_campaign(name, recordings=[a, b], raters=users, **kw)
        return list(c.items.order_by("position").values_list("epoch_id", flat=True))

    first, again = items("s1", sample="stratified", sample_size=20, seed=3), items("s2", sample="stratified", sample_size=20, seed=3)
    assert first == again and len(first) == 20
    assert items("s3", sample="stratified", sample_size=20, seed=4) != first
    from datasets.models import Epoch

    epochs = {e.pk: e for e in Epoch.objects.filter(pk__in=first)}
    assert Counter(epochs[pk].stage for pk in first) == {"W": 4, "N1": 4, "N2": 4, "N3": 4, "R": 4}
    assert [(epochs[pk].recording_id, epochs[pk].index) for pk in first] == sorted(
        (epochs[pk].recording_id, epochs[pk].index) for pk in first)
    everything = items("all", sample="all")
    assert len(everything) == 140  # unscored epochs never sampled (1 in 8)


def test_disagreement_sample_picks_the_model_mismatches(make_user, db):
    rec = night("d", 16)
    version = ModelVersion.objects.create(name="m1", backend=ModelVersion.BASELINE)
    mismatches = []
    for epoch in rec.epochs.exclude(stage="unscored"):
        wrong = epoch.index % 3 == 0
        Prediction.objects.create(epoch=epoch, model_version=version, status=Prediction.OK, version_hash="0" * 64,
                                  stage="W" if wrong and epoch.stage != "W" else epoch.stage)
        if wrong and epoch.stage != "W":
            mismatches.append(epoch.pk)
    c = create_campaign("dis", recordings=[rec], raters=raters(make_user, 2), sample="disagreement",
                        disagreement_model="m1")
    assert sorted(c.items.values_list("epoch_id", flat=True)) == sorted(mismatches)
    with pytest.raises(InputError, match="unknown model version 'nope'"):
        create_campaign("dis2", recordings=[rec], raters=raters(make_user, 2, "x"), sample="disagreement",
                        disagreement_model="nope")


def test_campaign_validation_and_command(make_user, db, tmp_path):
    rec = night("v", 10)
    users = raters(make_user, 2)
    with pytest.raises(InputError, match="overlap 3 is more than the number of raters"):
        create_campaign("v", recordings=[rec], raters=users, overlap=3)
    with pytest.raises(InputError, match="unknown rater 'ghost'"):
        create_campaign("v", recordings=[rec], raters=["ghost"])
    with pytest.raises(InputError, match="unknown cohort"):
        create_campaign("v", cohort="Nope", raters=users)
    empty = make_recording("Scoring", "blank", ["unscored"] * 4)
    with pytest.raises(InputError, match="sample 'all' is empty"):
        create_campaign("v", recordings=[empty], raters=users)
    spec = tmp_path / "c.json"
    spec.write_text(json.dumps({"name": "from-file", "cohort": "Scoring", "raters": ["r0", "r1"], "overlap": 2}))
    call_command("create_campaign", str(spec), verbosity=0)
    from annotation.models import ScoringCampaign

    assert ScoringCampaign.objects.get(name="from-file").items.count() == 9


def test_campaign_page_creates_a_campaign_and_reports_bad_input(make_user, client, db):
    from annotation.models import ScoringCampaign

    rec = night("page", 10)
    raters(make_user, 2)
    client.force_login(make_user(CURATOR, "cur"))
    form = client.get("/scoring/new/").content.decode()
    raters_field = form.split('name="raters"')[1].split("</select>")[0]
    adjudicators_field = form.split('name="adjudicators"')[1].split("</select>")[0]
    assert 'value="r0"' in raters_field and 'value="cur"' not in raters_field  # only accounts that may score rate
    assert 'value="r0"' in adjudicators_field and 'value="cur"' in adjudicators_field  # curators may adjudicate
    too_many = {"name": "too many", "recordings": [rec.pk], "sample": "all", "seed": 0, "overlap": 3,
                "raters": ["r0", "r1"], "unit": "epoch", "reservation_timeout_s": 900, "rescore_share": 0}
    response = client.post("/scoring/new/", too_many)
    assert response.status_code == 200 and "overlap 3 is more than the number of raters" in response.content.decode()
    assert not ScoringCampaign.objects.exists()
    good = {**too_many, "name": "from the page", "overlap": 2, "sample": "stratified", "sample_size": 5, "seed": 7,
            "show_model_outputs": "on", "rescore_share": 0.1}
    assert client.post("/scoring/new/", good).status_code == 302
    campaign = ScoringCampaign.objects.get(name="from the page")
    assert campaign.show_model_outputs and not campaign.show_reference and campaign.items.count() == 5
    assert sorted(campaign.raters.values_list("username", flat=True)) == ["r0", "r1"]
    again = create_campaign("same draw", recordings=[rec], raters=["r0"], overlap=1, sample="stratified",
                            sample_size=5, seed=7)
    assert list(again.items.values_list("epoch_id", flat=True)) == list(campaign.items.values_list("epoch_id", flat=True))


# --- the queue ----------------------------------------------------------------------------------

def test_queue_serves_distinct_raters_up_to_overlap_and_own_reservation_first(make_user, db):
    rec = night("q", 3)  # 3 scored epochs
    a, b, c = raters(make_user, 3)
    campaign = create_campaign("q", recordings=[rec], raters=[a, b, c], overlap=2)
    item_a, _ = queue.next_item(campaign, a)
    assert queue.next_item(campaign, a)[0] == item_a  # asking again: the same reservation, no second one
    assert Reservation.objects.filter(rater=a).count() == 1
    item_b, _ = queue.next_item(campaign, b)
    assert item_b == item_a  # the second slot of the first item
    item_c, _ = queue.next_item(campaign, c)
    assert item_c != item_a  # both slots held
    label(campaign, a, item_a)
    assert queue.next_item(campaign, a)[0] not in (item_a,)


def test_expired_reservations_are_released_and_release_frees_the_slot(make_user, db):
    rec = night("e", 1)
    a, b = raters(make_user, 2)
    campaign = create_campaign("e", recordings=[rec], raters=[a, b], overlap=1, reservation_timeout_s=60)
    item, _ = queue.next_item(campaign, a)
    assert queue.next_item(campaign, b) is None
    later = timezone.now() + timedelta(seconds=61)
    assert queue.next_item(campaign, b, now=later)[0] == item  # a's expired, so b gets it
    assert not Reservation.objects.filter(rater=a).exists()
    with pytest.raises(queue.NotReserved):
        label(campaign, a, item)
    assert queue.release(campaign, b, item)
    assert queue.next_item(campaign, a)[0] == item
    label(campaign, a, item)
    assert queue.next_item(campaign, b, now=later + timedelta(hours=1)) is None  # labelled slots are kept for good


def test_whole_recording_unit_holds_one_rater_per_slot(make_user, db):
    r1, r2 = night("w1", 8), night("w2", 8)
    a, b, c = raters(make_user, 3)
    campaign = create_campaign("w", recordings=[r1, r2], raters=[a, b, c], overlap=1, unit="recording")
    item, _ = queue.next_item(campaign, a)
    other, _ = queue.next_item(campaign, b)
    assert item.recording_id != other.recording_id  # one rater per slot: b gets the other recording
    assert queue.next_item(campaign, c) is None
    held = item.recording_id
    for _ in range(20):
        label(campaign, a, item)
        nxt = queue.next_item(campaign, a)
        if nxt is None:
            break
        item = nxt[0]
        assert item.recording_id == held  # never the recording b holds
    assert RecordingReservation.objects.filter(campaign=campaign).count() == 1  # a finished; b still holds its own
    first = [i.epoch.index for i in CampaignItem.objects.filter(campaign=campaign, labels__rater=a)
             .order_by("labels__created_at")]
    assert first == sorted(first) and len(first) == 7  # time order, the whole recording


def test_rescoring_is_served_later_and_flagged_only_on_the_server(make_user, db):
    rec = night("rs", 40)
    a, b = raters(make_user, 2)
    campaign = create_campaign("rs", recordings=[rec], raters=[a, b], overlap=1, rescore_share=0.5, seed=1)
    api = APIClient()
    api.force_authenticate(a)
    seen, rescored = [], []
    for _ in range(60):
        response = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/")
        if response.status_code == 204:
            break
        body = response.json()
        assert "rescore" not in json.dumps(body) and body["label"] is None  # blind: never the earlier label
        if body["item"] in seen:
            rescored.append(body["item"])
        seen.append(body["item"])
        saved = api.post(f"/api/scoring/campaigns/{campaign.pk}/labels/",
                         {"item": body["item"], "stage": "N2", "client_id": str(uuid.uuid4())}, format="json")
        assert saved.status_code == 201 and "rescore" not in saved.json()
    assert rescored, "some items are served again"
    first_seen = {item: seen.index(item) for item in rescored}
    assert all(seen.index(item, first_seen[item] + 1) - first_seen[item] > queue.RESCORE_GAP for item in rescored)
    assert set(Label.objects.filter(rescore=True).values_list("item_id", flat=True)) == set(rescored)
    assert Label.objects.filter(rescore=False).count() == 35
    own = api.get(f"/api/scoring/campaigns/{campaign.pk}/labels/").json()
    assert own["count"] == 35 and "rescore" not in json.dumps(own)  # one label per item for the rater


# --- labels: history, staleness, idempotency ----------------------------------------------------

def test_label_history_is_append_only_stale_and_idempotent(make_user, db):
    rec = night("h", 2)
    a, b = raters(make_user, 2)
    campaign = create_campaign("h", recordings=[rec], raters=[a, b], overlap=2)
    api = APIClient()
    api.force_authenticate(a)
    url = f"/api/scoring/campaigns/{campaign.pk}/labels/"
    item = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/").json()["item"]
    key = str(uuid.uuid4())
    first = api.post(url, {"item": item, "stage": "N2", "client_id": key}, format="json")
    assert first.status_code == 201 and first.json()["revision"] == 1
    again = api.post(url, {"item": item, "stage": "N2", "client_id": key}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    edit = api.post(url, {"item": item, "stage": "N3", "client_id": str(uuid.uuid4()), "base_revision": 1}, format="json")
    assert edit.status_code == 201 and edit.json()["revision"] == 2
    stale = api.post(url, {"item": item, "stage": "R", "client_id": str(uuid.uuid4()), "base_revision": 1}, format="json")
    assert stale.status_code == 412
    assert stale.json()["detail"] == "changed in another tab or device: revision 2 is current"
    # a late retry of the first save, after the revision: still that save's answer, nothing stored
    late = api.post(url, {"item": item, "stage": "N2", "client_id": key}, format="json")
    assert late.status_code == 200 and late.json()["id"] == first.json()["id"] and late.json()["revision"] == 1
    reused = api.post(url, {"item": item, "stage": "W", "client_id": key}, format="json")
    assert reused.status_code == 400 and "client_id was already used" in reused.json()["detail"]
    assert api.post(url, {"item": item, "stage": "S4", "client_id": str(uuid.uuid4())}, format="json").status_code == 400
    assert Label.objects.count() == 2 and Label.objects.get(revision=1).stage == "N2"  # nothing overwritten
    history = api.get(f"/api/scoring/campaigns/{campaign.pk}/history/?item={item}").json()
    assert [(h["stage"], h["revision"], h["previous"]) for h in history] == [
        ("N2", 1, None), ("N3", 2, {"stage": "N2", "uncertain": False, "revision": 1})]
    assert [lab.stage for lab in queue.current_labels(campaign)] == ["N3"]
    other = APIClient()
    other.force_authenticate(b)
    assert other.get(f"/api/scoring/campaigns/{campaign.pk}/history/?item={item}").json() == []
    assert other.get(url).json()["count"] == 0


def test_rationale_mode_checks_rule_ids(make_user, db):
    from inference.models import AasmRule

    AasmRule.objects.get_or_create(rule_id="N2.1", defaults={"stage": "N2", "title": "t", "text": "t"})
    rec = night("rm", 2)
    a, = raters(make_user, 1)
    campaign = create_campaign("rm", recordings=[rec], raters=[a], overlap=1, rationale_mode=True)
    item, _ = queue.next_item(campaign, a)
    with pytest.raises(InputError, match="unknown rule id"):
        label(campaign, a, item, rule_ids=["N9.9"])
    saved, _ = label(campaign, a, item, rule_ids=["N2.1"], rationale="spindle")
    assert saved.rule_ids == ["N2.1"]


def test_rationale_mode_labels_need_rule_ids_and_a_rationale(make_user, db):
    """The API refuses (400, naming what is missing) what the page refuses: ScoringQueue.clean serves both."""
    from inference.models import AasmRule

    AasmRule.objects.get_or_create(rule_id="N2.1", defaults={"stage": "N2", "title": "t", "text": "t"})
    rec = night("rx", 3)
    a, = raters(make_user, 1)
    campaign = create_campaign("rx", recordings=[rec], raters=[a], overlap=1, rationale_mode=True)
    api = APIClient()
    api.force_authenticate(a)
    item = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/").json()["item"]
    url = f"/api/scoring/campaigns/{campaign.pk}/labels/"
    for fields, missing in (({"rule_ids": [], "rationale": "Spindle at 4 s"}, "(rule ids missing)"),
                            ({"rule_ids": ["N2.1"], "rationale": "  "}, "(rationale missing)"),
                            ({}, "(rule ids and rationale missing)")):
        response = api.post(url, {"item": item, "stage": "N2", "client_id": str(uuid.uuid4()), **fields}, format="json")
        assert response.status_code == 400, fields
        detail = response.json()["detail"]
        assert "needs at least one rule id and a rationale" in detail and detail.endswith(missing)
    assert not Label.objects.exists()
    response = api.post(url, {"item": item, "stage": "N2", "client_id": str(uuid.uuid4()), "rule_ids": ["N2.1"],
                              "rationale": " Spindle at 4 s "}, format="json")
    assert response.status_code == 201
    assert Label.objects.get().rationale == "Spindle at 4 s"


def test_labels_with_what_the_campaign_does_not_collect_or_absurd_times_are_refused(make_user, db):
    """Stored before: rule ids and a 5,000-character rationale in a campaign without rationale mode, and
    seconds_spent -50. Each is refused (400, naming the problem) and nothing is written."""
    rec = night("plain", 3)
    a, = raters(make_user, 1)
    campaign = create_campaign("plain", recordings=[rec], raters=[a], overlap=1)
    api = APIClient()
    api.force_authenticate(a)
    item = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/").json()["item"]
    url = f"/api/scoring/campaigns/{campaign.pk}/labels/"
    for fields, message in (({"rule_ids": ["FOO"]}, "does not collect rationales"),
                            ({"rationale": "x" * 5000}, "does not collect rationales"),
                            ({"seconds_spent": -50}, "seconds_spent"), ({"seconds_spent": 1e9}, "seconds_spent")):
        response = api.post(url, {"item": item, "stage": "N2", "client_id": str(uuid.uuid4()), **fields}, format="json")
        assert response.status_code == 400 and message in response.content.decode(), (fields, response.content)
    assert not Label.objects.exists()
    response = api.post(url, {"item": item, "stage": "N2", "client_id": str(uuid.uuid4()), "seconds_spent": 12.5},
                        format="json")
    assert response.status_code == 201 and Label.objects.get().seconds_spent == 12.5


def test_key_dwell_is_a_campaign_setting(make_user, db):
    rec = night("kd", 3)
    a, = raters(make_user, 1)
    assert create_campaign("kd0", recordings=[rec], raters=[a], overlap=1).key_dwell_ms == 300
    with pytest.raises(InputError, match="key_dwell_ms must be between 0 and 5000"):
        create_campaign("kd1", recordings=[rec], raters=[a], overlap=1, key_dwell_ms=-1)
    api = APIClient()
    api.force_authenticate(make_user(CURATOR, "cur"))
    response = api.post("/api/scoring/campaigns/", {"name": "kd2", "recordings": [rec.pk], "raters": [a.username],
                                                    "overlap": 1, "key_dwell_ms": 600}, format="json")
    assert response.status_code == 201 and response.json()["key_dwell_ms"] == 600
    campaign = response.json()["id"]
    response = api.patch(f"/api/scoring/campaigns/{campaign}/", {"key_dwell_ms": 150}, format="json")
    assert response.status_code == 200 and response.json()["key_dwell_ms"] == 150
    assert api.patch(f"/api/scoring/campaigns/{campaign}/", {"key_dwell_ms": 9000}, format="json").status_code == 400
    page = APIClient()
    page.force_login(a)
    assert 'data-dwell="150"' in page.get(f"/scoring/{campaign}/score/").content.decode()


# --- consensus, adjudication, evaluation -------------------------------------------------------

def test_consensus_ties_adjudication_and_evaluation(make_user, db):
    rec = night("c", 3, cohort="Consensus")  # W N1 N2
    users = raters(make_user, 3)
    curator = make_user(CURATOR, "cur")
    campaign = create_campaign("c", recordings=[rec], raters=users, overlap=3)
    votes = {0: ["W", "W", "W"], 1: ["N1", "N2", "R"], 2: ["N2", "N2", "N1"]}
    items = list(campaign.items.order_by("position"))
    for rater_no, rater in enumerate(users):
        for _ in range(3):
            item, _ = queue.next_item(campaign, rater)
            label(campaign, rater, item, stage=votes[item.position][rater_no])
    summary = consensus.campaign_consensus(campaign)
    assert summary[items[0].pk].level == 1.0 and summary[items[1].pk].tie
    assert summary[items[2].pk].majority == "N2" and summary[items[2].pk].level == pytest.approx(2 / 3)
    assert [s.item_id for s in consensus.for_adjudication(campaign)] == [items[1].pk]
    with pytest.raises(Exception, match="only curators"):
        consensus.adjudicate(items[1], "N1", "x", users[0])
    with pytest.raises(InputError, match="needs a reason"):
        consensus.adjudicate(items[1], "N1", " ", curator)
    consensus.adjudicate(items[1], "N1", "slow eye movements", curator)
    assert consensus.for_adjudication(campaign) == []
    epochs = {i.position: i.epoch_id for i in items}
    assert consensus.consensus_stages(rec) == {epochs[0]: "W", epochs[1]: "N1", epochs[2]: "N2"}
    version = ModelVersion.objects.create(name="mv", backend=ModelVersion.BASELINE)
    for position, stage in ((0, "W"), (1, "N1"), (2, "N1")):
        Prediction.objects.create(epoch_id=epochs[position], model_version=version, status=Prediction.OK,
                                  stage=stage, version_hash="0" * 64)
    report = evaluate(version, rec.cohort, reference="consensus")
    assert report["pooled"]["n"] == 3 and report["pooled"]["accuracy"] == pytest.approx(2 / 3)
    other = night("o", 3, cohort="NoLabels")
    with pytest.raises(EvaluationError, match="needs expert stage labels"):
        evaluate(version, other.cohort, reference="consensus")


# --- access and blinding ------------------------------------------------------------------------

def test_raters_reach_only_their_campaigns_and_see_no_reference_or_others(make_user, db):
    rec, hidden = night("b1", 4), night("b2", 4)
    a, b, outsider = raters(make_user, 3)
    campaign = create_campaign("b", recordings=[rec], raters=[a, b], overlap=2)
    api = APIClient()
    api.force_authenticate(b)
    item = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/").json()["item"]
    api.post(f"/api/scoring/campaigns/{campaign.pk}/labels/", {"item": item, "stage": "R", "client_id": str(uuid.uuid4())},
             format="json")
    api.force_authenticate(a)
    body = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/").json()
    assert body["item"] == item and body["label"] is None
    assert not {"reference_stage", "other_labels", "stage"} & set(body)
    detail = api.get(f"/api/scoring/campaigns/{campaign.pk}/").json()
    assert detail["progress"] == {"done": 0, "total": 4} and "raters" not in detail
    for url in (f"/api/scoring/campaigns/{campaign.pk}/labels/", f"/api/scoring/campaigns/{campaign.pk}/history/",
                f"/api/scoring/campaigns/{campaign.pk}/hypnogram/?recording={rec.pk}"):
        assert '"R"' not in api.get(url).content.decode(), url  # b's label is not shown to a
    assert api.get(f"/api/scoring/campaigns/{campaign.pk}/adjudication/").status_code == 403
    assert api.get(f"/api/recordings/{rec.pk}/").status_code == 200
    assert api.get(f"/api/recordings/{hidden.pk}/").status_code == 404
    assert [r["id"] for r in api.get("/api/recordings/").json()["results"]] == [rec.pk]
    assert all("stage" not in row for row in api.get(f"/api/epochs/?recording={rec.pk}").json()["results"])
    api.force_authenticate(outsider)
    assert api.get("/api/recordings/").json()["count"] == 0
    assert api.get(f"/api/scoring/campaigns/{campaign.pk}/").status_code == 404
    assert api.post(f"/api/scoring/campaigns/{campaign.pk}/next/").status_code == 404
    api.force_authenticate(make_user(RESEARCHER, "res"))
    rows = api.get(f"/api/scoring/campaigns/{campaign.pk}/labels/").json()["results"]
    assert [(r["rater"], r["stage"], r["rescore"]) for r in rows] == [(b.pk, "R", False)]


def test_campaign_shows_reference_and_other_labels_when_it_says_so(make_user, db):
    rec = night("show", 2)
    a, b = raters(make_user, 2)
    campaign = create_campaign("show", recordings=[rec], raters=[a, b], overlap=2, show_reference=True,
                               show_other_labels=True, show_model_outputs=True)
    item, _ = queue.next_item(campaign, b)
    label(campaign, b, item, stage="N1")
    secret = ModelVersion.objects.create(name="secret-model-v3", backend="baseline")
    Prediction.objects.create(epoch=item.epoch, model_version=secret, status=Prediction.OK, stage="N2",
                              rule_ids=["N2.1"], rationale="Spindles at 12 s.", version_hash="x")
    api = APIClient()
    api.force_authenticate(a)
    response = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/")
    body = response.json()
    assert body["reference_stage"] == "W" and body["other_labels"] == ["N1"]
    assert [(m["stage"], m["rule_ids"], m["rationale"]) for m in body["model_outputs"]] == [("N2", ["N2.1"], "Spindles at 12 s.")]
    assert body["model_outputs"][0]["model"].startswith("Model ") and b"secret-model" not in response.content


# --- concurrency --------------------------------------------------------------------------------

@pytest.mark.parametrize("unit", ["epoch", "recording"])
def test_queue_is_fair_under_concurrency(make_user, transactional_db, unit):
    """8 raters with their own DB connections race next/submit/release (k=2, 30 items) on the real DB."""
    from core.roles import sync_roles

    sync_roles()
    recs = [make_recording("Race", f"race{i}", ["N2"] * 10) for i in range(3)]
    users = raters(make_user, 8, prefix=f"race-{unit}-")
    campaign = create_campaign(f"race-{unit}", recordings=recs, raters=users, overlap=2, unit=unit)
    errors, acknowledged = [], []
    barrier = threading.Barrier(len(users))

    def work(rater, seed):
        rnd = random.Random(seed)
        try:
            barrier.wait()
            for _ in range(200):
                served = queue.next_item(campaign, rater)
                if served is None:
                    break
                item, _ = served
                if rnd.random() < 0.15:
                    queue.release(campaign, rater, item)
                    continue
                saved, created = queue.submit_label(campaign, rater, item, stage=rnd.choice(["W", "N2"]),
                                                    client_id=uuid.uuid4())
                acknowledged.append(saved.pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u, i)) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    per_item = Counter(Label.objects.filter(item__campaign=campaign).values_list("item_id", flat=True))
    pairs = Counter(Label.objects.filter(item__campaign=campaign).values_list("item_id", "rater_id"))
    assert max(per_item.values()) <= 2, "no item has more than k labels"
    assert max(pairs.values()) == 1, "no rater labelled an item twice"
    assert len(per_item) == 30 and set(per_item.values()) == {2}, "every item has exactly k labels"
    assert not campaign.items.filter(complete=False).exists(), "every item with k labels is marked complete"
    assert set(acknowledged) <= set(Label.objects.values_list("pk", flat=True)) and len(acknowledged) == 60
    print(f"concurrency on {connection.vendor}: {len(acknowledged)} labels")
