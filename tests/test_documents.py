"""What the pages cite is in the project (docs/), served as pages; the release's agreement report rounds
as the pages do while its JSON keeps full precision."""
import json
import re

import pytest

from core.roles import RATER
from core.services.docs import DOCUMENTS, markdown_html
from tests.test_releases import _with_campaigns, built, read

pytestmark = pytest.mark.django_db


def test_every_document_is_served_and_the_pages_link_to_them(role_client):
    client = role_client(RATER)
    for name in DOCUMENTS:
        html = client.get(f"/docs/{name}/").content.decode()
        assert "<h1>" in html and "<table>" in html, name
    references = client.get("/docs/agreement-references/").content.decode()
    assert "82.6%" in references and "J Clin Sleep Med 2022" in references and "Danker-Hopfe" in references
    assert "| W.1 |" not in client.get("/docs/rules/").content.decode()  # a table, not Markdown source
    assert markdown_html("<script>x</script>") == "<p>&lt;script&gt;x&lt;/script&gt;</p>\n"


def test_the_release_agreement_report_rounds_and_its_json_does_not(make_user, media_root):
    campaign, _, _ = _with_campaigns(make_user)
    release = built(scoring_campaigns=[campaign.name])
    stats = json.loads(read(release, "agreement.json"))["scoring"][campaign.name]
    report = read(release, "agreement.md").decode()
    fleiss = stats["fleiss_kappa"]
    assert len(repr(fleiss["value"])) > 8  # full precision in the JSON
    assert f"- Fleiss' kappa: {fleiss['value']:.3f} (8 items × 3 ratings each, 3 raters)" in report
    assert not re.search(r"\d\.\d{4}", report)  # no figure with more than 3 decimals

