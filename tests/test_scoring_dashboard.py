"""The scoring dashboard: figures computed from the stored labels, checked against scikit-learn."""
import uuid

import numpy as np
import pytest
from django.urls import reverse
from sklearn.metrics import cohen_kappa_score

from annotation.services import queue
from annotation.services.campaigns import create_campaign
from core.roles import RATER, RESEARCHER

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored(imported, make_user):
    """Two raters label the same 40 epochs (one of them with mistakes), a third labels 10."""
    raters = [make_user(RATER, f"scorer-{i}") for i in range(3)]
    campaign = create_campaign("Dashboard", recordings=[imported], raters=raters, overlap=3, unit="epoch")
    rng = np.random.default_rng(1)
    for rater, count, error in ((raters[0], 40, 0.0), (raters[1], 40, 0.3), (raters[2], 10, 0.5)):
        for _ in range(count):
            item, _ = queue.next_item(campaign, rater)
            stage = item.epoch.stage if rng.random() >= error else str(rng.choice(["W", "N1", "N2", "N3", "R"]))
            queue.submit_label(campaign, rater, item, stage=stage, client_id=uuid.uuid4(), seconds_spent=5.0)
    return campaign, raters


def test_statistics_match_reference_packages_and_the_page_shows_them(scored, role_client):
    campaign, raters = scored
    client = role_client(RESEARCHER)
    stats = client.get(f"/api/scoring/campaigns/{campaign.pk}/statistics/").json()
    labels = {(l.rater_id, l.item.epoch_id): l.stage for l in queue.current_labels(campaign).select_related("item")}
    common = sorted({e for r, e in labels if r == raters[0].pk} & {e for r, e in labels if r == raters[1].pk})
    expected = cohen_kappa_score([labels[(raters[0].pk, e)] for e in common], [labels[(raters[1].pk, e)] for e in common],
                                 labels=["W", "N1", "N2", "N3", "R"])
    pair = next(p for p in stats["pairwise"] if {p["a"], p["b"]} == {"scorer-0", "scorer-1"})
    assert pair["n"] == len(common) == 40
    assert pair["kappa"] == pytest.approx(expected, abs=1e-12)  # the JSON keeps full precision
    assert stats["labels"] == 90 and stats["target_labels"] == 3 * campaign.items.count()
    reference = next(r for r in stats["against"]["reference"] if r["rater"] == "scorer-0")
    assert reference["kappa"] == pytest.approx(1.0) and reference["n"] == 40  # scorer-0 copies the reference
    alpha = stats["krippendorff_alpha"]
    assert alpha["low"] <= alpha["value"] <= alpha["high"] and alpha["n_items"] == 40
    assert stats["fleiss_kappa"]["ratings_per_item"] == 2 and stats["fleiss_kappa"]["n_items"] == 30
    assert [p["done"] for p in stats["progress"]] == [40, 40, 10]
    assert stats["published"]["cohen_kappa"]["value"] == 0.76

    html = client.get(reverse("annotation:dashboard", args=[campaign.pk])).content.decode()
    assert 'id="fleiss"' in html and 'class="chart heatmap"' in html and 'class="chart stacked-hypnograms"' in html
    assert f'{pair["kappa"]:.3f}' in html and str(pair["kappa"]) not in html  # pages round to 3 decimals
    assert 'id="adjudication"' in html


def test_every_figure_states_its_items_and_raters(scored, role_client):
    """Fleiss' kappa (items with the commonest number of ratings) and alpha (items rated twice or more) rest
    on different items: each says which, and the page says why."""
    campaign, _ = scored
    client = role_client(RESEARCHER)
    stats = client.get(f"/api/scoring/campaigns/{campaign.pk}/statistics/").json()
    assert stats["fleiss_kappa"] | {"value": None} == {
        "value": None, "n_items": 30, "ratings_per_item": 2, "raters": 2, "method": stats["fleiss_kappa"]["method"]}
    assert (stats["krippendorff_alpha"]["n_items"], stats["krippendorff_alpha"]["raters"]) == (40, 3)
    n = campaign.items.count()
    assert stats["coverage"] == [{"ratings": 3, "items": 10}, {"ratings": 2, "items": 30},
                                 {"ratings": 0, "items": n - 40}]

    html = client.get(reverse("annotation:dashboard", args=[campaign.pk])).content.decode()
    assert "30 items × 2 ratings each · 2 raters" in html and "40 items with 2+ ratings · 3 raters" in html
    assert "10 rated 3×, 30 rated 2×" in html and "Fleiss' κ needs the same number of ratings on every item" in html
    references = html[html.index('id="published-references"'):]
    assert "J Clin Sleep Med 2022" in references and "0.826" in references and "Danker-Hopfe" in references
    assert "0.826" not in html[:html.index('id="published-references"')]  # kept apart from the campaign's figures


def test_dashboard_consensus_is_campaign_consensus(scored, make_user):
    """The dashboard's consensus stages and adjudication count (from count matrices) are what the per-item
    consensus gives, with ties, low agreement, adjudicated disputes and an adjudicated item nobody labelled."""
    from annotation.models import Adjudication, CampaignItem
    from annotation.services.consensus import campaign_consensus, campaign_verdicts
    from annotation.services.dashboard import campaign_statistics
    from core.roles import CURATOR
    from core.services import agreement

    campaign, raters = scored
    curator = make_user(CURATOR, "adjudicator")
    summaries = campaign_consensus(campaign)
    disputed = [s for s in summaries.values() if s.needs_adjudication]
    unlabelled = next(s for s in summaries.values() if not s.labels)
    assert disputed and any(s.tie for s in disputed)
    for summary, stage in ((disputed[0], "R"), (unlabelled, "N3"), (disputed[1], "W"), (disputed[1], "N1")):
        Adjudication.objects.create(item=CampaignItem.objects.get(pk=summary.item_id), stage=stage, reason="test",
                                    adjudicator=curator)
    summaries = campaign_consensus(campaign)
    first = queue.current_labels(campaign).filter(rescore=False).values_list("rater_id", "item__epoch_id", "stage")
    stages, to_adjudicate = campaign_verdicts(campaign, agreement.table(list(first)))
    assert stages == {s.epoch_id: s.stage for s in summaries.values() if s.stage}
    assert stages[unlabelled.epoch_id] == "N3" and stages[disputed[1].epoch_id] == "N1"  # the latest stands
    assert to_adjudicate == sum(s.needs_adjudication for s in summaries.values()) == len(disputed) - 2
    assert campaign_statistics(campaign)["to_adjudicate"] == to_adjudicate
