"""My work, the rating-campaign page and the release builder in a real browser: a rater lands on their work and
goes on scoring; a curator creates a rating campaign and builds a release from the pages, download included."""
import io
import re
import tarfile
import uuid

import pytest
from playwright.sync_api import expect

from annotation.services.campaigns import create_campaign
from annotation.services.queue import next_item, submit_label
from core.models import ChangeRecord
from core.roles import CURATOR, RATER
from ratings.models import RatingCampaign
from releases.models import Release
from releases.services.build import build_release, create_release
from tests.test_browser import SHOTS, browser, login  # noqa: F401  (fixture)
from tests.test_rating_page import SECRET, rating_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_rater_lands_on_my_work_and_continues_scoring(browser, live_server, make_user, imported):  # noqa: F811
    rater = make_user(RATER)
    scoring = create_campaign("Night scoring", recordings=[imported], raters=[rater], overlap=1, sample_size=6)
    rating = rating_campaign(imported, rater, n=3)
    item, _ = next_item(scoring, rater)
    submit_label(scoring, rater, item, client_id=uuid.uuid4(), stage="N2")

    page = login(browser, live_server, rater)
    expect(page).to_have_url(re.compile(r"/work/$"))
    expect(page.locator("h1")).to_have_text("My work")
    rows = page.locator("#assignments tr.assignment")
    expect(rows).to_have_count(2)
    scoring_row = page.locator("tr.assignment[data-kind=scoring]")
    expect(scoring_row).to_contain_text("Night scoring")
    expect(scoring_row).to_contain_text("1 of 6 done")
    expect(page.locator("tr.assignment[data-kind=rating]")).to_contain_text(f"0 of {rating.items.count()} done")
    html = page.content()
    assert SECRET not in html and "Reference" not in html  # nothing of the model or the reference
    page.screenshot(path=SHOTS / "my-work.png", full_page=True)

    scoring_row.get_by_role("link", name="Continue").click()
    expect(page).to_have_url(re.compile(rf"/scoring/{scoring.pk}/score/$"))
    expect(page.locator("#signal-view[data-drawn]")).to_have_count(1)


def test_a_curator_creates_a_rating_campaign_and_builds_a_release(browser, live_server, make_user, imported,
                                                                   celery_worker):  # noqa: F811
    rater = make_user(RATER)
    scoring = create_campaign("Night scoring", recordings=[imported], raters=[rater], overlap=1, sample_size=4)
    rating_campaign(imported, rater, n=6).delete()  # the model's rationales, without a campaign yet
    first = build_release(create_release("night", "1.0.0", cohorts=[imported.cohort.name],
                                         scoring_campaigns=[scoring.name], queue=False).pk)
    assert first.state == Release.SUCCEEDED
    for _ in range(2):  # two labels since 1.0.0
        submit_label(scoring, rater, next_item(scoring, rater)[0], client_id=uuid.uuid4(), stage="N3")
    curator = make_user(CURATOR)
    page = login(browser, live_server, curator)

    page.click("nav >> text=My work")
    page.click("text=New rating campaign")
    page.fill("#id_name", "Night rationales")
    page.select_option("#id_cohorts", label=imported.cohort.name)
    page.select_option("#id_model_versions", label=SECRET)
    page.select_option("#id_raters", label=rater.username)
    page.fill("#id_overlap", "1")
    page.fill("#id_sample_size", "4")
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header on top of the full-page shot
    page.screenshot(path=SHOTS / "rating-campaign-new.png", full_page=True)
    page.click("#campaign-form button[type=submit]")
    expect(page.locator("#blinding-overlaps")).to_contain_text("still scores")  # the rater scores the night blind
    page.click("#campaign-form button[type=submit]")  # created anyway
    expect(page).to_have_url(re.compile(r"/rating/$"))
    expect(page.locator(".flash")).to_contain_text("'Night rationales' created with 4 items")
    campaign = RatingCampaign.objects.get(name="Night rationales")
    assert campaign.items.count() == 4 and list(campaign.raters.all()) == [rater] and campaign.created_by == curator
    assert ChangeRecord.objects.filter(object_type="ratings.ratingcampaign", object_id=str(campaign.pk),
                                       action=ChangeRecord.CREATE, actor=curator).count() == 1

    page.click("nav >> text=Releases")
    page.click("text=Build a release")
    page.fill("#id_name", "night")
    page.fill("#id_version", "1.1.0")
    page.select_option("#id_cohorts", label=imported.cohort.name)
    page.select_option("#id_scoring_campaigns", label=scoring.name)
    page.select_option("#id_rating_campaigns", label=campaign.name)
    page.select_option("#id_model_versions", label=SECRET)
    page.fill("#id_license_id", "cc-by-4.0")
    page.click("#preview-button")
    expect(page.locator("#preview-summary")).to_contain_text("against night 1.0.0")
    expect(page.locator("#preview-changes tr[data-kind=labels_added] td.num")).to_have_text("2")
    expect(page.locator("#preview-changes tr[data-kind=changed_stage] td.num")).to_have_text("0")
    assert Release.objects.count() == 1  # a preview builds nothing
    page.screenshot(path=SHOTS / "release-preview.png", full_page=True)

    page.click("#build-button")
    expect(page).to_have_url(re.compile(r"/releases/\d+/$"))
    expect(page.locator("[data-job-field=state]")).to_have_text("Succeeded", timeout=120_000)
    link = page.locator("#downloads a", has_text="night-1.1.0.tar.gz")
    expect(link).to_be_visible(timeout=15_000)  # the page shows the download once built, without a reload
    page.screenshot(path=SHOTS / "release-built.png", full_page=True)
    with page.expect_download() as download:
        link.click()
    archive = tarfile.open(fileobj=io.BytesIO(open(download.value.path(), "rb").read()))
    changelog = archive.extractfile("night-1.1.0/CHANGELOG.md").read().decode()
    assert "## 1.1.0 (against 1.0.0)" in changelog and "Labels added: 2" in changelog
    release = Release.objects.get(name="night", version="1.1.0")
    assert release.license_id == "cc-by-4.0" and release.created_by == curator
    assert list(release.rating_campaigns.all()) == [campaign] and release.changelog["labels_added"] == 2
