"""Cohorts, recordings, their 30-s epochs, epoch images and import jobs."""
from django.conf import settings
from django.db import models

from core.models import BackgroundJob, StorageNameField
from datasets.constants import STAGE_CHOICES, UNSCORED


class Cohort(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Recording(models.Model):
    """One imported PSG night, prepared as in rendering.md (filtered, 100 Hz, µV)."""

    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, related_name="recordings")
    name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the PSG file")
    source_filename = models.CharField(max_length=255)
    file_format = models.CharField(max_length=8)  # EDF, EDF+, BDF
    start_time = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField()
    mains_hz = models.FloatField()
    preparation_profile = models.CharField(
        max_length=32, default="sleepvlm-v1",
        help_text="signal preparation profile the signals and images were made with (datasets/services/signals.py)",
    )
    channels_found = models.JSONField(default=list, help_text="[{name, sfreq, unit}] as in the file")
    channel_plan = models.JSONField(default=dict, help_text="derivation -> {positive, negative, kind, note}")
    derivations = models.JSONField(default=list, help_text="derivations present, in band order")
    substitutions = models.JSONField(default=list)
    processing_notes = models.JSONField(default=list, help_text="filters, resampling, trimming")
    hypnogram_format = models.CharField(max_length=32, blank=True)
    hypnogram_source = models.CharField(max_length=255, blank=True)
    hypnogram_notes = models.JSONField(default=list)
    massex_contiguous = models.BooleanField(
        default=False, help_text="a MASS-EX CSV was read as the hypnogram, its epochs stated contiguous at import"
    )
    epoch_offset_s = models.FloatField(default=0.0, help_text="onset of epoch 0 from recording start")
    signal_file = StorageNameField(max_length=255, help_text="storage name of the prepared signals (.npy)")
    epoch_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cohort__name", "name"]
        permissions = [
            ("view_reference_stage", "Can see reference (hypnogram) stages and rationales"),
            ("view_recording_provenance", "Can see source file names, hashes and hypnogram sources"),
        ]

    def __str__(self) -> str:
        return f"{self.cohort.name}/{self.name}"


class Epoch(models.Model):
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="epochs")
    index = models.PositiveIntegerField(help_text="0-based index in the recording")
    onset_s = models.FloatField(help_text="seconds from recording start")
    stage = models.CharField(max_length=8, choices=STAGE_CHOICES, default=UNSCORED, help_text="reference stage")
    massex_n = models.PositiveIntegerField(
        null=True, blank=True, help_text="MASS-EX N: rank among the recording's scored epochs; none when unscored"
    )
    reference_rules = models.JSONField(default=list, blank=True)
    reference_rationale = models.TextField(blank=True)

    class Meta:
        ordering = ["recording", "index"]
        constraints = [models.UniqueConstraint(fields=["recording", "index"], name="unique_epoch_index")]

    def __str__(self) -> str:
        return f"{self.recording} #{self.index}"


class EpochImage(models.Model):
    """A rendered PNG, stored under its content hash; viewer variants are rendered on demand."""

    MODEL = "model"
    VIEWER = "viewer"
    KIND_CHOICES = [(MODEL, "SleepVLM model image"), (VIEWER, "Expert viewer image")]

    epoch = models.ForeignKey(Epoch, on_delete=models.CASCADE, related_name="images")
    kind = models.CharField(max_length=8, choices=KIND_CHOICES)
    variant = models.CharField(max_length=32, blank=True, help_text="viewer options, e.g. 'context,guides'")
    sha256 = models.CharField(max_length=64, db_index=True)
    storage_name = StorageNameField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["epoch", "kind", "variant"], name="unique_epoch_image")]


class ImportJob(BackgroundJob):
    """One requested import of a PSG file (upload, API or CLI), run on the core job engine."""

    task_name = "datasets.run_import"

    cohort_name = models.CharField(max_length=100)
    source_name = models.CharField(max_length=255, help_text="file name as given by the user")
    source_path = StorageNameField(max_length=500, blank=True, help_text="local path or storage name of the PSG file")
    source_in_storage = models.BooleanField(default=False, help_text="uploaded: delete from storage when done")
    hypnogram_name = models.CharField(max_length=255, blank=True)
    hypnogram_path = StorageNameField(max_length=500, blank=True)
    hypnogram_format = models.CharField(max_length=32, blank=True)
    channel_map = models.JSONField(null=True, blank=True)
    mains_hz = models.FloatField(null=True, blank=True)
    trim_to_hypnogram = models.BooleanField(default=False)
    massex_name = models.CharField(max_length=255, blank=True)
    massex_path = StorageNameField(max_length=500, blank=True, help_text="MASS-EX CSV read onto the recording")
    massex_contiguous = models.BooleanField(default=False)
    recording = models.ForeignKey(Recording, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports")

    class Meta(BackgroundJob.Meta):
        pass

    def __str__(self) -> str:
        return f"import #{self.pk} {self.source_name} ({self.state})"
