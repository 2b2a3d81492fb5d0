"""The shared signal view in a real browser: clinical view, page widths, the measure tool at 10 s, the key strip,
one epoch numbering on every page, and no position in the night in blinded single-epoch campaigns."""
import re

import pytest
from playwright.sync_api import expect

from annotation.models import Label, ScoringCampaign
from annotation.services.campaigns import create_campaign
from core.roles import RATER
from tests.test_browser import SHOTS, browser, login  # noqa: F401  (fixture)
from tests.test_rating_page import rating_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
KEYS = ["w", "1", "2", "2", "3", "3", "2", "r", "r", "2"]
STAGES = {"w": "W", "1": "N1", "2": "N2", "3": "N3", "r": "R"}


def drag(page, band: int, start: float, end: float) -> None:
    """Drag across band `band` (0-based) from `start` to `end`, as shares of the canvas width."""
    box = page.locator("#signal-view").bounding_box()
    y = box["y"] + 18 + (band + 0.5) * (box["height"] - 38) / 6  # below the epoch labels, above the time axis
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, y, steps=5)
    page.mouse.up()


def test_ten_epochs_scored_at_30_s_in_the_clinical_view_and_a_measurement_at_10_s(browser, live_server, make_user,  # noqa: F811
                                                                                  imported):
    rater = make_user(RATER)
    campaign = create_campaign("Clinical night", recordings=[imported], raters=[rater], overlap=1, unit="recording",
                               key_dwell_ms=0)
    assert campaign.signal_view == "clinical"  # the default of scoring campaigns
    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/scoring/{campaign.pk}/score/")
    canvas = page.locator("#signal-view")
    expect(page.locator("#scoring[data-ready]")).to_have_count(1)
    expect(page.locator("#signal-view[data-drawn]")).to_have_count(1)
    expect(canvas).to_have_attribute("data-view", "clinical")
    expect(page.locator("#view-state")).to_contain_text("clinical · 256 Hz · page 90 s")
    expect(page.locator("#view-state")).to_contain_text("EEG 0.3–35 Hz, notch 50; EOG 0.3–35 Hz, notch 50; EMG 10–100 Hz")
    strip = page.locator("#key-strip")
    expect(strip).to_be_visible()
    for text in ("stage", "uncertain", "page width", "prepared / clinical view", "clip at band edges", "measure"):
        expect(strip).to_contain_text(text)
    expect(page.locator("#position")).to_have_text("epoch 1 of 120")  # a whole-night campaign shows the position

    page.keyboard.press("z")
    expect(canvas).to_have_attribute("data-width", "30")
    page.keyboard.press("c")  # clipping is on by default; off and on again
    expect(canvas).to_have_attribute("data-clip", "0")
    page.keyboard.press("c")
    expect(canvas).to_have_attribute("data-clip", "1")
    page.screenshot(path=SHOTS / "signal-view-clinical-30s.png", full_page=True)
    for n, key in enumerate(KEYS):
        expect(page.locator("#scoring")).to_have_attribute("data-index", str(n), timeout=15_000)
        expect(canvas).to_have_attribute("data-width", "30")
        expect(canvas).to_have_attribute("data-view", "clinical")
        page.keyboard.press(key)
    expect(page.locator("#scoring")).to_have_attribute("data-index", "10")
    expect(page.locator("#scoring")).to_have_attribute("data-saved", "10", timeout=20_000)
    labels = Label.objects.filter(item__campaign=campaign, rater=rater).order_by("item__position")
    assert [(label.item.epoch.index, label.stage) for label in labels] == [(i, STAGES[k]) for i, k in enumerate(KEYS)]

    page.keyboard.press("z")
    page.keyboard.press("z")
    expect(canvas).to_have_attribute("data-width", "10")
    drag(page, 2, 0.45, 0.50)  # O2-M1, 5 % of the canvas: about half a second at 10 s (4.7 s at 90 s)
    readout = page.locator("#measure-readout")
    expect(readout).to_have_text(re.compile(r"O2-M1: \d+\.\d\d s · \d+ µV p-p · (\d+\.\d Hz|—)"))
    seconds = float(re.match(r"O2-M1: (\d+\.\d\d) s", readout.text_content()).group(1))
    assert 0.4 < seconds < 0.7
    page.screenshot(path=SHOTS / "signal-view-clinical-10s-measure.png", full_page=True)
    page.keyboard.press("]")  # the next 10 s of the epoch, then the model's view of it
    page.keyboard.press("v")
    expect(canvas).to_have_attribute("data-view", "model")
    expect(page.locator("#view-state")).to_contain_text("prepared · 100 Hz · page 10 s")
    page.keyboard.press("v")
    expect(canvas).to_have_attribute("data-view", "clinical")
    expect(readout).to_have_text("Drag across a wave to measure it.")  # a measurement belongs to the view it was made in
    page.screenshot(path=SHOTS / "signal-view-clinical-10-20s.png", full_page=True)

    # one numbering: the epoch this page calls "epoch 11" is epoch 11 on the epoch page
    expect(page.locator("#position")).to_have_text("epoch 11 of 120")
    page.goto(f"{live_server.url}/recordings/{imported.pk}/epochs/10/")
    expect(page.locator("#epoch-number")).to_have_text("11")
    expect(page.locator("h1")).to_contain_text("of 120")


def test_blinded_single_epoch_scoring_hides_the_position_in_the_night(browser, live_server, make_user,  # noqa: F811
                                                                      imported):
    rater = make_user(RATER)
    campaign = create_campaign("Blind epochs", recordings=[imported], raters=[rater], overlap=1, key_dwell_ms=0)
    ScoringCampaign.objects.filter(pk=campaign.pk).update(signal_view="model", signal_view_switchable=False)
    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/scoring/{campaign.pk}/score/")
    expect(page.locator("#signal-view[data-drawn]")).to_have_count(1)
    expect(page.locator("#scoring[data-index]")).to_have_count(1)
    expect(page.locator("#position")).to_have_text("")
    expect(page.locator("h1")).to_have_text("Blind epochs")  # the title alone: no "epoch N of 120"
    expect(page.locator("#key-strip")).to_be_visible()
    expect(page.locator("#key-strip")).not_to_contain_text("prepared / clinical view")  # the campaign does not allow it
    page.keyboard.press("v")
    expect(page.locator("#signal-view")).to_have_attribute("data-view", "model")
    expect(page.locator("#view-state")).to_contain_text("prepared · 100 Hz")
    page.screenshot(path=SHOTS / "signal-view-blinded-epoch.png", full_page=True)


def test_the_rating_page_starts_in_the_models_view_and_shows_every_key(browser, live_server, make_user,  # noqa: F811
                                                                         imported):
    rater = make_user(RATER)
    rating = rating_campaign(imported, rater)
    page = login(browser, live_server, rater)
    assert rating.signal_view == "model"  # the default of rating campaigns
    page.goto(f"{live_server.url}/rating/{rating.pk}/rate/")
    expect(page.locator("#signal-view[data-drawn]")).to_have_count(1)
    expect(page.locator("#rating[data-item]")).to_have_count(1)
    expect(page.locator("#signal-view")).to_have_attribute("data-view", "model")
    strip = page.locator("#key-strip")
    expect(strip).to_be_visible()
    for text in ("score", "submit", "page width", "prepared / clinical view", "its gain"):
        expect(strip).to_contain_text(text)
    expect(page.locator("h1")).to_have_text("Rate")
    page.keyboard.press("v")
    expect(page.locator("#signal-view")).to_have_attribute("data-view", "clinical")
    page.keyboard.press("t")  # the first channel is chosen to begin with: T goes to C4-M1, + raises its gain only
    page.keyboard.press("+")
    expect(page.locator("#signal-view")).to_have_attribute("data-gains", re.compile(r'^\{"C4-M1":1\.25\}$'))
    page.click(".filter-form summary")  # the technologist's filters: EEG high-pass at 1 Hz, EMG without notch
    page.fill("input[name=hp_eeg]", "1")
    page.keyboard.press("Tab")
    page.uncheck("input[name=notch_emg]")
    expect(page.locator("#view-state")).to_contain_text("EEG 1–35 Hz, notch 50; EOG 0.3–35 Hz, notch 50; EMG 10–100 Hz ·")
    page.screenshot(path=SHOTS / "signal-view-rating-clinical.png", full_page=True)
