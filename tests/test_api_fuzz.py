"""Schemathesis against the API's OpenAPI schema, as each role, on the demo's database: no 5xx, and every
documented response matches its schema.

The demo (`manage.py demo --no-serve`, a short night) seeds the database once for this module; each test runs in
a transaction that is rolled back, so the unsafe methods (POST, PUT, PATCH, DELETE) are fuzzed too and leave
nothing for the next. Generated ids are mapped half the time onto the demo's own objects, so the cases reach
real rows and not only 404s. Queued work (imports, inference, release builds) is sent after commit, which a
rolled-back test never reaches: no worker runs. Examples are derandomized so CI is reproducible; raise
FUZZ_EXAMPLES to search harder.
"""
import os
from pathlib import Path

import pytest
import schemathesis
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from config.wsgi import application
from core.roles import ADMIN, CURATOR, RATER, RESEARCHER
from demo.management.commands.demo import BASELINE_VERSION, DEMO_COHORT

pytestmark = pytest.mark.django_db
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
# Schemathesis' coverage phase (boundary values, missing and malformed fields, as explicit examples) takes
# seconds per operation: on with FUZZ_COVERAGE=1, off in CI, which generates EXAMPLES cases per operation.
PHASES = [Phase.explicit, Phase.generate, Phase.shrink] if os.environ.get("FUZZ_COVERAGE") == "1" else \
    [Phase.generate, Phase.shrink]
ROLE_ACCOUNTS = {ADMIN: "admin", CURATOR: "curator", RESEARCHER: "researcher", RATER: "rater"}  # demo accounts
CHECKS = [not_a_server_error, response_schema_conformance]

# The schema /api/schema/ serves (test_the_fuzzed_schema_is_the_served_one checks they are the same).
SCHEMA_DOCUMENT = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(SCHEMA_DOCUMENT)
schema.app = application
# Not fuzzed: the schema document itself (its own test below), and the token endpoint, whose throttle
# (LOGIN_THROTTLE_RATE) answers 429 to fuzzing by design.
schema = schema.exclude(path_regex=r"^/api/(schema|auth/token)/$")


def _ids():
    """Per path prefix, the ids of the demo's objects ({id}, {rule_id} and {path} parameters)."""
    from annotation.models import ScoringCampaign
    from core.models import ChangeRecord
    from datasets.models import Cohort, Epoch, ImportJob, Recording
    from inference.models import AasmRule, InferenceJob, ModelVersion, Prediction
    from ratings.models import RatingCampaign
    from releases.models import Release, ReleaseFile

    models = {"audit": ChangeRecord, "cohorts": Cohort, "epochs": Epoch, "imports": ImportJob,
              "inference-jobs": InferenceJob, "model-versions": ModelVersion, "predictions": Prediction,
              "ratings/campaigns": RatingCampaign, "recordings": Recording, "releases": Release,
              "scoring/campaigns": ScoringCampaign}
    ids = {f"/api/{prefix}/": list(model.objects.order_by("pk").values_list("pk", flat=True)[:50])
           for prefix, model in models.items()}
    ids["/api/rules/"] = list(AasmRule.objects.order_by("pk").values_list("pk", flat=True))
    ids["release files"] = list(ReleaseFile.objects.values_list("path", flat=True)[:50])
    return ids


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, tmp_path_factory):
    """The demo's database (a short night) and its media, for this module; afterwards the database is put
    back as the migrations left it (a bare flush would also drop their data: the rule catalogue, the roles)."""
    media = tmp_path_factory.mktemp("fuzz-media")
    with override_settings(MEDIA_ROOT=media), django_db_blocker.unblock():
        migrated = connection.creation.serialize_db_to_string()
        call_command("demo", "--no-serve", "--hours", "0.1", stdout=open(os.devnull, "w"))
        tokens = {role: Token.objects.get_or_create(user__username=username, defaults={"user": _user(username)})[0].key
                  for role, username in ROLE_ACCOUNTS.items()}
        yield {"media": media, "tokens": tokens, "ids": _ids()}
        call_command("flush", interactive=False, verbosity=0, inhibit_post_migrate=True, reset_sequences=False)
        connection.creation.deserialize_db_from_string(migrated)


def _user(username):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


@pytest.fixture(autouse=True)
def media_root(settings, demo):
    """The demo's media, not conftest's empty folder per test."""
    from datasets.services import storage

    settings.MEDIA_ROOT = demo["media"]
    storage.load_array.cache_clear()
    return Path(demo["media"])


@pytest.fixture(autouse=True)
def connection_kept():
    """The WSGI handler closes the database connection after each request; the test's transaction needs it
    (Django's test client disconnects the same handler)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _real_ids(case, ids):
    """Half the generated ids (the even ones) replaced by an id of the demo's objects; half the evaluations asked
    of the demo's cohort and model."""
    if case.operation.path == "/api/evaluation/" and isinstance(case.query, dict) \
            and len(str(case.query.get("cohort", ""))) % 2 == 0:
        case.query.update(cohort=DEMO_COHORT, model=[BASELINE_VERSION])
    path = case.path_parameters or {}
    for name, value in list(path.items()):
        if name == "path":
            pool = ids["release files"]
        else:
            pool = next((v for prefix, v in ids.items() if case.operation.path.startswith(prefix)), None)
        if not pool or not isinstance(value, int) and name != "path":
            continue
        number = value if isinstance(value, int) else len(str(value))
        if number % 2 == 0:
            path[name] = pool[number // 2 % len(pool)]


@pytest.mark.parametrize("role", list(ROLE_ACCOUNTS))
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=PHASES,
          suppress_health_check=list(HealthCheck))
def test_api_answers_within_its_schema(case, role, demo):
    _real_ids(case, demo["ids"])
    case.call_and_validate(headers={"Authorization": f"Token {demo['tokens'][role]}"}, checks=CHECKS)


def test_the_fuzzed_schema_is_the_served_one(demo, client):
    client.force_login(_user("researcher"))
    served = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200
    assert served.json()["paths"].keys() == SCHEMA_DOCUMENT["paths"].keys()
