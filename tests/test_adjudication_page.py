"""The adjudication page in a real browser: a designated adjudicator resolves three disputed epochs with keys
only, each drawn in the signal view, and nothing was chosen for them."""
import re
import uuid

import pytest
from playwright.sync_api import expect

from annotation.models import Adjudication, Label, Reservation
from annotation.services.campaigns import create_campaign
from core.models import ChangeRecord
from core.roles import RATER
from tests.test_browser import SHOTS, browser, login  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# Four raters' stages of the first four epochs: below the 2/3 agreement, a four-way tie, a two-two tie, agreed.
LABELS = [("N2", "N2", "N3", "W"), ("N1", "N2", "N3", "R"), ("N2", "N2", "N3", "N3"), ("N2", "N2", "N2", "N3")]


def disputed_campaign(imported, raters, adjudicator):
    campaign = create_campaign("Disputed night", recordings=[imported], raters=raters, adjudicators=[adjudicator],
                               overlap=4, sample_size=4, seed=1)
    for item, stages in zip(campaign.items.order_by("position"), LABELS):
        for slot, (rater, stage) in enumerate(zip(raters, stages)):
            Reservation.objects.create(item=item, slot=slot, rater=rater, labelled=True, expires_at="2100-01-01T00:00Z")
            Label.objects.create(item=item, rater=rater, stage=stage, client_id=uuid.uuid4())
    return campaign


def test_an_adjudicator_resolves_three_epochs_with_keys_only(browser, live_server, make_user, imported):  # noqa: F811
    raters = [make_user(RATER, f"scorer-{i}") for i in range(4)]
    adjudicator = make_user(RATER, "adjudicator")  # a rater named adjudicator, not a rater of the campaign
    campaign = disputed_campaign(imported, raters, adjudicator)
    items = list(campaign.items.order_by("position"))

    page = login(browser, live_server, adjudicator)
    expect(page.locator("tr.assignment[data-kind=adjudication]")).to_contain_text("0 of 3 resolved")
    page.locator("tr.assignment[data-kind=adjudication]").get_by_role("link", name="Adjudicate").click()
    expect(page).to_have_url(re.compile(rf"/scoring/{campaign.pk}/adjudicate/$"))
    root = page.locator("#adjudication")
    expect(page.locator("#queue li")).to_have_count(3)
    expect(page.locator(".stage-btn.active")).to_have_count(0)  # nothing pre-selected
    expect(page.locator("#reason")).to_have_value("")
    html = page.content()
    assert not any(r.username in html for r in raters) and "Reference" not in html

    page.keyboard.press("Enter")  # no stage yet: refused, nothing saved
    expect(page.locator("#message")).to_contain_text("Choose a stage first")
    decisions = [(["2", "ArrowDown"], "N2", "Spindle or K-complex present"),
                 (["3", "ArrowDown", "ArrowDown"], "N3", "Arousal / alpha in the epoch"),
                 (["r", *"REMs, atonia"], "R", "REMs, atonia")]
    whys = ["agreement 50% on N2, below 67%", "tie: N1 / N2 / N3 / R, 1 label each", "tie: N2 / N3, 2 labels each"]
    for n, ((keys, stage, reason), item, why) in enumerate(zip(decisions, items, whys)):
        expect(root).to_have_attribute("data-item", str(item.pk), timeout=15_000)
        expect(page.locator("#signal-view[data-drawn]")).to_have_count(1)
        expect(page.locator("#why")).to_have_text(why)
        expect(page.locator("#labels tr")).to_have_count(4)
        expect(page.locator("#consensus")).to_contain_text("none (tie)" if n else "N2, 50 %")
        for key in keys:
            page.keyboard.press(key)
        if n == 0:
            page.screenshot(path=SHOTS / "adjudication.png", full_page=True)
        page.keyboard.press("Enter")
        expect(root).to_have_attribute("data-resolved", str(n + 1), timeout=15_000)
    expect(page.locator("#done")).to_be_visible()
    page.screenshot(path=SHOTS / "adjudication-done.png", full_page=True)

    stored = [(a.item_id, a.stage, a.reason, a.adjudicator) for a in Adjudication.objects.order_by("pk")]
    assert stored == [(item.pk, stage, reason, adjudicator) for item, (_, stage, reason) in zip(items, decisions)]
    assert ChangeRecord.objects.filter(action=ChangeRecord.ADJUDICATE, actor=adjudicator).count() == 3
    page.reload()
    expect(page.locator("#done")).to_be_visible()  # nothing left to adjudicate


def test_raters_who_are_not_adjudicators_may_not_open_the_page(client, make_user, imported):
    raters = [make_user(RATER, f"scorer-{i}") for i in range(4)]
    campaign = disputed_campaign(imported, raters, make_user(RATER, "adjudicator"))
    client.force_login(raters[0])
    assert client.get(f"/scoring/{campaign.pk}/adjudicate/").status_code == 403


def test_disputes_show_rules_reference_and_models_only_where_the_campaign_shows_them(make_user, db):
    from annotation.services.consensus import disputes
    from core.roles import CURATOR
    from inference.models import ModelVersion, Prediction
    from tests.factories import make_recording

    recording = make_recording("Adjudicated", "night", ["N2", "N3"])
    raters = [make_user(RATER, f"scorer-{i}") for i in range(2)]
    adjudicator = make_user(RATER, "adjudicator")
    version = ModelVersion.objects.create(name="secret-model-v9", backend="baseline")
    for open_up in (False, True):
        campaign = create_campaign(f"Rationales {open_up}", recordings=[recording], raters=raters, overlap=2,
                                   adjudicators=[adjudicator], rationale_mode=True, show_reference=open_up,
                                   show_model_outputs=open_up)
        item = campaign.items.get(epoch__index=0)
        for slot, (rater, stage, rules) in enumerate(zip(raters, ("N2", "N3"), (["N2.1"], ["N3.1"]))):
            Reservation.objects.create(item=item, slot=slot, rater=rater, labelled=True, expires_at="2100-01-01T00:00Z")
            Label.objects.create(item=item, rater=rater, stage=stage, rule_ids=rules, rationale="text",
                                 client_id=uuid.uuid4())
        if open_up:
            Prediction.objects.create(epoch=item.epoch, model_version=version, status=Prediction.OK, stage="N2",
                                      rule_ids=["N2.1"], version_hash="h")
        [row] = disputes(campaign, adjudicator)
        assert row["labels"] == [{"rater": "rater-01", "stage": "N2", "rule_ids": ["N2.1"]},
                                 {"rater": "rater-02", "stage": "N3", "rule_ids": ["N3.1"]}]
        assert row["tie"] and row["majority"] is None and row["why"] == "tie: N2 / N3, 1 label each"
        assert ("reference" in row, "models" in row) == (open_up, open_up)
    assert row["reference"] == "N2" and row["models"] == [{"model": "Model A", "stage": "N2"}]  # pseudonymous
    assert disputes(campaign, make_user(CURATOR))[0]["models"] == [{"model": "secret-model-v9", "stage": "N2"}]
