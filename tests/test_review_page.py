"""A review campaign in a real browser: the model's stage shown as a proposal, least confident epochs first;
five proposals accepted (Enter, A) and two corrected (stage keys), with the keyboard only."""
import numpy as np
import pytest
from playwright.sync_api import expect

from annotation.models import Label
from annotation.services.campaigns import create_campaign
from core.roles import CURATOR, RATER
from inference.models import ModelVersion, Prediction
from tests.test_browser import SHOTS, browser, login  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# Per served epoch (least confident first): the key pressed, and whether it accepts the proposal.
KEYS = [("Enter", True), ("a", True), ("3", False), ("Enter", True), ("w", False), ("Enter", True), ("a", True)]
CORRECTIONS = {"3": "N3", "w": "W"}


def test_rater_accepts_five_proposals_and_corrects_two_with_keys(browser, live_server, make_user, imported):  # noqa: F811
    version = ModelVersion.objects.create(name="model-under-review", backend=ModelVersion.BASELINE)
    epochs = list(imported.epochs.order_by("index"))
    confidence = np.random.default_rng(4).permutation(len(epochs)) / len(epochs)  # distinct, shuffled
    proposals = ["N2" if e.stage != "N2" else "N1" for e in epochs]  # never a correction key's stage
    Prediction.objects.bulk_create([
        Prediction(epoch=e, model_version=version, status=Prediction.OK, stage=s, probability=float(p), version_hash="h")
        for e, s, p in zip(epochs, proposals, confidence)])
    rater = make_user(RATER)
    campaign = create_campaign("Review in the browser", recordings=[imported], raters=[rater], overlap=1,
                               review_model=version)
    expected = [epochs[i] for i in np.argsort(confidence)[: len(KEYS)]]
    item_of = dict(campaign.items.values_list("epoch_id", "pk"))

    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/scoring/{campaign.pk}/score/")
    root, proposal = page.locator("#scoring"), page.locator("#proposal")
    for n, ((key, _), epoch) in enumerate(zip(KEYS, expected)):
        expect(root).to_have_attribute("data-item", str(item_of[epoch.pk]), timeout=15_000)
        expect(proposal).to_have_attribute("data-stage", proposals[epoch.index])
        expect(proposal).to_contain_text(f"Model proposes {proposals[epoch.index]}")
        if n == 2:
            page.screenshot(path=SHOTS / "scoring-review.png", full_page=True)
        page.keyboard.press(key)
        expect(root).to_have_attribute("data-saved", str(n + 1), timeout=15_000)

    labels = {label.item.epoch_id: label for label in Label.objects.filter(item__campaign=campaign, rater=rater)}
    assert [(labels[e.pk].stage, labels[e.pk].accepted) for e in expected] == [
        (proposals[e.index] if accepts else CORRECTIONS[key], accepts) for (key, accepts), e in zip(KEYS, expected)]
    assert sum(label.accepted for label in labels.values()) == 5 and len(labels) == 7

    dashboard = login(browser, live_server, make_user(CURATOR))
    dashboard.goto(f"{live_server.url}/scoring/{campaign.pk}/dashboard/")
    section = dashboard.locator("#review-curve")
    expect(section.locator("svg.review-curve polyline")).to_have_count(2)
    expect(section).to_contain_text("Reviewed so far: 7 epochs")
    expect(section).to_contain_text("71% of proposals accepted")  # 5 of 7
    section.screenshot(path=SHOTS / "scoring-review-curve.png")
