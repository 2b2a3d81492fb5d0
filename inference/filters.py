"""API filters of the inference app (django-filter): a malformed value is a 400 naming the parameter."""
import django_filters

from core.filters import IdFilter
from inference.models import InferenceJob, Prediction


class PredictionFilter(django_filters.FilterSet):
    epoch = IdFilter(field_name="epoch_id", help_text="epoch id")
    recording = IdFilter(field_name="epoch__recording_id", help_text="recording id")
    model_version = django_filters.CharFilter(field_name="model_version__name", help_text="model version name")
    job = IdFilter(field_name="job_id", help_text="inference job id")

    class Meta:
        model = Prediction
        fields = ["epoch", "recording", "model_version", "job", "status"]


class InferenceJobFilter(django_filters.FilterSet):
    model_version = django_filters.CharFilter(field_name="model_version__name")
    cohort = django_filters.CharFilter(field_name="cohort__name")

    class Meta:
        model = InferenceJob
        fields = ["state", "model_version", "cohort", "recording"]
