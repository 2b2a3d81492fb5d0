"""The rating page in a real browser: five rationales rated with the keyboard only (four keys an item: a
score moves on to the next dimension, Enter submits; Tab and the arrows still move), blinded, corrected rule
ids picked by keys, a quiet word on quick ratings, saves that land."""
import re

import pytest
from playwright.sync_api import expect

from core.roles import RATER
from datasets.constants import AASM_RULES, UNSCORED
from inference.models import AasmRule, ModelVersion, Prediction
from ratings.models import Rating
from ratings.services.campaigns import create_rating_campaign, update_rating_campaign
from tests.test_browser import SHOTS, browser, login  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SECRET = "secret-model-x"
# Per item: the keys pressed before Enter, and the scores (in rubric order) they give.
KEYS = [
    (["4", "3", "5"], (4, 3, 5)),
    (["1", "ArrowUp", "2", "2", "3"], (2, 2, 3)),
    (["5", "5"], (5, 5, 5)),  # (after a 5 and an Enter refused for the two dimensions still unscored)
    (["Tab", "Tab", "1", "Shift+Tab", "4", "Shift+Tab", "Shift+Tab", "2"], (2, 4, 1)),
    (["3", "3", "2", "Tab", "1"], (1, 3, 2)),
]


def rating_campaign(imported, rater, n=6):
    for position, (rule_id, stage, title, text) in enumerate(AASM_RULES):  # transactional tests flush the catalog
        AasmRule.objects.update_or_create(rule_id=rule_id,
                                          defaults={"stage": stage, "title": title, "text": text, "position": position})
    version = ModelVersion.objects.create(name=SECRET, backend="baseline")
    for epoch in imported.epochs.exclude(stage=UNSCORED).order_by("index")[:n]:
        Prediction.objects.create(epoch=epoch, model_version=version, status=Prediction.OK, stage="N2",
                                  rule_ids=["N2.1"], version_hash="h",
                                  rationale=f"Spindle at 8.3 s in C4-M1, 13 Hz, 25 µV (epoch {epoch.index}).")
    return create_rating_campaign("Rate", cohorts=[imported.cohort], model_versions=[version], raters=[rater],
                                  overlap=1)


def moved_on(page, item):
    """Wait until an item other than `item` is shown and takes keys (data-item names it only then)."""
    expect(page.locator(f"#rating[data-item]:not([data-item='{item}'])")).to_have_count(1, timeout=15_000)


def test_a_rater_rates_five_rationales_with_the_keyboard(browser, live_server, make_user, imported):  # noqa: F811
    rater = make_user(RATER)
    campaign = rating_campaign(imported, rater)
    total = campaign.items.count()
    keys = campaign.rubric.keys
    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/rating/{campaign.pk}/rate/")
    root = page.locator("#rating")
    expect(page.locator("#rating[data-ready]")).to_have_count(1)
    expect(page.locator("#rating[data-item]")).to_have_count(1)
    expect(page.locator("#signal-view[data-drawn]")).to_have_count(1)
    expect(page.locator("#item-stage")).to_have_text("N2")
    expect(page.locator("#item-rules")).to_contain_text("N2.1")
    expect(page.locator("#item-rationale")).to_contain_text("Spindle at 8.3 s")
    expect(page.locator(".dimension")).to_have_count(3)
    expect(page.locator(".scale-point")).to_have_count(15)
    expect(page.locator("#progress")).to_have_text(f"0 of {total} rated")

    page.keyboard.press("t")  # EOG
    page.keyboard.press("+")
    page.keyboard.press("+")
    box = page.locator("#signal-view").bounding_box()
    band = box["height"] / 6
    y = box["y"] + 1.5 * band  # C4-M1
    page.mouse.move(box["x"] + box["width"] * 0.45, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.50, y, steps=5)
    page.mouse.up()
    expect(page.locator("#measure-readout")).to_have_text(re.compile(r"C4-M1: \d+\.\d\d s · \d+ µV p-p · (\d+\.\d Hz|—)"))

    expected, notes, corrections = {}, {}, {}
    for n, (presses, scores) in enumerate(KEYS):
        item = root.get_attribute("data-item")
        if n == 1:  # corrected rule ids from the searchable list: an id, then a word of a rule's text; Esc leaves
            page.keyboard.press("i")
            expect(page.locator("#corrected-rules .rule-search")).to_be_focused()
            page.keyboard.type("N3.1")
            page.keyboard.press("Enter")
            page.keyboard.type("blinks")
            expect(page.locator("#corrected-rules .rule-options li:visible")).to_have_count(1)
            page.screenshot(path=SHOTS / "rating-rule-picker.png", full_page=True)
            page.keyboard.press("Enter")
            page.keyboard.press("Escape")
            expect(page.locator("#corrected-rules .rule-chip")).to_have_text(["N3.1 ×", "W.2 ×"])
            expect(page.locator(".dimension").first).to_be_focused()
            corrections[item] = ["N3.1", "W.2"]
        if n == 2:  # Enter with a dimension unscored: nothing is sent, the missing ones are named
            page.keyboard.press("5")
            page.keyboard.press("Enter")
            expect(page.locator("#missing")).to_be_visible()
            expect(page.locator(".dimension.missing")).to_have_count(2)
            expect(root).to_have_attribute("data-item", item)
        if n == 3:  # a note: N into the field (digits and Enter are text there), Escape back to the scales
            page.keyboard.press("n")
            page.keyboard.type("Spindle seen, 1 2 3.")
            page.keyboard.press("Enter")
            page.keyboard.press("Escape")
            notes[item] = "Spindle seen, 1 2 3."  # (the API trims the trailing newline)
        for key in presses:
            page.keyboard.press(key)
        if n == 0:
            page.screenshot(path=SHOTS / "rating.png", full_page=True)
        expected[item] = dict(zip(keys, scores))
        page.keyboard.press("Enter")
        moved_on(page, item)
        expect(root).to_have_attribute("data-saved", str(n + 1), timeout=15_000)

    expect(page.locator("#save-state")).to_have_text("saved")
    expect(page.locator("#progress")).to_have_text(f"5 of {total} rated")
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.screenshot(path=SHOTS / "rating-help.png", full_page=True)
    html = page.content()
    assert SECRET not in html
    text, rubric = page.locator("body").inner_text().lower(), page.locator("#rubric").inner_text().lower()
    assert "model" not in text and text.count("expert") == rubric.count("expert")  # (the rubric's own wording)

    ratings = Rating.objects.filter(item__campaign=campaign, rater=rater)
    assert ratings.count() == 5
    assert {str(r.item_id): r.scores for r in ratings} == expected
    assert {str(r.item_id): r.note for r in ratings if r.note} == notes
    assert {str(r.item_id): r.corrected_rule_ids for r in ratings if r.corrected_rule_ids} == corrections
    assert all(r.revision == 1 and r.seconds_spent is not None and r.rubric.version == 1 for r in ratings)


def test_a_changed_rating_is_a_new_revision_and_a_stale_one_is_refused(browser, live_server, make_user, imported):  # noqa: F811
    rater = make_user(RATER)
    campaign = rating_campaign(imported, rater, n=2)
    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/rating/{campaign.pk}/rate/")
    root = page.locator("#rating")
    expect(page.locator("#rating[data-ready]")).to_have_count(1)
    expect(page.locator("#rating[data-item]")).to_have_count(1)
    first = root.get_attribute("data-item")
    for key in ["3", "3", "3", "Enter"]:
        page.keyboard.press(key)
    expect(root).to_have_attribute("data-saved", "1", timeout=15_000)
    moved_on(page, first)

    page.keyboard.press("ArrowLeft")  # back to the rated item: its scores shown, one changed
    expect(root).to_have_attribute("data-item", first, timeout=15_000)
    expect(page.locator(".dimension.focused .scale-point.chosen")).to_have_text(re.compile(r"^3"))
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    expect(root).to_have_attribute("data-saved", "2", timeout=15_000)
    moved_on(page, first)
    rows = Rating.objects.filter(item_id=first).order_by("revision")
    assert [(r.revision, r.scores[campaign.rubric.keys[0]]) for r in rows] == [(1, 3), (2, 4)]

    current = rows.last()  # another tab changes the rating: this page's edit is stale
    Rating.objects.create(item=current.item, rater=rater, rubric=current.rubric, revision=3, replaces=current,
                          scores={**current.scores, campaign.rubric.keys[0]: 1}, client_id="00000000-0000-4000-8000-000000000001")
    page.keyboard.press("ArrowLeft")
    expect(root).to_have_attribute("data-item", first, timeout=15_000)
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    expect(page.locator("#save-state")).to_have_class(re.compile("state-error"), timeout=15_000)
    assert Rating.objects.filter(item_id=first).count() == 3
    page.keyboard.press("ArrowLeft")  # the page now shows the other tab's version, and saves on top of it
    expect(root).to_have_attribute("data-item", first, timeout=15_000)
    expect(page.locator("#current-rating")).to_have_text(re.compile("revision 3"))
    expect(page.locator(".dimension.focused .scale-point.chosen")).to_have_text(re.compile(r"^1"))
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(root).to_have_attribute("data-saved", "3", timeout=15_000)
    assert Rating.objects.filter(item_id=first).order_by("-revision").first().revision == 4


def test_five_items_rated_with_four_keystrokes_each_and_a_quiet_word_when_quick(browser, live_server, make_user, imported):  # noqa: F811
    rater = make_user(RATER)
    campaign = rating_campaign(imported, rater)
    update_rating_campaign(campaign, fast_floor_s=600, key_dwell_ms=200)  # every rating here is flagged as quick
    keys = campaign.rubric.keys
    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/rating/{campaign.pk}/rate/")
    root = page.locator("#rating")
    expect(root).to_have_attribute("data-dwell", "200")
    expect(page.locator("#rating[data-item]")).to_have_count(1)
    expected = {}
    for n, scores in enumerate([(1, 2, 3), (5, 4, 3), (2, 2, 2), (3, 5, 1), (4, 1, 5)]):
        item = root.get_attribute("data-item")
        for score in scores:  # a score, and the focus is on the next dimension
            page.keyboard.press(str(score))
        page.keyboard.press("Enter")  # after the last: submit
        expected[item] = dict(zip(keys, scores))
        expect(root).to_have_attribute("data-saved", str(n + 1), timeout=15_000)
        moved_on(page, item)
        if n == 0:
            notice = page.locator("#fast-notice")
            expect(notice).to_be_visible()  # a quiet word, not a block: the next item is there to rate
            expect(notice).to_have_text("That was quick — take the time you need.")
            page.screenshot(path=SHOTS / "rating-quick-notice.png", full_page=True)
        if n == 3:
            update_rating_campaign(campaign, fast_floor_s=0)  # the next rating is not quick: the word goes
    expect(page.locator("#fast-notice")).to_be_hidden()
    ratings = Rating.objects.filter(item__campaign=campaign, rater=rater)
    assert {str(r.item_id): r.scores for r in ratings} == expected
    assert sorted(r.fast for r in ratings) == [False, True, True, True, True]
