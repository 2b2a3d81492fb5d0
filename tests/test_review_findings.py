"""Findings of a security review: what /api/cohorts/ shows a rater, and who may claim HTTPS through a header."""
import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from core.roles import CURATOR, RATER
from datasets.models import Cohort
from tests.factories import assign_rater, make_recording
from tests.test_hardening import PRODUCTION_ENV, child_env, run_python


@pytest.fixture
def two_cohorts(db):
    """A rater assigned to one recording of cohort A; cohort A has another recording, cohort B one, cohort C none."""
    reached = make_recording("Cohort A", "A-1", ["W", "N2"])
    make_recording("Cohort A", "A-2", ["W", "N2"])
    make_recording("Cohort B", "B-1", ["N2", "R"])
    Cohort.objects.create(name="Cohort C")
    return reached


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_shows_a_rater_the_cohorts_and_counts_of_the_cohort_page(two_cohorts, make_user, client):
    rater = make_user(RATER)
    assign_rater(two_cohorts, rater.username)
    rows = _api(rater).get("/api/cohorts/").json()["results"]
    assert [(r["name"], r["recording_count"]) for r in rows] == [("Cohort A", 1)]
    cohort_b = Cohort.objects.get(name="Cohort B")
    assert _api(rater).get(f"/api/cohorts/{cohort_b.pk}/").status_code == 404
    client.force_login(rater)
    page = client.get(reverse("datasets:cohort-list"))
    assert [(c.name, c.recording_count) for c in page.context["cohorts"]] == [("Cohort A", 1)]
    assert "Cohort B" not in page.content.decode()
    assert client.get(reverse("datasets:cohort", args=[cohort_b.pk])).status_code == 404


def test_a_rater_without_campaigns_sees_no_cohort(two_cohorts, make_user):
    assert _api(make_user(RATER)).get("/api/cohorts/").json()["results"] == []


def test_curators_see_every_cohort_with_every_recording_counted(two_cohorts, make_user):
    api = _api(make_user(CURATOR))
    rows = api.get("/api/cohorts/").json()["results"]
    assert [(r["name"], r["recording_count"]) for r in rows] == [("Cohort A", 2), ("Cohort B", 1), ("Cohort C", 0)]
    created = api.post("/api/cohorts/", {"name": "Cohort D"}, format="json")
    assert created.status_code == 201 and created.json()["recording_count"] == 0


PROXY_CHECK = ("import json, django; django.setup(); from django.conf import settings; "
               "from django.test import RequestFactory; "
               "request = RequestFactory().get('/', HTTP_X_FORWARDED_PROTO='https'); "
               "print(json.dumps({'header': settings.SECURE_PROXY_SSL_HEADER, 'secure': request.is_secure()}))")


@pytest.mark.parametrize("value, trusted", [(None, False), ("0", False), ("1", True)])
def test_x_forwarded_proto_is_trusted_only_behind_a_declared_tls_proxy(tmp_path, value, trusted):
    env = child_env(tmp_path, **PRODUCTION_ENV)
    env.pop("BEHIND_TLS_PROXY", None)
    if value is not None:
        env["BEHIND_TLS_PROXY"] = value
    result = run_python(["-c", PROXY_CHECK], env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["secure"] is trusted  # a plain-HTTP request claiming HTTPS through the header
    assert seen["header"] == (["HTTP_X_FORWARDED_PROTO", "https"] if trusted else None)
