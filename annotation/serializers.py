"""Serializers of the annotation API. Rater-facing ones never carry reference stages, other raters'
labels or the re-score flag (the views choose the serializer by the requester's role)."""
from rest_framework import serializers

from annotation.models import Adjudication, Label, ScoringCampaign
from core.services.work_queue import MAX_KEY_DWELL_MS
from datasets.constants import CLINICAL_VIEW, MAX_RATIONALE_CHARS, SIGNAL_VIEW_CHOICES, STAGES


class CampaignSerializer(serializers.ModelSerializer):
    """Curators and researchers: the whole campaign."""

    raters = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    adjudicators = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    disagreement_model = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    review_model = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    recordings = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    item_count = serializers.SerializerMethodField()

    class Meta:
        model = ScoringCampaign
        fields = ["id", "name", "description", "recordings", "raters", "adjudicators", "sample", "sample_size",
                  "sample_seed", "disagreement_model", "overlap", "unit", "reservation_timeout_s", "show_reference",
                  "show_model_outputs", "show_other_labels", "rescore_share", "rationale_mode", "key_dwell_ms", "signal_view",
                  "signal_view_switchable", "review_model", "created_at",
                  "item_count"]

    def get_item_count(self, campaign) -> int:
        return campaign.items.count()


class RaterCampaignSerializer(serializers.ModelSerializer):
    """What a rater sees of a campaign: how it is scored and their own progress."""

    progress = serializers.SerializerMethodField()

    class Meta:
        model = ScoringCampaign
        fields = ["id", "name", "description", "unit", "overlap", "rationale_mode", "show_reference",
                  "show_model_outputs", "show_other_labels", "progress"]

    def get_progress(self, campaign) -> dict:
        from annotation.services.queue import progress

        return progress(campaign, self.context["request"].user)


class CampaignCreateSerializer(serializers.Serializer):
    """POST /api/scoring/campaigns/: the fields of annotation.services.campaigns.create_campaign."""

    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    recordings = serializers.ListField(child=serializers.IntegerField(), required=False, allow_null=True, default=None)
    cohort = serializers.CharField(required=False, allow_null=True, default=None)
    sample = serializers.ChoiceField(choices=[c[0] for c in ScoringCampaign.SAMPLE_CHOICES], default="all")
    sample_size = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    seed = serializers.IntegerField(required=False, default=0, min_value=0)
    disagreement_model = serializers.CharField(required=False, allow_null=True, default=None)
    overlap = serializers.IntegerField(required=False, default=2, min_value=1)
    raters = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    adjudicators = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    unit = serializers.ChoiceField(choices=[c[0] for c in ScoringCampaign.UNIT_CHOICES], default="epoch")
    reservation_timeout_s = serializers.IntegerField(required=False, default=900)
    show_reference = serializers.BooleanField(required=False, default=False)
    show_model_outputs = serializers.BooleanField(required=False, default=False)
    show_other_labels = serializers.BooleanField(required=False, default=False)
    rescore_share = serializers.FloatField(required=False, default=0.0)
    rationale_mode = serializers.BooleanField(required=False, default=False)
    key_dwell_ms = serializers.IntegerField(required=False, default=300, min_value=0, max_value=MAX_KEY_DWELL_MS)
    signal_view = serializers.ChoiceField(choices=SIGNAL_VIEW_CHOICES, default=CLINICAL_VIEW)
    signal_view_switchable = serializers.BooleanField(required=False, default=True)
    review_model = serializers.CharField(required=False, allow_null=True, default=None)


class CampaignEditSerializer(serializers.Serializer):
    """PATCH /api/scoring/campaigns/{id}/: the settings annotation.services.campaigns.update_campaign changes."""

    description = serializers.CharField(required=False, allow_blank=True)
    overlap = serializers.IntegerField(required=False, min_value=1)
    raters = serializers.ListField(child=serializers.CharField(), required=False)
    adjudicators = serializers.ListField(child=serializers.CharField(), required=False)
    reservation_timeout_s = serializers.IntegerField(required=False, min_value=10)
    show_reference = serializers.BooleanField(required=False)
    show_model_outputs = serializers.BooleanField(required=False)
    show_other_labels = serializers.BooleanField(required=False)
    rescore_share = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    key_dwell_ms = serializers.IntegerField(required=False, min_value=0, max_value=MAX_KEY_DWELL_MS)
    signal_view = serializers.ChoiceField(choices=SIGNAL_VIEW_CHOICES, required=False)
    signal_view_switchable = serializers.BooleanField(required=False)


class LabelInputSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    stage = serializers.CharField(max_length=16)
    uncertain = serializers.BooleanField(required=False, default=False)
    rule_ids = serializers.ListField(child=serializers.CharField(max_length=32), required=False, default=list,
                                     max_length=50)
    rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_RATIONALE_CHARS)
    seconds_spent = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0)
    client_id = serializers.UUIDField()
    base_revision = serializers.IntegerField(required=False, allow_null=True, default=None)

    def validate_stage(self, value):
        if value not in STAGES:
            raise serializers.ValidationError(f"unknown stage {value!r}; expected one of {', '.join(STAGES)}")
        return value


class OwnLabelSerializer(serializers.ModelSerializer):
    """A rater's own label (no re-score flag)."""

    class Meta:
        model = Label
        fields = ["id", "item", "stage", "uncertain", "rule_ids", "rationale", "seconds_spent", "revision",
                  "accepted", "created_at"]


class LabelSerializer(serializers.ModelSerializer):
    """Curators and researchers: any label, with its rater and pass."""

    recording = serializers.IntegerField(source="item.recording_id", read_only=True)
    epoch = serializers.IntegerField(source="item.epoch_id", read_only=True)

    class Meta:
        model = Label
        fields = ["id", "item", "recording", "epoch", "rater", "stage", "uncertain", "rule_ids", "rationale",
                  "seconds_spent", "revision", "rescore", "accepted", "created_at"]


class AdjudicationInputSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    stage = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)


class AdjudicationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Adjudication
        fields = ["id", "item", "stage", "reason", "adjudicator", "created_at"]
