"""The work queue's next item in at most 3 queries, one of them the statement that picks and reserves (FOR UPDATE
SKIP LOCKED on PostgreSQL), for scoring and rating on SQLite and PostgreSQL; and the time per item measured by
the server (issue 19, section 4): stored beside the browser's figure, and the one the fast flag and the
statistics use."""
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Label
from annotation.services import queue
from annotation.services.campaigns import create_campaign
from core.roles import CURATOR
from core.services import prepared, work_queue
from ratings.models import Rating
from ratings.services.campaigns import create_rating_campaign
from ratings.services.queue import RATING
from ratings.services.statistics import campaign_statistics
from tests.test_ratings import SECRET, rate, world
from tests.test_scoring import night, raters

QUEUE_QUERIES = 3  # the rater's own live reservation; pick and reserve; the picked item with its epoch and recording
# What every queue request of the API costs before the queue: the token with its user and the user's own and
# their groups' permissions (one statement), and the campaign with whether the user rates in it.
REQUEST_QUERIES = 2
# What a rating item is served with besides: the rule catalogue's texts and the rubric version in force.
RATING_SERVED_QUERIES = 2


def statements(captured) -> list[str]:
    """The SQL sent, without the savepoints that only the test's own transaction adds around atomic blocks."""
    return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def picks(work) -> list:
    """The pick statements this process prepared for a queue."""
    return [key for (_, key) in prepared._statements if key[:2] == work.prepared_key("pick")]


@pytest.fixture
def no_sweep(monkeypatch):
    """The deletion of expired holds runs at most once every RELEASE_EVERY_S per process and campaign: out of the counts."""
    monkeypatch.setattr(work_queue, "RELEASE_EVERY_S", 3600.0)


@pytest.fixture(params=["scoring", "rating"])
def kind(request, make_user, db, no_sweep):
    """(queue, campaign, raters, API prefix) of a scoring or a rating campaign with overlap 2."""
    users = raters(make_user, 3)
    if request.param == "scoring":
        campaign = create_campaign("q", recordings=[night("q", 40)], raters=users)
        work, prefix = queue.SCORING, f"/api/scoring/campaigns/{campaign.pk}/"
    else:
        world(30)
        campaign = create_rating_campaign("q", cohorts=["Rate"], model_versions=[SECRET], raters=users)
        work, prefix = RATING, f"/api/ratings/campaigns/{campaign.pk}/"
    work.release_expired(campaign)  # the once-a-second sweep, done
    return work, campaign, users, prefix


def test_next_item_takes_at_most_three_queries_one_picking_and_reserving(kind):
    work, campaign, (a, b, _), _ = kind
    with CaptureQueriesContext(connection) as fresh:
        item, rescore = work.next_item(campaign, a)
    sent = statements(fresh)
    assert not rescore and item.hold.rater_id == a.pk and len(sent) <= QUEUE_QUERIES, sent
    inserts = [sql for sql in sent if sql.startswith("INSERT")]
    assert len(inserts) == 1 and " SELECT " in inserts[0]  # one statement picks and reserves
    if connection.vendor == "postgresql":
        assert "FOR UPDATE OF" in inserts[0] and "SKIP LOCKED" in inserts[0]
    with CaptureQueriesContext(connection) as again:
        assert work.next_item(campaign, a)[0] == item  # the rater's own live reservation first
    assert len(statements(again)) == 1
    with CaptureQueriesContext(connection) as other:
        other_item, _ = work.next_item(campaign, b)
    if work is queue.SCORING:  # one order for all: overlap 2 gives the second rater the second slot of the item
        assert other_item == item and other_item.hold.slot == 1
    assert len(statements(other)) <= QUEUE_QUERIES
    with CaptureQueriesContext(connection) as sweep:
        work.release_expired(campaign, timezone.now())
    assert len(statements(sweep)) <= 2  # expired holds (and whole-recording holds of scoring)


def test_next_item_api_requests_count_the_queue_and_what_comes_before_it(kind):
    work, campaign, (a, _, _), prefix = kind
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=a).key)
    served = QUEUE_QUERIES + (RATING_SERVED_QUERIES if work is RATING else 0)
    with CaptureQueriesContext(connection) as first:
        response = api.post(prefix + "next/")
    assert response.status_code == 200, response.content
    assert len(statements(first)) <= REQUEST_QUERIES + served, statements(first)
    if work is queue.SCORING:
        hold = campaign.items.get(pk=response.json()["item"]).reservations.get(rater=a)
        assert response.json()["expires_at"].startswith(hold.expires_at.isoformat()[:19])


# What a first save costs after the request's queries and the item: the item locked, read with the rater's visible
# answer, when the rater was served it and whether they hold others; the slot claimed; the item marked complete
# when that was its last slot (one conditional UPDATE); the answer; its change record.
SAVE_QUERIES = 5


def test_a_save_takes_five_queries_after_the_item_and_starts_the_clock_of_held_items_only_when_there_are_some(
        make_user, db, no_sweep):
    a, b = raters(make_user, 2)
    campaign = create_campaign("s", recordings=[night("s", 12)], raters=[a, b], overlap=2)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=a).key)
    url = f"/api/scoring/campaigns/{campaign.pk}/labels/"

    def save(item):
        with CaptureQueriesContext(connection) as saving:
            response = api.post(url, {"item": item.pk, "stage": "N2", "client_id": str(uuid.uuid4())}, format="json")
        assert response.status_code == 201, response.content
        return statements(saving)

    item, _ = queue.next_item(campaign, a)
    sent = save(item)
    assert len(sent) <= REQUEST_QUERIES + 1 + SAVE_QUERIES, sent
    assert not any("served_at" in sql for sql in sent if sql.startswith("UPDATE"))  # it holds nothing else
    keys = [queue.SCORING.prepared_key("lock item"), ("update", queue.SCORING.prepared_key("claim")),
            ("update", queue.SCORING.prepared_key("complete"))]
    entries = [prepared._statements.get((connection.alias, key)) for key in keys]
    assert all(entry not in (None, prepared._UNPREPARABLE) for entry in entries)  # prepared, not left to the ORM
    assert not campaign.items.get(pk=item.pk).complete  # one slot of two answered
    first, second = [held for held, _ in queue.reserve_ahead(campaign, a, 2)]
    sent = save(first)
    assert len(sent) <= REQUEST_QUERIES + 1 + SAVE_QUERIES + 1
    assert [sql for sql in sent if sql.startswith("UPDATE") and "served_at" in sql]  # the second one's clock
    queue.next_item(campaign, b)
    queue.submit_label(campaign, b, item, stage="W", client_id=uuid.uuid4())  # its last slot
    assert campaign.items.get(pk=item.pk).complete and not campaign.items.get(pk=first.pk).complete


def test_a_fast_save_is_flagged_on_the_servers_time_whatever_the_browser_says(make_user, db):
    world(20)
    a, b = raters(make_user, 2)
    campaign = create_rating_campaign("t", cohorts=["Rate"], model_versions=[SECRET], raters=[a, b])
    served_at = timezone.now()
    item, _ = RATING.next_item(campaign, a, now=served_at)
    rating, _ = rate(campaign, a, item, seconds_spent=999, now=served_at + timedelta(seconds=0.1))
    assert (rating.seconds_spent, rating.server_seconds, rating.fast) == (999, 0.1, True)
    item, _ = RATING.next_item(campaign, a, now=served_at)
    slow, _ = rate(campaign, a, item, seconds_spent=1, now=served_at + timedelta(seconds=30))
    assert (slow.seconds_spent, slow.server_seconds, slow.fast) == (1, 30.0, False)
    row = next(r for r in campaign_statistics(campaign)["raters"] if r["rater"] == a.username)
    assert row["fast"] == 1 and row["median_seconds"] == pytest.approx(15.05)  # the server's times

    api = APIClient()  # through the API, in real time: a save right after the item was served
    api.force_authenticate(b)
    prefix = f"/api/ratings/campaigns/{campaign.pk}/"
    shown = api.post(prefix + "next/").json()
    saved = api.post(prefix + "ratings/", {"item": shown["item"], "scores": dict.fromkeys(campaign.rubric.keys, 4),
                                           "client_id": str(uuid.uuid4()), "seconds_spent": 999}, format="json")
    assert saved.status_code == 201, saved.content
    stored = Rating.objects.get(pk=saved.json()["id"])
    assert stored.seconds_spent == 999 and 0 <= stored.server_seconds < 999 and stored.fast == (
        stored.server_seconds < campaign.fast_floor_s)

    # the flag stays out of the rater's own change records; curators see it with both times
    own = api.get(f"/api/audit/?object_id={stored.pk}").json()["results"]
    assert own and all("fast" not in r["after"] and "server_seconds" in r["after"] for r in own)
    api.force_authenticate(make_user(CURATOR))
    records = [r for r in api.get(f"/api/audit/?object_id={stored.pk}").json()["results"]
               if r["object_type"] == "ratings.rating"]
    assert records[0]["after"]["fast"] == stored.fast and records[0]["after"]["seconds_spent"] == 999


def test_a_save_without_seconds_spent_gets_the_servers_time(make_user, db):
    a, b = raters(make_user, 2)
    campaign = create_campaign("t", recordings=[night("t", 20)], raters=[a, b], overlap=1)
    api = APIClient()
    api.force_authenticate(a)
    prefix = f"/api/scoring/campaigns/{campaign.pk}/"
    shown = api.post(prefix + "next/").json()
    saved = api.post(prefix + "labels/", {"item": shown["item"], "stage": "N2", "client_id": str(uuid.uuid4())},
                     format="json")
    assert saved.status_code == 201, saved.content
    label = Label.objects.get(pk=saved.json()["id"])
    assert label.seconds_spent is None and label.server_seconds is not None and label.server_seconds >= 0


def test_items_held_ahead_revisions_and_re_scores_are_timed_from_when_the_rater_could_start(make_user, db):
    (a,) = raters(make_user, 1)
    campaign = create_campaign("t", recordings=[night("t", 24)], raters=[a], overlap=1, rescore_share=1.0)
    t0 = timezone.now()
    first, second, third = [item for item, _ in queue.reserve_ahead(campaign, a, 3, now=t0)]

    def save(item, at, **kw):
        label, _ = queue.submit_label(campaign, a, item, stage="N2", client_id=uuid.uuid4(), now=at, **kw)
        return label

    assert save(first, t0 + timedelta(seconds=10)).server_seconds == 10.0
    # the second item was reserved with the first, but its clock started when the first was saved
    assert save(second, t0 + timedelta(seconds=13)).server_seconds == 3.0
    revised_at = Label.objects.get(item=first, rater=a).created_at + timedelta(seconds=7)
    again = save(first, revised_at, base_revision=1)
    assert (again.revision, again.server_seconds) == (2, 7.0)  # a revision: from the version it replaces
    # the third item's clock restarted at the rater's last save, the revision
    later = revised_at + timedelta(seconds=30)
    assert save(third, later).server_seconds == 30.0

    t = later + timedelta(seconds=60)
    for _ in range(work_queue.RESCORE_AFTER + work_queue.RESCORE_GAP):
        served = queue.next_item(campaign, a, now=t)
        if served[1]:
            break
        save(served[0], t + timedelta(seconds=5))
        t += timedelta(seconds=5)
    item, rescore = served
    assert rescore  # served again: the re-score's clock starts at this serving
    label = save(item, t + timedelta(seconds=4))
    assert label.rescore and label.server_seconds == 4.0


def test_the_compiled_pick_statement_serves_on_with_fresh_times(make_user, db, no_sweep):
    a, b = raters(make_user, 2)
    campaign = create_campaign("c", recordings=[night("c", 12)], raters=[a, b], overlap=2)
    t0 = timezone.now()
    first, _ = queue.next_item(campaign, a, now=t0)
    queue.submit_label(campaign, a, first, stage="N2", client_id=uuid.uuid4(), now=t0 + timedelta(seconds=1))
    later = t0 + timedelta(seconds=30)
    second, _ = queue.next_item(campaign, a, now=later)  # the statement compiled for a, times filled in anew
    assert second.position > first.position
    timeout = timedelta(seconds=campaign.reservation_timeout_s)
    assert (second.hold.served_at, second.hold.expires_at) == (later, later + timeout)
    assert queue.next_item(campaign, b, now=later)[0] == first and first.reservations.get(rater=b).slot == 1


def test_one_compiled_pick_statement_serves_every_rater_of_a_scoring_campaign(make_user, db, no_sweep):
    """Compiled once with a stand-in rater, it reserves for each rater under their own id, skipping what they hold."""
    a, b, c = raters(make_user, 3)
    campaign = create_campaign("s", recordings=[night("s", 12)], raters=[a, b, c], overlap=2)
    prepared._statements.clear()
    t0 = timezone.now()
    served = {u.pk: queue.next_item(campaign, u, now=t0)[0] for u in (a, b, c)}
    assert len(picks(queue.SCORING)) == 1
    assert served[a.pk] == served[b.pk] != served[c.pk]  # overlap 2: the first item's two slots, then the next item
    holds = {(r.item_id, r.rater_id, r.slot) for r in queue.SCORING.reservations.objects.filter(item__campaign=campaign)}
    assert holds == {(served[a.pk].pk, a.pk, 0), (served[a.pk].pk, b.pk, 1), (served[c.pk].pk, c.pk, 0)}
    queue.SCORING.release_expired(campaign)  # the once-a-while sweep, done
    with CaptureQueriesContext(connection) as sent:
        queue.next_item(campaign, a)  # a's own hold again, not another one
    assert len(statements(sent)) == 1 and campaign.items.get(pk=served[a.pk].pk).reservations.count() == 2


def test_a_rating_campaigns_pick_statement_is_compiled_per_rater(make_user, db, no_sweep):
    """Each rater has their own order (a seeded permutation): one statement per rater, each in that rater's order."""
    world(30)
    a, b = raters(make_user, 2)
    campaign = create_rating_campaign("r", cohorts=["Rate"], model_versions=[SECRET], raters=[a, b])
    prepared._statements.clear()
    orders = []
    for user in (a, b):
        order = list(RATING.open_in_order(campaign, user)[:10])
        assert RATING.next_item(campaign, user)[0] == order[0]
        orders.append(order)
    # two orders (their first items may coincide: 1 chance in the number of items)
    assert len(picks(RATING)) == 2 and orders[0] != orders[1]
