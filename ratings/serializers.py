"""Serializers of the ratings API. Rater-facing ones never carry an item's origin (model version, expert
source, prediction) nor the reference stage; the views choose the serializer by the requester's role."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.services.work_queue import MAX_KEY_DWELL_MS
from datasets.constants import MAX_RATIONALE_CHARS, MODEL_VIEW, SIGNAL_VIEW_CHOICES
from ratings.models import Rating, RatingCampaign, RatingItem


@extend_schema_field(OpenApiTypes.OBJECT)
class RubricField(serializers.Field):
    def to_representation(self, rubric):
        return {"version": rubric.version, "dimensions": rubric.dimensions} if rubric else None


class RatingCampaignSerializer(serializers.ModelSerializer):
    """Curators and researchers: the whole campaign."""

    cohorts = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    model_versions = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    raters = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    rubric = RubricField(read_only=True)
    item_count = serializers.SerializerMethodField()

    class Meta:
        model = RatingCampaign
        fields = ["id", "name", "description", "cohorts", "model_versions", "expert_sources", "sample_size",
                  "sample_seed", "overlap", "raters", "reservation_timeout_s", "fast_floor_s", "key_dwell_ms", "signal_view",
                  "signal_view_switchable", "show_evidence", "rubric",
                  "item_count", "created_at"]

    def get_item_count(self, campaign) -> int:
        return campaign.items.count()


class RaterRatingCampaignSerializer(serializers.ModelSerializer):
    """A rater: the campaign's name, rubric and their own progress; nothing of the items' origins."""

    rubric = RubricField(read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = RatingCampaign
        fields = ["id", "name", "description", "overlap", "rubric", "progress"]

    def get_progress(self, campaign) -> dict:
        from ratings.services.queue import RATING

        return RATING.progress(campaign, self.context["request"].user)


class RatingCampaignCreateSerializer(serializers.Serializer):
    """POST /api/ratings/campaigns/: the fields of ratings.services.campaigns.create_rating_campaign."""

    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    cohorts = serializers.ListField(child=serializers.CharField())
    model_versions = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    expert_sources = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    sample_size = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)
    seed = serializers.IntegerField(required=False, min_value=0, default=0)
    overlap = serializers.IntegerField(required=False, min_value=1, default=2)
    raters = serializers.ListField(child=serializers.CharField())
    reservation_timeout_s = serializers.IntegerField(required=False, min_value=10, default=900)
    fast_floor_s = serializers.FloatField(required=False, min_value=0, default=5.0)
    key_dwell_ms = serializers.IntegerField(required=False, default=300, min_value=0, max_value=MAX_KEY_DWELL_MS)
    signal_view = serializers.ChoiceField(choices=SIGNAL_VIEW_CHOICES, default=MODEL_VIEW)
    signal_view_switchable = serializers.BooleanField(required=False, default=True)
    show_evidence = serializers.BooleanField(required=False, default=False)
    item_list = serializers.CharField(required=False, allow_blank=True, default="",
                                      help_text="CSV text with columns recording, epoch (and optionally source)")
    rubric = serializers.JSONField(required=False, default=None, help_text="Markdown text or a list of dimensions")


class RatingCampaignEditSerializer(serializers.Serializer):
    """PATCH /api/ratings/campaigns/{id}/: the settings ratings.services.campaigns.update_rating_campaign changes
    (the rubric has its own endpoint and versions)."""

    description = serializers.CharField(required=False, allow_blank=True)
    overlap = serializers.IntegerField(required=False, min_value=1)
    raters = serializers.ListField(child=serializers.CharField(), required=False)
    reservation_timeout_s = serializers.IntegerField(required=False, min_value=10)
    fast_floor_s = serializers.FloatField(required=False, min_value=0)
    key_dwell_ms = serializers.IntegerField(required=False, min_value=0, max_value=MAX_KEY_DWELL_MS)
    signal_view = serializers.ChoiceField(choices=SIGNAL_VIEW_CHOICES, required=False)
    signal_view_switchable = serializers.BooleanField(required=False)
    show_evidence = serializers.BooleanField(required=False)


class RatingInputSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    scores = serializers.DictField(child=serializers.IntegerField())
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_RATIONALE_CHARS)
    corrected_stage = serializers.CharField(required=False, allow_blank=True, default="", max_length=16)
    corrected_rule_ids = serializers.ListField(child=serializers.CharField(max_length=32), required=False, default=list,
                                              max_length=50)
    seconds_spent = serializers.FloatField(required=False, allow_null=True, default=None)
    client_id = serializers.UUIDField()
    base_revision = serializers.IntegerField(required=False, allow_null=True, default=None)
    rubric_version = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1,
        help_text="the rubric version the item was served with; a save under another version than the one in force "
                  "is refused with 409")


class OwnRatingSerializer(serializers.ModelSerializer):
    """A rater's own rating (never whether it was a re-rating)."""

    rubric_version = serializers.IntegerField(source="rubric.version", read_only=True)

    class Meta:
        model = Rating
        fields = ["id", "item", "scores", "note", "corrected_stage", "corrected_rule_ids", "seconds_spent", "fast",
                  "revision", "rubric_version", "created_at"]


class RatingSerializer(OwnRatingSerializer):
    """Curators and researchers: every rater's ratings, with who and the item's origin."""

    rater_username = serializers.CharField(source="rater.username", read_only=True)
    origin = serializers.CharField(source="item.origin", read_only=True)
    model_version = serializers.SlugRelatedField(source="item.model_version", slug_field="name", read_only=True,
                                                 allow_null=True)

    class Meta(OwnRatingSerializer.Meta):
        fields = OwnRatingSerializer.Meta.fields + ["rater", "rater_username", "rescore", "origin", "model_version"]


class RatingItemSerializer(serializers.ModelSerializer):
    """Curators and researchers: an item with its origin."""

    model_version = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = RatingItem
        fields = ["id", "position", "recording", "epoch", "origin", "model_version", "source", "stage", "rule_ids",
                  "rationale", "reference_stage", "correct", "evidence"]
