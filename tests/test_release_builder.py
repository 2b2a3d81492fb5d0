"""The release builder's preview (what a build would change against the previous version, by the build's own
changelog) and ties in a release's consensus table."""
import csv
import io
import uuid

import pytest
from hypothesis import given, settings, strategies as st

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


def test_consensus_table_matches_a_count_of_the_current_first_pass_labels(make_user, db, media_root):
    """The consensus table and the consensus stage source (read from the export's own reading of the labels)
    against a count made here from the label rows: re-scores and replaced labels left out, adjudication wins."""
    from collections import Counter

    from annotation.models import Adjudication
    from releases.models import Release

    recording, epochs = night()
    raters = [make_user(RATER, f"count{i}") for i in range(3)]
    first = create_campaign("First", recordings=[recording], raters=raters, overlap=3)
    second = create_campaign("Second", recordings=[recording], raters=raters[:2], overlap=2)
    picks = ["N2", "N3", "N2", "W", "R"]
    for c, campaign in enumerate((first, second)):
        for i, item in enumerate(campaign.items.order_by("position")):
            for r, rater in enumerate(raters[:campaign.overlap]):
                Label.objects.create(item=item, rater=rater, stage=picks[(i + r + c) % len(picks)],
                                     client_id=uuid.uuid4())
    items = list(first.items.order_by("position"))
    submit_label(first, raters[0], items[0], client_id=uuid.uuid4(), base_revision=1, stage="R")  # replaces one
    Label.objects.create(item=items[1], rater=raters[1], stage="W", rescore=True, client_id=uuid.uuid4())
    Adjudication.objects.create(item=items[2], stage="N1", reason="spindles", adjudicator=raters[2])
    release = built(stage_source=Release.CONSENSUS, scoring_campaigns=[first.name, second.name])

    expected, stage_of = [], {}
    index = {e.pk: e.index for e in epochs}
    for campaign in (first, second):
        for item in campaign.items.all():
            stages = [label.stage for label in Label.objects.filter(item=item, rescore=False)
                      if not Label.objects.filter(replaces=label).exists()]
            if not stages:
                continue
            (top, n), *rest = Counter(stages).most_common()
            tie = bool(rest) and rest[0][1] == n
            adjudicated = item.adjudications.order_by("created_at", "pk").values_list("stage", flat=True).last()
            stage = adjudicated or (None if tie else top)
            expected.append((index[item.epoch_id], campaign.name, stage or "", "" if tie else top,
                             n / len(stages), len(stages), tie, adjudicated or ""))
            if stage:
                stage_of.setdefault(item.epoch_id, stage)  # the first campaign's consensus wins
    rows = list(csv.DictReader(io.StringIO(read(release, "tables/consensus.csv").decode(), newline="")))
    assert [(int(r["epoch_index"]), r["campaign"], r["stage"], r["majority"], float(r["agreement"]), int(r["labels"]),
             r["tie"] == "True", r["adjudicated"]) for r in rows] == sorted(expected, key=lambda e: e[:2])
    assert any(e[6] for e in expected) and any(e[7] for e in expected)  # a tie and an adjudication are in it
    coarse = list(csv.DictReader(io.StringIO(read(release, "annotations/coarse/01-03-0006.csv").decode(),
                                             newline="")))
    assert [r["Stage"] for r in coarse] == [stage_of[e.pk] for e in epochs if e.pk in stage_of]


def _compare_as_dicts(before, now, key, compared, shown):
    """The comparison as the changelog made it before it streamed: both tables held whole, keyed by tuples."""
    def rows(lines):
        return {tuple(r[k] for k in key): tuple(r[c] for c in compared) for r in lines}
    before, now = rows(before), rows(now)
    found = {"added": [], "changed": [], "removed": []}
    for row_key in sorted(now.keys() | before.keys()):
        change = ("added" if row_key not in before else "removed" if row_key not in now
                  else "changed" if now[row_key] != before[row_key] else None)
        if change:
            found[change].append(row_key)
    return {change: (len(keys), keys[:shown]) for change, keys in found.items()}


@settings(max_examples=200, deadline=None)
@given(data=st.data(), shown=st.integers(1, 6))
def test_the_changelog_compares_answer_tables_as_holding_both_whole_would(data, shown):
    """releases.services.export.compare_rows (the previous table held one string per row, this one streamed) against
    the comparison of both tables held as tuples: the same counts and the same first examples, in order."""
    from releases.services.export import compare_rows

    key, compared = ("subject", "epoch_index", "campaign", "rater", "pass"), ("stage", "uncertain")
    text = st.sampled_from(["", "a", "ab", "b", "1", "10", "2", "é", "a b", "a·b"])
    def table(size):
        return st.dictionaries(st.tuples(*[text] * len(key)), st.tuples(*[text] * len(compared)), max_size=size)
    before = data.draw(table(60))
    now = {k: v for k, v in before.items() if data.draw(st.booleans())}  # some kept (a few changed), some new
    now.update({k: data.draw(st.tuples(*[text] * len(compared))) for k in list(now)[: data.draw(st.integers(0, 5))]})
    now.update(data.draw(table(150)))  # enough rows added that only the smallest are kept as it goes

    def as_rows(rows):
        return [dict(zip(key + compared, k + v)) for k, v in rows.items()]
    assert (compare_rows(iter(as_rows(before)), iter(as_rows(now)), key, compared, shown)
            == _compare_as_dicts(as_rows(before), as_rows(now), key, compared, shown))


def test_the_changelog_keeps_the_first_examples_of_many_changes_in_any_row_order():
    """Hundreds of rows of each change, in shuffled order: the counts, and the first examples by row key."""
    import random

    from releases.services.export import compare_rows

    key, compared = ("subject", "epoch_index", "campaign", "rater", "pass"), ("stage", "uncertain")
    rng = random.Random(7)
    def row(n, stage="N2"):
        return {"subject": f"01-{n % 7:02d}", "epoch_index": str(n), "campaign": "c", "rater": f"r{n % 3}",
                "pass": "first", "stage": stage, "uncertain": "False"}
    before = [row(n) for n in range(900)]
    now = [row(n, "N3" if n % 5 == 0 else "N2") for n in range(300, 1500)]  # 0-299 removed, 900-1499 added
    rng.shuffle(before)
    rng.shuffle(now)
    found = compare_rows(iter(before), iter(now), key, compared, 5)
    assert {change: count for change, (count, _) in found.items()} == {"added": 600, "changed": 120, "removed": 300}
    assert found == _compare_as_dicts(before, now, key, compared, 5)
