"""AASM rule catalog, model versions, inference jobs and predictions."""
import hashlib
import json
from functools import cached_property

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from core.models import BackgroundJob
from datasets.constants import STAGE_CHOICES
from datasets.models import Cohort, Epoch, Recording
from inference.services.backends.allowlist import check_settings


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
    """A backend and its settings. Frozen once it has predictions: name and description stay editable,
    a change of backend or settings makes a new version (API new-version action, admin "Save as new")."""

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
        """Where its chunks run: only the transformers backend needs a GPU worker; the OpenAI-compatible one
        waits on a remote server, so it runs beside the baseline on the cpu queue."""
        return "gpu" if self.backend == self.TRANSFORMERS else "cpu"

    @property
    def settings_hash(self) -> str:
        """SHA-256 of the backend and its settings as stored (canonical JSON)."""
        payload = json.dumps({"backend": self.backend, "settings": self.settings}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    @cached_property
    def prediction_count(self) -> int:
        """Predictions of this version (querysets may annotate it instead)."""
        return self.predictions.count() if self.pk else 0

    @property
    def frozen(self) -> bool:
        return self.prediction_count > 0

    CONFIDENCE_SOURCES = {BASELINE: "classifier probability", TRANSFORMERS: "stage-token logits",
                          OPENAI: "stage-token logprobs"}
    NO_CONFIDENCE = "disagreement between model versions"

    @property
    def confidence_source(self) -> str:
        """Where the predictions' stage confidence comes from: the backend's probability, or, when none of its
        parsed predictions has one (a server that sends no logprobs), disagreement between model versions."""
        parsed = self.predictions.filter(stage__gt="") if self.pk else None
        if parsed is not None and parsed.exists() and not parsed.filter(probability__isnull=False).exists():
            return self.NO_CONFIDENCE
        return self.CONFIDENCE_SOURCES[self.backend]

    def check_change(self, backend: str, settings) -> None:
        """Raise ValidationError unless this version may take `backend` and `settings`: within the operator's
        allowlists, and the stored ones where the version is frozen."""
        try:
            check_settings(backend, settings)
        except ValueError as exc:
            raise ValidationError({"settings": str(exc)}, code="not_allowed") from None
        self.check_not_frozen(backend, settings)

    def check_not_frozen(self, backend: str, settings) -> None:
        """Raise ValidationError where this version has predictions and `backend` or `settings` differ from storage."""
        stored = ModelVersion.objects.filter(pk=self.pk).values_list("backend", "settings").first() if self.pk else None
        if stored is None or stored == (backend, settings) or not (count := self.predictions.count()):
            return
        raise ValidationError(
            f"model version {self.name!r} is frozen: it has {count} prediction{'s' if count != 1 else ''} made with "
            f"its backend and settings, so these cannot change (name and description can). Make a new version with "
            f"the changes: POST /api/model-versions/{self.pk}/new-version/ with a new name, or \"Save as new\" in "
            f"the admin.",
            code="frozen",
        )

    def clean(self):
        self.check_change(self.backend, self.settings)

    def save(self, *args, **kwargs):
        """Refuses a change of backend or settings on a frozen version, however it is saved."""
        self.check_not_frozen(self.backend, self.settings)
        super().save(*args, **kwargs)


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


class PredictionQuerySet(models.QuerySet):
    def made_from_current_signals(self):
        """Outputs made from the signals their recording holds now (not before a reprepare)."""
        return self.filter(Q(preparation_profile="") | Q(preparation_profile=F("epoch__recording__preparation_profile")))


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
    unknown_rule_ids = models.JSONField(
        default=list, blank=True, help_text="ids the output cited that the rule catalog does not know (count in rule IoU)"
    )
    rationale = models.TextField(blank=True)
    probability = models.FloatField(null=True, blank=True)
    origin_note = models.CharField(
        max_length=200, blank=True,
        help_text="where the stage came from beyond the model version (the baseline's classifier and channels); "
                  "curators and researchers only, never in the rationale")
    rule_conflict = models.CharField(
        max_length=20, blank=True, help_text="the stages the cited rules point to when they exclude the stage")
    evidence = models.JSONField(
        default=dict, blank=True,
        help_text="each cited rule checked against the epoch's measured signal, with a summary "
                  "(inference.services.evidence); empty until checked")
    raw_output = models.TextField(blank=True, help_text="the model's text, always kept")
    detail = models.TextField(blank=True, help_text="parse error, repair applied, or why the epoch was skipped")
    version_hash = models.CharField(max_length=64)
    preparation_profile = models.CharField(
        max_length=32, blank=True, help_text="the recording's preparation profile (signals and images) the output was made from"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PredictionQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["epoch", "model_version"], name="one_prediction_per_epoch_and_version")]
        indexes = [models.Index(fields=["model_version", "status"])]

    def __str__(self) -> str:
        return f"{self.model_version} · {self.epoch}: {self.stage or self.status}"

    @property
    def predates_preparation(self) -> bool:
        """Made from signals and images the recording has since been prepared again from (reprepare); an
        output written without a profile (made outside the jobs) counts as current."""
        return bool(self.preparation_profile) and self.preparation_profile != self.epoch.recording.preparation_profile
