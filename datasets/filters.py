"""API filters of the datasets app (django-filter): a malformed value is a 400 naming the parameter."""
import django_filters

from core.filters import IdFilter
from datasets.models import Epoch, ImportJob, Recording


class RecordingFilter(django_filters.FilterSet):
    cohort = django_filters.CharFilter(field_name="cohort__name", help_text="cohort name")

    class Meta:
        model = Recording
        fields = ["cohort", "file_format"]


class EpochFilter(django_filters.FilterSet):
    recording = IdFilter(field_name="recording_id", help_text="recording id")
    index_min = IdFilter(field_name="index", lookup_expr="gte")
    index_max = IdFilter(field_name="index", lookup_expr="lte")

    class Meta:
        model = Epoch
        fields = ["recording", "index_min", "index_max"]


class ImportJobFilter(django_filters.FilterSet):
    class Meta:
        model = ImportJob
        fields = ["state", "cohort_name", "recording"]
