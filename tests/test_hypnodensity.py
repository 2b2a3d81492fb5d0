"""Issue 17, section 3: hypnodensity, unanimous epochs, published human ranges as bands, and per rater the
seconds per epoch, drift and intra-rater agreement; each figure checked against an independent computation."""
import re
import uuid
from html import unescape

import numpy as np
import pandas as pd
import pytest
from django.urls import reverse
from sklearn.metrics import cohen_kappa_score

from annotation.services import queue
from annotation.services.campaigns import create_campaign
from annotation.services.consensus import campaign_consensus
from annotation.services.dashboard import DRIFT_BLOCK
from core.roles import RATER, RESEARCHER
from core.services import agreement
from core.services.plots import BAND, bar_chart_svg, line_chart_svg
from inference.models import ModelVersion, Prediction
from tests.factories import make_recording

STAGES = ["W", "N1", "N2", "N3", "R"]

# The published human figures, as written in the spec (shared/spec/agreement.md)
SPEC = {"kappa": (0.71, 0.81), "agreement": (0.820, 0.826), "unanimous": (0.32, 0.46),
        "stage_kappa": {"W": 0.70, "N1": 0.24, "N2": 0.57, "N3": 0.57, "R": 0.69},
        "stage_agreement": {"R": 0.905, "N3": 0.674, "N1": 0.630}}


def test_unanimity_and_label_shares_on_a_hand_built_case():
    triples = [
        ("a", 1, "W"), ("b", 1, "W"), ("c", 1, "W"),  # unanimous W
        ("a", 2, "N2"), ("b", 2, "N2"), ("c", 2, "N1"),  # plurality N2, not unanimous
        ("a", 3, "N2"), ("b", 3, "N2"),  # unanimous N2 (two ratings)
        ("a", 4, "R"), ("b", 4, "N1"),  # tie: counts overall, in no stage
        ("a", 5, "N3"),  # one rating: left out
    ]
    shares = agreement.unanimity(triples, STAGES)
    assert shares["overall"] == (0.5, 4)  # items 1 and 3 of the four rated twice or more
    assert shares["per_label"] == {"W": (1.0, 1), "N2": (0.5, 2)}
    density = agreement.label_shares(triples, STAGES)
    assert density[2] == {"W": 0.0, "N1": pytest.approx(1 / 3), "N2": pytest.approx(2 / 3), "N3": 0.0, "R": 0.0}
    assert density[5]["N3"] == 1.0 and sum(density[4].values()) == 1.0


def test_human_bands_draw_the_given_range():
    band = {"low": 0.71, "high": 0.81, "label": "human range"}
    svg = bar_chart_svg(["W"], [{"name": "x", "values": {"W": 0.5}, "colour": "#4c9be8"}], title="t", y_title="κ",
                        x_title="stage", band=band)
    rect = re.search(r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="' + BAND, svg)
    top, height = float(rect[1]), float(rect[2])
    zero = re.search(r'<line x1="52" x2="450" y1="([\d.]+)"[^>]*stroke="#9aa8b9"', svg)  # the zero line
    one = float(re.findall(r'<line x1="52" x2="450" y1="([\d.]+)"', svg)[-1])  # the 1.0 grid line
    scale = (float(zero[1]) - one)  # px per unit
    assert top == pytest.approx(one + scale * (1 - 0.81), abs=0.1)
    assert height == pytest.approx(scale * 0.10, abs=0.1)
    lines = line_chart_svg([{"name": "a", "colour": "#4c9be8", "points": [(1, 0.5, "b1"), (2, 0.9, "b2")]}],
                           title="t", x_title="block", y_title="agreement", band=band)
    assert f'fill="{BAND}"' in lines and "human range" in lines


@pytest.fixture
def night(db):
    stages = ["W"] * 10 + ["N1"] * 6 + ["N2"] * 20 + ["N3"] * 12 + ["R"] * 12
    return make_recording("Hypnodensity", "night-1", stages)


@pytest.fixture
def scored(night, make_user):
    """Three raters on 60 epochs: scorer-0 copies the reference, scorer-1 errs 30% of the time, scorer-2 errs
    more late in the campaign (drift); a model predicts every epoch with a probability."""
    raters = [make_user(RATER, f"scorer-{i}") for i in range(3)]
    campaign = create_campaign("Density", recordings=[night], raters=raters, overlap=3, unit="epoch",
                               rescore_share=0.2, seed=3)
    rng = np.random.default_rng(7)
    version = ModelVersion.objects.create(name="baseline-test", backend="baseline")
    Prediction.objects.bulk_create([
        Prediction(epoch=e, model_version=version, status=Prediction.OK, stage=e.stage, version_hash="h",
                   probability=round(float(rng.uniform(0.3, 1.0)), 3)) for e in night.epochs.all()])
    for k, rater in enumerate(raters):
        for n in range(70):
            served = queue.next_item(campaign, rater)
            if served is None:
                break
            error = (0.0, 0.3, 0.1 if n < 30 else 0.6)[k]
            stage = served[0].epoch.stage if rng.random() >= error else str(rng.choice(STAGES))
            queue.submit_label(campaign, rater, served[0], stage=stage, client_id=uuid.uuid4(),
                               seconds_spent=float(rng.uniform(3, 30)))
    return campaign, raters, version


def _labels(campaign) -> pd.DataFrame:
    rows = queue.current_labels(campaign).order_by("created_at", "pk").values(
        "rater__username", "item__epoch_id", "item__epoch__index", "stage", "rescore", "server_seconds")
    return pd.DataFrame(list(rows)).rename(columns=lambda c: c.split("__")[-1])


def test_statistics_json_carries_unanimous_shares_hypnodensity_and_human_ranges(scored, role_client):
    campaign, _, version = scored
    stats = role_client(RESEARCHER).get(f"/api/scoring/campaigns/{campaign.pk}/statistics/").json()
    first = _labels(campaign).query("not rescore")
    counts = first.pivot_table(index="epoch_id", columns="stage", values="username", aggfunc="count", fill_value=0)
    counts = counts[counts.sum(axis=1) >= 2]
    unanimous = counts.max(axis=1) == counts.sum(axis=1)
    assert stats["unanimous"]["overall"] == {"value": pytest.approx(unanimous.mean(), abs=1e-12),
                                             "n": len(counts)}
    sorted_counts = np.sort(counts.to_numpy(), axis=1)
    untied = sorted_counts[:, -1] > sorted_counts[:, -2]
    plurality = counts.idxmax(axis=1)[untied]
    for stage, value in unanimous[untied].groupby(plurality).mean().items():
        assert stats["unanimous"]["per_stage"][stage]["value"] == pytest.approx(value, abs=1e-12)
    assert 0 < stats["unanimous"]["overall"]["value"] < 1  # some agree, some do not: the test can fail

    (recording,) = stats["hypnodensity"]
    assert recording["model_version"] == version.name and recording["unanimous"] == stats["unanimous"] | {
        "method": recording["unanimous"]["method"]}
    shares = (counts.T / counts.sum(axis=1)).T
    by_epoch = {e: p for e, p in Prediction.objects.values_list("epoch__index", "probability")}
    index_of = dict(first[["epoch_id", "index"]].drop_duplicates().to_numpy())
    expected = {index_of[e]: row for e, row in shares.iterrows()}
    drawn = [e for e in recording["epochs"] if e["raters"] >= 2]
    assert len(drawn) == len(expected) and [e["index"] for e in recording["epochs"]] == sorted(
        e["index"] for e in recording["epochs"])
    for epoch in drawn:
        assert epoch["shares"] == {s: pytest.approx(expected[epoch["index"]].get(s, 0.0)) for s in STAGES}
        assert epoch["model_probability"] == by_epoch[epoch["index"]] and epoch["model_stage"] in STAGES

    human = stats["human_ranges"]
    assert (human["cohen_kappa"]["low"], human["cohen_kappa"]["high"]) == SPEC["kappa"]
    assert (human["agreement"]["low"], human["agreement"]["high"]) == SPEC["agreement"]
    assert (human["unanimous"]["low"], human["unanimous"]["high"]) == SPEC["unanimous"]
    assert {s: v["low"] for s, v in human["stage_kappa"].items()} == SPEC["stage_kappa"]
    assert {s: v["high"] for s, v in human["stage_agreement"].items()} == SPEC["stage_agreement"]


def test_per_rater_seconds_drift_and_intra_rater_agreement(scored, role_client):
    campaign, _, _ = scored
    stats = role_client(RESEARCHER).get(f"/api/scoring/campaigns/{campaign.pk}/statistics/").json()
    labels = _labels(campaign)
    consensus = {s.epoch_id: s.stage for s in campaign_consensus(campaign).values() if s.stage}
    rows = {r["rater"]: r for r in stats["per_rater"]["raters"]}
    assert stats["per_rater"]["block_labels"] == DRIFT_BLOCK and set(rows) == set(labels["username"])
    for name, own in labels.groupby("username", sort=False):
        row = rows[name]
        assert row["seconds_per_epoch"]["median"] == pytest.approx(own["server_seconds"].median())
        assert row["seconds_per_epoch"]["mean"] == pytest.approx(own["server_seconds"].mean())
        firsts = own[~own["rescore"] & own["epoch_id"].isin(consensus)]
        hits = (firsts["stage"].to_numpy() == firsts["epoch_id"].map(consensus).to_numpy()).astype(float)
        blocks = np.array_split(hits, np.arange(DRIFT_BLOCK, len(hits), DRIFT_BLOCK))
        assert [b["agreement"] for b in row["drift"]] == pytest.approx([b.mean() for b in blocks])
        assert [b["n"] for b in row["drift"]] == [len(b) for b in blocks]
        again = own[own["rescore"]].merge(own[~own["rescore"]], on="epoch_id", suffixes=("_again", "_first"))
        if len(again):
            kappa = cohen_kappa_score(again["stage_first"], again["stage_again"], labels=STAGES)
            assert row["intra_rater"]["n"] == len(again)
            assert row["intra_rater"]["kappa"] == pytest.approx(kappa, abs=1e-12) or np.isnan(kappa)
    assert any(r["intra_rater"] for r in rows.values())  # the silent re-scores made it into the table
    drifting = rows["scorer-2"]
    assert drifting["drift_change"] == pytest.approx(drifting["drift"][-1]["agreement"]
                                                     - drifting["drift"][0]["agreement"])
    assert drifting["drift_change"] < 0  # errs more late in the campaign


def test_dashboard_shows_hypnodensity_unanimous_per_rater_and_bands(scored, role_client):
    campaign, _, version = scored
    html = unescape(role_client(RESEARCHER).get(reverse("annotation:dashboard", args=[campaign.pk])).content.decode())
    assert 'class="chart hypnodensity"' in html and 'class="model"' in html and version.name in html
    assert 'id="unanimous-overall"' in html and 'id="per-rater-table"' in html and 'class="chart lines"' in html
    # the band on the pair heat map, both per-stage charts, the unanimous chart and the drift plot
    assert html.count('class="human-band"') >= 5
    assert "human range of Cohen's κ: 0.71–0.81" in html and "82.0%–82.6%" in html
    assert "with 6 / 9 / 12 scorers" in html
