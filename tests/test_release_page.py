"""The release page in chromium: when the build it follows ends, its counts, files and downloads appear
without a reload."""
import pytest
from playwright.sync_api import expect

from core.roles import CURATOR
from releases.services import build as builds
from tests.test_browser import SHOTS, browser  # noqa: F401 (the chromium fixture)
from tests.test_dashboard_charts import sign_in
from tests.test_releases import night

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_release_page_shows_the_build_when_it_ends(browser, live_server, make_user):  # noqa: F811
    night()
    release = builds.create_release("mass-ex", "1.0.0", cohorts=["Release"], queue=False)
    page = sign_in(browser, live_server, make_user(CURATOR))
    page.goto(f"{live_server.url}/releases/{release.pk}/")
    epochs = page.locator("#release-body tr", has_text="Epochs").locator("td").nth(1)
    expect(page.locator("#downloads")).to_have_count(0)
    expect(epochs).to_have_text("0")
    page.evaluate("document.body.dataset.loadedOnce = 'yes'")  # gone if the page reloaded

    release = builds.build_release(release.pk)
    assert release.epochs > 0
    expect(page.locator("#downloads")).to_be_visible(timeout=15000)
    expect(epochs).to_have_text(str(release.epochs))
    assert page.evaluate("document.body.dataset.loadedOnce") == "yes"
    page.screenshot(path=SHOTS / "release-built.png", full_page=True)
