"""REST API of the datasets app (session or token auth; the core access policy on every endpoint)."""
from django.db.models import ProtectedError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from core.access import reachable_queryset
from datasets.exceptions import InputError
from datasets.filters import EpochFilter, ImportJobFilter, RecordingFilter
from datasets.models import Cohort, Epoch, ImportJob, Recording
from datasets.serializers import CohortSerializer, EpochSerializer, ImportJobSerializer, RecordingSerializer
from datasets.services import imports, recordings
from datasets.services.hypnogram_export import OUTPUTS, export_hypnogram


class CohortViewSet(viewsets.ModelViewSet):
    """Cohorts as the cohort page shows them: a rater sees only those of the recordings they reach, counted."""

    serializer_class = CohortSerializer
    queryset = Cohort.objects.none()  # permission check: datasets.*_cohort

    def get_queryset(self):
        return recordings.visible_cohorts(self.request.user)

    def destroy(self, request, *args, **kwargs):
        cohort = self.get_object()
        try:
            cohort.delete()
        except ProtectedError:
            count = cohort.recordings.count()
            return Response(
                {"detail": f"cohort {cohort.name!r} still has {count} recording(s); delete or move them first"},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class RecordingViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = RecordingSerializer
    filterset_class = RecordingFilter
    recording_path = ""

    def get_queryset(self):
        return reachable_queryset(self, Recording.objects.select_related("cohort"))

    def perform_destroy(self, instance):
        recordings.delete_recording(instance, user=self.request.user)

    @extend_schema(parameters=[
        OpenApiParameter("source", str, enum=["reference", "consensus", "rater"]),
        OpenApiParameter("campaign", int, description="scoring campaign (consensus, rater)"),
        OpenApiParameter("rater", int, description="user id (rater; by default the requester)"),
        OpenApiParameter("output", str, enum=list(OUTPUTS)),
    ], responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def hypnogram(self, request, pk=None):
        """The recording's hypnogram as EDF+ annotations or NSRR XML: the reference, a campaign's consensus or one
        rater's labels, as the access policy allows (raters: their own labels only)."""
        try:
            export = export_hypnogram(self.get_object(), request.user, request.query_params)
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return export.response()


class EpochViewSet(viewsets.ReadOnlyModelViewSet):
    """Epochs (?recording=ID); reference stages only for roles allowed to see them."""

    serializer_class = EpochSerializer
    filterset_class = EpochFilter
    recording_path = "recording"

    def get_queryset(self):
        return reachable_queryset(self, Epoch.objects.prefetch_related("images").order_by("recording_id", "index"))


class ImportJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Upload a PSG file (multipart) to import it in the background; poll the job; retry or cancel it."""

    serializer_class = ImportJobSerializer
    filterset_class = ImportJobFilter
    queryset = ImportJob.objects.select_related("recording")
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def perform_create(self, serializer):
        data = serializer.validated_data
        try:
            serializer.instance = imports.submit_upload(
                upload=data["file"], cohort=data["cohort_name"], hypnogram=data.get("hypnogram"),
                hypnogram_format=data.get("hypnogram_format", ""), channel_map=data.get("channel_map"),
                mains_hz=data.get("mains_hz"), trim_to_hypnogram=data.get("trim_to_hypnogram", False),
                massex=data.get("massex"), massex_contiguous=data.get("massex_contiguous", False),
                subject_id=data.get("subject_id", ""), user=self.request.user,
            )
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None

    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed import again (its upload is kept when the failure was not the file's)."""
        try:
            job = imports.retry(self.get_object(), user=request.user)
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(self.get_serializer(job).data)

    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        """Leave a failed or cancelled import out of the job lists (its row and change records stay)."""
        try:
            job = imports.dismiss(self.get_object(), user=request.user)
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(self.get_serializer(job).data)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        job.cancel()
        return Response(self.get_serializer(job).data)


router = SimpleRouter()
router.register("cohorts", CohortViewSet, basename="cohort")
router.register("recordings", RecordingViewSet, basename="recording")
router.register("epochs", EpochViewSet, basename="epoch")
router.register("imports", ImportJobViewSet, basename="importjob")
