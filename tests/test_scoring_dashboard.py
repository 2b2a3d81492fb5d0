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
    assert pair["kappa"] == pytest.approx(expected, abs=1e-4)
    assert stats["labels"] == 90 and stats["target_labels"] == 3 * campaign.items.count()
    reference = next(r for r in stats["against"]["reference"] if r["rater"] == "scorer-0")
    assert reference["kappa"] == pytest.approx(1.0) and reference["n"] == 40  # scorer-0 copies the reference
    alpha = stats["krippendorff_alpha"]
    assert alpha["low"] <= alpha["value"] <= alpha["high"] and alpha["n_items"] == 40
    assert stats["fleiss_kappa"]["ratings_per_item"] == 2 and stats["fleiss_kappa"]["n_items"] == 30
    assert [p["done"] for p in stats["progress"]] == [40, 40, 10]
    assert stats["published"]["cohen_kappa"]["value"] == 0.76

    html = client.get(reverse("annotation:dashboard", args=[campaign.pk])).content.decode()
    assert 'id="fleiss"' in html and 'class="heatmap"' in html and 'class="stacked-hypnograms"' in html
    assert f'{pair["kappa"]}' in html
    assert 'id="adjudication"' in html
