"""Cohorts, recordings, their 30-s epochs, epoch images and import jobs."""
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from core.models import BackgroundJob, StorageNameField
from datasets.constants import STAGE_CHOICES, UNSCORED


SUBJECT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
SUBJECT_ID_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def random_date_shift_days() -> int:
    """A cohort's secret date offset (NSRR practice): between 1 and 10 years back, in whole days."""
    return -(365 + secrets.randbelow(9 * 365 + 3))


class Cohort(models.Model):
    SHIFT_DATES, DROP_DATES = "shift", "drop"
    DATE_POLICIES = [(SHIFT_DATES, "shift by the cohort's secret offset"), (DROP_DATES, "drop")]

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    subject_prefix = models.CharField(
        max_length=16, blank=True, validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_]{0,15}$",
                                                              "letters, digits and '_', starting with a letter or digit")],
        help_text="recordings are numbered <prefix>-<NNNN>; derived from the name at the first import when empty",
    )
    next_subject_number = models.PositiveIntegerField(default=1, help_text="the number the next numbered recording gets")
    date_policy = models.CharField(
        max_length=8, choices=DATE_POLICIES, default=SHIFT_DATES,
        help_text="the measurement start stored with a recording: shifted by the cohort's offset, or none",
    )
    date_shift_days = models.IntegerField(
        default=random_date_shift_days, editable=False,
        help_text="secret offset of the stored measurement dates, drawn once per cohort; never shown to raters",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Recording(models.Model):
    """One imported PSG night, prepared as in rendering.md (filtered, 100 Hz, µV)."""

    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, related_name="recordings")
    name = models.CharField(
        max_length=200, validators=[RegexValidator(rf"^{SUBJECT_ID_PATTERN}$", f"a subject id is {SUBJECT_ID_RULE}")],
        help_text="pseudonymous subject id, unique in the cohort (datasets/services/pseudonyms.py); a release's Subject",
    )
    sha256 = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the PSG file")
    file_format = models.CharField(max_length=8)  # EDF, EDF+, BDF
    start_time = models.DateTimeField(
        null=True, blank=True, help_text="measurement start shifted by the cohort's date offset, or none (cohort date policy)"
    )
    # Restricted identity fields: curators see them (view_recording_provenance), raters and releases never.
    source_filename = models.CharField(max_length=255, help_text="the PSG file's original name (restricted)")
    edf_patient = models.CharField(max_length=80, blank=True, help_text="the EDF header's patient field (restricted)")
    edf_recording = models.CharField(max_length=80, blank=True, help_text="the EDF header's recording field (restricted)")
    measured_at = models.DateTimeField(null=True, blank=True, help_text="the original measurement start (restricted)")
    subject_age = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="age at the measurement from the EDF+ birth date, above 89 stored as 90 (restricted)"
    )
    identity_findings = models.JSONField(
        default=list, blank=True,
        help_text="names and dates found in the file's annotations and hypnogram texts at import (restricted)",
    )
    original_file = StorageNameField(
        max_length=255, blank=True, help_text="storage name of the original PSG file, kept apart when KEEP_ORIGINAL_PSG "
                                              "is on; admins only"
    )
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
    native_signal_file = StorageNameField(
        max_length=255, blank=True, help_text="storage name of the unfiltered derivations at the file's own rate (int16 "
                                              ".npy) for the clinical view; empty for recordings imported before it"
    )
    native_sfreq = models.FloatField(null=True, blank=True, help_text="sampling rate of the native signals (Hz)")
    native_scale_uv = models.JSONField(default=list, blank=True, help_text="µV per int16 step, one per derivation")
    epoch_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cohort__name", "name"]
        constraints = [models.UniqueConstraint(fields=["cohort", "name"], name="unique_subject_in_cohort")]
        permissions = [
            ("view_reference_stage", "Can see reference (hypnogram) stages and rationales"),
            ("view_recording_provenance", "Can see source file names, hashes, hypnogram sources and EDF identity fields"),
            ("download_original_psg", "Can download the original PSG file when it is kept"),
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

    @property
    def number(self) -> int:
        """The epoch's number on every page: 1-based, as a technologist counts (URLs and the API keep `index`)."""
        return self.index + 1


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
    subject_id = models.CharField(max_length=64, blank=True,
                                  help_text="given by the curator; empty: the file name's MASS id or the cohort's next number")
    recording = models.ForeignKey(Recording, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports")
    dismissed_at = models.DateTimeField(null=True, blank=True,
                                        help_text="a curator dismissed the finished job: left out of the job lists")

    class Meta(BackgroundJob.Meta):
        pass

    def __str__(self) -> str:
        return f"import #{self.pk} {self.source_name} ({self.state})"
