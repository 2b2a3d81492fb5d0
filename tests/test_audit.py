"""The audit trail: one change record per action with its before and after, written in the change's
transaction, blinded for raters, shown on the audit page and API, checked by audit_verify."""
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from annotation.models import Adjudication, Label
from annotation.services import queue
from annotation.services.campaigns import create_campaign, update_campaign
from annotation.services.consensus import adjudicate
from core.models import ChangeRecord
from core.roles import ADMIN, CURATOR, RATER, RESEARCHER
from core.services import audit
from core.services.users import set_roles
from datasets.services.ingest import ImportRequest, import_psg
from inference.models import ModelVersion, Prediction
from ratings.models import Rating
from ratings.services.campaigns import create_rating_campaign, update_rating_campaign
from ratings.services.queue import RATING
from ratings.services.rubric import default_dimensions, edit_rubric
from releases.services.build import cancel_release, create_release
from tests.factories import make_recording

STAGES = ["W", "N1", "N2", "N3", "R", "N2"]


def records_of(instance, action=None):
    found = ChangeRecord.objects.filter(object_type=instance._meta.label_lower, object_id=str(instance.pk))
    return list((found.filter(action=action) if action else found).order_by("pk"))


def only_record(instance, action):
    found = records_of(instance)
    assert [r.action for r in found] == [action], f"expected exactly one {action} record, got {found}"
    return found[0]


@pytest.fixture
def scoring(db, make_user):
    """A scoring campaign over six epochs, two raters and a curator."""
    recording = make_recording("Audit", "a1", STAGES)
    curator = make_user(CURATOR, "cur")
    raters = [make_user(RATER, f"r{i}") for i in range(2)]
    campaign = create_campaign("Audited", recordings=[recording], overlap=2, raters=raters, user=curator)
    return campaign, raters, curator


def label(campaign, rater, stage="N2", **kw):
    item, _ = queue.next_item(campaign, rater)
    return queue.submit_label(campaign, rater, item, stage=stage, client_id=uuid.uuid4(), **kw)[0]


# --- one record per action, with its before and after ------------------------------------------

def test_a_label_and_its_revision_each_leave_one_record(scoring):
    campaign, (rater, _), _ = scoring
    first = label(campaign, rater, "N2", uncertain=True)
    created = only_record(first, ChangeRecord.CREATE)
    assert created.actor == rater and created.actor_name == rater.username
    assert created.before is None and created.after == audit.snapshot(first)
    assert created.after["stage"] == "N2" and created.after["uncertain"] is True

    second, _ = queue.submit_label(campaign, rater, first.item, stage="N3", client_id=uuid.uuid4(), base_revision=1)
    revised = only_record(second, ChangeRecord.REVISE)
    assert revised.before["stage"] == "N2" and revised.after["stage"] == "N3"
    assert revised.before["revision"] == 1 and revised.after["revision"] == 2
    assert [c["field"] for c in audit.diff(revised.before, revised.after) if c["field"] == "stage"] == ["stage"]
    # a retried save (same client_id) is not a second change
    queue.submit_label(campaign, rater, first.item, stage="N3", client_id=second.client_id, base_revision=1)
    assert len(records_of(second)) == 1


def test_a_rating_with_a_note_and_its_revision_each_leave_one_record(db, make_user):
    recording = make_recording("AuditR", "r1", STAGES)
    version = ModelVersion.objects.create(name="m", backend="baseline")
    Prediction.objects.bulk_create([Prediction(epoch=e, model_version=version, status=Prediction.OK, stage="N2",
                                               rule_ids=["N2.1"], rationale="Spindle at 3 s.", version_hash="x")
                                    for e in recording.epochs.all()])
    rater = make_user(RATER, "rr")
    campaign = create_rating_campaign("Rated", cohorts=["AuditR"], model_versions=["m"], raters=[rater], overlap=1)
    item, _ = RATING.next_item(campaign, rater)
    scores = dict.fromkeys(campaign.rubric.keys, 4)
    rating, _ = RATING.submit(campaign, rater, item, scores=scores, note="spindle is K-complex",
                              corrected_stage="N3", client_id=uuid.uuid4())
    created = only_record(rating, ChangeRecord.CREATE)
    assert created.after["note"] == "spindle is K-complex" and created.after["corrected_stage"] == "N3"
    changed, _ = RATING.submit(campaign, rater, item, scores={**scores, campaign.rubric.keys[0]: 2}, note="",
                               client_id=uuid.uuid4(), base_revision=1)
    revised = only_record(changed, ChangeRecord.REVISE)
    assert revised.before["note"] == "spindle is K-complex" and revised.after["note"] == ""
    assert revised.after["scores"][campaign.rubric.keys[0]] == 2


def test_an_adjudication_leaves_one_record(scoring):
    campaign, (a, b), curator = scoring
    first = label(campaign, a, "N2")
    item, _ = queue.next_item(campaign, b)
    assert item == first.item
    queue.submit_label(campaign, b, item, stage="N3", client_id=uuid.uuid4())
    adjudication = adjudicate(item, "N3", "spindles absent, delta 25 %", curator)
    record = only_record(adjudication, ChangeRecord.ADJUDICATE)
    assert record.actor == curator and record.after["stage"] == "N3"
    assert record.after["reason"] == "spindles absent, delta 25 %"


def test_campaign_creation_and_edits_leave_one_record_each(scoring, make_user):
    campaign, raters, curator = scoring
    created = only_record(campaign, ChangeRecord.CREATE)
    assert created.actor == curator and created.after["overlap"] == 2 and created.after["items"] == len(STAGES)
    assert created.after["raters"] == sorted(r.username for r in raters)

    third = make_user(RATER, "r3")
    client = APIClient()
    client.force_login(curator)
    response = client.patch(f"/api/scoring/campaigns/{campaign.pk}/", {
        "overlap": 3, "raters": [*(r.username for r in raters), third.username], "show_other_labels": True,
    }, format="json", HTTP_X_REQUEST_ID="req-edit-1")
    assert response.status_code == 200, response.content
    assert response["X-Request-ID"] == "req-edit-1"
    edit = records_of(campaign, ChangeRecord.UPDATE)
    assert len(edit) == 1
    edit = edit[0]
    assert edit.source == ChangeRecord.API and edit.request_id == "req-edit-1" and edit.actor == curator
    changed = {c["field"]: (c["before"], c["after"]) for c in audit.diff(edit.before, edit.after)}
    assert changed == {"overlap": (2, 3), "show_other_labels": (False, True),
                       "raters": (["r0", "r1"], ["r0", "r1", "r3"])}
    # an edit that changes nothing leaves no record; a refused one neither
    update_campaign(campaign, user=curator, show_other_labels=True)
    with pytest.raises(Exception, match="more than the number of raters"):
        update_campaign(campaign, user=curator, overlap=5)
    assert len(records_of(campaign, ChangeRecord.UPDATE)) == 1


def test_lowering_overlap_below_given_answers_is_refused_and_raising_it_reopens_items(scoring, make_user):
    campaign, (a, b), curator = scoring
    first = label(campaign, a)
    item, _ = queue.next_item(campaign, b)
    queue.submit_label(campaign, b, item, stage="N2", client_id=uuid.uuid4())
    first.item.refresh_from_db()
    assert first.item.complete
    with pytest.raises(Exception, match="below the 2 answers"):
        update_campaign(campaign, user=curator, overlap=1)
    update_campaign(campaign, user=curator, overlap=3, raters=[a, b, make_user(RATER, "c")])
    first.item.refresh_from_db()
    assert not first.item.complete


def test_rating_campaign_creation_edit_and_rubric_versions_leave_one_record_each(db, make_user):
    recording = make_recording("AuditR", "r1", STAGES)
    version = ModelVersion.objects.create(name="m", backend="baseline")
    Prediction.objects.create(epoch=recording.epochs.first(), model_version=version, status=Prediction.OK,
                              stage="W", rule_ids=["W.1"], rationale="Alpha over O2.", version_hash="x")
    curator, rater = make_user(CURATOR, "cur"), make_user(RATER, "rr")
    campaign = create_rating_campaign("Rated", cohorts=["AuditR"], model_versions=["m"], raters=[rater],
                                      overlap=1, user=curator)
    created = only_record(campaign, ChangeRecord.CREATE)
    assert created.after["rubric"]["version"] == 1 and created.after["fast_floor_s"] == 5.0

    update_rating_campaign(campaign, user=curator, fast_floor_s=2.0)
    [edit] = records_of(campaign, ChangeRecord.UPDATE)
    assert (edit.before["fast_floor_s"], edit.after["fast_floor_s"]) == (5.0, 2.0)

    dimensions = default_dimensions()
    dimensions[0]["question"] = "Is the stage right?"
    rubric = edit_rubric(campaign, dimensions, user=curator)
    record = only_record(rubric, ChangeRecord.CREATE)
    assert record.before["version"] == 1 and record.after["version"] == 2
    assert record.after["dimensions"][0]["question"] == "Is the stage right?"
    assert record.before["dimensions"][0]["question"] != "Is the stage right?"


def test_model_version_creation_and_settings_changes_leave_one_record_each(db, make_user):
    curator = make_user(CURATOR, "cur")
    client = APIClient()
    client.force_login(curator)
    response = client.post("/api/model-versions/", {"name": "b1", "backend": "baseline"}, format="json")
    assert response.status_code == 201, response.content
    version = ModelVersion.objects.get(name="b1")
    created = only_record(version, ChangeRecord.CREATE)
    assert created.source == ChangeRecord.API and created.after["backend"] == "baseline"
    response = client.patch(f"/api/model-versions/{version.pk}/", {"description": "night shift"}, format="json")
    assert response.status_code == 200
    [update] = records_of(version, ChangeRecord.UPDATE)
    assert audit.diff(update.before, update.after) == [{"field": "description", "before": "", "after": "night shift"}]
    # a refused change (frozen settings) leaves nothing
    Prediction.objects.create(epoch=make_recording("V", "v", ["W"]).epochs.get(), model_version=version,
                              status=Prediction.OK, stage="W", version_hash="x")
    response = client.patch(f"/api/model-versions/{version.pk}/", {"settings": {"x": 1}}, format="json")
    assert response.status_code == 400
    assert len(records_of(version)) == 2


def test_an_import_and_a_deletion_of_a_recording_leave_one_record_each(db, make_user, night_edf):
    curator = make_user(CURATOR, "cur")
    recording, _ = import_psg(ImportRequest(path=night_edf, cohort="Imported"), user=curator)
    record = only_record(recording, ChangeRecord.IMPORT)
    assert record.actor == curator and record.after["epoch_count"] == recording.epoch_count
    assert record.after["sha256"] == recording.sha256
    import_psg(ImportRequest(path=night_edf, cohort="Imported"), user=curator)  # the same file: nothing new
    assert len(records_of(recording)) == 1

    client = APIClient()
    client.force_login(curator)
    pk = recording.pk
    assert client.delete(f"/api/recordings/{pk}/").status_code == 204
    [deleted] = ChangeRecord.objects.filter(object_type="datasets.recording", object_id=str(pk),
                                            action=ChangeRecord.DELETE)
    assert deleted.before["sha256"] == record.after["sha256"] and deleted.after is None
    assert deleted.actor == curator and deleted.source == ChangeRecord.API


def test_a_release_build_and_its_cancel_leave_one_record_each(db, make_user):
    make_recording("Rel", "s1", STAGES)
    curator = make_user(CURATOR, "cur")
    release = create_release("rel", "1.0.0", cohorts=["Rel"], user=curator, queue=False)
    built = only_record(release, ChangeRecord.BUILD)
    assert built.actor == curator and built.after["version"] == "1.0.0" and built.after["cohorts"] == ["Rel"]
    assert cancel_release(release, user=curator)
    [cancel] = records_of(release, ChangeRecord.CANCEL)
    assert (cancel.before["state"], cancel.after["state"]) == ("pending", "cancelled")
    assert not cancel_release(release, user=curator)  # nothing to cancel: no record
    assert len(records_of(release)) == 2


def test_role_changes_leave_one_record_from_the_people_page_and_the_admin(db, make_user, client):
    admin = make_user(ADMIN, "boss")
    target = make_user(RATER, "newbie")
    client.force_login(admin)
    response = client.post(f"/people/{target.pk}/", {"roles": ["rater", "curator"]})
    assert response.status_code == 302
    record = only_record(target, ChangeRecord.ROLE_CHANGE)
    assert (record.before["roles"], record.after["roles"]) == (["rater"], ["curator", "rater"])
    assert record.source == ChangeRecord.PAGE and record.actor == admin
    client.post(f"/people/{target.pk}/", {"roles": ["rater", "curator"]})  # unchanged: no record
    assert len(records_of(target)) == 1

    page = client.get(f"/admin/auth/user/{target.pk}/change/")
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("groups", "user_permissions",
                                                                                "last_login", "date_joined")}
    data.update({"groups": [], "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00", "is_active": "on"})
    response = client.post(f"/admin/auth/user/{target.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    admin_record = records_of(target, ChangeRecord.ROLE_CHANGE)[-1]
    assert admin_record.source == ChangeRecord.ADMIN
    assert (admin_record.before["roles"], admin_record.after["roles"]) == (["curator", "rater"], [])


def test_failed_sign_ins_leave_a_record_without_the_password(db, make_user, client):
    user = make_user(RATER, "someone")
    client.post("/accounts/login/", {"username": "someone", "password": "wrong-secret-1"})
    APIClient().post("/api/auth/token/", {"username": "ghost", "password": "wrong-secret-2"}, format="json")
    failures = list(ChangeRecord.objects.filter(action=ChangeRecord.LOGIN_FAILED).order_by("pk"))
    assert [(r.object_repr, r.object_id, r.source) for r in failures] == [
        ("someone", str(user.pk), ChangeRecord.PAGE), ("ghost", "", ChangeRecord.API)]
    assert all("wrong-secret" not in str(r.after) for r in failures)
    assert failures[0].actor is None


# --- written in the change's transaction; append-only ------------------------------------------

def test_a_rolled_back_change_leaves_no_record(scoring, make_user):
    campaign, raters, curator = scoring
    before = ChangeRecord.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        update_campaign(campaign, user=curator, show_reference=True)
        raise RuntimeError("the request failed after the save")
    assert ChangeRecord.objects.count() == before
    campaign.refresh_from_db()
    assert campaign.show_reference is False


def test_change_records_are_append_only(scoring):
    record = ChangeRecord.objects.first()
    record.object_repr = "forged"
    with pytest.raises(ValueError, match="append-only"):
        record.save()
    with pytest.raises(ValueError, match="append-only"):
        record.delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE core_changerecord SET object_repr = 'forged' WHERE id = %s", [record.pk])


# --- blinding: a rater sees only their own answers, without what raters are not told ------------

def test_a_rater_sees_only_the_records_of_their_own_answers(scoring, make_user):
    campaign, (a, b), curator = scoring
    mine = label(campaign, a, "N2")
    theirs = label(campaign, b, "W")
    client = APIClient()
    client.force_login(a)
    rows = client.get("/api/audit/").json()["results"]
    assert [(r["object_type"], r["object_id"]) for r in rows] == [("annotation.label", str(mine.pk))]
    assert rows[0]["actor"] == a.username and rows[0]["after"]["stage"] == "N2"
    assert "rescore" not in rows[0]["after"], "whether an item is served again is not told to raters"
    assert client.get(f"/api/audit/{records_of(theirs)[0].pk}/").status_code == 404
    assert client.get(f"/api/audit/{records_of(campaign)[0].pk}/").status_code == 404
    page = client.get("/audit/")
    assert page.status_code == 200
    text = page.content.decode()
    assert f"#{mine.pk}" in text and f"#{theirs.pk}" not in text and "Audited" not in text

    researcher = make_user(RESEARCHER, "res")
    client.force_login(researcher)
    assert client.get("/api/audit/").json()["count"] == 0

    client.force_login(curator)
    everything = client.get("/api/audit/?object_type=annotation.label").json()
    assert everything["count"] == 2 and "rescore" in everything["results"][0]["after"]


def test_the_audit_page_and_api_filter_by_actor_object_action_and_time(scoring):
    campaign, (a, b), curator = scoring
    label(campaign, a)
    label(campaign, b)
    client = APIClient()
    client.force_login(curator)
    by_actor = client.get("/api/audit/", {"actor": "r1"}).json()
    assert by_actor["count"] == 1 and by_actor["results"][0]["actor"] == "r1"
    by_action = client.get("/api/audit/", {"action": "create", "object_type": "annotation.scoringcampaign"}).json()
    assert [r["object_id"] for r in by_action["results"]] == [str(campaign.pk)]
    first = ChangeRecord.objects.order_by("pk").first()
    later = client.get("/api/audit/", {"since": first.time.isoformat().replace("+00:00", "Z")}).json()
    assert later["count"] == ChangeRecord.objects.filter(time__gte=first.time).count()
    assert client.get("/api/audit/", {"until": "2000-01-01T00:00:00Z"}).json()["count"] == 0
    assert client.get("/api/audit/", {"limit": 1}).json()["next"] is not None  # paginated
    page = client.get(f"/audit/?object_type=annotation.scoringcampaign&object_id={campaign.pk}")
    assert page.status_code == 200 and "Audited" in page.content.decode()
    dashboard = client.get(f"/scoring/{campaign.pk}/dashboard/").content.decode()
    assert f"object_type=annotation.scoringcampaign&amp;object_id={campaign.pk}" in dashboard


# --- audit_verify -----------------------------------------------------------------------------

def test_audit_verify_passes_then_names_a_label_changed_by_raw_sql(scoring, capsys):
    campaign, (a, b), curator = scoring
    first = label(campaign, a, "N2")
    item, _ = queue.next_item(campaign, b)
    queue.submit_label(campaign, b, item, stage="W", client_id=uuid.uuid4())
    adjudicate(item, "N2", "spindle at 12 s", curator)
    call_command("audit_verify")
    assert "audit trail consistent: 3 rows" in capsys.readouterr().out

    with connection.cursor() as cursor:
        cursor.execute("UPDATE annotation_label SET stage = 'R' WHERE id = %s", [first.pk])
    with pytest.raises(CommandError, match="1 of 3 rows"):
        call_command("audit_verify")
    out = capsys.readouterr().out
    assert f"annotation.label #{first.pk}: the row differs" in out and 'stage: recorded "N2", row "R"' in out


def test_audit_verify_names_a_row_without_its_create_record(scoring, capsys):
    campaign, (a, _), _ = scoring
    item, _ = queue.next_item(campaign, a)
    forged = Label.objects.create(item=item, rater=a, stage="W", client_id=uuid.uuid4())  # past the service
    with pytest.raises(CommandError):
        call_command("audit_verify")
    assert f"annotation.label #{forged.pk}: no create record" in capsys.readouterr().out
    assert Adjudication.audit_verified and Rating.audit_verified
