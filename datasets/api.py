"""REST API of the datasets app (session or token auth; role permissions on every endpoint)."""
from django.db.models import Count
from rest_framework import mixins, viewsets
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

from datasets.models import Cohort, Epoch, ImportJob, Recording
from datasets.serializers import CohortSerializer, EpochSerializer, ImportJobSerializer, RecordingSerializer
from datasets.services import imports


class CohortViewSet(viewsets.ModelViewSet):
    serializer_class = CohortSerializer
    queryset = Cohort.objects.annotate(recording_count=Count("recordings")).order_by("name")


class RecordingViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = RecordingSerializer

    def get_queryset(self):
        queryset = Recording.objects.select_related("cohort")
        cohort = self.request.query_params.get("cohort")
        return queryset.filter(cohort__name=cohort) if cohort else queryset


class EpochViewSet(viewsets.ReadOnlyModelViewSet):
    """Epochs of a recording (?recording=ID); reference stages only for roles allowed to see them."""

    serializer_class = EpochSerializer

    def get_queryset(self):
        queryset = Epoch.objects.prefetch_related("images").order_by("recording_id", "index")
        recording = self.request.query_params.get("recording")
        return queryset.filter(recording_id=recording) if recording else queryset


class ImportJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Upload a PSG file (multipart) to import it in the background; poll the job for progress."""

    serializer_class = ImportJobSerializer
    queryset = ImportJob.objects.select_related("recording")
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = imports.submit_upload(
            upload=data["file"], cohort=data["cohort_name"], hypnogram=data.get("hypnogram"),
            hypnogram_format=data.get("hypnogram_format", ""), channel_map=data.get("channel_map"),
            mains_hz=data.get("mains_hz"), trim_to_hypnogram=data.get("trim_to_hypnogram", False),
            user=self.request.user,
        )
