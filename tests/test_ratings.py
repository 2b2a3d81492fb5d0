"""Rationale rating: sampling, source blinding, the rubric, the shared queue's guarantees, the statistics
against reference packages, and the report command."""
import json
import uuid
from collections import Counter
from datetime import timedelta

import krippendorff
import numpy as np
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient
from sklearn.metrics import cohen_kappa_score

from core.exceptions import InputError
from core.roles import CURATOR, RATER, RESEARCHER
from core.services import agreement
from inference.models import ModelVersion, Prediction
from ratings.models import Rating, RatingItem
from ratings.services import rubric as rubrics
from ratings.services.campaigns import create_rating_campaign
from ratings.services.queue import RATING, StaleAnswer
from ratings.services.statistics import campaign_statistics, render_report
from tests.factories import make_recording

STAGES = ["W", "N1", "N2", "N2", "N3", "R", "N2", "W", "unscored", "R"]
PREDICTED = ["W", "N2", "N2", "N3", "N3", "R", "N1", "W", "N2", "N2"]  # right on 0, 2, 4, 5, 7
SECRET = "secret-model-v7"


def world(n=30, cohort="Rate", name="r1"):
    """A recording with reference stages, a model version's predictions with rationales, and MASS-EX rationales."""
    recording = make_recording(cohort, name, [STAGES[i % len(STAGES)] for i in range(n)])
    version, _ = ModelVersion.objects.get_or_create(name=SECRET, defaults={"backend": "baseline"})
    epochs = list(recording.epochs.order_by("index"))
    Prediction.objects.bulk_create([
        Prediction(epoch=e, model_version=version, status=Prediction.OK, stage=PREDICTED[e.index % len(PREDICTED)],
                   rule_ids=["N2.1"], rationale=f"Spindle at {e.index}.3 s, 13 Hz, 25 µV.", version_hash="cafe1234")
        for e in epochs])
    for e in epochs[::3]:
        if e.stage != "unscored":
            e.reference_rationale, e.reference_rules = f"Alpha over O2 in epoch {e.index}.", ["W.1"]
            e.save()
    return recording, version


def raters(make_user, n):
    return [make_user(RATER, f"rater{i}") for i in range(n)]


def rate(campaign, rater, item, scores=(4, 4, 4), **kw):
    keys = campaign.rubric.keys
    return RATING.submit(campaign, rater, item, scores=dict(zip(keys, scores)), client_id=uuid.uuid4(), **kw)


# --- sampling -----------------------------------------------------------------------------------

def test_sampling_is_seeded_stratified_and_takes_experts_and_item_lists(make_user, db):
    recording, version = world()
    users = raters(make_user, 2)
    a = create_rating_campaign("a", cohorts=["Rate"], model_versions=[SECRET], raters=users, sample_size=12, seed=3)
    b = create_rating_campaign("b", cohorts=["Rate"], model_versions=[SECRET], raters=users, sample_size=12, seed=3)
    c = create_rating_campaign("c", cohorts=["Rate"], model_versions=[SECRET], raters=users, sample_size=12, seed=4)
    drawn = lambda campaign: sorted(campaign.items.values_list("prediction_id", flat=True))  # noqa: E731
    assert drawn(a) == drawn(b) != drawn(c) and a.items.count() == 12
    strata = Counter(a.items.values_list("reference_stage", "correct"))
    assert max(strata.values()) - min(strata.values()) <= 2 and len(strata) >= 6  # equal shares over (stage, correct)
    assert not a.items.filter(reference_stage="unscored").exists()

    both = create_rating_campaign("both", cohorts=["Rate"], model_versions=[SECRET], expert_sources=["massex"],
                                  raters=users)
    origins = list(both.items.order_by("position").values_list("origin", flat=True))
    assert Counter(origins) == {"model": 27, "expert": 9}
    assert origins != sorted(origins) and origins != sorted(origins, reverse=True)  # positions do not group origins
    pks = list(both.items.order_by("pk").values_list("position", flat=True))
    assert pks == sorted(pks)  # ids follow the random positions, so ids reveal nothing either

    listed = create_rating_campaign("listed", cohorts=["Rate"], model_versions=[SECRET], expert_sources=["massex"],
                                    raters=users, item_list=f"recording,epoch,source\n{recording.name},3,massex\n"
                                                            f"{recording.pk},4,\n")
    assert sorted(listed.items.values_list("epoch__index", "origin")) == [(3, "expert"), (4, "model")]
    with pytest.raises(InputError, match="item list, line 3: no rationale to rate at recording 'r1' epoch 8"):
        create_rating_campaign("bad", cohorts=["Rate"], model_versions=[SECRET], raters=users,
                               item_list="recording,epoch\nr1,1\nr1,8\n")
    with pytest.raises(InputError, match="item list, line 2: no recording 'ghost'"):
        create_rating_campaign("bad", cohorts=["Rate"], model_versions=[SECRET], raters=users,
                               item_list="recording,epoch\nghost,1\n")
    with pytest.raises(InputError, match="unknown expert source"):
        create_rating_campaign("bad", cohorts=["Rate"], expert_sources=["nope"], raters=users)
    assert not RatingItem.objects.filter(campaign__name="bad").exists()


def test_outputs_made_before_a_reprepare_are_not_offered_for_rating(make_user, db):
    """A rationale is rated against the signals it was made from: outputs that predate them are left out."""
    recording, version = world(12)
    stale = list(recording.epochs.filter(index__in=[1, 2]).values_list("pk", flat=True))
    Prediction.objects.filter(epoch_id__in=stale).update(preparation_profile="platform-v0")
    Prediction.objects.exclude(epoch_id__in=stale).update(preparation_profile=recording.preparation_profile)
    campaign = create_rating_campaign("fresh", cohorts=["Rate"], model_versions=[SECRET], raters=raters(make_user, 2))
    rated = set(campaign.items.values_list("epoch_id", flat=True))
    scored = set(recording.epochs.exclude(stage="unscored").values_list("pk", flat=True))
    assert rated == scored - set(stale) and rated


# --- blinding -----------------------------------------------------------------------------------

def test_raters_never_learn_the_source(make_user, client, db):
    recording, version = world(12)
    hidden = make_recording("Other", "elsewhere", ["W"] * 3)
    a, b = raters(make_user, 2)
    campaign = create_rating_campaign("blind", cohorts=["Rate"], model_versions=[SECRET], expert_sources=["massex"],
                                      raters=[a, b], overlap=2)
    api = APIClient()
    api.force_authenticate(a)
    base = f"/api/ratings/campaigns/{campaign.pk}"
    bodies = [api.post(f"{base}/ahead/?count=5").content]
    served = json.loads(bodies[0])
    assert set(served[0]) == {"item", "recording", "index", "onset_s", "recording_epoch_count", "stage", "rules",
                              "rationale", "rating", "evidence", "rubric_version"}
    assert served[0]["evidence"] is None  # the campaign does not show the evidence check
    assert served[0]["rules"][0]["title"]  # the catalog's text comes with each rule id
    for row in served:
        api.post(f"{base}/ratings/", {"item": row["item"], "scores": dict.fromkeys(campaign.rubric.keys, 3),
                                      "client_id": str(uuid.uuid4()), "seconds_spent": 9}, format="json")
    for url in (f"{base}/", f"{base}/ratings/", f"{base}/history/", "/api/ratings/campaigns/"):
        bodies.append(api.get(url).content)
    client.force_login(a)
    bodies.append(client.get(f"/rating/{campaign.pk}/rate/").content)
    bodies.append(client.get("/rating/").content)
    for body in bodies:
        text = body.decode()
        for secret in (SECRET, "cafe1234", "massex", '"origin"', "reference_stage", "prediction", "model_version",
                       "expert_sources", '"source"'):
            assert secret not in text, secret
    assert api.get(f"{base}/items/").status_code == 403
    assert api.get(f"{base}/statistics/").status_code == 403
    assert api.get(f"/api/recordings/{recording.pk}/").status_code == 200  # the signals of its items
    assert api.get(f"/api/recordings/{hidden.pk}/").status_code == 404
    assert api.get(f"/recordings/{recording.pk}/epochs/1/signals.bin").status_code != 403
    api.force_authenticate(make_user(RESEARCHER, "res"))
    items = api.get(f"{base}/items/").json()["results"]
    assert {i["origin"] for i in items} == {"model", "expert"} and SECRET in {i["model_version"] for i in items}


def test_each_rater_gets_their_own_order_and_the_queue_keeps_its_guarantees(make_user, db):
    world(20)
    a, b, c = raters(make_user, 3)
    campaign = create_rating_campaign("order", cohorts=["Rate"], model_versions=[SECRET], raters=[a, b, c], overlap=2)
    first = {}
    for rater in (a, b):
        order = []
        for _ in range(campaign.items.count()):
            item, _ = RATING.next_item(campaign, rater)
            order.append(item.pk)
            rate(campaign, rater, item)
        assert RATING.next_item(campaign, rater) is None and len(set(order)) == len(order)
        first[rater.username] = order
    assert first["rater0"] != first["rater1"] and sorted(first["rater0"]) == sorted(first["rater1"])
    assert RATING.next_item(campaign, c) is None  # every item has its k = 2 ratings
    assert not campaign.items.filter(complete=False).exists()
    assert max(Counter(Rating.objects.values_list("item_id", flat=True)).values()) == 2


# --- rubric, history, 412 ----------------------------------------------------------------------

def test_rubric_is_copied_editable_then_frozen_and_ratings_keep_their_version(make_user, db):
    world(6)
    (a,) = raters(make_user, 1)
    campaign = create_rating_campaign("rubric", cohorts=["Rate"], model_versions=[SECRET], raters=[a], overlap=1)
    rubric = campaign.rubric
    assert rubric.version == 1 and rubric.keys == ["factual_accuracy", "evidence_comprehensiveness", "logical_coherence"]
    assert rubric.dimensions[0]["anchors"][4].startswith("Every stated feature is present")
    api = APIClient()
    api.force_authenticate(make_user(CURATOR, "cur"))
    dims = rubric.dimensions
    dims[0]["anchors"][0] = "Invented features throughout."
    response = api.put(f"/api/ratings/campaigns/{campaign.pk}/rubric/", {"dimensions": dims}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 2
    bad = api.put(f"/api/ratings/campaigns/{campaign.pk}/rubric/", {"markdown": "## Only: one\n1. a\n2. b\n"}, format="json")
    assert bad.status_code == 400 and "exactly five anchor texts" in bad.json()["detail"]
    item, _ = RATING.next_item(campaign, a)
    rating, created = rate(campaign, a, item, (5, 4, 3), seconds_spent=1.5, note="Spindle is at 9 s.",
                           corrected_stage="N2", corrected_rule_ids=["N2.1"])
    assert created and rating.rubric.version == 2 and rating.fast and rating.scores == {
        "factual_accuracy": 5, "evidence_comprehensiveness": 4, "logical_coherence": 3}
    frozen = api.put(f"/api/ratings/campaigns/{campaign.pk}/rubric/", {"dimensions": dims}, format="json")
    assert frozen.status_code == 409 and "frozen" in frozen.json()["detail"]
    assert api.get(f"/api/ratings/campaigns/{campaign.pk}/rubric/").json()["frozen"] is True

    with pytest.raises(InputError, match="must give each rubric dimension"):
        RATING.submit(campaign, a, item, scores={"factual_accuracy": 3}, client_id=uuid.uuid4())
    with pytest.raises(InputError, match="whole number from 1 to 5"):
        rate(campaign, a, item, (6, 4, 3), base_revision=1)
    with pytest.raises(InputError, match="unknown rule id"):
        rate(campaign, a, item, corrected_rule_ids=["X.9"], base_revision=1)
    with pytest.raises(StaleAnswer):
        rate(campaign, a, item, (2, 2, 2))  # another tab: no base revision although one exists
    again, created = rate(campaign, a, item, (4, 4, 4), base_revision=1, seconds_spent=1,
                          now=rating.created_at + timedelta(seconds=20))  # the server's 20 s count, not the browser's 1
    assert created and again.revision == 2 and again.replaces == rating and not again.fast
    key = uuid.uuid4()
    scores = dict.fromkeys(campaign.rubric.keys, 1)
    saved, created = RATING.submit(campaign, a, item, scores=scores, client_id=key, base_revision=2)
    assert created and RATING.submit(campaign, a, item, scores=scores, client_id=key, base_revision=2) == (saved, False)
    api.force_authenticate(a)
    stale = api.post(f"/api/ratings/campaigns/{campaign.pk}/ratings/",
                     {"item": item.pk, "scores": scores, "client_id": str(uuid.uuid4()), "base_revision": 1},
                     format="json")
    assert stale.status_code == 412 and stale.json()["current_revision"] == 3
    history = api.get(f"/api/ratings/campaigns/{campaign.pk}/history/?item={item.pk}").json()
    assert [h["revision"] for h in history] == [1, 2, 3] and history[1]["previous"]["scores"]["factual_accuracy"] == 5


# --- statistics ---------------------------------------------------------------------------------

def _rated_campaign(make_user, seed=11):
    world(40)
    world(20, cohort="Clinic", name="c1")
    users = raters(make_user, 3)
    campaign = create_rating_campaign("stats", cohorts=["Rate", "Clinic"], model_versions=[SECRET],
                                      expert_sources=["massex"], raters=users, overlap=3, seed=seed)
    rng = np.random.default_rng(seed)
    for item in campaign.items.order_by("position"):
        quality = rng.integers(2, 6)
        for n, rater in enumerate(users):
            RATING.reservations.objects.create(item=item, slot=n, rater=rater, expires_at="2100-01-01T00:00Z")
            if n == 2 and item.position % 5 == 0:
                RATING.release(campaign, rater, item)  # the third rater skips some: not fully crossed
                continue
            scores = [int(np.clip(quality + rng.integers(-1, 2), 1, 5)) for _ in range(3)]
            rate(campaign, rater, item, scores, seconds_spent=float(rng.integers(2, 30)))
    return campaign, users


def test_statistics_match_reference_packages(make_user, db):
    campaign, users = _rated_campaign(make_user)
    stats = campaign_statistics(campaign)
    ratings = list(Rating.objects.filter(item__campaign=campaign).select_related("rater"))
    items = sorted({r.item_id for r in ratings})
    names = [u.username for u in users]
    for dim in campaign.rubric.keys:
        d = stats["dimensions"][dim]
        values = [r.scores[dim] for r in ratings]
        assert d["overall"]["n"] == len(values) and d["overall"]["mean"] == pytest.approx(np.mean(values))
        assert d["overall"]["sd"] == pytest.approx(np.std(values, ddof=1))
        assert d["overall"]["distribution"] == {str(k): values.count(k) for k in range(1, 6)}
        matrix = np.full((3, len(items)), np.nan)
        for r in ratings:
            matrix[names.index(r.rater.username), items.index(r.item_id)] = r.scores[dim]
        for level in ("ordinal", "interval"):
            reference = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level,
                                           value_domain=[1, 2, 3, 4, 5])
            alpha = d[f"alpha_{level}"]
            assert alpha["value"] == pytest.approx(reference, abs=1e-9) and alpha["low"] <= alpha["value"] <= alpha["high"]
        for pair in d["pairwise_weighted_kappa"]:
            i, j = names.index(pair["a"]), names.index(pair["b"])
            both = ~np.isnan(matrix[i]) & ~np.isnan(matrix[j])
            assert pair["items"] == both.sum()
            assert pair["kappa"] == pytest.approx(cohen_kappa_score(matrix[i][both], matrix[j][both], weights="quadratic",
                                                                    labels=[1, 2, 3, 4, 5]))
        crossed = ~np.isnan(matrix).any(axis=0)
        icc = d["icc2k"]
        assert icc["raters"] == 3 and icc["items"] == crossed.sum()
        triples = [(r, c, matrix[r, c]) for r in range(3) for c in np.flatnonzero(crossed)]
        assert icc["value"] == pytest.approx(agreement.icc(triples, "ICC2k"))
        by_correct = d["by_correctness"]
        assert sum(g["n"] for g in by_correct.values()) == len(values)
        assert set(d["by_source"]) == {SECRET, "expert: massex"}
    table = stats["paper_table"]
    assert {(c["cohort"], c["source"]) for c in table["columns"]} == {
        ("Rate", SECRET), ("Rate", "expert: massex"), ("Clinic", SECRET), ("Clinic", "expert: massex")}
    assert sum(cell["n"] for cell in table["rows"][0]["cells"]) == len(ratings)
    assert {r["rater"] for r in stats["raters"]} == set(names)
    assert sum(r["fast"] for r in stats["raters"]) == sum(r.fast for r in ratings)
    assert stats["published"]["means"] == [3.75, 3.96]
    # seeded: the same intervals again
    assert campaign_statistics(campaign)["dimensions"] == stats["dimensions"]


def test_bias_and_corrections_by_hand(make_user, db):
    world(4)
    a, b = raters(make_user, 2)
    campaign = create_rating_campaign("bias", cohorts=["Rate"], model_versions=[SECRET], raters=[a, b], overlap=2,
                                      item_list="recording,epoch\nr1,1\nr1,2\n")
    one, two = campaign.items.order_by("epoch__index")
    for item, (sa, sb) in ((one, (5, 3)), (two, (4, 4))):
        for rater, score in ((a, sa), (b, sb)):
            RATING.reservations.objects.create(item=item, slot=int(rater == b), rater=rater, expires_at="2100-01-01T00:00Z")
            rate(campaign, rater, item, (score, 3, 3), seconds_spent=10,
                 corrected_stage="N1" if rater == a and item == one else "")
    stats = campaign_statistics(campaign)
    by_rater = {r["rater"]: r["dimensions"]["factual_accuracy"] for r in stats["raters"]}
    assert by_rater["rater0"] == {"mean": 4.5, "bias": 1.0, "items_shared": 2}
    assert by_rater["rater1"]["bias"] == -1.0
    corrections = stats["corrections"]
    assert corrections["corrected_stages"] == 1 and corrections["stage_changed"] == 1  # predicted N2, corrected N1
    assert corrections["confusion"][2][1] == 1


def test_agreement_report_command_and_downloads(make_user, client, db, capsys):
    campaign, _ = _rated_campaign(make_user)
    call_command("agreement_report", "--campaign", "stats", "--format", "md")
    md = capsys.readouterr().out
    assert "| Factual accuracy |" in md and "α" in md and "Published:" in md and "95% CI" in md
    call_command("agreement_report", "--campaign", "stats", "--format", "json")
    assert json.loads(capsys.readouterr().out)["campaign"]["ratings"] == Rating.objects.count()
    call_command("agreement_report", "--campaign", "stats", "--format", "csv")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "dimension,breakdown,group,statistic,value,n,items" and any(",icc2k," in line for line in lines)
    with pytest.raises(Exception, match="no rating campaign 'nope'"):
        call_command("agreement_report", "--campaign", "nope")
    client.force_login(make_user(RESEARCHER, "res"))
    assert client.get(f"/rating/{campaign.pk}/report/?format=csv").content.decode() == render_report(
        campaign_statistics(campaign), "csv")
    page = client.get(f"/rating/{campaign.pk}/dashboard/").content.decode()
    assert "Krippendorff" in page and SECRET in page and "ICC(2,k)" in page and "<svg" in page


def test_report_page_reads_and_figures_state_their_items_rounded_on_pages_not_in_json(make_user, client, db):
    """The report without a format is the Markdown report as a page; pages and the report round (means 2
    decimals, agreement 3), the JSON does not; alpha says its items and raters beside the cell's."""
    campaign, _ = _rated_campaign(make_user)
    client.force_login(make_user(RESEARCHER, "res"))
    page = client.get(f"/rating/{campaign.pk}/report/")
    assert page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert "<h1>Rating campaign stats</h1>" in html and "<table>" in html and '"dimensions"' not in html
    assert "Published reference (not this campaign)" in html and "arXiv:2603.26738" in html

    stats = client.get(f"/rating/{campaign.pk}/report/?format=json").json()
    d = stats["dimensions"]["factual_accuracy"]
    alpha, mean = d["alpha_ordinal"], d["overall"]["mean"]
    assert alpha["value"] == campaign_statistics(campaign)["dimensions"]["factual_accuracy"]["alpha_ordinal"]["value"]
    assert len(repr(alpha["value"])) > 8  # full precision
    assert alpha["raters"] == 3 and alpha["items"] == d["overall"]["items"]
    md = render_report(stats, "md")
    dashboard = client.get(f"/rating/{campaign.pk}/dashboard/").content.decode()
    for text in (md, html, dashboard):
        assert f"{alpha['value']:.3f}" in text and repr(alpha["value"]) not in text
    assert f"{mean:.2f} ± " in dashboard
    cell = stats["paper_table"]["rows"][0]["cells"][0]
    assert (f"({cell['n']} ratings of {cell['items']} items)<br><span class=\"muted small\">α "
            f"{cell['alpha']['value']:.3f} on {cell['alpha']['items']} items × {cell['alpha']['raters']} raters") in dashboard
    assert f"{alpha['items']} items × 3 raters" in dashboard and "ICC(2,k) needs every item rated by the same raters" in dashboard
    references = dashboard[dashboard.index('id="published-references"'):]
    assert "3.75–3.96" in references and "arXiv:2603.26738" in references


def test_create_rating_campaign_command(make_user, db, tmp_path):
    world(6)
    raters(make_user, 2)
    (tmp_path / "items.csv").write_text("recording,epoch\nr1,0\nr1,1\n")
    (tmp_path / "rubric.md").write_text(rubrics.DEFAULT_RUBRIC.read_text().replace("## Logical coherence", "## Logic"))
    spec = tmp_path / "c.json"
    spec.write_text(json.dumps({"name": "from-file", "cohorts": ["Rate"], "model_versions": [SECRET],
                                "raters": ["rater0", "rater1"], "item_list": "items.csv", "rubric": "rubric.md"}))
    call_command("create_rating_campaign", str(spec), verbosity=0)
    from ratings.models import RatingCampaign

    campaign = RatingCampaign.objects.get(name="from-file")
    assert campaign.items.count() == 2 and campaign.rubric.keys[-1] == "logic"


def test_statistics_of_a_campaign_without_items_or_ratings_are_empty_not_an_error(make_user, db):
    campaign, _ = _rated_campaign(make_user)
    campaign.items.all().delete()
    stats = campaign_statistics(campaign)
    assert (stats["campaign"]["items"], stats["campaign"]["ratings"], stats["raters"]) == (0, 0, [])
    overall = stats["dimensions"]["factual_accuracy"]["overall"]
    assert (overall["n"], overall["mean"], overall["items"]) == (0, None, 0)
    assert stats["dimensions"]["factual_accuracy"]["alpha_ordinal"]["value"] is None
