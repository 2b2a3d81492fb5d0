"""Serializers of the releases API."""
from rest_framework import serializers

from core.serializers import BackgroundJobSerializer
from releases.models import Release, ReleaseFile
from releases.services.provenance import stored as stored_provenance


class ReleaseFileSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ReleaseFile
        fields = ["path", "size", "sha256", "archive", "url"]

    def get_url(self, row) -> str:
        from django.urls import reverse

        return reverse("release-file", args=[row.release_id, row.path])


class ReleaseSerializer(BackgroundJobSerializer):
    cohorts = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    scoring_campaigns = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    rating_campaigns = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    model_versions = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    previous = serializers.SlugRelatedField(slug_field="version", read_only=True, allow_null=True)
    files = ReleaseFileSerializer(many=True, read_only=True)

    class Meta:
        model = Release
        fields = BackgroundJobSerializer.JOB_FIELDS + [
            "name", "version", "description", "license_id", "license_text", "cohorts", "scoring_campaigns",
            "rating_campaigns", "model_versions", "stage_source", "include_images", "previous", "epochs",
            "changelog", "files"]


class ReleaseDetailSerializer(ReleaseSerializer):
    """One release with its provenance.json (null until built)."""

    provenance = serializers.SerializerMethodField()

    class Meta(ReleaseSerializer.Meta):
        fields = ReleaseSerializer.Meta.fields + ["provenance"]

    def get_provenance(self, release) -> dict | None:
        return stored_provenance(release)


class ReleaseCreateSerializer(serializers.Serializer):
    """POST /api/releases/: the fields of releases.services.build.create_release."""

    name = serializers.CharField(max_length=100)
    version = serializers.CharField(max_length=40)
    cohorts = serializers.ListField(child=serializers.CharField())
    stage_source = serializers.ChoiceField(choices=Release.STAGE_SOURCES, default=Release.REFERENCE)
    scoring_campaigns = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    rating_campaigns = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    model_versions = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    license_id = serializers.CharField(required=False, default="cc-by-nc-4.0")
    license_text = serializers.CharField(required=False, allow_blank=True, default="")
    include_images = serializers.BooleanField(required=False, default=False)
