"""Model-assisted review: stage confidence from token log-probabilities, review campaigns (proposal, accept or
correct, least confident first), the review curve on a hand-built case, the statistics and the simulation."""
import json
import math
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone
from sklearn.metrics import cohen_kappa_score

from annotation.models import Label
from annotation.services import queue
from annotation.services.campaigns import create_campaign
from annotation.services.review import curve, simulate_review
from core.roles import CURATOR, RATER
from datasets.constants import DERIVATIONS, EPOCH_SAMPLES, STAGES
from datasets.services.rendering import render_model_image
from inference.models import ModelVersion, Prediction
from inference.services.backends.base import EpochQuery, stage_probability
from inference.services.backends.openai_backend import OpenAIBackend
from tests.factories import make_recording
from tests.fake_vllm import fake  # noqa: F401  (fixture)

REFERENCE = ["W", "N2", "N2", "N3", "R", "N1"]
AUTOMATIC = ["W", "N1", "N2", "N2", "R", "W"]  # wrong on epochs 1, 3 and 5
CONFIDENCE = [0.9, 0.3, 0.8, 0.4, 0.95, 0.2]  # least confident first: 5, 1, 3, 2, 0, 4


def test_stage_probability_is_the_product_over_the_tokens_that_spell_the_last_stage():
    tokens = [('{"sleep_stage": "', -0.5), ("N", -0.2), ("3", -0.1), ('"}', -0.3), (' {"sleep_stage": "', -0.4),
              ('N', math.log(0.7)), ('2"', math.log(0.5)), ("}", -0.9)]
    assert stage_probability(tokens) == pytest.approx(0.7 * 0.5)
    assert stage_probability([("no stage here", -0.1)]) is None


def _expected_curve(order, expert):
    """κ (scikit-learn) and accuracy of the hypnogram whose first k epochs of `order` take the expert's stage."""
    kappas, accuracies = [], []
    for k in range(len(order) + 1):
        reviewed = list(AUTOMATIC)
        for i in order[:k]:
            reviewed[i] = expert[i] or AUTOMATIC[i]
        kappas.append(cohen_kappa_score(reviewed, REFERENCE, labels=list(STAGES)))
        accuracies.append(sum(a == b for a, b in zip(reviewed, REFERENCE)) / len(REFERENCE))
    return kappas, accuracies


def test_review_curve_on_a_hand_built_case():
    result = curve(AUTOMATIC, CONFIDENCE, REFERENCE, REFERENCE)
    kappas, accuracies = _expected_curve([5, 1, 3, 2, 0, 4], REFERENCE)
    assert result["confidence"]["share"] == [k / 6 for k in range(7)]
    assert result["confidence"]["kappa"] == pytest.approx(kappas)
    assert result["confidence"]["accuracy"] == pytest.approx(accuracies)
    assert accuracies == pytest.approx([3 / 6, 4 / 6, 5 / 6, 1, 1, 1, 1])
    needed = next(k for k, kappa in enumerate(kappas) if kappa >= 0.90)
    assert result["share_for_target"] == needed / 6 == 0.5  # the three errors are the three least confident
    assert result["confidence"]["share_for_kappa"] == {
        f"{level:.2f}": next(k for k, kappa in enumerate(kappas) if kappa >= level) / 6 for level in (0.90, 0.95, 0.99)}
    random_order = list(np.random.default_rng(0).permutation(6))
    random_kappas, random_accuracies = _expected_curve(random_order, REFERENCE)
    assert result["random"]["kappa"] == pytest.approx(random_kappas)
    assert result["random"]["accuracy"] == pytest.approx(random_accuracies)
    assert result["random_share_for_target"] == next(k for k, v in enumerate(random_kappas) if v >= 0.90) / 6 > 0.5


def test_review_curve_with_part_reviewed_keeps_the_automatic_stages_elsewhere():
    expert = [None, "N2", None, "N2", None, "N1"]  # epoch 3 reviewed but left wrong
    result = curve(AUTOMATIC, CONFIDENCE, REFERENCE, expert)
    kappas, _ = _expected_curve([5, 1, 3, 2, 0, 4], expert)
    assert result["confidence"]["kappa"] == pytest.approx(kappas)
    assert result["confidence"]["accuracy"][-1] == pytest.approx(5 / 6)
    assert result["share_for_target"] is None


def _pngs():
    rng = np.random.default_rng(5)
    return [render_model_image(rng.normal(0, 20, (len(DERIVATIONS), EPOCH_SAMPLES)), DERIVATIONS) for _ in range(3)]


def test_openai_backend_reads_the_stage_probability_from_logprobs(fake):  # noqa: F811
    query = EpochQuery(epoch_id=1, recording_id=1, index=1, images=tuple(_pngs()))
    settings = {"base_url": fake.base_url, "model": "m", "backoff_s": 0.01, "timeout_s": 5}
    fake.token_logprob = math.log(0.9)
    [output] = OpenAIBackend(settings).predict([query])
    assert fake.requests[0][2]["logprobs"] is True
    assert output.probability == pytest.approx(0.9**2)  # "N2": two one-character tokens of probability 0.9

    fake.logprobs = False  # a server that sends no logprobs: no probability
    [output] = OpenAIBackend(settings).predict([query])
    assert output.text and output.probability is None


def _predict(version, recording, stages, probabilities):
    Prediction.objects.bulk_create([
        Prediction(epoch=epoch, model_version=version, status=Prediction.OK, stage=stage, probability=p, version_hash="h")
        for epoch, stage, p in zip(recording.epochs.order_by("index"), stages, probabilities) if stage])


@pytest.fixture
def review_world(db, make_user):
    recording = make_recording("Review", "night", REFERENCE)
    version = ModelVersion.objects.create(name="model-a", backend=ModelVersion.OPENAI, settings={})
    _predict(version, recording, AUTOMATIC, CONFIDENCE)
    rater = make_user(RATER)
    campaign = create_campaign("Review", recordings=[recording], raters=[rater], overlap=1, review_model=version)
    return campaign, rater, version


def test_review_queue_serves_the_least_confident_first(review_world):
    campaign, rater, _ = review_world
    served = [item.epoch.index for item, _ in queue.reserve_ahead(campaign, rater, 3)]
    assert served == [5, 1, 3]
    order = []
    while (next_item := queue.next_item(campaign, rater)) is not None:
        order.append(next_item[0].epoch.index)
        queue.submit_label(campaign, rater, next_item[0], stage="W", client_id=uuid.uuid4())
    assert order == [5, 1, 3, 2, 0, 4]


def test_without_probabilities_disagreement_between_versions_orders_the_queue(db, make_user):
    recording = make_recording("Review", "night", REFERENCE)
    silent = ModelVersion.objects.create(name="no-logprobs", backend=ModelVersion.OPENAI, settings={})
    _predict(silent, recording, AUTOMATIC, [None] * 6)
    assert silent.confidence_source == ModelVersion.NO_CONFIDENCE == "disagreement between model versions"
    for name, stages in (("b", ["W", "N2", "N2", "N3", "R", "W"]), ("c", ["W", "N1", "N2", "N3", "R", "N1"])):
        _predict(ModelVersion.objects.create(name=name, backend=ModelVersion.BASELINE), recording, stages, [0.5] * 6)
    # agreement of b and c with the silent version: epochs 0, 2, 4: 1; 1: 1/2 (c); 3: 0; 5: 1/2 (b)
    rater = make_user(RATER)
    campaign = create_campaign("Silent", recordings=[recording], raters=[rater], overlap=1, review_model=silent)
    order = []
    while (next_item := queue.next_item(campaign, rater)) is not None:
        order.append(next_item[0].epoch.index)
        queue.submit_label(campaign, rater, next_item[0], stage="W", client_id=uuid.uuid4())
    assert order == [3, 1, 5, 0, 2, 4]


def test_served_item_carries_the_proposal_and_labels_record_accept_or_correct(review_world, client):
    campaign, rater, _ = review_world
    client.force_login(rater)
    api = f"/api/scoring/campaigns/{campaign.pk}/"
    served = client.post(api + "next/").json()
    assert served["proposal"] == {"stage": "W", "rule_ids": []}  # epoch 5: the model says W
    assert "reference_stage" not in served and "model_outputs" not in served  # blinding as before
    saved = client.post(api + "labels/", {"item": served["item"], "stage": "W", "client_id": str(uuid.uuid4())},
                        content_type="application/json")
    assert saved.status_code == 201
    served = client.post(api + "next/").json()
    assert served["proposal"]["stage"] == "N1"  # epoch 1
    client.post(api + "labels/", {"item": served["item"], "stage": "N2", "client_id": str(uuid.uuid4())},
                content_type="application/json")
    labels = Label.objects.filter(item__campaign=campaign).order_by("pk")
    assert [(label.item.epoch.index, label.stage, label.accepted) for label in labels] == [(5, "W", True), (1, "N2", False)]
    own = {row["stage"]: row["accepted"] for row in client.get(api + "labels/").json()["results"]}
    assert own == {"W": True, "N2": False}


def test_statistics_carry_the_review_curve(review_world, make_user, client):
    campaign, rater, version = review_world
    for stage, seconds in (("N1", 30.0), ("N2", 10.0)):  # epochs 5 and 1, both corrected to the reference
        served_at = timezone.now()
        item, _ = queue.next_item(campaign, rater, now=served_at)
        queue.submit_label(campaign, rater, item, stage=stage, client_id=uuid.uuid4(), seconds_spent=999,
                           now=served_at + timedelta(seconds=seconds))  # the server's time counts, not the browser's
    client.force_login(make_user(CURATOR))
    stats = client.get(f"/api/scoring/campaigns/{campaign.pk}/statistics/").json()
    review = stats["review_curve"]
    assert review["model_version"] == "model-a" and review["confidence_source"] == "stage-token logprobs"
    assert review["simulated"] == json.loads(json.dumps(curve(AUTOMATIC, CONFIDENCE, REFERENCE, REFERENCE)))
    kappas, _ = _expected_curve([5, 1], REFERENCE)
    observed = review["observed"]
    assert (observed["reviewed"], observed["share_reviewed"], observed["accepted_share"]) == (2, 2 / 6, 0.0)
    assert (observed["kappa_before"], observed["kappa_now"]) == pytest.approx((kappas[0], kappas[2]))
    assert review["seconds_per_reviewed_epoch"] == 20.0
    assert review["expert_hours_for_target"] == pytest.approx(3 * 20 / 3600)
    assert review["expert_hours_per_0_1_kappa"] == pytest.approx(2 * 20 / 3600 / (kappas[2] - kappas[0]) * 0.1)
    page = client.get(f"/scoring/{campaign.pk}/dashboard/").content.decode()
    assert 'id="review-curve"' in page and "review-curve" in page and "least confident first" in page

    versions = {row["name"]: row for row in client.get("/api/model-versions/").json()["results"]}
    assert versions["model-a"]["confidence_source"] == "stage-token logprobs"

    other = create_campaign("Plain", recordings=[campaign.recordings.get()], raters=[rater], overlap=1)
    assert client.get(f"/api/scoring/campaigns/{other.pk}/statistics/").json()["review_curve"] is None


def test_simulation_on_a_synthetic_night(imported):
    """The CPU baseline over the one-hour synthetic night, reviewed by the reference: least confident first
    reaches κ ≥ 0.90 no later than random order, and the command prints the same curve."""
    from inference.services.jobs import start_job
    from inference.services.versions import save_version

    version = save_version(ModelVersion(name="baseline", backend=ModelVersion.BASELINE))
    start_job(version, recording=imported, inline=True)
    epochs = imported.epochs.order_by("index")
    result = simulate_review(version, epochs)
    parsed = Prediction.objects.filter(model_version=version, epoch__recording=imported, stage__in=STAGES,
                                       epoch__stage__in=STAGES)
    assert result["epochs"] == parsed.count() > 100
    assert result["confidence"]["kappa"][-1] == pytest.approx(1.0)
    for level, share in result["confidence"]["share_for_kappa"].items():
        assert share is not None and share <= result["random"]["share_for_kappa"][level], level
    assert result["confidence"]["share_for_kappa"]["0.99"] < result["random"]["share_for_kappa"]["0.99"]
    from io import StringIO

    out = StringIO()
    call_command("simulate_review", "--model", "baseline", "--recording", str(imported.pk), stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["share_for_target"] == result["share_for_target"]
    assert printed["confidence_source"] == "classifier probability"
