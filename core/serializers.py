"""Serializer pieces shared by every app: the job shape and fields blinded by the access policy."""
from rest_framework import serializers

from core.access import policy_for


class BackgroundJobSerializer(serializers.ModelSerializer):
    """A job's state and its one progress shape; subclasses list their own fields after JOB_FIELDS."""

    JOB_FIELDS = ["id", "state", "progress", "message", "error", "queue", "worker", "created_at", "started_at",
                  "finished_at"]
    progress = serializers.SerializerMethodField()
    queue = serializers.CharField(read_only=True, help_text="the Celery queue the job was taken from")
    worker = serializers.CharField(read_only=True, help_text="the hostname of the worker holding it")

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


class ChangeRecordSerializer(serializers.ModelSerializer):
    """One change record as the requester may see it (a rater's own answers lose the fields hidden from raters)."""

    actor = serializers.CharField(source="actor_name", read_only=True)
    before = serializers.SerializerMethodField()
    after = serializers.SerializerMethodField()
    changes = serializers.SerializerMethodField()

    class Meta:
        from core.models import ChangeRecord

        model = ChangeRecord
        fields = ["id", "time", "actor", "action", "object_type", "object_id", "object_repr", "before", "after",
                  "changes", "request_id", "source"]
        read_only_fields = fields

    def _states(self, record):
        from core.services import audit

        return audit.states_seen_by(record, self.context["request"].user)

    def get_before(self, record) -> dict | None:
        return self._states(record)[0]

    def get_after(self, record) -> dict | None:
        return self._states(record)[1]

    def get_changes(self, record) -> list[dict]:
        """[{field, before, after}] for each field that differs."""
        from core.services import audit

        return audit.diff(*self._states(record))
