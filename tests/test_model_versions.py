"""Model versions: settings within the operator's allowlists, frozen once they have predictions, safe CSV exports."""
import csv
import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from core.roles import ADMIN, CURATOR, RESEARCHER
from inference.models import InferenceJob, ModelVersion, Prediction
from inference.services import jobs
from inference.services.evaluation import compare, spreadsheet_safe, to_csv
from tests.factories import make_recording
from tests.fake_vllm import fake  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

URL = "/api/model-versions/"


@pytest.fixture
def curator(make_user):
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    return api


@pytest.fixture
def prompt_dir(settings, tmp_path):
    """An allowed prompt folder holding one prompt, beside a folder that is not allowed."""
    allowed = tmp_path / "prompts"
    allowed.mkdir()
    (allowed / "fine.md").write_text("You are SleepVLM (test prompt).\n", encoding="utf-8")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.md").write_text("not for the model\n", encoding="utf-8")
    settings.INFERENCE_PROMPT_DIRS = [allowed]
    return allowed


def openai_settings(**extra):
    return {"base_url": "http://127.0.0.1:8000/v1", "model": "SleepVLM-3B", **extra}


def create(api, settings, backend="openai", name="v1"):
    return api.post(URL, {"name": name, "backend": backend, "settings": settings}, format="json")


def frozen_version(name="frozen-v1", predictions=2):
    version = ModelVersion.objects.create(name=name, backend="openai", settings=openai_settings(), description="first")
    recording = make_recording("Frozen", f"rec-{name}", ["W", "N2", "N2"])
    for epoch in list(recording.epochs.order_by("index"))[:predictions]:
        Prediction.objects.create(epoch=epoch, model_version=version, status="ok", stage="N2", version_hash="h")
    return version


# Allowlists, at save time (API and admin)

def test_api_refuses_an_api_key_env_outside_the_allowlist(curator):
    response = create(curator, openai_settings(api_key_env="SECRET_KEY"))
    assert response.status_code == 400
    message = response.json()["settings"][0]
    assert "SECRET_KEY" in message and "INFERENCE_API_KEY_ENVS" in message and "OPENAI_API_KEY" in message
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("url", [
    "http://evil.example:8000/v1",
    "http://127.0.0.1@evil.example/v1",  # credentials part: the host is evil.example
    "ftp://127.0.0.1/v1",
    "file:///etc/passwd",
    "http://127.0.0.1\\@evil.example/v1",
    ["http://127.0.0.1/v1"],
])
def test_api_refuses_a_base_url_outside_the_allowed_hosts(curator, url):
    response = create(curator, openai_settings(base_url=url))
    assert response.status_code == 400
    message = response.json()["settings"][0]
    assert "base_url" in message and "INFERENCE_BASE_URL_HOSTS" in message and "127.0.0.1, localhost" in message
    assert not ModelVersion.objects.exists()


def test_api_refuses_a_system_prompt_file_outside_the_prompt_dirs(curator, prompt_dir):
    for path in ("/proc/self/environ", str(prompt_dir / ".." / "outside" / "secret.md")):
        response = create(curator, openai_settings(system_prompt_file=path))
        assert response.status_code == 400
        message = response.json()["settings"][0]
        assert "system_prompt_file" in message and "INFERENCE_PROMPT_DIRS" in message and str(prompt_dir) in message
    assert not ModelVersion.objects.exists()


def test_a_symlink_in_a_prompt_dir_pointing_outside_is_refused(curator, prompt_dir):
    (prompt_dir / "looks-fine.md").symlink_to(prompt_dir.parent / "outside" / "secret.md")
    (prompt_dir / "etc").symlink_to("/etc")
    for name in ("looks-fine.md", "etc/hostname"):
        response = create(curator, openai_settings(system_prompt_file=str(prompt_dir / name)))
        assert response.status_code == 400
        assert "resolved" in response.json()["settings"][0]
    assert not ModelVersion.objects.exists()


def test_api_refuses_a_checkpoint_dir_outside_the_checkpoint_dirs(curator, settings, tmp_path):
    allowed = tmp_path / "checkpoints"
    allowed.mkdir()
    (allowed / "linked").symlink_to(tmp_path)
    settings.INFERENCE_CHECKPOINT_DIRS = [allowed]
    for path in ("/etc", str(allowed / "linked"), str(tmp_path)):
        response = create(curator, {"checkpoint_dir": path}, backend="transformers")
        assert response.status_code == 400
        message = response.json()["settings"][0]
        assert "checkpoint_dir" in message and "INFERENCE_CHECKPOINT_DIRS" in message
    assert create(curator, {"checkpoint_dir": str(allowed / "sleepvlm-3b")}, backend="transformers").status_code == 201


def test_allowed_settings_are_saved_with_hash_and_frozen_state(curator, prompt_dir):
    settings = openai_settings(base_url="https://localhost:8443/v1", api_key_env="VLLM_API_KEY",
                               system_prompt_file=str(prompt_dir / "fine.md"))
    response = create(curator, settings)
    assert response.status_code == 201, response.content
    body = response.json()
    version = ModelVersion.objects.get(pk=body["id"])
    assert version.settings == settings
    assert (body["settings_hash"], body["frozen"], body["prediction_count"]) == (version.settings_hash, False, 0)


def test_operator_settings_widen_the_allowlist(curator, settings):
    settings.INFERENCE_API_KEY_ENVS = ["SLEEPVLM_KEY"]
    settings.INFERENCE_BASE_URL_HOSTS = ["GPU-Box.lan"]
    assert create(curator, openai_settings(base_url="http://gpu-box.lan:8000/v1", api_key_env="SLEEPVLM_KEY"),
                  name="lan").status_code == 201
    # OPENAI_API_KEY, the default an unset api_key_env reads, is no longer allowed either
    response = create(curator, {"base_url": "http://gpu-box.lan/v1", "model": "m"}, name="default-key")
    assert response.status_code == 400 and "OPENAI_API_KEY" in response.json()["settings"][0]


def test_admin_form_refuses_settings_outside_the_allowlist(role_client):
    client = role_client(ADMIN)
    settings = json.dumps(openai_settings(api_key_env="DATABASE_URL"))
    data = {"name": "via-admin", "backend": "openai", "settings": settings, "description": ""}
    response = client.post(reverse("admin:inference_modelversion_add"), data)
    assert response.status_code == 200  # the form again, with the error
    assert "DATABASE_URL" in response.content.decode() and "INFERENCE_API_KEY_ENVS" in response.content.decode()
    assert not ModelVersion.objects.exists()


# Allowlists, again in the worker

@pytest.mark.parametrize("change", [
    {"api_key_env": "SECRET_KEY"},
    {"system_prompt_file": "/proc/self/environ"},
    {"base_url": "http://evil.example:8000/v1"},
])
def test_settings_edited_in_the_database_fail_the_job_before_any_request(fake, change):
    version = ModelVersion.objects.create(name="edited", backend="openai",
                                          settings={"base_url": fake.base_url, "model": "m", "max_retries": 0})
    recording = make_recording("Edited", "night", ["W", "N2", "N2", "N2", "W"])
    ModelVersion.objects.filter(pk=version.pk).update(settings={**version.settings, **change})
    version.refresh_from_db()
    job = jobs.start_job(version, recording=recording, inline=True)
    assert job.state == InferenceJob.FAILED
    setting = next(iter(change))
    assert f"model version edited: {setting}" in job.error and "is not allowed" in job.error
    assert not fake.requests and not Prediction.objects.exists()


@pytest.mark.parametrize("where", ["outside", "symlink"])
def test_a_checkpoint_dir_edited_in_the_database_fails_the_job_before_any_load(settings, tmp_path, monkeypatch, where):
    from inference.services.backends import transformers_backend

    allowed = tmp_path / "checkpoints"
    (allowed / "sleepvlm-3b").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text("{}")  # looks like a checkpoint: only the allowlist stops the load
    (allowed / "linked").symlink_to(outside)
    settings.INFERENCE_CHECKPOINT_DIRS = [allowed]
    loads = []
    monkeypatch.setattr(transformers_backend, "load", lambda *args: loads.append(args) or (_ for _ in ()).throw(
        AssertionError("the checkpoint was loaded")))
    version = ModelVersion.objects.create(name="edited", backend="transformers",
                                          settings={"checkpoint_dir": str(allowed / "sleepvlm-3b")})
    recording = make_recording("Edited", "night", ["W", "N2", "N2", "N2", "W"])
    edited = str(outside) if where == "outside" else str(allowed / "linked")
    ModelVersion.objects.filter(pk=version.pk).update(settings={"checkpoint_dir": edited})
    version.refresh_from_db()
    job = jobs.start_job(version, recording=recording, inline=True)
    assert job.state == InferenceJob.FAILED
    assert "model version edited: checkpoint_dir" in job.error and "is not allowed" in job.error
    assert "INFERENCE_CHECKPOINT_DIRS" in job.error and str(outside) in job.error  # the resolved path is named
    assert loads == [] and not Prediction.objects.exists()


def test_allowed_settings_reach_the_server_with_key_and_prompt(imported, fake, prompt_dir, monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "sk-allowed")
    version = ModelVersion.objects.create(name="allowed", backend="openai", settings={
        "base_url": fake.base_url, "model": "m", "api_key_env": "VLLM_API_KEY",
        "system_prompt_file": str(prompt_dir / "fine.md"), "backoff_s": 0.01, "timeout_s": 5,
    })
    job = jobs.start_job(version, recording=imported, inline=True)
    assert job.state == InferenceJob.SUCCEEDED, job.error
    _, headers, body = fake.requests[0]
    assert headers["authorization"] == "Bearer sk-allowed"
    assert body["messages"][0]["content"] == "You are SleepVLM (test prompt).\n"


# Frozen versions

def test_frozen_version_refuses_backend_and_settings_changes_via_api(curator):
    version = frozen_version()
    url = f"{URL}{version.pk}/"
    for change in ({"settings": openai_settings(model="other")}, {"backend": "baseline"}):
        response = curator.patch(url, change, format="json")
        assert response.status_code == 400
        message = json.dumps(response.json())
        assert "frozen" in message and "2 predictions" in message
        assert f"/api/model-versions/{version.pk}/new-version/" in message
    version.refresh_from_db()
    assert (version.backend, version.settings) == ("openai", openai_settings())
    response = curator.patch(url, {"name": "renamed", "description": "kept outputs", "settings": openai_settings()},
                             format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["frozen"], response.json()["prediction_count"]) == (True, 2)
    version.refresh_from_db()
    assert (version.name, version.description) == ("renamed", "kept outputs")


def test_version_without_predictions_may_still_change(curator):
    version = ModelVersion.objects.create(name="draft", backend="openai", settings=openai_settings())
    response = curator.patch(f"{URL}{version.pk}/", {"settings": openai_settings(model="other")}, format="json")
    assert response.status_code == 200 and response.json()["frozen"] is False
    version.refresh_from_db()
    assert version.settings["model"] == "other"


def test_frozen_version_refuses_a_direct_save():
    version = frozen_version(predictions=1)
    version.settings = openai_settings(model="other")
    with pytest.raises(ValidationError, match="frozen: it has 1 prediction made"):
        version.save()
    version.settings = openai_settings()
    version.description = "edited"
    version.save()


def test_new_version_action_copies_the_version_with_changes(curator, make_user):
    source = frozen_version()
    url = f"{URL}{source.pk}/new-version/"
    response = curator.post(url, {"name": "frozen-v2", "settings": openai_settings(model="other")}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    created = ModelVersion.objects.get(pk=body["id"])
    assert (created.name, created.backend, created.description) == ("frozen-v2", "openai", "first")
    assert created.settings == openai_settings(model="other")
    assert (body["frozen"], body["prediction_count"], body["settings_hash"]) == (False, 0, created.settings_hash)
    source.refresh_from_db()
    assert source.settings == openai_settings() and source.predictions.count() == 2
    # a plain copy with a new description
    copy = curator.post(url, {"name": "frozen-copy", "description": "same settings"}, format="json")
    assert copy.status_code == 201 and copy.json()["settings_hash"] == source.settings_hash

    assert "name" in curator.post(url, {"settings": openai_settings()}, format="json").json()
    assert curator.post(url, {"name": "frozen-v2"}, format="json").status_code == 400  # names are unique
    refused = curator.post(url, {"name": "v3", "settings": openai_settings(api_key_env="SECRET_KEY")}, format="json")
    assert refused.status_code == 400 and "SECRET_KEY" in refused.json()["settings"][0]
    researcher = APIClient()
    researcher.force_authenticate(make_user(RESEARCHER))
    assert researcher.post(url, {"name": "v4"}, format="json").status_code == 403
    assert ModelVersion.objects.count() == 3


def test_api_lists_settings_hash_frozen_and_prediction_count(curator):
    version = frozen_version()
    ModelVersion.objects.create(name="draft", backend="baseline")
    rows = {row["name"]: row for row in curator.get(URL).json()["results"]}
    assert rows["frozen-v1"]["settings_hash"] == version.settings_hash
    assert (rows["frozen-v1"]["frozen"], rows["frozen-v1"]["prediction_count"]) == (True, 2)
    assert (rows["draft"]["frozen"], rows["draft"]["prediction_count"]) == (False, 0)


def test_admin_shows_frozen_refuses_changes_and_saves_as_new(role_client):
    client = role_client(ADMIN)
    version = frozen_version()
    url = reverse("admin:inference_modelversion_change", args=[version.pk])
    page = client.get(url).content.decode()
    assert "2 predictions were made" in page and "Save as new" in page
    changed = {"name": version.name, "backend": "openai", "settings": json.dumps(openai_settings(model="other")),
               "description": "first"}
    response = client.post(url, changed)
    assert response.status_code == 200 and "is frozen" in response.content.decode()
    version.refresh_from_db()
    assert version.settings == openai_settings()

    response = client.post(url, {**changed, "name": "frozen-v2", "_saveasnew": "Save as new"})
    assert response.status_code == 302
    created = ModelVersion.objects.get(name="frozen-v2")
    assert created.settings == openai_settings(model="other") and created.pk != version.pk
    version.refresh_from_db()
    assert (version.name, version.settings, version.predictions.count()) == ("frozen-v1", openai_settings(), 2)


# Evaluation CSV

@pytest.mark.parametrize("text", ["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_spreadsheet_safe_quotes_formula_text_only(text):
    assert spreadsheet_safe(text) == "'" + text
    assert spreadsheet_safe("N2 model") == "N2 model"
    assert spreadsheet_safe(-0.12) == -0.12 and spreadsheet_safe(None) is None


def test_evaluation_csv_quotes_formula_cells_and_keeps_numbers():
    name = '=HYPERLINK("http://evil.example","open")'
    version = ModelVersion.objects.create(name=name, backend="baseline")
    recording = make_recording("Csv", "night", ["W", "N2", "W", "N2", "N2"])
    recording.name = "+cmd"
    recording.save()
    for epoch, stage in zip(recording.epochs.order_by("index"), ["N2", "W", "N2", "W", "N2"]):
        Prediction.objects.create(epoch=epoch, model_version=version, status="ok", stage=stage, version_hash="h")
    rows = list(csv.DictReader(io.StringIO(to_csv(compare([version], recording.cohort)["models"]))))
    assert [(r["scope"], r["model"], r["subject"]) for r in rows] == [("pooled", "'" + name, ""),
                                                                      ("subject", "'" + name, "'+cmd")]
    for row in rows:
        assert row["kappa"].startswith("-") and float(row["kappa"]) < 0  # a number, not quoted
        assert float(row["accuracy"]) == pytest.approx(0.2)


def test_rating_report_csv_quotes_formula_group_names(make_user, client):
    """The rating dashboard's CSV download: model and rater names are text cells a spreadsheet must not run."""
    import uuid

    from core.roles import RATER
    from ratings.services.campaigns import create_rating_campaign
    from ratings.services.queue import RATING
    from ratings.services.statistics import campaign_statistics, render_report

    name = '=HYPERLINK("http://evil.example","open")'
    version = ModelVersion.objects.create(name=name, backend="baseline")
    recording = make_recording("Rated", "night", ["W", "N2", "N2", "N3", "R", "N2", "W", "N1"])
    for epoch in recording.epochs.all():
        Prediction.objects.create(epoch=epoch, model_version=version, status=Prediction.OK, stage="N2",
                                  rule_ids=["N2.1"], rationale=f"Spindle in epoch {epoch.index}.", version_hash="h")
    raters = [make_user(RATER, "@first"), make_user(RATER, "+second")]
    campaign = create_rating_campaign("formulas", cohorts=["Rated"], model_versions=[name], raters=raters, overlap=2)
    keys = campaign.rubric.keys
    for position, item in enumerate(campaign.items.order_by("position")):
        for slot, rater in enumerate(raters):
            RATING.reservations.objects.create(item=item, slot=slot, rater=rater, expires_at="2100-01-01T00:00Z")
            scores = {key: 1 + (position + slot + k) % 5 for k, key in enumerate(keys)}
            RATING.submit(campaign, rater, item, scores=scores, client_id=uuid.uuid4(), seconds_spent=10)
    text = render_report(campaign_statistics(campaign), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    groups = {row["group"] for row in rows}
    assert "'" + name in groups and name not in groups
    assert {"'@first / +second", "'+second / @first"} & groups  # the rater pair, whichever comes first
    for row in rows:
        for column in ("dimension", "breakdown", "group", "statistic"):
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), row
    values = [row["value"] for row in rows if row["value"]]
    assert values and [float(value) for value in values]  # numbers stay numbers, unquoted (float() would fail on "'")
    client.force_login(make_user(RESEARCHER, "res"))
    assert client.get(f"/rating/{campaign.pk}/report/?format=csv").content.decode() == text
