"""The pages in a real browser: Playwright driving Debian's chromium; a screenshot per page."""
import re

import pytest
from playwright.sync_api import expect, sync_playwright

from core.roles import CURATOR, RATER
from datasets.services.imports import create_job, run_job
from tests.conftest import TEST_OUTPUT
from tests.edf_factory import noise_channels, stage_annotations, write_edf

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
SHOTS = TEST_OUTPUT / "screenshots"


@pytest.fixture
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def login(browser, live_server, user):
    """A signed-in page, wherever the sign-in lands (My work for raters, the cohorts for a curator with no work)."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "pw-for-tests-123")
    page.click("button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    return page


def press(page, key: str) -> None:
    """Press a key once the viewer's keyboard handler is installed."""
    expect(page.locator(".viewer[data-ready]")).to_have_count(1)
    page.keyboard.press(key)


def test_curator_walks_through_every_page(browser, live_server, make_user, imported, tmp_path):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.screenshot(path=SHOTS / "login.png")
    page.close()

    page = login(browser, live_server, make_user(CURATOR))
    expect(page.locator(".card.cohort h2")).to_have_text("Synthetic")
    page.screenshot(path=SHOTS / "cohort-list.png", full_page=True)

    page.click(".card.cohort")
    expect(page.locator("table.recordings tbody tr")).to_have_count(1)
    page.screenshot(path=SHOTS / "recording-list.png", full_page=True)

    page.click(f"text={imported.name}")
    expect(page.locator("#epoch-count")).to_have_text("120")
    expect(page.locator("#channel-plan tbody tr")).to_have_count(6)
    expect(page.locator("svg.hypnogram rect")).not_to_have_count(0)
    page.screenshot(path=SHOTS / "recording-detail.png", full_page=True)

    page.click("#open-viewer")
    expect(page.locator("#epoch-number")).to_have_text("1")  # epochs are numbered from 1 on every page
    press(page, "ArrowRight")
    expect(page).to_have_url(re.compile(rf"/recordings/{imported.pk}/epochs/1/"))
    press(page, "ArrowRight")
    expect(page.locator("#epoch-number")).to_have_text("3")
    press(page, "ArrowLeft")
    expect(page).to_have_url(re.compile(r"/epochs/1/"))
    assert page.eval_on_selector("#viewer-image", "img => img.complete && img.naturalWidth") > 2000
    assert page.eval_on_selector("#model-image", "img => img.naturalWidth") == 448
    expect(page.locator("#reference-stage")).to_have_text(imported.epochs.get(index=1).get_stage_display())
    press(page, "g")
    expect(page).to_have_url(re.compile(r"guides=0"))
    press(page, "End")
    expect(page.locator("#epoch-number")).to_have_text("120")
    press(page, "Home")
    expect(page.locator("#epoch-number")).to_have_text("1")
    expect(page.locator(".viewer[data-ready]")).to_have_count(1)
    page.fill("#jump input", "42")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/recordings/{imported.pk}/epochs/41/"))  # the number typed is the one shown
    expect(page.locator("#epoch-number")).to_have_text("42")
    page.screenshot(path=SHOTS / "epoch-viewer.png", full_page=True)

    page.goto(live_server.url + "/imports/new/")
    expect(page.locator("#import-form")).to_be_visible()
    page.screenshot(path=SHOTS / "import-new.png", full_page=True)

    # a Sleep-EDF-style montage: the substitutions are shown on the recording page
    sleep_edf = write_edf(tmp_path / "SC4001E0-PSG.edf",
                          noise_channels(["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "EMG submental"], 120, 100.0),
                          100.0, stage_annotations(["W", "N1", "N2", "R"]))
    job = run_job(create_job(source_path=str(sleep_edf), source_name=sleep_edf.name, cohort="Sleep-EDF").pk)
    page.goto(f"{live_server.url}/imports/{job.pk}/")
    expect(page.locator("[data-job-field=state]")).to_have_text("Succeeded")
    expect(page.locator("[data-job-field='progress.done']")).to_have_text("4")
    expect(page.locator("[data-job-field='progress.total']")).to_have_text("4")
    page.screenshot(path=SHOTS / "import-detail.png", full_page=True)
    page.click("[data-job-link] a")
    expect(page.locator("#substitutions")).to_contain_text("Fpz-Cz")
    page.screenshot(path=SHOTS / "recording-substitutions.png", full_page=True)


def test_failed_import_shows_its_error(browser, live_server, make_user, tmp_path):
    bad = tmp_path / "broken.edf"
    bad.write_bytes(b"0       " + b"x" * 100)
    job = run_job(create_job(source_path=str(bad), source_name=bad.name, cohort="c").pk)
    page = login(browser, live_server, make_user(CURATOR))
    page.goto(f"{live_server.url}/recordings/")
    expect(page.get_by_role("link", name="broken.edf")).to_be_visible()
    expect(page.locator("td.error-text")).to_contain_text("truncated header")
    page.goto(f"{live_server.url}/imports/{job.pk}/")
    expect(page.locator("[data-job-field=state]")).to_have_text("Failed")
    expect(page.locator("[data-job-field=error]")).to_contain_text("broken.edf: truncated header")
    page.screenshot(path=SHOTS / "import-failed.png", full_page=True)


def test_rater_sees_no_reference_stage(browser, live_server, make_user, imported):
    from tests.factories import assign_rater

    rater = make_user(RATER)
    assign_rater(imported, rater)  # raters reach the recordings of their campaigns
    page = login(browser, live_server, rater)
    page.goto(f"{live_server.url}/recordings/{imported.pk}/epochs/3/")
    expect(page.locator("#viewer-image")).to_be_visible()
    expect(page.locator("#reference-stage")).to_have_count(0)
    expect(page.locator("svg.hypnogram")).to_have_count(0)
    expect(page.locator("nav >> text=Import")).to_have_count(0)
    page.screenshot(path=SHOTS / "epoch-viewer-rater.png", full_page=True)


def test_curator_runs_the_baseline_and_reads_the_evaluation(browser, live_server, make_user, imported, celery_worker):
    from inference.models import ModelVersion

    ModelVersion.objects.create(name="baseline-yasa", backend="baseline")
    page = login(browser, live_server, make_user(CURATOR))
    page.goto(f"{live_server.url}/inference/")
    page.select_option("#id_model_version", label="baseline-yasa")
    page.select_option("#id_recording", index=1)
    page.click("#run-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/inference/jobs/\d+/"))
    expect(page.locator("[data-job-field=state]")).to_have_text("Succeeded", timeout=120_000)
    expect(page.locator("[data-job-field='progress.done']")).to_have_text("120")
    expect(page.locator("[data-job-field='progress.total']")).to_have_text("120")
    expect(page.locator("[data-job-field='progress.skipped']")).to_have_text("2")
    page.screenshot(path=SHOTS / "inference-job.png", full_page=True)

    page.goto(f"{live_server.url}/recordings/{imported.pk}/epochs/60/")
    expect(page.locator("#predictions .prediction")).to_have_count(1)
    # the rationale describes the signal and the rules; where the stage came from is a field curators see
    expect(page.locator("#predictions .rationale")).to_contain_text("Rules met")
    expect(page.locator("#predictions .rationale")).not_to_contain_text("YASA")
    expect(page.locator("#predictions .origin-note")).to_contain_text("YASA classifier")
    page.screenshot(path=SHOTS / "epoch-with-prediction.png", full_page=True)

    page.goto(f"{live_server.url}/inference/evaluation/")
    page.select_option("#id_cohort", label=imported.cohort.name)
    page.check("input[name=model][value='baseline-yasa']")
    page.click("#evaluation-form button[type=submit]")
    expect(page.locator("#evaluation-table tbody tr")).to_have_count(1)
    expect(page.locator("svg.heatmap")).to_have_count(1)  # the confusion matrix
    page.screenshot(path=SHOTS / "evaluation.png", full_page=True)
