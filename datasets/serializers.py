"""DRF serializers; reference stages are removed for users without view_reference_stage (blinding)."""
import json

from django.urls import reverse
from rest_framework import serializers

from datasets.models import Cohort, Epoch, ImportJob, Recording
from datasets.exceptions import InputError
from datasets.services.channels import parse_channel_map
from datasets.services.hypnograms import FORMATS

REFERENCE_FIELDS = ("stage", "reference_rules", "reference_rationale")


class CohortSerializer(serializers.ModelSerializer):
    recording_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Cohort
        fields = ["id", "name", "description", "recording_count", "created_at"]


class RecordingSerializer(serializers.ModelSerializer):
    cohort = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Recording
        fields = [
            "id", "cohort", "name", "sha256", "source_filename", "file_format", "start_time", "duration_s",
            "mains_hz", "channels_found", "channel_plan", "derivations", "substitutions", "processing_notes",
            "hypnogram_format", "hypnogram_source", "hypnogram_notes", "epoch_offset_s", "epoch_count", "created_at",
        ]
        read_only_fields = fields


class EpochSerializer(serializers.ModelSerializer):
    model_image = serializers.SerializerMethodField()

    class Meta:
        model = Epoch
        fields = ["id", "recording", "index", "onset_s", "model_image", *REFERENCE_FIELDS]
        read_only_fields = fields

    def get_model_image(self, epoch) -> str | None:
        image = next((i for i in epoch.images.all() if i.kind == "model"), None)
        return reverse("datasets:image", args=[image.sha256]) if image else None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not request.user.has_perm("datasets.view_reference_stage"):
            for field in REFERENCE_FIELDS:
                data.pop(field, None)
        return data


class ImportJobSerializer(serializers.ModelSerializer):
    """An import: upload with `file` (multipart); read back state and progress."""

    file = serializers.FileField(write_only=True, help_text="EDF, EDF+ or BDF file")
    hypnogram = serializers.FileField(write_only=True, required=False, help_text="separate hypnogram file")
    hypnogram_format = serializers.ChoiceField(choices=[("", "detect")] + [(f, f) for f in FORMATS], required=False)
    channel_map = serializers.JSONField(required=False, allow_null=True)
    cohort = serializers.CharField(source="cohort_name", max_length=100)

    class Meta:
        model = ImportJob
        fields = [
            "id", "state", "cohort", "source_name", "hypnogram_name", "hypnogram_format", "channel_map", "mains_hz",
            "trim_to_hypnogram", "percent", "epochs_done", "epochs_total", "message", "error", "recording",
            "created_at", "started_at", "finished_at", "file", "hypnogram",
        ]
        read_only_fields = [
            "state", "source_name", "hypnogram_name", "percent", "epochs_done", "epochs_total", "message", "error",
            "recording", "created_at", "started_at", "finished_at",
        ]

    def validate_channel_map(self, value):
        if value in (None, "", {}):
            return None
        try:
            return parse_channel_map(json.dumps(value), allow_file=False)
        except InputError as exc:
            raise serializers.ValidationError(str(exc)) from None
