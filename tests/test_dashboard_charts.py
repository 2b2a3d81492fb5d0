"""The researcher dashboards in chromium: every chart's text contrasts with what it is drawn on (WCAG 2,
at least 4.5:1), charts keep their natural size; the hypnodensity, unanimous and drift charts and the
published human bands render; screenshots of both dashboards, the report and a document."""
import uuid

import numpy as np
import pytest
from playwright.sync_api import expect

from annotation.services import queue
from annotation.services.campaigns import create_campaign
from core.roles import RATER, RESEARCHER
from core.services.plots import (AGREEMENT_SCALE, BAND, MUTED, SHARE_SCALE, TEXT, colour_at, contrast_ratio,
                                 label_colour)
from inference.models import ModelVersion, Prediction
from tests.test_browser import SHOTS, browser  # noqa: F401 (the chromium fixture)
from tests.test_ratings import _rated_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Per chart text: its computed fill, and the fill of the topmost shape under its centre (in the chart's own
# coordinates) or, where there is none, the first opaque background behind the chart.
CHART_TEXT = """() => {
  const rgba = (css) => { const p = css.match(/[\\d.]+/g).map(Number); return p.length === 3 ? [...p, 1] : p; };
  const backdrop = (el) => {
    for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) return c; }
    return [255, 255, 255, 1];
  };
  return [...document.querySelectorAll("svg.chart")].map((svg) => {
    const shapes = [...svg.querySelectorAll("rect")].filter((r) => getComputedStyle(r).fill.startsWith("rgb"));
    const texts = [...svg.querySelectorAll("text")].map((t) => {
      const b = t.getBBox(), x = b.x + b.width / 2, y = b.y + b.height / 2;
      const under = shapes.filter((r) => { const s = r.getBBox(); return x >= s.x && x <= s.x + s.width && y >= s.y && y <= s.y + s.height; }).pop();
      return {text: t.textContent, kind: t.getAttribute("class"), fg: rgba(getComputedStyle(t).fill), bg: under ? rgba(getComputedStyle(under).fill) : backdrop(svg)};
    });
    const box = svg.getBoundingClientRect();
    return {chart: svg.getAttribute("aria-label"), width: box.width, height: box.height,
            natural: [Number(svg.getAttribute("width")), Number(svg.getAttribute("height"))], texts};
  });
}"""


def _luminance(rgb) -> float:
    channels = [c / 255 for c in rgb[:3]]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _ratio(fg, bg) -> float:
    high, low = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def check_charts(page, expected: int) -> list[dict]:
    """Every chart on the page: legible text (opaque, contrast >= 4.5) and not stretched past its natural size."""
    charts = page.evaluate(CHART_TEXT)
    assert len(charts) >= expected, [c["chart"] for c in charts]
    for chart in charts:
        assert chart["texts"], chart["chart"]
        assert chart["width"] <= chart["natural"][0] + 0.5 and chart["height"] <= chart["natural"][1] + 0.5, chart
        for t in chart["texts"]:
            assert t["fg"][3] == 1 and t["bg"][3] == 1, (chart["chart"], t)
            assert _ratio(t["fg"], t["bg"]) >= 4.5, (chart["chart"], t["text"], t["fg"], t["bg"])
    return charts


def sign_in(browser, live_server, user):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "pw-for-tests-123")
    page.click("button[type=submit]")
    expect(page.locator("input[name=password]")).to_have_count(0)
    return page


def test_cell_labels_contrast_with_every_colour_of_the_scales():
    for scale in (AGREEMENT_SCALE, SHARE_SCALE):
        for value in np.linspace(scale[0][0], scale[-1][0], 201):
            fill = colour_at(float(value), scale)
            assert contrast_ratio(label_colour(fill), fill) >= 4.5, fill


def test_text_on_the_human_band_contrasts():
    assert min(contrast_ratio(TEXT, BAND), contrast_ratio(MUTED, BAND)) >= 4.5


def test_both_dashboards_have_legible_charts(browser, live_server, make_user, imported):  # noqa: F811
    raters = [make_user(RATER, f"scorer-{i}") for i in range(3)]
    campaign = create_campaign("Charts", recordings=[imported], raters=raters, overlap=3, unit="epoch")
    rng = np.random.default_rng(1)
    stages = ["W", "N1", "N2", "N3", "R"]
    # scorer-0 copies the reference, scorer-1 errs at times, scorer-2 contradicts scorer-1: kappa below 0
    for rater, count in ((raters[0], 40), (raters[1], 40), (raters[2], 12)):
        said = dict(queue.current_labels(campaign).filter(rater=raters[1]).values_list("item_id", "stage"))
        for _ in range(count):
            item, _ = queue.next_item(campaign, rater)
            stage = item.epoch.stage
            if rater == raters[1] and rng.random() < 0.3:
                stage = str(rng.choice(stages))
            elif rater == raters[2]:
                stage = "N1" if said.get(item.pk) == "W" else "W"
            queue.submit_label(campaign, rater, item, stage=stage, client_id=uuid.uuid4(), seconds_spent=5.0)
    version = ModelVersion.objects.create(name="baseline-charts", backend="baseline")
    Prediction.objects.bulk_create([Prediction(epoch=e, model_version=version, status=Prediction.OK, stage=e.stage,
                                               version_hash="h", probability=float(rng.uniform(0.4, 1.0)))
                                    for e in imported.epochs.all()])
    rating_campaign, _ = _rated_campaign(make_user)
    page = sign_in(browser, live_server, make_user(RESEARCHER, "reader"))

    page.goto(f"{live_server.url}/scoring/{campaign.pk}/dashboard/")
    expect(page.locator("#item-sets")).to_contain_text("Fleiss' κ needs the same number of ratings")
    # heat map, two per-stage bars, confusion matrices, hypnograms, unanimous bars, hypnodensity, drift lines
    charts = check_charts(page, expected=8)
    kinds = {c["chart"].split(" ")[0] for c in charts}
    assert {"Hypnodensity", "Unanimous", "Drift:"} <= kinds, kinds
    density = page.locator("svg.chart.hypnodensity").first
    expect(density).to_be_visible()
    assert density.locator("rect.model").count() > 0 and density.locator("rect").count() > 40
    bands = page.locator(".human-band")  # heat map scale, both per-stage charts, unanimous, drift
    assert bands.count() >= 5
    for k in range(bands.count()):
        box = bands.nth(k).bounding_box()
        assert box and box["width"] > 0 and box["height"] >= 2.5, k
    heatmap = next(c for c in charts if c["chart"].startswith("Cohen's κ per rater pair"))
    assert heatmap["height"] < 400
    assert any(t["kind"] == "cell" and t["text"].startswith("-0.") for t in heatmap["texts"])  # kappa < 0 labelled
    page.screenshot(path=SHOTS / "scoring-dashboard.png", full_page=True)
    page.locator("#per-stage").screenshot(path=SHOTS / "scoring-dashboard-per-stage.png")
    page.locator("#pairs").screenshot(path=SHOTS / "scoring-dashboard-pairs.png")
    page.locator(".hypnodensity").first.screenshot(path=SHOTS / "scoring-dashboard-hypnodensity.png")
    page.locator("#unanimous").screenshot(path=SHOTS / "scoring-dashboard-unanimous.png")
    page.locator("#per-rater").screenshot(path=SHOTS / "scoring-dashboard-per-rater.png")

    page.goto(f"{live_server.url}/rating/{rating_campaign.pk}/dashboard/")
    expect(page.locator("#published-references")).to_contain_text("arXiv:2603.26738")
    check_charts(page, expected=6)  # per dimension: the distribution and the weighted-kappa heat map
    page.screenshot(path=SHOTS / "rating-dashboard.png", full_page=True)
    page.locator(".dimension").first.screenshot(path=SHOTS / "rating-dashboard-dimension.png")

    page.click("#published-references a")
    expect(page).to_have_title("Agreement references · SleepReview")
    expect(page.locator("#document h1")).to_contain_text("Agreement")
    page.screenshot(path=SHOTS / "doc-agreement-references.png", full_page=True)

    page.goto(f"{live_server.url}/rating/{rating_campaign.pk}/dashboard/")
    page.click("#report-page")
    expect(page.locator("#report h1")).to_have_text("Rating campaign stats")
    page.screenshot(path=SHOTS / "rating-report.png", full_page=True)
