"""The scoring page in a real browser: keyboard scoring with gain, a measurement, saves that land."""
import json
import re

import pytest
from playwright.sync_api import expect

from annotation.models import Label
from annotation.services.campaigns import create_campaign
from core.roles import RATER
from tests.test_browser import SHOTS, browser, login  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
KEYS = ["w", "w", "1", "2", "2", "2", "3", "3", "2", "r", "r", "5", "0", "1", "2", "2", "3", "2", "r", "2"]
STAGES = {"w": "W", "0": "W", "1": "N1", "2": "N2", "3": "N3", "r": "R", "5": "R"}


def test_a_rater_scores_twenty_epochs_with_the_keyboard(browser, live_server, make_user, imported):  # noqa: F811
    rater = make_user(RATER)
    campaign = create_campaign("Night scoring", recordings=[imported], raters=[rater], overlap=1, unit="recording")
    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/scoring/{campaign.pk}/score/")
    expect(page.locator("#scoring[data-ready]")).to_have_count(1)
    expect(page.locator("#scoring")).to_have_attribute("data-index", "0")
    expect(page.locator("#signal-view[data-drawn]")).to_have_count(1)

    page.keyboard.press("t")  # EOG
    page.keyboard.press("+")
    page.keyboard.press("+")
    box = page.locator("#signal-view").bounding_box()
    band = box["height"] / 6
    y = box["y"] + 2.5 * band  # O2-M1
    page.mouse.move(box["x"] + box["width"] * 0.45, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.50, y, steps=5)
    page.mouse.up()
    expect(page.locator("#measure-readout")).to_have_text(re.compile(r"O2-M1: \d+\.\d\d s · \d+ µV p-p · (\d+\.\d Hz|—)"))
    page.screenshot(path=SHOTS / "scoring.png", full_page=True)

    for n, key in enumerate(KEYS):
        expect(page.locator("#scoring")).to_have_attribute("data-index", str(n), timeout=15_000)
        page.keyboard.press(key)
    expect(page.locator("#scoring")).to_have_attribute("data-index", "20")
    expect(page.locator("#scoring")).to_have_attribute("data-saved", "20", timeout=20_000)
    expect(page.locator("#save-state")).to_have_text("saved")
    total = campaign.items.count()
    expect(page.locator("#progress")).to_have_text(f"20 of {total} scored")
    expect(page.locator("#context")).to_be_hidden()  # the campaign opens nothing to its raters
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.screenshot(path=SHOTS / "scoring-help.png", full_page=True)

    labels = Label.objects.filter(item__campaign=campaign, rater=rater).order_by("item__position")
    assert [(label.item.epoch.index, label.stage) for label in labels] == [(i, STAGES[k]) for i, k in enumerate(KEYS)]
    assert all(label.revision == 1 and label.seconds_spent is not None for label in labels)


def test_scoring_goes_on_offline_and_nothing_is_lost_or_duplicated(browser, live_server, make_user, imported):  # noqa: F811
    rater = make_user(RATER)
    campaign = create_campaign("Offline", recordings=[imported], raters=[rater], overlap=1, unit="recording")
    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/scoring/{campaign.pk}/score/")
    expect(page.locator("#scoring")).to_have_attribute("data-index", "0")  # shown, and taking stage keys
    page.keyboard.press("w")
    expect(page.locator("#scoring")).to_have_attribute("data-saved", "1")
    expect(page.locator("#scoring")).to_have_attribute("data-index", "1")
    page.context.set_offline(True)
    for n, key in enumerate(["1", "2"], start=1):  # epochs reserved ahead: scoring goes on without the server
        expect(page.locator("#scoring")).to_have_attribute("data-index", str(n), timeout=15_000)
        page.keyboard.press(key)
    expect(page.locator("#save-state")).to_have_text(re.compile(r"offline: 2 queued|saving 2"))
    assert Label.objects.filter(item__campaign=campaign).count() == 1
    page.context.set_offline(False)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    expect(page.locator("#scoring")).to_have_attribute("data-saved", "3", timeout=20_000)
    stages = list(Label.objects.filter(item__campaign=campaign).order_by("item__position").values_list("stage", flat=True))
    assert stages == ["W", "N1", "N2"]


def test_an_unannounced_rescore_starts_empty_and_is_stored_as_a_rescore(browser, live_server, make_user, imported):  # noqa: F811
    """The page served a re-score with the rater's first answer filled in and saved it as a revision of that
    answer (the first one lost, no re-score stored): it must start empty and be stored as a second pass."""
    rater = make_user(RATER)
    # 16 items, every one picked for re-scoring: once they are answered, re-scores are served one at a time
    campaign = create_campaign("Rescored", recordings=[imported], raters=[rater], overlap=1, rescore_share=1.0,
                               sample="stratified", sample_size=16, key_dwell_ms=0)
    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/scoring/{campaign.pk}/score/")
    shown = None
    for _ in range(24):
        page.wait_for_function("(last) => { const r = document.getElementById('scoring');"
                               " return r.dataset.item && r.dataset.item !== last; }", arg=shown or "")
        shown = page.locator("#scoring").get_attribute("data-item")
        expect(page.locator("#current-label")).to_have_text("No label yet.")
        page.keyboard.press("3")
    expect(page.locator("#scoring")).to_have_attribute("data-saved", "24", timeout=20_000)
    expect(page.locator("#own-hypnogram")).to_have_count(0)  # blinded single epochs: no time-of-night strip
    labels = Label.objects.filter(item__campaign=campaign, rater=rater)
    assert labels.filter(rescore=False).count() == 16 and labels.filter(rescore=True).count() == 8
    assert set(labels.values_list("revision", flat=True)) == {1}  # no first answer was overwritten


def test_the_page_asks_again_after_a_server_hiccup_and_not_after_a_refusal(browser, live_server, make_user,  # noqa: F811
                                                                           imported):
    """A 503 from the queue (a restarting server, a proxy) had left the page on "could not get the next epoch"
    until the rater reloaded it; a refusal (403: no longer a rater here) must not be asked again and again."""
    rater = make_user(RATER)
    campaign = create_campaign("Hiccup", recordings=[imported], raters=[rater], overlap=1, sample="stratified",
                               sample_size=4, key_dwell_ms=0)
    page = login(browser, live_server, rater)
    answers = {"ahead": [503, 503]}
    asked = []

    def queue(route):
        asked.append(route.request.url)
        if answers["ahead"]:
            status = answers["ahead"].pop(0)
            detail = "You are not a rater of this campaign." if status == 403 else "Service unavailable."
            route.fulfill(status=status, content_type="application/json", body=json.dumps({"detail": detail}))
        else:
            route.continue_()

    page.route("**/ahead/**", queue)
    page.goto(f"{live_server.url}/scoring/{campaign.pk}/score/")
    expect(page.locator("#save-state")).to_have_text(re.compile(r"could not get the next .*\(HTTP 503\)"))
    expect(page.locator("#scoring")).to_have_attribute("data-item", re.compile(r"\d+"), timeout=15_000)
    assert len(asked) >= 3  # two failed, then the one that served the item

    answers["ahead"] = [403] * 50
    for _ in range(4):  # answer the items the page holds: it asks the queue for more and is refused
        page.keyboard.press("2")
        page.wait_for_timeout(300)
    expect(page.locator("#refusal")).to_have_text(re.compile(r"^Could not get the next epochs: You are not a rater of this campaign\. OK"), timeout=15_000)
    expect(page.locator("#scoring")).to_have_attribute("data-saved", "4", timeout=15_000)
    page.wait_for_timeout(1000)
    refused = len(asked)
    page.wait_for_timeout(5000)
    assert len(asked) == refused  # not asked again by itself
