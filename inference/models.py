"""AASM rule catalog, model versions, inference jobs and predictions."""
from django.db import models

from datasets.constants import STAGE_CHOICES
from datasets.models import Cohort, Epoch, JobRecord, Recording


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


class InferenceJob(JobRecord):
    PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "pending", "running", "succeeded", "failed", "cancelled"
    STATE_CHOICES = [(s, s.capitalize()) for s in (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)]
    FINISHED = (SUCCEEDED, FAILED, CANCELLED)

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs")
    cohort = models.ForeignKey(Cohort, null=True, blank=True, on_delete=models.SET_NULL)
    recording = models.ForeignKey(Recording, null=True, blank=True, on_delete=models.SET_NULL)
    state = models.CharField(max_length=10, choices=STATE_CHOICES, default=PENDING)
    version_hash = models.CharField(max_length=64, blank=True)
    epochs_total = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        target = self.cohort or self.recording
        return f"{self.model_version} on {target} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED


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
