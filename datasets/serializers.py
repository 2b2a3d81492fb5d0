"""DRF serializers of the datasets app; blinded fields go through the core access policy."""
import json

from django.urls import reverse
from rest_framework import serializers

from core.access import policy_for
from core.serializers import BackgroundJobSerializer, BlindedFieldsMixin
from datasets.exceptions import InputError
from datasets.models import Cohort, Epoch, ImportJob, Recording
from datasets.services.channels import parse_channel_map
from datasets.services.hypnograms import FORMATS

REFERENCE_FIELDS = ["stage", "massex_n", "reference_rules", "reference_rationale"]  # N tells which epochs are unscored
# Identity and provenance (spec/privacy.md): for roles that see provenance, never for raters.
PROVENANCE_FIELDS = ["sha256", "source_filename", "edf_patient", "edf_recording", "measured_at", "start_time",
                     "subject_age", "identity_findings", "hypnogram_source", "hypnogram_notes"]


class CohortSerializer(serializers.ModelSerializer):
    recording_count = serializers.IntegerField(read_only=True, default=0, help_text="recordings the requester reaches")

    class Meta:
        model = Cohort
        fields = ["id", "name", "description", "subject_prefix", "date_policy", "recording_count", "created_at"]


class RecordingSerializer(BlindedFieldsMixin, serializers.ModelSerializer):
    """A recording; raters get a pseudonymous name and none of the fields that identify the subject."""

    blinded_fields = {"can_see_provenance": PROVENANCE_FIELDS}
    cohort = serializers.SlugRelatedField(slug_field="name", read_only=True)
    name = serializers.SerializerMethodField()

    class Meta:
        model = Recording
        fields = [
            "id", "cohort", "name", "file_format", "duration_s", "mains_hz", "preparation_profile", "channels_found",
            "channel_plan", "derivations", "substitutions", "processing_notes", "hypnogram_format", "massex_contiguous",
            "epoch_offset_s",
            "epoch_count", "created_at", *PROVENANCE_FIELDS,
        ]
        read_only_fields = fields

    def get_name(self, recording) -> str:
        return policy_for(self.context["request"].user).recording_label(recording)


class EpochSerializer(BlindedFieldsMixin, serializers.ModelSerializer):
    blinded_fields = {"can_see_reference": REFERENCE_FIELDS}
    model_image = serializers.SerializerMethodField()

    class Meta:
        model = Epoch
        fields = ["id", "recording", "index", "onset_s", "model_image", *REFERENCE_FIELDS]
        read_only_fields = fields

    def get_model_image(self, epoch) -> str | None:
        image = next((i for i in epoch.images.all() if i.kind == "model"), None)
        return reverse("datasets:image", args=[image.sha256]) if image else None


class ImportJobSerializer(BackgroundJobSerializer):
    """An import: upload with `file` (multipart); read back state and progress."""

    file = serializers.FileField(write_only=True, help_text="EDF, EDF+ or BDF file")
    hypnogram = serializers.FileField(write_only=True, required=False, help_text="separate hypnogram file")
    hypnogram_format = serializers.ChoiceField(choices=[("", "detect")] + [(f, f) for f in FORMATS], required=False)
    massex = serializers.FileField(write_only=True, required=False,
                                   help_text="MASS-EX CSV: rules and rationale onto the hypnogram's scored epochs")
    channel_map = serializers.JSONField(required=False, allow_null=True)
    cohort = serializers.CharField(source="cohort_name", max_length=100)
    source_name = serializers.CharField(read_only=True)
    link = serializers.IntegerField(source="recording_id", read_only=True, help_text="the imported recording")
    link_text = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [*BackgroundJobSerializer.JOB_FIELDS, "cohort", "subject_id", "source_name", "hypnogram_name",
                  "hypnogram_format", "channel_map", "mains_hz", "trim_to_hypnogram", "massex_name", "massex_contiguous",
                  "recording", "link", "link_text", "dismissed_at", "file", "hypnogram", "massex"]
        read_only_fields = ["state", "message", "error", "source_name", "hypnogram_name", "massex_name", "recording",
                            "created_at", "started_at", "finished_at", "dismissed_at"]

    def get_link_text(self, job) -> str:
        return "Open recording"

    def validate_channel_map(self, value):
        if value in (None, "", {}):
            return None
        try:
            return parse_channel_map(json.dumps(value), allow_file=False)
        except InputError as exc:
            raise serializers.ValidationError(str(exc)) from None
