"""The release builder's preview (what a build would change against the previous version, by the build's own
changelog) and ties in a release's consensus table."""
import csv
import io
import uuid

import pytest

from annotation.models import Label, Reservation
from annotation.services.campaigns import create_campaign
from annotation.services.queue import submit_label
from core.roles import RATER
from datasets.models import Epoch
from releases.services.preview import preview_release
from tests.test_releases import _with_campaigns, built, night, read


def test_the_preview_counts_what_the_build_then_records(make_user, db, media_root):
    campaign, version, raters = _with_campaigns(make_user)
    choices = {"cohorts": ["Release"], "scoring_campaigns": [campaign.name], "model_versions": [version.name]}
    first = preview_release("mass-ex", "1.0.0", **choices)
    assert first["previous"] is None and first["epochs"] == 8 and first["subjects"] == 1
    built(**choices)
    item = campaign.items.order_by("position").first()
    submit_label(campaign, raters[0], item, client_id=uuid.uuid4(), base_revision=1, stage="R")  # a changed label
    Epoch.objects.filter(pk=item.epoch_id).update(stage="R")  # and a changed reference stage

    preview = preview_release("mass-ex", "1.1.0", **choices)
    counts = {c["kind"]: c["count"] for c in preview["changes"]}
    assert preview["previous"].version == "1.0.0"
    assert counts["labels_changed"] == 1 and counts["changed_stage"] == 1
    assert counts["labels_added"] == counts["labels_removed"] == counts["ratings_added"] == counts["added"] == 0
    changed = next(c for c in preview["changes"] if c["kind"] == "labels_changed")
    assert changed["examples"] == [f"01-03-0006 epoch_index {item.epoch.index} · {campaign.name} · rater-01 · first"]
    release = built(version="1.1.0", **choices)
    assert release.changelog == counts  # the preview is the build's own changelog
    assert "Labels changed: 1" in read(release, "CHANGELOG.md").decode()
    with pytest.raises(Exception, match="already exists"):
        preview_release("mass-ex", "1.1.0", **choices)


def test_a_tie_has_no_majority_in_the_consensus_table(make_user, db, media_root):
    recording, _ = night()
    raters = [make_user(RATER, f"tied{i}") for i in range(2)]
    campaign = create_campaign("Tied", recordings=[recording], raters=raters, overlap=2)
    item = campaign.items.order_by("position").first()
    for slot, (rater, stage) in enumerate(zip(raters, ("N2", "N3"))):
        Reservation.objects.create(item=item, slot=slot, rater=rater, labelled=True, expires_at="2100-01-01T00:00Z")
        Label.objects.create(item=item, rater=rater, stage=stage, client_id=uuid.uuid4())
    release = built(scoring_campaigns=[campaign.name])
    rows = list(csv.DictReader(io.StringIO(read(release, "tables/consensus.csv").decode(), newline="")))
    assert [(r["tie"], r["majority"], r["stage"], r["agreement"]) for r in rows] == [("True", "", "", "0.5")]
