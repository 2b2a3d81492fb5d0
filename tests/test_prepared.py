"""Prepared statements (core.services.prepared): the same rows and updates as the ORM, compiled once per key, the
ORM's own way where a statement cannot be prepared; and what the request path prepares (token, permissions, a
rater's campaign) reaching exactly what the ORM reached, for every user of a role."""
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.db import connection
from django.utils import timezone
from hypothesis import given, settings, strategies as st
from hypothesis.extra.django import TestCase
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import CampaignItem, Label
from annotation.services.campaigns import create_campaign
from core.access import PermissionBackend
from core.models import ChangeRecord
from core.roles import CURATOR, RATER
from core.services import prepared
from datasets.models import Epoch, Recording
from tests.test_scoring import night, raters


@pytest.fixture(autouse=True)
def fresh():
    prepared._statements.clear()
    yield
    prepared._statements.clear()


def counted(build):
    """`build` that counts its calls (each one a build and compile of the queryset)."""
    calls = []

    def counting(**values):
        calls.append(values)
        return build(**values)
    return counting, calls


def test_rows_match_the_orm_for_every_value_and_the_statement_is_built_once(db):
    recordings = [night(f"p{i}", 6 + i) for i in range(4)]

    def build(recording_id, index):
        return (Epoch.objects.select_related("recording").filter(recording=recording_id, index__gte=index)
                .annotate(same=Count("recording__epochs")).order_by("index"))
    build_counted, calls = counted(build)
    for recording in recordings:
        for index in (0, 3, 50):
            got = prepared.fetch("epochs", build_counted, recording_id=recording.pk, index=index)
            expected = list(build(recording.pk, index))
            assert [(e.pk, e.stage, e.recording.name, e.same) for e in got] == \
                   [(e.pk, e.stage, e.recording.name, e.same) for e in expected]
            assert all(isinstance(e.recording, Recording) for e in got)
    assert len(calls) == 2  # the two compilations with stand-ins, then never again


def test_values_lists_datetimes_and_uuids(db, make_user):
    campaign = create_campaign("c", recordings=[night("v", 8)], raters=raters(make_user, 2))
    rater = campaign.raters.first()
    now = timezone.now()
    ids = list(campaign.items.values_list("pk", flat=True))
    for later in (now - timedelta(days=1), now, now + timedelta(days=1)):
        got = prepared.fetch("created", lambda at: CampaignItem.objects.filter(campaign__created_at__lt=at)
                             .values_list("pk", flat=True).order_by("pk"), at=later)
        assert got == (ids if campaign.created_at < later else [])
    from annotation.services import queue

    item = campaign.items.order_by("position").first()
    queue.SCORING.next_item(campaign, rater)
    client_id = uuid.uuid4()
    label = queue.submit_label(campaign, rater, item, stage="N2", client_id=client_id)[0]
    for wanted, expected in ((client_id, label), (uuid.uuid4(), None)):
        assert prepared.first("by client id", lambda c: Label.objects.filter(client_id=c), c=wanted) == expected


def test_a_value_the_orm_writes_into_the_sql_leaves_the_statement_to_the_orm(db):
    """A slice's bounds are written into the SQL, not sent as parameters: the two compilations differ."""
    recordings = [night(f"b{i}", 5) for i in range(3)]

    def build(recording_id, limit):
        return Epoch.objects.filter(recording=recording_id).order_by("-index")[:limit]
    build_counted, calls = counted(build)
    for recording, limit in zip(recordings * 2, (1, 2, 3, 4, 5, 6)):
        got = prepared.fetch("sliced", build_counted, recording_id=recording.pk, limit=limit)
        assert [e.index for e in got] == [4, 3, 2, 1, 0][:limit] and got == list(build(recording.pk, limit))
    assert list(prepared._statements.values()) == [prepared._UNPREPARABLE]


def test_an_empty_condition_is_left_to_the_orm(db):
    night("e", 4)
    assert prepared.fetch("none", lambda pk: Epoch.objects.filter(pk__in=[]).filter(recording=pk), pk=1) == []
    assert list(prepared._statements.values()) == [prepared._UNPREPARABLE]


def test_updates_match_the_orm(db):
    recordings = [night(f"u{i}", 6) for i in range(2)]
    for recording in recordings:
        changed = prepared.update("stage", lambda recording_id, index: (
            Epoch.objects.filter(recording=recording_id, index__lt=index), {"stage": "N3"}),
            recording_id=recording.pk, index=3)
        assert changed == 3
    assert set(Epoch.objects.filter(index__lt=3).values_list("stage", flat=True)) == {"N3"}
    assert list(Epoch.objects.filter(index__gte=3).order_by("recording", "index").values_list("stage", flat=True)) \
        == ["N2", "N3", "R"] * 2  # the cycle's own stages, untouched
    ordered = prepared.update("ordered", lambda pk: (Epoch.objects.filter(recording=pk).order_by("index"),
                                                     {"stage": "W"}), pk=recordings[0].pk)
    assert ordered == 6 and prepared._statements[("default", ("update", "ordered"))] is prepared._UNPREPARABLE


def test_only_ints_strings_datetimes_and_uuids_are_values(db):
    with pytest.raises(TypeError, match="not float"):
        prepared.fetch("float", lambda x: Epoch.objects.filter(onset_s=x), x=1.5)
    with pytest.raises(ValueError, match="range"):
        prepared.fetch("huge", lambda pk: Epoch.objects.filter(pk=pk), pk=1)  # prepared, then a value too big
        prepared.fetch("huge", lambda pk: Epoch.objects.filter(pk=pk), pk=2**70)


class PermissionsAsDjangoReadsThem(TestCase):
    """The prepared permission lookup gives what Django's ModelBackend gives, for any mix of own and group ones."""

    @settings(max_examples=25, deadline=None)
    @given(own=st.sets(st.integers(0, 30), max_size=6), grouped=st.sets(st.integers(0, 30), max_size=6),
           superuser=st.booleans(), active=st.booleans())
    def test_same_as_model_backend(self, own, grouped, superuser, active):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.backends import ModelBackend

        permissions = list(Permission.objects.order_by("pk")[:31])
        user = get_user_model().objects.create(username=f"u{uuid.uuid4().hex[:8]}", is_superuser=superuser,
                                               is_active=active)
        group = Group.objects.create(name=f"g{uuid.uuid4().hex[:8]}")
        user.user_permissions.set([permissions[i] for i in own])
        group.permissions.set([permissions[i] for i in grouped])
        user.groups.add(group)
        fresh = get_user_model().objects.get(pk=user.pk)
        again = get_user_model().objects.get(pk=user.pk)
        assert PermissionBackend().get_all_permissions(fresh) == ModelBackend().get_all_permissions(again)


class TokenPermissionsAsDjangoReadsThem(TestCase):
    """The token statement brings the user's permissions: Django's ModelBackend's set, with no further query."""

    @settings(max_examples=25, deadline=None)
    @given(own=st.sets(st.integers(0, 30), max_size=6), grouped=st.lists(st.sets(st.integers(0, 30), max_size=6),
                                                                        max_size=2), superuser=st.booleans())
    def test_same_as_model_backend(self, own, grouped, superuser):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.backends import ModelBackend

        from core.access import TokenAuthentication

        permissions = list(Permission.objects.order_by("pk")[:31])
        user = get_user_model().objects.create(username=f"u{uuid.uuid4().hex[:8]}", is_superuser=superuser)
        user.user_permissions.set([permissions[i] for i in own])
        for chosen in grouped:  # a permission may come twice: own and through a group, or through two groups
            group = Group.objects.create(name=f"g{uuid.uuid4().hex[:8]}")
            group.permissions.set([permissions[i] for i in chosen])
            user.groups.add(group)
        key = Token.objects.create(user=user).key
        authenticated, token = TokenAuthentication().authenticate_credentials(key)
        expected = ModelBackend().get_all_permissions(get_user_model().objects.get(pk=user.pk))
        with CaptureQueriesContext(connection) as sent:
            found = PermissionBackend().get_all_permissions(authenticated)
        assert token.key == key and authenticated.pk == user.pk and found == expected
        assert len(sent.captured_queries) == (1 if superuser else 0), sent.captured_queries


def test_a_permission_taken_from_a_token_user_holds_from_their_next_request(make_user, db):
    """Nothing of a user's permissions outlives the request: the token statement reads them afresh each time."""
    from django.contrib.auth.models import Permission as Perm

    rater = make_user(RATER, "revoked")
    campaign = create_campaign("revoke", recordings=[night("r1", 6)], raters=[rater], overlap=1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=rater).key)
    assert api.post(f"/api/scoring/campaigns/{campaign.pk}/next/").status_code == 200
    role = list(Perm.objects.filter(group__user=rater))
    rater.groups.clear()
    assert api.post(f"/api/scoring/campaigns/{campaign.pk}/next/").status_code in (403, 404)
    rater.user_permissions.set(role)  # the same permissions, now the user's own
    assert api.post(f"/api/scoring/campaigns/{campaign.pk}/next/").status_code == 200


def test_a_rater_campaign_statement_prepared_for_one_user_reaches_only_what_each_user_reaches(make_user, db):
    """Prepared first by a rater of campaign 1: a rater of campaign 2 only, a curator and a stranger each get
    what they reach (the ORM's answer), in every order."""
    a, b = raters(make_user, 2)
    stranger = make_user(RATER, "stranger")
    curator = make_user(CURATOR, "cur")
    one = create_campaign("one", recordings=[night("o1", 6)], raters=[a], overlap=1)
    two = create_campaign("two", recordings=[night("o2", 6)], raters=[b], overlap=1)
    expected = {(a, one): 200, (a, two): 404, (b, one): 404, (b, two): 200, (stranger, one): 404,
                (stranger, two): 404, (curator, one): 403, (curator, two): 403}
    for user, campaign in list(expected) * 2:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
        response = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/")
        assert response.status_code == expected[(user, campaign)], (user.username, campaign.name, response.content)
        if response.status_code == 200:
            assert CampaignItem.objects.get(pk=response.json()["item"]).campaign_id == campaign.pk
    assert (APIClient().post(f"/api/scoring/campaigns/{one.pk}/next/",
                             HTTP_AUTHORIZATION="Token " + "0" * 40).status_code) == 403


def test_a_token_of_an_inactive_user_is_refused_after_the_lookup_was_prepared(make_user, db):
    a, b = raters(make_user, 2)
    campaign = create_campaign("t", recordings=[night("t1", 6)], raters=[a, b])
    tokens = {u: Token.objects.create(user=u).key for u in (a, b)}
    api = APIClient()
    assert api.post(f"/api/scoring/campaigns/{campaign.pk}/next/",
                    HTTP_AUTHORIZATION="Token " + tokens[a]).status_code == 200
    b.is_active = False
    b.save()
    refused = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/", HTTP_AUTHORIZATION="Token " + tokens[b])
    assert refused.status_code == 403 and "inactive" in refused.json()["detail"]


def test_a_save_through_prepared_statements_stores_what_it_did_before(make_user, db):
    """The save's lookups and updates are prepared: a second rater's save after the first still fills the item's
    last slot and completes it; the audit trail gets both records."""
    a, b = raters(make_user, 2)
    campaign = create_campaign("s", recordings=[night("s1", 4)], raters=[a, b], overlap=2)
    prefix = f"/api/scoring/campaigns/{campaign.pk}/"
    saved = []
    for user in (a, b):
        api = APIClient()
        api.force_authenticate(user)
        item = api.post(prefix + "next/").json()["item"]
        with CaptureQueriesContext(connection):
            response = api.post(prefix + "labels/", {"item": item, "stage": "R", "client_id": str(uuid.uuid4())},
                                format="json")
        assert response.status_code == 201, response.content
        saved.append(item)
    assert saved[0] == saved[1] and CampaignItem.objects.get(pk=saved[0]).complete
    assert set(Label.objects.filter(item_id=saved[0]).values_list("rater_id", "stage")) == {(a.pk, "R"), (b.pk, "R")}
    assert ChangeRecord.objects.filter(object_type="annotation.label", action=ChangeRecord.CREATE).count() == 2
    assert {r.served_at is not None for r in campaign.items.get(pk=saved[0]).reservations.all()} == {True}


@pytest.mark.django_db(transaction=True)
def test_columns_are_converted_on_every_connection(make_user):
    """Converters (JSON, datetimes: text on SQLite) are looked up once per connection: a second thread, with its
    own connection, gets Python values too."""
    import threading

    campaign = create_campaign("j", recordings=[night("j1", 4)], raters=raters(make_user, 2))

    def read():
        return prepared.first("recording", lambda pk: CampaignItem.objects.select_related("recording", "campaign")
                              .filter(pk=pk), pk=campaign.items.order_by("pk").first().pk)
    rows = [read(), read()]
    other = threading.Thread(target=lambda: (rows.append(read()), connection.close()))
    other.start()
    other.join()
    for item in rows:
        assert isinstance(item.recording.derivations, list) and item.recording.derivations
        assert item.campaign.created_at == campaign.created_at and item.campaign.created_at.tzinfo is not None
