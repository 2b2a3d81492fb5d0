"""Filters of the audit trail, shared by the audit page and GET /api/audit/."""
import django_filters
from django import forms

from core.models import ChangeRecord


class IdFilter(django_filters.NumberFilter):
    """An id or index in a query: a whole number from 0 to 2^63 − 1; anything else is a 400 naming the parameter
    (a larger number would overflow the database's integer, a 500)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class ChangeRecordFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name", help_text="username of the actor")
    action = django_filters.ChoiceFilter(choices=ChangeRecord.ACTION_CHOICES)
    object_type = django_filters.CharFilter(help_text="app_label.model_name, e.g. annotation.label")
    object_id = django_filters.CharFilter()
    source = django_filters.ChoiceFilter(choices=ChangeRecord.SOURCE_CHOICES)
    request_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte", help_text="ISO 8601 time")
    until = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="lte", help_text="ISO 8601 time")

    class Meta:
        model = ChangeRecord
        fields = ["actor", "action", "object_type", "object_id", "source", "request_id", "since", "until"]
