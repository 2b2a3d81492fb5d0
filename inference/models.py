"""AASM rule catalog, model versions, inference jobs and predictions."""
import hashlib
import json

from django.db import models

from core.models import BackgroundJob
from datasets.constants import STAGE_CHOICES
from datasets.models import Cohort, Epoch, Recording


class AasmRule(models.Model):
    """One of the 15 operationalised AASM rules (rules.md): ids fixed, texts editable by curators."""

    rule_id = models.CharField(max_length=8, primary_key=True)
    stage = models.CharField(max_length=8)
    title = models.CharField(max_length=120)
    text = models.TextField()
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.title}"


class ModelVersion(models.Model):
    TRANSFORMERS, OPENAI, BASELINE = "transformers", "openai", "baseline"
    BACKEND_CHOICES = [
        (TRANSFORMERS, "Local checkpoint (transformers, GPU)"),
        (OPENAI, "OpenAI-compatible server (e.g. vLLM)"),
        (BASELINE, "CPU baseline (YASA + measured rationale)"),
    ]

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(max_length=16, choices=BACKEND_CHOICES)
    settings = models.JSONField(default=dict, blank=True, help_text="backend settings, see inference/services/backends")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return "cpu" if self.backend == self.BASELINE else "gpu"

    @property
    def settings_hash(self) -> str:
        """SHA-256 of the backend and its settings as stored (canonical JSON)."""
        payload = json.dumps({"backend": self.backend, "settings": self.settings}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


class InferenceJob(BackgroundJob):
    """A run of one model version over a cohort or a recording, in chunks on the gpu/cpu queue.

    done counts the predictions this job wrote; failed and skipped count parse failures and epochs
    without three-image context among them. The job ends when every target epoch has a prediction
    of the model version, whichever job wrote it.
    """

    task_name = "inference.resume_job"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs")
    cohort = models.ForeignKey(Cohort, null=True, blank=True, on_delete=models.SET_NULL)
    recording = models.ForeignKey(Recording, null=True, blank=True, on_delete=models.SET_NULL)
    version_hash = models.CharField(max_length=64, blank=True)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="parse or request failures among the predictions written")
    skipped = models.PositiveIntegerField(default=0, help_text="epochs skipped for lack of three-image context")

    class Meta(BackgroundJob.Meta):
        pass

    def __str__(self) -> str:
        target = self.cohort or self.recording
        return f"{self.model_version} on {target} ({self.state})"


class Prediction(models.Model):
    """One model output for one epoch: at most one per (epoch, model version)."""

    OK, REPAIRED, FAILED, SKIPPED = "ok", "repaired", "failed", "skipped"
    STATUS_CHOICES = [(OK, "Parsed"), (REPAIRED, "Parsed after repair"), (FAILED, "Parse failure"), (SKIPPED, "Skipped")]

    epoch = models.ForeignKey(Epoch, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    job = models.ForeignKey(InferenceJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="predictions")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES)
    stage = models.CharField(max_length=8, choices=STAGE_CHOICES, blank=True, help_text="empty unless parsed")
    rule_ids = models.JSONField(default=list, blank=True)
    rationale = models.TextField(blank=True)
    probability = models.FloatField(null=True, blank=True)
    raw_output = models.TextField(blank=True, help_text="the model's text, always kept")
    detail = models.TextField(blank=True, help_text="parse error, repair applied, or why the epoch was skipped")
    version_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["epoch", "model_version"], name="one_prediction_per_epoch_and_version")]
        indexes = [models.Index(fields=["model_version", "status"])]

    def __str__(self) -> str:
        return f"{self.model_version} · {self.epoch}: {self.stage or self.status}"
