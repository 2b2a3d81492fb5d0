"""DRF serializers of the inference app."""
from rest_framework import serializers

from core.serializers import BackgroundJobSerializer
from datasets.constants import STAGE_CHOICES
from datasets.models import Cohort, Recording
from inference.models import AasmRule, InferenceJob, ModelVersion, Prediction
from inference.services import jobs


class AasmRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = AasmRule
        fields = ["rule_id", "stage", "title", "text"]
        read_only_fields = ["rule_id", "stage"]  # ids are fixed; curators edit the texts


class ModelVersionSerializer(serializers.ModelSerializer):
    """Settings within the operator's allowlists; a frozen version keeps its backend and settings."""

    settings_hash = serializers.CharField(read_only=True)
    frozen = serializers.BooleanField(read_only=True)
    prediction_count = serializers.IntegerField(read_only=True)
    confidence_source = serializers.CharField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "backend", "settings", "description", "settings_hash", "frozen", "prediction_count",
                  "confidence_source", "created_at"]

    def validate(self, data):
        version = self.instance or ModelVersion()
        version.check_change(data.get("backend", version.backend), data.get("settings", version.settings))
        return data


class NewVersionSerializer(serializers.Serializer):
    """What a new version changes from the one it copies."""

    name = serializers.CharField(max_length=100)
    settings = serializers.JSONField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class InferenceJobSerializer(BackgroundJobSerializer):
    model_version = serializers.SlugRelatedField(slug_field="name", queryset=ModelVersion.objects.all())
    cohort = serializers.SlugRelatedField(slug_field="name", queryset=Cohort.objects.all(), required=False, allow_null=True)
    recording = serializers.PrimaryKeyRelatedField(queryset=Recording.objects.all(), required=False, allow_null=True)
    settings_hash = serializers.CharField(source="model_version.settings_hash", read_only=True)

    class Meta:
        model = InferenceJob
        fields = [*BackgroundJobSerializer.JOB_FIELDS, "model_version", "cohort", "recording", "version_hash",
                  "settings_hash", "chunks_total"]
        read_only_fields = ["state", "message", "error", "version_hash", "chunks_total", "created_at", "started_at",
                            "finished_at"]

    def get_progress(self, job) -> dict:
        return jobs.progress(job)

    def validate(self, data):
        if bool(data.get("cohort")) == bool(data.get("recording")):
            raise serializers.ValidationError("give exactly one of cohort or recording")
        return data


class PredictionSerializer(serializers.ModelSerializer):
    """Curators and researchers (model outputs): the output with where its stage came from and any rule conflict."""

    model_version = serializers.SlugRelatedField(slug_field="name", read_only=True)
    stage = serializers.ChoiceField(choices=STAGE_CHOICES, allow_blank=True, read_only=True, help_text="empty unless parsed")

    class Meta:
        model = Prediction
        fields = ["id", "epoch", "model_version", "job", "status", "stage", "rule_ids", "rationale", "probability",
                  "origin_note", "rule_conflict", "raw_output", "detail", "version_hash", "preparation_profile",
                  "created_at"]
        read_only_fields = fields
