"""Every page and endpoint, with the outcome each role gets (generated tests, core.testing).

Every method a route accepts for writes (POST, PUT, PATCH, DELETE) has a declaration of its own:
`test_every_write_method_of_a_route_has_its_role_matrix` reads them off the URL patterns."""
import functools
import tempfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver

from core.roles import ADMIN, CURATOR, RATER, RESEARCHER
from core.testing import ANONYMOUS, API_ANONYMOUS, EVERY_ROLE, Access, RoleAccessTests, everyone, expect

STAFF = (CURATOR, RESEARCHER, ADMIN)  # roles that see reference stages and model outputs
WRITERS = (CURATOR, ADMIN)
JSON = {"format": "json"}
PASSWORD = "pw-for-tests-123"  # every user of the world (core.testing.make_role_user)
WRITE_METHODS = ("post", "put", "patch", "delete")


@functools.lru_cache(maxsize=1)
def _small_edf() -> bytes:
    """A real EDF+ night of 3 minutes (synthetic, 6 channels at 128 Hz), built once per test session."""
    from datasets.services.synthetic import write_synthetic_edf

    with tempfile.TemporaryDirectory(prefix="matrix-edf-") as folder:
        path = Path(folder) / "small.edf"
        write_synthetic_edf(path, hours=0.05, seed=3, sfreq=128.0)
        return path.read_bytes()


def _edf_upload(w):
    return SimpleUploadedFile("small-night.edf", _small_edf(), content_type="application/octet-stream")


def _kept_original(w) -> str:
    """The world recording with its original PSG kept (KEEP_ORIGINAL_PSG): the download's URL."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    w.recording.original_file = default_storage.save("originals/ab/original.edf", ContentFile(_small_edf()))
    w.recording.save(update_fields=["original_file"])
    return f"/recordings/{w.recording.pk}/original/"


def _my_work(w, client, response, role):
    """Raters see their own assignments with progress and a button on; the world's tie waits for curators and admins."""
    if response.status_code != 200:
        return
    kinds = {(a.kind, a.campaign) for a in response.context["assignments"]}
    expected = {RATER: {("Scoring", "World campaign"), ("Rating", "World rating")},
                CURATOR: {("Adjudication", "World campaign")}, ADMIN: {("Adjudication", "World campaign")},
                RESEARCHER: set()}[role]
    assert kinds == expected, f"{role}: {kinds}"


def _form_errors(w, client, response, role):
    """A 200 answer to a form post is the form again, with its errors."""
    if response.status_code == 200:
        assert response.context["form"].errors, f"{role}: a 200 without form errors"


def _signed_in_as(username, then):
    def check(w, client, response, role):
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.get(username=username)
        assert client.session.get("_auth_user_id") == str(user.pk), f"{role}: not signed in as {username}"
        assert response["Location"] == then, f"{role}: sent to {response['Location']}, expected {then}"
    return check


def _not_signed_in_as(username):
    def check(w, client, response, role):
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.get(username=username)
        assert client.session.get("_auth_user_id") != str(user.pk), f"{role}: signed in as {username}"
    return check


def _form_again_not_signed_in(username):
    not_signed_in = _not_signed_in_as(username)

    def check(w, client, response, role):
        _form_errors(w, client, response, role)
        not_signed_in(w, client, response, role)
    return check


def _says(text):
    """Writers' answers (2xx or 4xx past the permission check) carry `text`."""
    def check(w, client, response, role):
        if role in WRITERS:
            assert text in response.content.decode(), f"{role}: {text!r} not in {response.content[:300]!r}"
    return check


def _content_type(kind):
    def check(w, client, response, role):
        if response.status_code == 200:
            assert response["Content-Type"].startswith(kind), f"{role}: {response['Content-Type']}"
    return check


def _hypnogram(w, api=False, **options):
    """The world recording's hypnogram download (page or API) with `options`; rater="world-rater-1" names that
    rater's id; campaign=True the world campaign."""
    from django.contrib.auth import get_user_model
    from django.utils.http import urlencode

    if "rater" in options:
        options["rater"] = get_user_model().objects.get(username=options["rater"]).pk
    if options.get("campaign") is True:
        options["campaign"] = w.campaign.pk
    return f"{'/api' if api else ''}/recordings/{w.recording.pk}/hypnogram/?{urlencode(options)}"


# reference: roles that see it; consensus: curators, researchers, admins; a rater's labels: those and the rater
HYPNOGRAM_CASES = (
    ("reference edf", dict(source="reference", output="edf"), expect(200, STAFF), "application/octet-stream"),
    ("consensus xml", dict(source="consensus", campaign=True, output="xml"), expect(200, STAFF), "application/xml"),
    ("own labels", dict(source="rater", campaign=True, output="xml"), {**expect(200, [RATER], denied=400)},
     "application/xml"),
    ("another rater's labels", dict(source="rater", campaign=True, rater="world-rater-1", output="edf"),
     expect(200, STAFF), "application/octet-stream"),
    ("unknown source", dict(source="psg"), expect(400, EVERY_ROLE), None),
)


def api(name, route, url, expected, **kwargs):
    return Access(name, route, url, expected, api=True, **kwargs)


def api_expect(ok, roles, denied=403):
    return expect(ok, roles, denied=denied, anonymous=API_ANONYMOUS)


class TestPages(RoleAccessTests):
    cases = [
        Access("cohorts", "datasets:cohort-list", lambda w: "/", everyone()),
        Access("cohort", "datasets:cohort", lambda w: f"/cohorts/{w.cohort.pk}/", everyone()),
        Access("recordings", "datasets:recording-list", lambda w: "/recordings/", everyone()),
        Access("recording", "datasets:recording", lambda w: f"/recordings/{w.recording.pk}/", everyone()),
        Access("missing recording", "datasets:recording", lambda w: "/recordings/999999/", everyone(404)),
        Access("epoch", "datasets:epoch", lambda w: f"/recordings/{w.recording.pk}/epochs/1/", everyone()),
        Access("epoch signals", "datasets:epoch-signals", lambda w: f"/recordings/{w.recording.pk}/epochs/1/signals.bin",
               everyone()),
        Access("epoch clinical signals", "datasets:epoch-clinical-signals",
               lambda w: f"/recordings/{w.recording.pk}/epochs/1/clinical.bin", everyone()),
        Access("image", "datasets:image", lambda w: f"/images/{w.image.sha256}.png", everyone()),
        Access("original psg", "datasets:recording-original", _kept_original, expect(200, [ADMIN]),
               after=_content_type("application/octet-stream")),
        Access("original psg not kept", "datasets:recording-original",
               lambda w: f"/recordings/{w.recording.pk}/original/", expect(404, [ADMIN])),
        *[Access(f"hypnogram {name}", "datasets:recording-hypnogram",
                 lambda w, options=options: _hypnogram(w, **options), expected,
                 after=_content_type(kind) if kind else None) for name, options, expected, kind in HYPNOGRAM_CASES],
        Access("import form", "datasets:import-new", lambda w: "/imports/new/", expect(200, WRITERS)),
        Access("import upload without file", "datasets:import-new", lambda w: "/imports/new/", expect(200, WRITERS),
               method="post", data=lambda w: {"cohort": "Uploads", "mains_hz": 50}, after=_form_errors),
        Access("import upload", "datasets:import-new", lambda w: "/imports/new/", expect(302, WRITERS), method="post",
               data=lambda w: {"file": _edf_upload(w), "cohort": "Uploads", "mains_hz": 50},
               location=dict.fromkeys(WRITERS, "/imports/")),
        # Django's form views take PUT as POST; a PUT body is not form data, so the form comes back
        Access("import upload by PUT", "datasets:import-new", lambda w: "/imports/new/", expect(200, WRITERS),
               method="put", after=_form_errors),
        Access("import", "datasets:import", lambda w: f"/imports/{w.import_job.pk}/", expect(200, STAFF)),
        # the world's failed import lost its upload: the retry is refused with a message on the page it leads back to
        Access("retry import without upload", "datasets:import-retry", lambda w: f"/imports/{w.import_job.pk}/retry/",
               expect(302, WRITERS), method="post", location=dict.fromkeys(WRITERS, "/imports/")),
        Access("dismiss import", "datasets:import-dismiss", lambda w: f"/imports/{w.import_job.pk}/dismiss/",
               expect(302, WRITERS), method="post", location=dict.fromkeys(WRITERS, "/imports/")),
        Access("runs", "inference:job-list", lambda w: "/inference/", expect(200, STAFF)),
        Access("start run", "inference:job-list", lambda w: "/inference/", expect(302, WRITERS), method="post",
               data=lambda w: {"model_version": w.version.pk, "recording": w.recording.pk},
               location=dict.fromkeys(WRITERS, "/inference/jobs/")),
        Access("start run without target", "inference:job-list", lambda w: "/inference/", expect(200, WRITERS),
               method="post", data=lambda w: {"model_version": w.version.pk}, after=_form_errors),
        Access("run", "inference:job", lambda w: f"/inference/jobs/{w.job.pk}/", expect(200, STAFF)),
        Access("cancel run", "inference:job-cancel", lambda w: f"/inference/jobs/{w.job.pk}/cancel/",
               expect(302, WRITERS), method="post"),
        Access("evaluation", "inference:evaluation", lambda w: "/inference/evaluation/", expect(200, STAFF)),
        Access("admin", "admin:index", lambda w: "/admin/", expect(200, [ADMIN], denied=302)),
        Access("login", "login", lambda w: "/accounts/login/", everyone(200, anonymous=200)),
        # one failed sign-in per test (the throttle allows 10; the cache is cleared between tests)
        Access("wrong password", "login", lambda w: "/accounts/login/", everyone(200, anonymous=200), method="post",
               data=lambda w: {"username": "world-rater-1", "password": "wrong"},
               after=_form_again_not_signed_in("world-rater-1")),
        Access("sign in", "login", lambda w: "/accounts/login/", everyone(302, anonymous=302), method="post",
               data=lambda w: {"username": "world-rater-1", "password": PASSWORD},
               location=dict.fromkeys(EVERY_ROLE, "/home/"), after=_signed_in_as("world-rater-1", then="/home/")),
        # the site's root is no destination of its own: a sign-in sent back to it lands where the user's work is
        Access("sign in from the root", "login", lambda w: "/accounts/login/?next=/", everyone(302, anonymous=302),
               method="post", data=lambda w: {"username": "world-rater-1", "password": PASSWORD},
               location=dict.fromkeys(EVERY_ROLE, "/home/"), after=_signed_in_as("world-rater-1", then="/home/")),
        Access("sign in by PUT", "login", lambda w: "/accounts/login/", everyone(200, anonymous=200), method="put",
               data=lambda w: {"username": "world-rater-1", "password": PASSWORD},
               after=_form_again_not_signed_in("world-rater-1")),
        # the admin's own sign-in page would take passwords past the throttle: every method is sent to ours
        *[Access(f"admin login {method.upper()}", "admin/login/", lambda w: "/admin/login/?next=/admin/",
                 everyone(302, anonymous=302), method=method,
                 data=(lambda w: {"username": "world-rater-1", "password": PASSWORD}) if method == "post" else None,
                 location={**dict.fromkeys(EVERY_ROLE, "/accounts/login/?next=/admin/"),
                           ANONYMOUS: "/accounts/login/?next=/admin/login/"},  # the login-everywhere middleware first
                 after=_not_signed_in_as("world-rater-1"))
          for method in ("get", *WRITE_METHODS)],
        Access("logout", "logout", lambda w: "/accounts/logout/", everyone(302, anonymous=302), method="post"),
        Access("health", "healthz", lambda w: "/healthz", everyone(200, anonymous=200)),
        # a function view could take every method; the health check answers GET and HEAD only
        *[Access(f"health {method.upper()}", "healthz", lambda w: "/healthz", everyone(405, anonymous=405),
                 method=method) for method in WRITE_METHODS],
        # everyone reads the audit trail: raters the records of their own answers, curators and admins all
        # where a sign-in lands: My work for raters and anyone with work (the curator and the admin adjudicate the
        # world campaign's tie), the cohorts otherwise
        Access("landing", "core:home", lambda w: "/home/", everyone(302),
               location={RATER: "/work/", CURATOR: "/work/", ADMIN: "/work/", RESEARCHER: "/"}),
        Access("my work", "core:my-work", lambda w: "/work/", everyone(), after=_my_work),
        Access("audit", "core:audit", lambda w: "/audit/", expect(200, EVERY_ROLE)),
        Access("audit filtered", "core:audit", lambda w: f"/audit/?object_type=annotation.scoringcampaign"
               f"&object_id={w.campaign.pk}&action=create", expect(200, EVERY_ROLE)),
        # the reference documents the pages cite (docs/), for everyone signed in
        Access("document", "core:doc", lambda w: "/docs/agreement-references/", expect(200, EVERY_ROLE)),
        Access("unknown document", "core:doc", lambda w: "/docs/secrets/", expect(404, EVERY_ROLE)),
        Access("people", "core:user-list", lambda w: "/people/", expect(200, [ADMIN])),
        Access("person", "core:user-detail", lambda w: f"/people/{w.rater.pk}/", expect(200, [ADMIN])),
        Access("change roles", "core:user-detail", lambda w: f"/people/{w.rater.pk}/", expect(302, [ADMIN]),
               method="post", data=lambda w: {"roles": ["rater", "researcher"]}),
        Access("api docs", "api-docs", lambda w: "/api/docs/", everyone(200, anonymous=API_ANONYMOUS)),
        Access("api schema", "schema", lambda w: "/api/schema/", everyone(200, anonymous=API_ANONYMOUS)),
    ]


class TestDatasetsApi(RoleAccessTests):
    cases = [
        api("cohorts", "cohort-list", lambda w: "/api/cohorts/", api_expect(200, [RATER, *STAFF])),
        api("new cohort", "cohort-list", lambda w: "/api/cohorts/", api_expect(201, WRITERS), method="post",
            data=lambda w: {"name": "Fresh"}, extra=JSON),
        api("cohort", "cohort-detail", lambda w: f"/api/cohorts/{w.cohort.pk}/", api_expect(200, [RATER, *STAFF])),
        api("rename cohort", "cohort-detail", lambda w: f"/api/cohorts/{w.cohort.pk}/", api_expect(200, WRITERS),
            method="patch", data=lambda w: {"description": "renamed"}, extra=JSON),
        api("replace cohort", "cohort-detail", lambda w: f"/api/cohorts/{w.cohort.pk}/", api_expect(200, WRITERS),
            method="put", data=lambda w: {"name": "World", "description": "replaced"}, extra=JSON),
        api("delete cohort in use", "cohort-detail", lambda w: f"/api/cohorts/{w.cohort.pk}/",
            api_expect(409, WRITERS), method="delete"),
        api("delete empty cohort", "cohort-detail", lambda w: f"/api/cohorts/{w.empty_cohort.pk}/",
            api_expect(204, WRITERS), method="delete"),
        api("recordings", "recording-list", lambda w: "/api/recordings/", api_expect(200, [RATER, *STAFF])),
        api("recording", "recording-detail", lambda w: f"/api/recordings/{w.recording.pk}/", api_expect(200, [RATER, *STAFF])),
        api("delete recording", "recording-detail", lambda w: f"/api/recordings/{w.recording.pk}/",
            api_expect(204, WRITERS), method="delete"),
        *[api(f"hypnogram {name}", "recording-hypnogram", lambda w, options=options: _hypnogram(w, api=True, **options),
              {**expected, ANONYMOUS: API_ANONYMOUS}, after=_content_type(kind) if kind else None)
          for name, options, expected, kind in HYPNOGRAM_CASES],
        api("epochs", "epoch-list", lambda w: f"/api/epochs/?recording={w.recording.pk}", api_expect(200, [RATER, *STAFF])),
        api("bad epoch filter", "epoch-list", lambda w: "/api/epochs/?recording=abc", api_expect(400, [RATER, *STAFF])),
        api("epoch", "epoch-detail", lambda w: f"/api/epochs/{w.epoch.pk}/", api_expect(200, [RATER, *STAFF])),
        api("imports", "importjob-list", lambda w: "/api/imports/", api_expect(200, STAFF)),
        api("upload without file", "importjob-list", lambda w: "/api/imports/", api_expect(400, WRITERS),
            method="post", data=lambda w: {"cohort": "x"}),
        api("upload", "importjob-list", lambda w: "/api/imports/", api_expect(201, WRITERS), method="post",
            data=lambda w: {"file": _edf_upload(w), "cohort": "Uploads"}, extra={"format": "multipart"}),
        api("import", "importjob-detail", lambda w: f"/api/imports/{w.import_job.pk}/", api_expect(200, STAFF)),
        api("retry import without upload", "importjob-retry", lambda w: f"/api/imports/{w.import_job.pk}/retry/",
            api_expect(400, WRITERS), method="post"),
        api("cancel import", "importjob-cancel", lambda w: f"/api/imports/{w.import_job.pk}/cancel/",
            api_expect(200, WRITERS), method="post"),
        api("dismiss import", "importjob-dismiss", lambda w: f"/api/imports/{w.import_job.pk}/dismiss/",
            api_expect(200, WRITERS), method="post"),
    ]


class TestInferenceApi(RoleAccessTests):
    cases = [
        api("rules", "aasmrule-list", lambda w: "/api/rules/", api_expect(200, STAFF)),
        api("rule", "aasmrule-detail", lambda w: "/api/rules/N2.1/", api_expect(200, STAFF)),
        api("edit rule", "aasmrule-detail", lambda w: "/api/rules/N2.1/", api_expect(200, WRITERS), method="patch",
            data=lambda w: {"text": "edited"}, extra=JSON),
        api("replace rule", "aasmrule-detail", lambda w: "/api/rules/N2.1/", api_expect(200, WRITERS), method="put",
            data=lambda w: {"title": "Stage N2", "text": "replaced"}, extra=JSON),
        api("model versions", "modelversion-list", lambda w: "/api/model-versions/", api_expect(200, STAFF)),
        api("new model version", "modelversion-list", lambda w: "/api/model-versions/", api_expect(201, WRITERS),
            method="post", data=lambda w: {"name": "baseline-2", "backend": "baseline"}, extra=JSON),
        api("copy model version", "modelversion-new-version", lambda w: f"/api/model-versions/{w.version.pk}/new-version/",
            api_expect(201, WRITERS), method="post", data=lambda w: {"name": "secret-model-v8"}, extra=JSON),
        api("model version", "modelversion-detail", lambda w: f"/api/model-versions/{w.version.pk}/", api_expect(200, STAFF)),
        # the world's version has predictions, so it is frozen: description and name may change, settings not
        api("describe model version", "modelversion-detail", lambda w: f"/api/model-versions/{w.version.pk}/",
            api_expect(200, WRITERS), method="patch", data=lambda w: {"description": "notes"}, extra=JSON),
        api("change frozen settings", "modelversion-detail", lambda w: f"/api/model-versions/{w.version.pk}/",
            api_expect(400, WRITERS), method="patch", data=lambda w: {"settings": {"seed": 1}}, extra=JSON,
            after=_says("is frozen")),
        api("replace model version", "modelversion-detail", lambda w: f"/api/model-versions/{w.version.pk}/",
            api_expect(200, WRITERS), method="put",
            data=lambda w: {"name": "secret-model-v7", "backend": "baseline", "description": "replaced"}, extra=JSON),
        api("replace frozen backend", "modelversion-detail", lambda w: f"/api/model-versions/{w.version.pk}/",
            api_expect(400, WRITERS), method="put",
            data=lambda w: {"name": "secret-model-v7", "backend": "openai"}, extra=JSON, after=_says("is frozen")),
        api("runs", "inferencejob-list", lambda w: "/api/inference-jobs/", api_expect(200, STAFF)),
        api("bad run filter", "inferencejob-list", lambda w: "/api/inference-jobs/?recording=abc", api_expect(400, STAFF)),
        api("start run", "inferencejob-list", lambda w: "/api/inference-jobs/", api_expect(201, WRITERS), method="post",
            data=lambda w: {"model_version": w.version.name, "recording": w.recording.pk}, extra=JSON),
        api("run", "inferencejob-detail", lambda w: f"/api/inference-jobs/{w.job.pk}/", api_expect(200, STAFF)),
        api("cancel run", "inferencejob-cancel", lambda w: f"/api/inference-jobs/{w.job.pk}/cancel/",
            api_expect(200, WRITERS), method="post"),
        api("resume run", "inferencejob-resume", lambda w: f"/api/inference-jobs/{w.job.pk}/resume/",
            api_expect(200, WRITERS), method="post"),
        api("predictions", "prediction-list", lambda w: "/api/predictions/", api_expect(200, STAFF)),
        api("bad prediction filter", "prediction-list", lambda w: "/api/predictions/?epoch=x", api_expect(400, STAFF)),
        api("prediction", "prediction-detail", lambda w: f"/api/predictions/{w.prediction.pk}/", api_expect(200, STAFF)),
        api("evaluation", "evaluation", lambda w: f"/api/evaluation/?cohort={w.cohort.name}&model={w.version.name}",
            api_expect(200, STAFF)),
        api("evaluation csv", "evaluation",
            lambda w: f"/api/evaluation/?cohort={w.cohort.name}&model={w.version.name}&output=csv",
            api_expect(200, STAFF), after=_content_type("text/csv")),
        api("token", "api-token", lambda w: "/api/auth/token/", everyone(400, anonymous=400), method="post",
            data=lambda w: {"username": "nobody", "password": "wrong"}),
    ]


class TestAuditApi(RoleAccessTests):
    cases = [
        api("audit", "audit-list", lambda w: "/api/audit/", api_expect(200, EVERY_ROLE)),
        api("bad audit filter", "audit-list", lambda w: "/api/audit/?since=yesterday", api_expect(400, EVERY_ROLE)),
        # the campaign's creation is a curator's record: raters and researchers do not reach it (404)
        api("audit record", "audit-detail", lambda w: f"/api/audit/{w.campaign_record.pk}/",
            {**api_expect(200, WRITERS, denied=404), "anonymous": API_ANONYMOUS}),
    ]


SCORING = "/api/scoring/campaigns"
READERS = (RATER, *STAFF)


def _label(w):
    return {"item": w.items[0].pk, "stage": "N2", "client_id": "6f1c1f0e-8a4e-4a53-9a43-3f2b8b1f0c11"}


def _campaign_form(w):
    """A campaign of the matrix rater, who also rates on its recording: the overlap shown, then confirmed."""
    return {"name": "Fresh page campaign", "recordings": [w.recording.pk], "raters": ["matrix-rater"], "overlap": 1,
            "sample": "all", "seed": 0, "unit": "epoch", "reservation_timeout_s": 900, "rescore_share": 0,
            "key_dwell_ms": 300, "overlaps_seen": "1"}


def _disputes_shown(w, client, response, role):
    """The world campaign's tie (N2 / N3 on its second epoch) is on the adjudication page, its raters pseudonymous."""
    if response.status_code == 200:
        disputes = response.context["disputes"]
        assert [d["item"] for d in disputes] == [w.items[1].pk], disputes
        assert disputes[0]["tie"] and disputes[0]["majority"] is None and "tie" in disputes[0]["why"]
        assert {label["rater"] for label in disputes[0]["labels"]} <= {"rater-01", "rater-02", "rater-03"}
        assert "world-rater" not in response.content.decode()


class TestScoringPages(RoleAccessTests):
    cases = [
        Access("campaigns", "annotation:campaign-list", lambda w: "/scoring/", everyone()),
        Access("new campaign", "annotation:campaign-new", lambda w: "/scoring/new/", expect(200, WRITERS)),
        Access("create campaign", "annotation:campaign-new", lambda w: "/scoring/new/", expect(302, WRITERS),
               method="post", data=_campaign_form, location=dict.fromkeys(WRITERS, "/scoring/")),
        Access("create campaign without raters", "annotation:campaign-new", lambda w: "/scoring/new/",
               expect(200, WRITERS), method="post", data=lambda w: {**_campaign_form(w), "raters": []},
               after=_form_errors),
        Access("create campaign by PUT", "annotation:campaign-new", lambda w: "/scoring/new/", expect(200, WRITERS),
               method="put", after=_form_errors),
        # the campaign's raters only: an admin holds the permission but is not one of them (404)
        Access("score", "annotation:score", lambda w: f"/scoring/{w.campaign.pk}/score/",
               {**expect(200, [RATER]), ADMIN: 404}),
        Access("dashboard", "annotation:dashboard", lambda w: f"/scoring/{w.campaign.pk}/dashboard/", expect(200, STAFF)),
        # curators and the campaign's adjudicators (the world campaign names none)
        Access("adjudicate", "annotation:adjudicate", lambda w: f"/scoring/{w.campaign.pk}/adjudicate/",
               expect(200, WRITERS), after=_disputes_shown),
        Access("adjudicate missing campaign", "annotation:adjudicate", lambda w: "/scoring/999999/adjudicate/",
               {**expect(404, [RATER, *STAFF])}),
    ]


class TestScoringApi(RoleAccessTests):
    cases = [
        api("campaigns", "scoringcampaign-list", lambda w: f"{SCORING}/", api_expect(200, READERS)),
        api("new campaign", "scoringcampaign-list", lambda w: f"{SCORING}/", api_expect(201, WRITERS), method="post",
            data=lambda w: {"name": "Fresh", "recordings": [w.recording.pk], "raters": ["matrix-rater"], "overlap": 1},
            extra=JSON),
        api("bad campaign", "scoringcampaign-list", lambda w: f"{SCORING}/", api_expect(400, WRITERS), method="post",
            data=lambda w: {"name": "Fresh", "recordings": [w.recording.pk], "raters": ["matrix-rater"], "overlap": 3},
            extra=JSON),
        api("campaign", "scoringcampaign-detail", lambda w: f"{SCORING}/{w.campaign.pk}/", api_expect(200, READERS)),
        api("missing campaign", "scoringcampaign-detail", lambda w: f"{SCORING}/999999/", api_expect(404, READERS)),
        # raters reach their campaign but may not change it (403); the other readers see it and may not either
        api("edit campaign", "scoringcampaign-detail", lambda w: f"{SCORING}/{w.campaign.pk}/",
            api_expect(200, WRITERS), method="patch", data=lambda w: {"show_other_labels": True}, extra=JSON),
        api("edit campaign badly", "scoringcampaign-detail", lambda w: f"{SCORING}/{w.campaign.pk}/",
            api_expect(400, WRITERS), method="patch", data=lambda w: {"overlap": 9}, extra=JSON,
            after=_says("more than the number of raters")),
        # Only the campaign's raters take items; admins may hold every permission but are not raters of it.
        api("next item", "scoringcampaign-next", lambda w: f"{SCORING}/{w.campaign.pk}/next/",
            expect(200, [RATER], denied=403, anonymous=API_ANONYMOUS), method="post"),
        api("save label", "scoringcampaign-labels", lambda w: f"{SCORING}/{w.campaign.pk}/labels/",
            api_expect(201, [RATER]), method="post", data=_label, extra=JSON),
        api("save label without reservation", "scoringcampaign-labels", lambda w: f"{SCORING}/{w.campaign.pk}/labels/",
            api_expect(403, []), method="post", data=lambda w: {**_label(w), "item": w.items[2].pk}, extra=JSON),
        api("bad stage", "scoringcampaign-labels", lambda w: f"{SCORING}/{w.campaign.pk}/labels/",
            api_expect(400, [RATER]), method="post", data=lambda w: {**_label(w), "stage": "S4"}, extra=JSON),
        api("labels", "scoringcampaign-labels", lambda w: f"{SCORING}/{w.campaign.pk}/labels/", api_expect(200, READERS)),
        api("bad label filter", "scoringcampaign-labels", lambda w: f"{SCORING}/{w.campaign.pk}/labels/?rater=x",
            api_expect(400, READERS)),
        api("reserve ahead", "scoringcampaign-ahead", lambda w: f"{SCORING}/{w.campaign.pk}/ahead/?count=3",
            expect(200, [RATER], denied=403, anonymous=API_ANONYMOUS), method="post"),
        api("bad ahead count", "scoringcampaign-ahead", lambda w: f"{SCORING}/{w.campaign.pk}/ahead/?count=x",
            expect(400, [RATER], denied=403, anonymous=API_ANONYMOUS), method="post"),
        api("statistics", "scoringcampaign-statistics", lambda w: f"{SCORING}/{w.campaign.pk}/statistics/",
            api_expect(200, STAFF)),
        api("release", "scoringcampaign-release", lambda w: f"{SCORING}/{w.campaign.pk}/release/",
            api_expect(200, [RATER]), method="post", data=lambda w: {"item": w.items[0].pk}, extra=JSON),
        api("history", "scoringcampaign-history", lambda w: f"{SCORING}/{w.campaign.pk}/history/?item={w.items[1].pk}",
            api_expect(200, READERS)),
        api("hypnogram", "scoringcampaign-hypnogram",
            lambda w: f"{SCORING}/{w.campaign.pk}/hypnogram/?recording={w.recording.pk}", api_expect(200, READERS)),
        api("adjudication", "scoringcampaign-adjudication", lambda w: f"{SCORING}/{w.campaign.pk}/adjudication/",
            api_expect(200, STAFF)),
        api("adjudicate", "scoringcampaign-adjudication", lambda w: f"{SCORING}/{w.campaign.pk}/adjudication/",
            api_expect(201, WRITERS), method="post",
            data=lambda w: {"item": w.items[1].pk, "stage": "N2", "reason": "spindles at 12 s"}, extra=JSON),
    ]


RATING = "/api/ratings/campaigns"


def _rating(w):
    return {"item": w.rating_item.pk, "client_id": "7a1c1f0e-8a4e-4a53-9a43-3f2b8b1f0c12", "seconds_spent": 12,
            "scores": {"factual_accuracy": 4, "evidence_comprehensiveness": 3, "logical_coherence": 5}}


def _rating_campaign_form(w):
    return {"name": "Fresh page rating", "cohorts": [w.cohort.name], "model_versions": [w.version.name],
            "raters": ["matrix-rater"], "overlap": 1, "seed": 0, "reservation_timeout_s": 900, "fast_floor_s": 5,
            "key_dwell_ms": 300}


class TestRatingPages(RoleAccessTests):
    cases = [
        Access("rating campaigns", "ratings:campaign-list", lambda w: "/rating/", everyone()),
        Access("new rating campaign", "ratings:campaign-new", lambda w: "/rating/new/", expect(200, WRITERS)),
        Access("create rating campaign", "ratings:campaign-new", lambda w: "/rating/new/", expect(302, WRITERS),
               method="post", data=lambda w: {**_rating_campaign_form(w), "overlaps_seen": "1"},
               location=dict.fromkeys(WRITERS, "/rating/")),
        # the matrix rater still scores the world recording blind: the form says so before creating anything
        Access("create rating campaign over blind scoring", "ratings:campaign-new", lambda w: "/rating/new/",
               expect(200, WRITERS), method="post", data=_rating_campaign_form, after=_says("still scores")),
        Access("create rating campaign without raters", "ratings:campaign-new", lambda w: "/rating/new/",
               expect(200, WRITERS), method="post", data=lambda w: {**_rating_campaign_form(w), "raters": []},
               after=_form_errors),
        Access("create rating campaign by PUT", "ratings:campaign-new", lambda w: "/rating/new/", expect(200, WRITERS),
               method="put", after=_form_errors),
        # the campaign's raters only: an admin holds the permission but is not one of them (404)
        Access("rate", "ratings:rate", lambda w: f"/rating/{w.rating_campaign.pk}/rate/", {**expect(200, [RATER]), ADMIN: 404}),
        Access("rating dashboard", "ratings:dashboard", lambda w: f"/rating/{w.rating_campaign.pk}/dashboard/",
               expect(200, STAFF)),
        Access("rating report page", "ratings:report", lambda w: f"/rating/{w.rating_campaign.pk}/report/",
               expect(200, STAFF), after=_content_type("text/html")),
        Access("rating report", "ratings:report", lambda w: f"/rating/{w.rating_campaign.pk}/report/?format=md",
               expect(200, STAFF), after=_content_type("text/markdown")),
        Access("rating report csv", "ratings:report", lambda w: f"/rating/{w.rating_campaign.pk}/report/?format=csv",
               expect(200, STAFF), after=_content_type("text/csv")),
        Access("rating report json", "ratings:report", lambda w: f"/rating/{w.rating_campaign.pk}/report/?format=json",
               expect(200, STAFF), after=_content_type("application/json")),
    ]


class TestRatingApi(RoleAccessTests):
    cases = [
        api("rating campaigns", "ratingcampaign-list", lambda w: f"{RATING}/", api_expect(200, READERS)),
        api("new rating campaign", "ratingcampaign-list", lambda w: f"{RATING}/", api_expect(201, WRITERS), method="post",
            data=lambda w: {"name": "Fresh", "cohorts": [w.cohort.name], "model_versions": [w.version.name],
                            "raters": ["matrix-rater"], "overlap": 1}, extra=JSON),
        api("bad rating campaign", "ratingcampaign-list", lambda w: f"{RATING}/", api_expect(400, WRITERS),
            method="post", data=lambda w: {"name": "Fresh", "cohorts": [w.cohort.name], "raters": ["matrix-rater"]},
            extra=JSON),
        api("rating campaign", "ratingcampaign-detail", lambda w: f"{RATING}/{w.rating_campaign.pk}/",
            api_expect(200, READERS)),
        api("edit rating campaign", "ratingcampaign-detail", lambda w: f"{RATING}/{w.rating_campaign.pk}/",
            api_expect(200, WRITERS), method="patch", data=lambda w: {"fast_floor_s": 3.5}, extra=JSON),
        api("next rationale", "ratingcampaign-next", lambda w: f"{RATING}/{w.rating_campaign.pk}/next/",
            api_expect(200, [RATER]), method="post"),
        api("rationales ahead", "ratingcampaign-ahead", lambda w: f"{RATING}/{w.rating_campaign.pk}/ahead/?count=2",
            api_expect(200, [RATER]), method="post"),
        api("release rationale", "ratingcampaign-release", lambda w: f"{RATING}/{w.rating_campaign.pk}/release/",
            api_expect(200, [RATER]), method="post", data=lambda w: {"item": w.rating_item.pk}, extra=JSON),
        api("save rating", "ratingcampaign-ratings", lambda w: f"{RATING}/{w.rating_campaign.pk}/ratings/",
            api_expect(201, [RATER]), method="post", data=_rating, extra=JSON),
        api("bad rating", "ratingcampaign-ratings", lambda w: f"{RATING}/{w.rating_campaign.pk}/ratings/",
            api_expect(400, [RATER]), method="post", data=lambda w: {**_rating(w), "scores": {"factual_accuracy": 9}},
            extra=JSON),
        api("ratings", "ratingcampaign-ratings", lambda w: f"{RATING}/{w.rating_campaign.pk}/ratings/",
            api_expect(200, READERS)),
        api("rating history", "ratingcampaign-history", lambda w: f"{RATING}/{w.rating_campaign.pk}/history/",
            api_expect(200, READERS)),
        api("rubric", "ratingcampaign-rubric", lambda w: f"{RATING}/{w.rating_campaign.pk}/rubric/",
            api_expect(200, READERS)),
        api("edit rubric", "ratingcampaign-rubric", lambda w: f"{RATING}/{w.rating_campaign.pk}/rubric/",
            api_expect(200, WRITERS), method="put", data=lambda w: {"markdown": (
                "## Accuracy: right?\n1. a\n2. b\n3. c\n4. d\n5. e\n")}, extra=JSON),
        api("rating items", "ratingcampaign-items", lambda w: f"{RATING}/{w.rating_campaign.pk}/items/",
            api_expect(200, STAFF)),
        api("rating statistics", "ratingcampaign-statistics", lambda w: f"{RATING}/{w.rating_campaign.pk}/statistics/",
            api_expect(200, STAFF)),
    ]


def _release_form(w):
    return {"name": "world", "version": "1.1.0", "cohorts": [w.cohort.name], "stage_source": "reference",
            "license_id": "cc-by-nc-4.0"}


def _fingerprint(w):
    from releases.forms import ReleaseForm

    form = ReleaseForm(_release_form(w))
    assert form.is_valid(), form.errors
    return form.fingerprint()


RELEASES = "/api/releases"
RELEASE_READERS = (CURATOR, RESEARCHER, ADMIN)


class TestReleasePages(RoleAccessTests):
    cases = [
        Access("releases", "releases:release-list", lambda w: "/releases/", expect(200, RELEASE_READERS)),
        Access("release builder", "releases:release-new", lambda w: "/releases/new/", expect(200, WRITERS)),
        Access("preview release", "releases:release-new", lambda w: "/releases/new/", expect(200, WRITERS),
               method="post", data=_release_form, after=_says("What it changes")),
        Access("build release", "releases:release-new", lambda w: "/releases/new/", expect(302, WRITERS),
               method="post", data=lambda w: {**_release_form(w), "build": "", "previewed": _fingerprint(w)},
               location=dict.fromkeys(WRITERS, "/releases/")),
        Access("build an existing version", "releases:release-new", lambda w: "/releases/new/", expect(200, WRITERS),
               method="post", data=lambda w: {**_release_form(w), "version": "1.0.0"}, after=_form_errors),
        Access("release builder by PUT", "releases:release-new", lambda w: "/releases/new/", expect(200, WRITERS),
               method="put", after=_form_errors),
        Access("release", "releases:release-detail", lambda w: f"/releases/{w.release.pk}/", expect(200, RELEASE_READERS)),
        Access("release file", "releases:file", lambda w: f"/releases/{w.release.pk}/files/annotations/coarse/world.csv",
               expect(200, RELEASE_READERS)),
        Access("missing release file", "releases:file", lambda w: f"/releases/{w.release.pk}/files/nope.csv",
               expect(404, RELEASE_READERS)),
    ]


class TestReleaseApi(RoleAccessTests):
    cases = [
        api("releases", "release-list", lambda w: f"{RELEASES}/", api_expect(200, RELEASE_READERS)),
        api("release", "release-detail", lambda w: f"{RELEASES}/{w.release.pk}/", api_expect(200, RELEASE_READERS)),
        api("new release", "release-list", lambda w: f"{RELEASES}/", api_expect(201, WRITERS), method="post",
            data=lambda w: {"name": "world", "version": "1.1.0", "cohorts": [w.cohort.name]}, extra=JSON),
        api("bad release", "release-list", lambda w: f"{RELEASES}/", api_expect(400, WRITERS), method="post",
            data=lambda w: {"name": "world", "version": "1.0.0", "cohorts": [w.cohort.name]}, extra=JSON),
        api("release file", "release-file", lambda w: f"{RELEASES}/{w.release.pk}/files/annotations/coarse/world.csv/",
            api_expect(200, RELEASE_READERS)),
        api("cancel built release", "release-cancel", lambda w: f"{RELEASES}/{w.release.pk}/cancel/",
            api_expect(409, WRITERS), method="post"),
    ]


def _routes(patterns, namespace=None, prefix=""):
    """(route, URL pattern) for every pattern: its name (namespace:name), or its path where it has none.
    The admin stands as one route, admin:index: Django's admin checks staff status on each of its views
    itself (only the admin role is staff), and the unnamed admin/login/ before it sends every method to
    the throttled login page (declared above)."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                yield "admin:index", None
                continue
            yield from _routes(pattern.url_patterns, pattern.namespace or namespace, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            if pattern.name:
                yield (f"{namespace}:{pattern.name}" if namespace else pattern.name), pattern
            else:
                yield prefix + str(pattern.pattern), pattern


def _write_methods(pattern) -> set[str]:
    """The write methods a URL pattern's view answers: for a DRF viewset the ones its router bound, for a
    class-based view (Django's or DRF's APIView) those with a handler, for a function view all of them."""
    if pattern is None:
        return set()
    callback = pattern.callback
    actions = getattr(callback, "actions", None)
    if actions is not None:
        return {method for method in actions if method in WRITE_METHODS}
    view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view is not None:
        return {method for method in WRITE_METHODS if method in view.http_method_names and hasattr(view, method)}
    return set(WRITE_METHODS)  # nothing says which methods a plain function takes: each must be declared


ROUTES: dict[str, set[str]] = {}
for _route, _pattern in _routes(get_resolver().url_patterns):
    ROUTES.setdefault(_route, set()).update(_write_methods(_pattern))


def _declarations():
    return [case for cls in RoleAccessTests.__subclasses__() for case in cls.cases]


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_has_its_role_matrix(route):
    covered = {case.route for case in _declarations()}
    assert route in covered, f"route {route!r} has no role × outcome declaration in tests/test_access_matrix.py"


@pytest.mark.parametrize("route", sorted(route for route, methods in ROUTES.items() if methods))
def test_every_write_method_of_a_route_has_its_role_matrix(route):
    declared = {case.method.lower() for case in _declarations() if case.route == route}
    missing = sorted(ROUTES[route] - declared)
    assert not missing, (
        f"route {route!r} accepts {', '.join(m.upper() for m in missing)} but tests/test_access_matrix.py "
        f"declares no role × outcome for {'it' if len(missing) == 1 else 'them'}"
    )


def test_every_declaration_names_a_route():
    unknown = sorted({case.route for case in _declarations()} - ROUTES.keys())
    assert not unknown, f"declarations name routes that do not exist: {', '.join(unknown)}"


def test_the_write_method_check_sees_what_each_kind_of_view_accepts():
    """The check itself: a ModelViewSet detail route, a form page, a POST-only page and a read-only list."""
    assert ROUTES["cohort-detail"] == {"put", "patch", "delete"}
    assert ROUTES["modelversion-detail"] == {"put", "patch"}
    assert ROUTES["datasets:import-new"] == {"post", "put"}
    assert ROUTES["inference:job-cancel"] == {"post"}
    assert ROUTES["recording-list"] == set() and ROUTES["ratingcampaign-rubric"] == {"put"}
    assert ROUTES["healthz"] == set(WRITE_METHODS)


@pytest.mark.django_db
def test_the_permission_backend_reads_own_and_group_permissions_in_one_query_like_djangos(make_user):
    """core.access.PermissionBackend gives what Django's ModelBackend gives (own, groups', superuser's, an inactive
    user's none), in one query where Django sends two."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.auth.models import Permission
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from core.access import PermissionBackend

    rater, curator = make_user(RATER, "perm-rater"), make_user(CURATOR, "perm-curator")
    rater.user_permissions.add(Permission.objects.get(codename="view_recording_provenance"))
    admin = get_user_model().objects.create_superuser("root-perms", password="x")
    gone = make_user(CURATOR, "perm-gone")
    gone.is_active = False
    gone.save()
    def fresh(user):  # loaded again: no permissions cached on it
        return get_user_model().objects.get(pk=user.pk)

    for user in (rater, curator, admin, gone):
        expected, loaded = ModelBackend().get_all_permissions(fresh(user)), fresh(user)
        with CaptureQueriesContext(connection) as sent:
            found = PermissionBackend().get_all_permissions(loaded)
            assert PermissionBackend().get_all_permissions(loaded) == found  # cached on the user
        assert found == expected and len(sent.captured_queries) == (1 if user.is_active else 0)
    assert "datasets.view_recording_provenance" in PermissionBackend().get_all_permissions(
        get_user_model().objects.get(pk=rater.pk))
