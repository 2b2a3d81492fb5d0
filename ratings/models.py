"""Rating campaigns: experts rate rationales (of model versions, or of experts) on a 1-5 rubric, blinded.

Items are frozen copies of what is rated (stage, rule ids, rationale), with their origin kept on the
server only: raters never learn the model version nor whether a rationale came from a model or an
expert. Reservations and ratings follow the shared work queue (core.services.work_queue): at most
`overlap` distinct raters per item, append-only ratings with idempotent saves and 412 on stale edits.
"""
from django.conf import settings
from django.db import models

from core.models import QueueReservation, RevisedAnswer
from core.services import statistics_cache
from datasets.constants import MODEL_VIEW, SIGNAL_VIEW_CHOICES, STAGE_CHOICES, STAGES
from datasets.models import Cohort, Epoch, Recording
from inference.models import ModelVersion, Prediction

SCORED_STAGES = [c for c in STAGE_CHOICES if c[0] in STAGES]


class RatingCampaign(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    cohorts = models.ManyToManyField(Cohort, related_name="rating_campaigns")
    model_versions = models.ManyToManyField(ModelVersion, related_name="rating_campaigns", blank=True)
    expert_sources = models.JSONField(default=list, blank=True, help_text="expert rationale sources rated too")
    sample_size = models.PositiveIntegerField(null=True, blank=True, help_text="items to draw; empty: every candidate")
    sample_seed = models.PositiveIntegerField(default=0)
    overlap = models.PositiveSmallIntegerField(default=2, help_text="distinct raters per item (k)")
    raters = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="rating_campaigns")
    reservation_timeout_s = models.PositiveIntegerField(default=900)
    fast_floor_s = models.FloatField(default=5.0, help_text="ratings given faster than this are flagged (not blocked)")
    signal_view = models.CharField(max_length=8, choices=SIGNAL_VIEW_CHOICES, default=MODEL_VIEW,
                                   help_text="the signal view raters start with (the model's, to judge its rationale)")
    signal_view_switchable = models.BooleanField(default=True, help_text="raters may switch to the other signal view")
    key_dwell_ms = models.PositiveIntegerField(default=300, help_text="score keys count once an item has been shown this long")
    show_evidence = models.BooleanField(
        default=False, help_text="show raters the evidence check of each cited rule beside the rationale (every origin)")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("rate_rationales", "Can rate rationales in assigned campaigns")]

    def __str__(self) -> str:
        return self.name

    @property
    def rubric(self) -> "Rubric":
        return self.rubrics.order_by("-version").first()


class Rubric(models.Model):
    """One version of a campaign's rubric: dimensions with a question and five anchors each.

    Editable (a new version) until the campaign's first rating, frozen after; every rating points at
    the version it was given under."""

    campaign = models.ForeignKey(RatingCampaign, on_delete=models.CASCADE, related_name="rubrics")
    version = models.PositiveIntegerField()
    dimensions = models.JSONField(help_text='[{"key", "title", "question", "anchors": [five texts, 1 to 5]}]')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "version"]
        constraints = [models.UniqueConstraint(fields=["campaign", "version"], name="one_rubric_per_version")]

    @property
    def keys(self) -> list[str]:
        return [d["key"] for d in self.dimensions]


class RatingItem(models.Model):
    """One rationale to rate: a frozen copy of the stage, rules and rationale, with its (hidden) origin."""

    MODEL, EXPERT = "model", "expert"
    ORIGIN_CHOICES = [(MODEL, "Model prediction"), (EXPERT, "Expert rationale")]

    campaign = models.ForeignKey(RatingCampaign, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField(help_text="a random permutation: reveals nothing of the origin")
    epoch = models.ForeignKey(Epoch, on_delete=models.CASCADE, related_name="+")
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="+")
    origin = models.CharField(max_length=8, choices=ORIGIN_CHOICES)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    prediction = models.ForeignKey(Prediction, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=100, help_text="model version hash, or the expert source")
    stage = models.CharField(max_length=8, choices=SCORED_STAGES)
    rule_ids = models.JSONField(default=list, blank=True)
    rationale = models.TextField()
    reference_stage = models.CharField(max_length=8, choices=STAGE_CHOICES)
    correct = models.BooleanField(help_text="stage equals the reference stage")
    evidence = models.JSONField(default=dict, blank=True,
                                help_text="the cited rules checked against the epoch's signal (inference.services.evidence)")
    complete = models.BooleanField(default=False, help_text="all `overlap` slots rated for good (the queue skips it)")

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [models.UniqueConstraint(fields=["campaign", "position"], name="one_rating_item_per_position")]
        indexes = [models.Index(fields=["campaign", "complete", "position"], name="open_rating_items_in_order")]


class RatingReservation(QueueReservation):
    item = models.ForeignKey(RatingItem, on_delete=models.CASCADE, related_name="reservations")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "slot"], name="one_rater_per_rating_slot"),
            models.UniqueConstraint(fields=["item", "rater"], name="one_rating_slot_per_rater"),
        ]


class Rating(RevisedAnswer):
    """One version of a rater's rating of an item: a 1-5 score per rubric dimension, and an optional
    expert note with a corrected stage and rule ids (append-only, core.models.RevisedAnswer)."""

    item = models.ForeignKey(RatingItem, on_delete=models.CASCADE, related_name="ratings")
    rubric = models.ForeignKey(Rubric, on_delete=models.PROTECT, related_name="ratings")
    scores = models.JSONField(help_text="dimension key -> 1..5")
    note = models.TextField(blank=True)
    corrected_stage = models.CharField(max_length=8, choices=SCORED_STAGES, blank=True)
    corrected_rule_ids = models.JSONField(default=list, blank=True)
    fast = models.BooleanField(default=False, help_text="given faster than the campaign's floor")

    hidden_from_rater = ("rescore", "fast")

    class Meta:
        ordering = ["item", "rater", "revision"]
        constraints = [
            models.UniqueConstraint(fields=["item", "rater", "rescore", "revision"], name="one_rating_per_revision"),
        ]


class StatisticsJob(statistics_cache.StatisticsJob):
    """A computation of a big campaign's statistics (ratings.services.statistics), kept as its cache."""

    task_name = "ratings.statistics"
    campaign = models.ForeignKey(RatingCampaign, on_delete=models.CASCADE, related_name="statistics_jobs")
