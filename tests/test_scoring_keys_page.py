"""The scoring page in a real browser: in rationale mode the rule ids and rationale belong to the epoch shown
and a label needs both; a double key press labels only the epoch shown; a refused save stays on screen
until acknowledged."""
import uuid

import pytest
from playwright.sync_api import expect

from annotation.models import Label
from annotation.services import queue
from annotation.services.campaigns import create_campaign
from core.roles import RATER
from datasets.constants import AASM_RULES
from inference.models import AasmRule
from tests.test_browser import SHOTS, browser, login  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# Per epoch: what is typed into the rule picker (each followed by Enter), the rule ids it picks, the
# rationale, and the stage key.
RATIONALES = [
    (["N2.1"], ["N2.1"], "Spindle at 4 s in C4-M1", "2"),
    (["slow-wave"], ["N3.1"], "Slow waves over a quarter of the epoch", "3"),
    (["R.1", "R.2"], ["R.1", "R.2"], "REMs with low chin EMG", "r"),
]


def open_scoring(browser, live_server, make_user, imported, **settings):  # noqa: F811
    rater = make_user(RATER)
    campaign = create_campaign("Keys", recordings=[imported], raters=[rater], overlap=1, unit="recording", **settings)
    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/scoring/{campaign.pk}/score/")
    root = page.locator("#scoring")
    expect(root).to_have_attribute("data-index", "0", timeout=15_000)  # shown, and taking stage keys
    return campaign, rater, page, root


def test_rationale_mode_keeps_each_epochs_rules_and_text(browser, live_server, make_user, imported):  # noqa: F811
    for position, (rule_id, stage, title, text) in enumerate(AASM_RULES):  # transactional tests flush the catalog
        AasmRule.objects.update_or_create(rule_id=rule_id,
                                          defaults={"stage": stage, "title": title, "text": text, "position": position})
    campaign, rater, page, root = open_scoring(browser, live_server, make_user, imported, rationale_mode=True)
    rules, rationale = page.locator("#rule-ids .rule-chip"), page.locator("#rationale")
    missing = page.locator("#rationale-missing")

    page.keyboard.press("2")  # no rule id, no rationale: refused on the page, nothing sent
    expect(missing).to_be_visible()
    expect(missing).to_contain_text("add a rule id and a rationale")
    page.screenshot(path=SHOTS / "scoring-rationale-refused.png", full_page=True)
    expect(root).to_have_attribute("data-index", "0")

    for n, (queries, picked, text, key) in enumerate(RATIONALES):
        expect(root).to_have_attribute("data-index", str(n), timeout=15_000)
        expect(rules).to_have_count(0)  # a new epoch starts with empty fields
        expect(rationale).to_have_value("")
        page.keyboard.press("i")
        for query in queries:
            page.keyboard.type(query)
            page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        page.keyboard.press("n")
        expect(rationale).to_be_focused()
        page.keyboard.type(text)
        if n == 0:  # rules but a blank-looking text: still refused
            page.keyboard.press("Escape")
            rationale.fill("   ")
            page.keyboard.press("Escape")
            page.keyboard.press(key)
            expect(missing).to_contain_text("add a rationale")
            page.keyboard.press("n")
            rationale.fill(text)
        page.keyboard.press("Escape")  # leaves the text box: the stage key scores, it is not typed
        expect(rationale).not_to_be_focused()
        expect(rules).to_have_text([f"{rule_id} ×" for rule_id in picked])
        if n == 2:
            page.screenshot(path=SHOTS / "scoring-rationale.png", full_page=True)
        page.keyboard.press(key)
    expect(root).to_have_attribute("data-index", "3", timeout=15_000)
    expect(root).to_have_attribute("data-saved", "3", timeout=15_000)

    for n in (2, 1, 0):  # back to the first: each epoch shows its own answer
        page.keyboard.press("ArrowLeft")
        expect(root).to_have_attribute("data-index", str(n), timeout=15_000)
        expect(rules).to_have_text([f"{rule_id} ×" for rule_id in RATIONALES[n][1]])
        expect(rationale).to_have_value(RATIONALES[n][2])
    expect(page.locator("#current-label")).to_have_text("Your label: N2")

    labels = Label.objects.filter(item__campaign=campaign, rater=rater).order_by("item__position")
    stages = {"2": "N2", "3": "N3", "r": "R"}
    assert [(lab.item.epoch.index, lab.stage, lab.rule_ids, lab.rationale) for lab in labels] == [
        (n, stages[key], picked, text) for n, (_, picked, text, key) in enumerate(RATIONALES)]


def test_a_double_key_press_labels_only_the_epoch_shown(browser, live_server, make_user, imported):  # noqa: F811
    campaign, rater, page, root = open_scoring(browser, live_server, make_user, imported, key_dwell_ms=1500)
    page.keyboard.press("2")
    page.keyboard.press("2")  # the next epoch is not yet shown for the dwell: ignored
    expect(root).to_have_attribute("data-index", "1", timeout=15_000)
    expect(root).to_have_attribute("data-saved", "1", timeout=15_000)
    page.keyboard.press("3")
    expect(root).to_have_attribute("data-index", "2", timeout=15_000)
    expect(root).to_have_attribute("data-saved", "2", timeout=15_000)
    labels = Label.objects.filter(item__campaign=campaign, rater=rater).order_by("item__position")
    assert [(lab.item.epoch.index, lab.stage, lab.revision) for lab in labels] == [(0, "N2", 1), (1, "N3", 1)]

    # Another device changes epoch 0's label: this page's edit of it is refused, and says so until acknowledged.
    first = labels[0]
    queue.submit_label(campaign, rater, first.item, stage="R", client_id=uuid.uuid4(), base_revision=1)
    for n in (1, 0):
        page.keyboard.press("ArrowLeft")
        expect(root).to_have_attribute("data-index", str(n), timeout=15_000)
    page.keyboard.press("w")
    refusal = page.locator("#refusal")
    expect(refusal).to_be_visible(timeout=15_000)
    expect(refusal).to_contain_text("changed in another tab or device")
    expect(root).to_have_attribute("data-index", "2", timeout=15_000)
    page.keyboard.press("1")
    expect(root).to_have_attribute("data-saved", "3", timeout=15_000)
    expect(page.locator("#save-state")).to_have_text("saved")
    expect(refusal).to_be_visible()  # a later "saved" does not hide it
    page.screenshot(path=SHOTS / "scoring-refused-save.png", full_page=True)
    page.keyboard.press("Escape")
    expect(refusal).to_be_hidden()
    assert list(Label.objects.filter(item=first.item).order_by("revision").values_list("stage", flat=True)) == ["N2", "R"]
