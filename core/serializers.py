"""Serializer pieces shared by every app: the job shape and fields blinded by the access policy."""
from rest_framework import serializers

from core.access import policy_for


class BackgroundJobSerializer(serializers.ModelSerializer):
    """A job's state and its one progress shape; subclasses list their own fields after JOB_FIELDS."""

    JOB_FIELDS = ["id", "state", "progress", "message", "error", "created_at", "started_at", "finished_at"]
    progress = serializers.SerializerMethodField()

    def get_progress(self, job) -> dict:
        return job.progress()


class BlindedFieldsMixin:
    """Drop fields the user may not see: `blinded_fields = {"capability": ["field", ...]}` (Policy properties)."""

    blinded_fields: dict[str, list[str]] = {}

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        policy = policy_for(request.user) if request is not None else None
        for capability, fields in self.blinded_fields.items():
            if policy is None or not getattr(policy, capability):
                for field in fields:
                    data.pop(field, None)
        return data
