"""Scoring campaigns: which epochs, who scores them, reservations of the fair queue, and the labels.

Invariants the queue keeps (annotation/services/queue.py):
- an item has at most `overlap` slots; a first label needs a live reservation of a slot and keeps
  that slot for good (`Reservation.label` set), so an item never gets more than `overlap` labels;
- a rater holds at most one slot of an item (re-scoring aside), so labels come from distinct raters;
- reservations expire after the campaign's timeout and are released.
Labels are an append-only history: each change is a new row pointing at the one it replaces; the
current label of (rater, item, pass) is the row nothing replaces.
"""
from django.conf import settings
from django.db import models

from core.models import QueueReservation, RevisedAnswer
from core.services import statistics_cache
from datasets.constants import CLINICAL_VIEW, SIGNAL_VIEW_CHOICES, STAGE_CHOICES, STAGES
from datasets.models import Epoch, Recording
from inference.models import ModelVersion


class ScoringCampaign(models.Model):
    RECORDING, EPOCH = "recording", "epoch"
    UNIT_CHOICES = [(RECORDING, "Whole recording, in order"), (EPOCH, "Single epochs with their context")]
    ALL, STRATIFIED, DISAGREEMENT = "all", "stratified", "disagreement"
    SAMPLE_CHOICES = [(ALL, "All epochs"), (STRATIFIED, "Stratified by reference stage"),
                      (DISAGREEMENT, "Epochs where a model disagrees with the reference")]

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    recordings = models.ManyToManyField(Recording, related_name="scoring_campaigns")
    raters = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="scoring_campaigns")
    adjudicators = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="adjudicated_campaigns", blank=True)
    sample = models.CharField(max_length=16, choices=SAMPLE_CHOICES, default=ALL)
    sample_size = models.PositiveIntegerField(null=True, blank=True, help_text="epochs to draw (stratified, disagreement)")
    sample_seed = models.PositiveIntegerField(default=0)
    disagreement_model = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT)
    overlap = models.PositiveSmallIntegerField(default=2, help_text="distinct raters per item (k)")
    unit = models.CharField(max_length=16, choices=UNIT_CHOICES, default=EPOCH)
    reservation_timeout_s = models.PositiveIntegerField(default=900)
    show_reference = models.BooleanField(default=False, help_text="raters see the reference stage")
    show_model_outputs = models.BooleanField(default=False, help_text="raters see model outputs")
    show_other_labels = models.BooleanField(default=False, help_text="raters see other raters' labels")
    rescore_share = models.FloatField(default=0.0, help_text="share of a rater's items served again, unannounced")
    rationale_mode = models.BooleanField(default=False, help_text="raters also pick rule ids and write a rationale")
    signal_view = models.CharField(max_length=8, choices=SIGNAL_VIEW_CHOICES, default=CLINICAL_VIEW,
                                   help_text="the signal view raters start with")
    signal_view_switchable = models.BooleanField(default=True, help_text="raters may switch to the other signal view")
    key_dwell_ms = models.PositiveIntegerField(default=300, help_text="stage keys count once an epoch has been shown this long")
    review_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="review_campaigns",
        help_text="review mode: raters accept or correct this model's stage, least confident epochs first")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("score_epochs", "Can score epochs in assigned campaigns"),
                       ("adjudicate", "Can resolve disagreements of a campaign")]

    def __str__(self) -> str:
        return self.name

    @property
    def shows_night_position(self) -> bool:
        """Whole-night campaigns show where an epoch lies in the night; blinded single-epoch ones do not (a
        time-of-night cue)."""
        return self.unit == self.RECORDING or self.show_reference


class CampaignItem(models.Model):
    """One epoch to score in a campaign; `position` orders the queue (time order within a recording)."""

    campaign = models.ForeignKey(ScoringCampaign, on_delete=models.CASCADE, related_name="items")
    epoch = models.ForeignKey(Epoch, on_delete=models.CASCADE, related_name="campaign_items")
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    complete = models.BooleanField(default=False, help_text="all `overlap` slots labelled for good (the queue skips it)")

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [models.UniqueConstraint(fields=["campaign", "epoch"], name="one_item_per_epoch")]
        indexes = [models.Index(fields=["campaign", "position"]),
                   models.Index(fields=["campaign", "complete", "position"], name="open_items_in_order")]


class Reservation(QueueReservation):
    """A rater's hold on one of a scoring item's `overlap` slots (core.models.QueueReservation)."""

    item = models.ForeignKey(CampaignItem, on_delete=models.CASCADE, related_name="reservations")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "slot"], name="one_holder_per_slot"),
            models.UniqueConstraint(fields=["item", "rater"], name="one_slot_per_rater"),
        ]


class RecordingReservation(models.Model):
    """Whole-recording unit: a rater's hold on one overlap slot of a recording of the campaign."""

    campaign = models.ForeignKey(ScoringCampaign, on_delete=models.CASCADE, related_name="recording_reservations")
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="+")
    slot = models.PositiveSmallIntegerField()
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "recording", "slot"], name="one_holder_per_recording_slot"),
            models.UniqueConstraint(fields=["campaign", "recording", "rater"], name="one_recording_slot_per_rater"),
        ]


class Label(RevisedAnswer):
    """One version of a rater's stage label of an item (append-only, core.models.RevisedAnswer)."""

    item = models.ForeignKey(CampaignItem, on_delete=models.CASCADE, related_name="labels")
    stage = models.CharField(max_length=8, choices=[c for c in STAGE_CHOICES if c[0] in STAGES])
    uncertain = models.BooleanField(default=False)
    rule_ids = models.JSONField(default=list, blank=True)
    rationale = models.TextField(blank=True)
    accepted = models.BooleanField(null=True, blank=True,
                                   help_text="review mode: the model's proposal accepted (true) or corrected (false)")

    class Meta:
        ordering = ["item", "rater", "revision"]
        constraints = [
            models.UniqueConstraint(fields=["item", "rater", "rescore", "revision"], name="one_label_per_revision"),
        ]


class Adjudication(models.Model):
    """A resolved disagreement: the stage that stands for the item's consensus, and why (append-only)."""

    item = models.ForeignKey(CampaignItem, on_delete=models.CASCADE, related_name="adjudications")
    stage = models.CharField(max_length=8, choices=[c for c in STAGE_CHOICES if c[0] in STAGES])
    reason = models.TextField()
    adjudicator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    audit_verified = True  # every row has its change record (core.services.audit.verify)

    class Meta:
        ordering = ["item", "-created_at"]


class StatisticsJob(statistics_cache.StatisticsJob):
    """A computation of a big campaign's dashboard statistics (annotation.services.dashboard), kept as its cache."""

    task_name = "annotation.statistics"
    campaign = models.ForeignKey(ScoringCampaign, on_delete=models.CASCADE, related_name="statistics_jobs")
