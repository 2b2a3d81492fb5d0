"""Inference jobs with the OpenAI-compatible backend against a fake vLLM: chunks, idempotency, parsing."""
import base64
import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from core.roles import CURATOR, RATER, RESEARCHER
from datasets.models import EpochImage
from inference.models import AasmRule, InferenceJob, ModelVersion, Prediction
from inference.services import jobs
from inference.services.backends.openai_backend import OpenAIBackend
from tests.factories import assign_rater
from tests.fake_vllm import fake  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(fake):
    return ModelVersion.objects.create(
        name="sleepvlm-vllm", backend="openai",
        settings={"base_url": fake.base_url, "model": "SleepVLM-3B", "backoff_s": 0.01, "timeout_s": 5, "batch_size": 8},
    )


def target_hash(recording, index):
    return EpochImage.objects.get(epoch__recording=recording, epoch__index=index, kind="model").sha256[:16]


def test_job_predicts_every_epoch_exactly_once_and_skips_the_edges(imported, version, fake):
    job = jobs.start_job(version, recording=imported, chunk_size=25, inline=True)
    assert job.state == InferenceJob.SUCCEEDED
    assert job.total == 120 and job.chunks_total == 5
    predictions = Prediction.objects.filter(model_version=version)
    assert predictions.count() == 120
    skipped = predictions.filter(status=Prediction.SKIPPED)
    assert sorted(skipped.values_list("epoch__index", flat=True)) == [0, 119]
    assert "no preceding epoch" in skipped.get(epoch__index=0).detail
    assert len(fake.requests) == 118  # the model is never asked about an epoch without full context
    middle = predictions.get(epoch__index=60)
    assert (middle.status, middle.stage, middle.rule_ids) == ("ok", "N2", ["N2.1"])
    assert target_hash(imported, 60) in middle.rationale  # the target image really was epoch 60's
    assert middle.raw_output.startswith("```json")
    assert {p.version_hash for p in predictions} == {job.version_hash} and len(job.version_hash) == 64
    progress = jobs.progress(job)
    assert (progress["done"], progress["fraction"], progress["skipped"], progress["parse_failures"]) == (120, 1.0, 2, 0)

    again = jobs.start_job(version, recording=imported, inline=True)
    assert again.total == 0 and again.state == InferenceJob.SUCCEEDED
    assert Prediction.objects.filter(model_version=version).count() == 120 and len(fake.requests) == 118


def test_context_follows_the_scored_sequence_across_unscored_gaps(imported, version, fake):
    """A scored epoch's context is the scored epochs before and after it (MASS-EX rows N-1 and N+1)."""
    from tests.fake_vllm import short_hash

    unscored = {0, 1, 50, 51}
    imported.epochs.filter(index__in=unscored).update(stage="unscored", massex_n=None)
    for n, epoch in enumerate(imported.epochs.exclude(index__in=unscored).order_by("index")):
        epoch.massex_n = n
        epoch.save(update_fields=["massex_n"])
    jobs.start_job(version, recording=imported, chunk_size=40, inline=True)

    sent = {}
    for _, _, body in fake.requests:
        urls = [part["image_url"]["url"] for part in body["messages"][1]["content"] if part["type"] == "image_url"]
        hashes = [short_hash(base64.b64decode(url.split(",", 1)[1])) for url in urls]
        sent[hashes[1]] = (hashes[0], hashes[2])

    def context(index):
        return sent[target_hash(imported, index)]

    assert context(52) == (target_hash(imported, 49), target_hash(imported, 53))  # across the gap
    assert context(49) == (target_hash(imported, 48), target_hash(imported, 52))
    assert context(50) == (target_hash(imported, 49), target_hash(imported, 51))  # unscored: neighbours in time
    assert context(1) == (target_hash(imported, 0), target_hash(imported, 2))
    skipped = dict(Prediction.objects.filter(model_version=version, status=Prediction.SKIPPED)
                   .values_list("epoch__index", "detail"))
    assert sorted(skipped) == [0, 2, 119]  # the first scored epoch (rank 0) has no preceding scored epoch
    assert "no preceding epoch" in skipped[2] and "no subsequent epoch" in skipped[119]
    assert len(fake.requests) == 117


def test_malformed_outputs_are_kept_and_counted_never_guessed(imported, version, fake):
    fake.contents = {
        target_hash(imported, 10): "The target epoch looks like N2 to me.",
        target_hash(imported, 11): '```json\n{"reasoning_text": "Spindle at 3 s.", "applicable_rules": ["N2.1",], "sleep_stage": "N2",}\n```',
        target_hash(imported, 12): '{"reasoning_text": "x", "applicable_rules": [], "sleep_stage": "N5"}',
        target_hash(imported, 13): '{"reasoning_text": "x", "applicable_rules": ["N9.9", "W.1"], "sleep_stage": "W"}',
    }
    job = jobs.start_job(version, recording=imported, inline=True)
    rows = {p.epoch.index: p for p in Prediction.objects.filter(job=job, epoch__index__in=[10, 11, 12, 13]).select_related("epoch")}
    assert (rows[10].status, rows[10].stage) == ("failed", "")
    assert rows[10].raw_output == "The target epoch looks like N2 to me."
    assert (rows[11].status, rows[11].stage, rows[11].rule_ids) == ("repaired", "N2", ["N2.1"])
    assert "trailing commas" in rows[11].detail
    assert (rows[12].status, rows[12].stage) == ("failed", "") and "N5" in rows[12].detail
    assert (rows[13].status, rows[13].rule_ids) == ("repaired", ["W.1"]) and "N9.9" in rows[13].detail
    assert jobs.progress(job)["parse_failures"] == 2


def test_unreachable_server_is_a_stored_failure_not_a_crash(imported, version, fake):
    fake.fail_first, fake.fail_status = 10_000, 503
    version.settings = {**version.settings, "max_retries": 1}
    version.save()
    job = jobs.start_job(version, recording=imported, chunk_size=200, inline=True)
    failed = Prediction.objects.filter(job=job, status=Prediction.FAILED)
    assert failed.count() == 118
    assert failed.first().detail.startswith("request failed: HTTP 503")


def test_redelivered_chunk_redoes_only_what_is_missing(imported, version, fake, monkeypatch):
    """A worker dies mid-chunk (after two batches were written); the redelivered chunk finishes the rest."""
    real = OpenAIBackend.predict
    calls = {"n": 0}

    def dies_on_third_batch(self, queries):
        calls["n"] += 1
        if calls["n"] == 3:
            raise SystemExit("worker killed")
        return real(self, queries)

    monkeypatch.setattr(OpenAIBackend, "predict", dies_on_third_batch)
    job = jobs.start_job(version, recording=imported, chunk_size=40)  # queued, not run
    ids = list(imported.epochs.order_by("index").values_list("id", flat=True)[:40])
    with pytest.raises(SystemExit):
        jobs.run_chunk(job.pk, ids)
    assert Prediction.objects.filter(job=job).count() == 1 + 16  # the skipped first epoch and two batches of 8
    requests_before = len(fake.requests)
    assert jobs.run_chunk(job.pk, ids) == InferenceJob.RUNNING  # redelivery; other chunks still to do
    assert len(fake.requests) - requests_before == 39 - 16  # only the missing epochs are asked again
    assert jobs.run_chunk(job.pk, ids) == InferenceJob.RUNNING  # a duplicate delivery changes nothing
    per_epoch = Prediction.objects.filter(job=job).values_list("epoch_id", flat=True)
    assert sorted(per_epoch) == sorted(ids)


def test_cancelled_job_runs_no_further_chunks(imported, version, fake):
    job = jobs.start_job(version, recording=imported, chunk_size=30)
    jobs.cancel_job(job)
    ids = list(imported.epochs.values_list("id", flat=True)[:30])
    assert jobs.run_chunk(job.pk, ids) == InferenceJob.CANCELLED
    assert not Prediction.objects.filter(job=job).exists() and not fake.requests


def test_bad_settings_fail_the_job_with_a_clear_error(imported, tmp_path):
    version = ModelVersion.objects.create(name="local", backend="openai", settings={"model": "m"})
    job = jobs.start_job(version, recording=imported, inline=True)
    assert job.state == InferenceJob.FAILED
    assert "base_url" in job.error


def test_rule_catalog_ids_fixed_texts_editable(make_user):
    assert list(AasmRule.objects.values_list("rule_id", flat=True))[:3] == ["W.1", "W.2", "W.3"]
    assert AasmRule.objects.count() == 15
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    response = api.patch("/api/rules/N3.1/", {"text": "Edited text.", "rule_id": "N3.9"}, format="json")
    assert response.status_code == 200 and response.json()["rule_id"] == "N3.1"
    assert AasmRule.objects.get(rule_id="N3.1").text == "Edited text."
    assert not AasmRule.objects.filter(rule_id="N3.9").exists()
    api.force_authenticate(make_user(RESEARCHER))
    assert api.patch("/api/rules/N3.1/", {"text": "x"}, format="json").status_code == 403


def test_jobs_api_start_progress_cancel(make_user, imported, version):
    api = APIClient()
    api.force_authenticate(make_user(RESEARCHER))
    assert api.post("/api/inference-jobs/", {"model_version": version.name, "recording": imported.pk}).status_code == 403
    api.force_authenticate(make_user(CURATOR))
    response = api.post("/api/inference-jobs/", {"model_version": version.name, "recording": imported.pk}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "pending" and body["progress"]["total"] == 120 and body["progress"]["done"] == 0
    assert api.post("/api/inference-jobs/", {"model_version": version.name}, format="json").status_code == 400
    cancelled = api.post(f"/api/inference-jobs/{body['id']}/cancel/").json()
    assert cancelled["state"] == "cancelled"


def test_epoch_page_shows_predictions_to_allowed_roles(role_client, imported, version):
    jobs.start_job(version, recording=imported, chunk_size=200, inline=True)
    url = reverse("datasets:epoch", args=[imported.pk, 30])
    html = role_client(RESEARCHER).get(url).content.decode()
    assert 'id="predictions"' in html and "sleepvlm-vllm" in html
    assert AasmRule.objects.get(rule_id="N2.1").text in html
    rater = role_client(RATER)
    assign_rater(imported, f"{RATER}-user")
    assert (response := rater.get(url)).status_code == 200
    rater_html = response.content.decode()
    assert 'id="predictions"' not in rater_html and "sleepvlm-vllm" not in rater_html
    assert rater.get(f"/api/predictions/?recording={imported.pk}").status_code == 403


def test_evaluation_page_api_and_csv(role_client, imported, version):
    jobs.start_job(version, recording=imported, inline=True)
    client = role_client(RESEARCHER)
    query = f"?cohort={imported.cohort_id}&model={version.name}&reference=hypnogram"
    html = client.get(reverse("inference:evaluation") + query).content.decode()
    assert 'id="evaluation-table"' in html and "svg" in html
    data = client.get(f"/api/evaluation/?cohort={imported.cohort.name}&model={version.name}").json()
    report = data["models"][0]
    n2_share = imported.epochs.filter(stage="N2").exclude(index__in=[0, 119]).count() / report["pooled"]["n"]
    assert report["pooled"]["accuracy"] == pytest.approx(n2_share)  # the fake always answers N2
    csv_text = client.get(f"/api/evaluation/?cohort={imported.cohort.name}&model={version.name}&output=csv").content.decode()
    assert csv_text.splitlines()[0].startswith("scope,subject,model,n,accuracy")
    assert json.loads(json.dumps(data))["common_epochs"] == report["pooled"]["n"]


def test_cli_runs_inline_and_evaluates(imported, version, capsys):
    from django.core.management import CommandError, call_command

    call_command("run_inference", "--model", version.name, "--recording", str(imported.pk), "--inline", verbosity=0)
    assert Prediction.objects.filter(model_version=version).count() == 120
    call_command("evaluate", "--model", version.name, "--cohort", imported.cohort.name)
    table = capsys.readouterr().out
    assert "reference hypnogram · 118 common epochs" in table and version.name in table
    with pytest.raises(CommandError, match="no model version named 'nope'"):
        call_command("run_inference", "--model", "nope", "--cohort", imported.cohort.name)
    with pytest.raises(CommandError, match="no cohort named 'Nowhere'"):
        call_command("evaluate", "--model", version.name, "--cohort", "Nowhere")
