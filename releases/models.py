"""Releases: versioned MASS-EX-compatible dataset exports, built by the core job engine.

A release is a job row (core.models.BackgroundJob): PENDING until built, SUCCEEDED once every file is in
storage (then immutable), FAILED or CANCELLED with no file left behind. A new version is a new release
with a changelog against the previous built version of the same name.
"""
import re

from django.core.exceptions import ValidationError
from django.db import models

from annotation.models import ScoringCampaign
from core.models import BackgroundJob, StorageNameField
from datasets.models import Cohort
from inference.models import ModelVersion
from ratings.models import RatingCampaign

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$")


def validate_semver(value: str) -> None:
    if not SEMVER.match(value or ""):
        raise ValidationError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)")


def version_key(value: str) -> tuple:
    """Sort key of a semantic version (pre-releases before their release)."""
    match = SEMVER.match(value)
    core = tuple(int(part) for part in match.groups())
    pre = value[match.end(3):]
    return core + ((0, pre) if pre else (1, ""))


class Release(BackgroundJob):
    task_name = "releases.build_release"

    REFERENCE, CONSENSUS, ADJUDICATED = "reference", "consensus", "adjudicated"
    STAGE_SOURCES = [(REFERENCE, "Reference hypnogram"), (CONSENSUS, "Consensus of the scoring campaigns"),
                     (ADJUDICATED, "Reference, with the scoring campaigns' adjudications")]

    name = models.SlugField(max_length=100, help_text="dataset name, e.g. mass-ex")
    version = models.CharField(max_length=40, validators=[validate_semver])
    description = models.TextField(blank=True)
    license_id = models.CharField(max_length=64, default="cc-by-nc-4.0", help_text="SPDX-style id for the dataset card")
    license_text = models.TextField(blank=True)
    cohorts = models.ManyToManyField(Cohort, related_name="releases")
    scoring_campaigns = models.ManyToManyField(ScoringCampaign, related_name="releases", blank=True)
    rating_campaigns = models.ManyToManyField(RatingCampaign, related_name="releases", blank=True)
    model_versions = models.ManyToManyField(ModelVersion, related_name="releases", blank=True)
    stage_source = models.CharField(max_length=16, choices=STAGE_SOURCES, default=REFERENCE)
    include_images = models.BooleanField(default=False, help_text="model images as images/<subject>/<N>_<Stage>.png")
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    epochs = models.PositiveIntegerField(default=0, help_text="epochs exported (coarse)")
    changelog = models.JSONField(default=dict, blank=True, help_text="counts against the previous release")

    class Meta(BackgroundJob.Meta):
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="one_release_per_version")]
        permissions = [("download_release", "Can download release files")]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def folder(self) -> str:
        """The release's top folder inside its archives."""
        return f"{self.name}-{self.version}"


class ReleaseFile(models.Model):
    """One file of a built release in storage: its path in the release folder (or an archive), size, SHA-256."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=300)
    storage_name = StorageNameField(max_length=500)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    archive = models.BooleanField(default=False)

    class Meta:
        ordering = ["release", "archive", "path"]
        constraints = [models.UniqueConstraint(fields=["release", "path"], name="one_release_file_per_path")]
